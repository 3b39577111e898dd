// The shared executor vectors: scenarios of installs and packets with the verdict each must give.
// Both executors (TypeScript reference and native) replay test/vectors/executor.json and must match
// byte for byte. `generateExecutorVectors` rebuilds the file from the TypeScript executor:
//   node --import tsx scripts/gen-executor-vectors.ts
import { createCipheriv } from 'node:crypto';
import type {
  PathRule,
  RxSa,
  Side,
  TunnelExecutor,
  TunnelRxSa,
  TunnelTxSa,
  TxSa,
  Verdict,
} from '../../src/core/executor.js';
import {
  buildIpv4,
  ipv4Dst,
  ipv4Src,
  PROTO_ESP,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
} from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { buildTcpSegment, buildTcpSyn } from '../../src/core/packet/tcp.js';
import { espSeal } from '../../src/crypto/esp.js';
import { encodeSearchMessage } from '../../src/core/packet/search-message.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';

export type VectorStep =
  | { op: 'installPath'; rule: PathRule }
  | { op: 'removePath'; local: string; remote: string }
  | { op: 'installTxSa'; sa: Omit<TxSa, 'key' | 'salt' | 'nextSeq'> & { key: string; salt: string; nextSeq: string } }
  | { op: 'installRxSa'; sa: Omit<RxSa, 'key' | 'salt' | 'floor'> & { key: string; salt: string; floor?: string } }
  /** recheck: the packet was punted before (Executor.process); a punt now is not counted again. */
  | { op: 'process'; name: string; from: Side; now: number; packet: string; recheck?: true; expect: JsonVerdict }
  /** Every counter that has moved, by name (Executor.counters). */
  | { op: 'counters'; expect: Record<string, number> | null }
  | { op: 'stats'; local: string; remote: string; expect: { packets: number; bytes: number; lastUsed: number } | null }
  | { op: 'installTunnelTx'; sa: Omit<TunnelTxSa, 'key' | 'salt'> & { key: string; salt: string } }
  | { op: 'installTunnelRx'; sa: Omit<TunnelRxSa, 'key' | 'salt'> & { key: string; salt: string } }
  | { op: 'removeTunnelTx'; spi: number }
  | { op: 'removeTunnelRx'; spi: number }
  | { op: 'processUdp'; name: string; src: string; srcPort: number; now: number; payload: string; expect: JsonVerdict }
  | { op: 'tunnelTxStats'; spi: number; expect: unknown }
  | { op: 'tunnelRxStats'; spi: number; expect: unknown };

export type JsonVerdict =
  | { kind: 'forward'; bytes: string; note: Record<string, string | number>; more?: string[] }
  | { kind: 'drop'; reason: string }
  | { kind: 'punt'; reason: string };

export interface VectorScenario {
  name: string;
  steps: VectorStep[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

export function verdictToJson(v: Verdict): JsonVerdict {
  if (v.kind !== 'forward') return { kind: v.kind, reason: v.reason } as JsonVerdict;
  const note: Record<string, string | number> = {};
  for (const [k, val] of Object.entries(v.note))
    note[k] = typeof val === 'bigint' ? val.toString() : (val as string | number);
  return v.more
    ? { kind: 'forward', bytes: hex(v.bytes), note, more: v.more.map(hex) }
    : { kind: 'forward', bytes: hex(v.bytes), note };
}

/** What an executor did at one checking step of a scenario (a process, counters or stats step). */
export interface ReplayedCheck {
  step: number;
  op: VectorStep['op'];
  name: string;
  expected: unknown;
  actual: unknown;
}

/**
 * Applies one scenario to an executor (either implementation), returning what it actually did at
 * each checking step; a step of an unknown kind throws.
 */
export function replayScenario(exec: TunnelExecutor, s: VectorScenario): ReplayedCheck[] {
  const out: ReplayedCheck[] = [];
  s.steps.forEach((st, i) => {
    const check = (name: string, expected: unknown, actual: unknown): void => {
      out.push({ step: i, op: st.op, name, expected, actual });
    };
    switch (st.op) {
      case 'installPath':
        return exec.installPath(st.rule);
      case 'removePath':
        return exec.removePath(st.local, st.remote);
      case 'installTxSa':
        return exec.installTxSa({
          ...st.sa,
          key: unhex(st.sa.key),
          salt: unhex(st.sa.salt),
          nextSeq: BigInt(st.sa.nextSeq),
        });
      case 'installRxSa':
        return exec.installRxSa({
          ...st.sa,
          key: unhex(st.sa.key),
          salt: unhex(st.sa.salt),
          floor: st.sa.floor === undefined ? undefined : BigInt(st.sa.floor),
        });
      case 'process':
        return check(
          st.name,
          st.expect,
          verdictToJson(exec.process(st.from, unhex(st.packet), st.now, st.recheck ?? false)),
        );
      case 'counters':
        return check('counters', st.expect, exec.counters());
      case 'stats':
        return check('stats', st.expect, exec.pathStats(st.local, st.remote) ?? null);
      case 'installTunnelTx':
        return exec.installTunnelTx({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt) });
      case 'installTunnelRx':
        return exec.installTunnelRx({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt) });
      case 'removeTunnelTx':
        return exec.removeTunnelTx(st.spi);
      case 'removeTunnelRx':
        return exec.removeTunnelRx(st.spi);
      case 'processUdp':
        return check(st.name, st.expect, verdictToJson(exec.processUdp(st.src, st.srcPort, unhex(st.payload), st.now)));
      case 'tunnelTxStats':
        return check('tunnelTxStats', st.expect, exec.tunnelTxStats(st.spi) ?? null);
      case 'tunnelRxStats':
        return check('tunnelRxStats', st.expect, exec.tunnelRxStats(st.spi) ?? null);
      default:
        throw new Error(`${s.name} step ${i}: unknown step ${JSON.stringify(st satisfies never)}`);
    }
  });
  return out;
}

const B = '10.2.0.10';
const A = '10.1.0.10';
const C = '10.3.0.10';

function ping(src: string, dst: string, seq: number, data = 'kasane vector payload', df = false): Uint8Array {
  const icmp = buildIcmpEcho({ type: 8, id: 0x4242, seq, data: new TextEncoder().encode(data) });
  return buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: icmp, ttl: 63, id: 0x1000 + seq, df });
}

/** Every verdict the scenarios' steps expect: `forward.<op>`, `drop.<reason>` or `punt.<reason>`. */
export function verdictsGiven(scenarios: VectorScenario[]): Set<string> {
  const seen = new Set<string>();
  for (const s of scenarios)
    for (const st of s.steps)
      if (st.op === 'process' || st.op === 'processUdp')
        seen.add(
          st.expect.kind === 'forward' ? `forward.${st.expect.note.op}` : `${st.expect.kind}.${st.expect.reason}`,
        );
  return seen;
}

/** The scenarios, with expectations filled in by running them on `make()` (the reference). */
export function generateExecutorVectors(make: () => TunnelExecutor): VectorScenario[] {
  const vpnKey = new Uint8Array(32).map((_, i) => i + 1);
  const g2 = deriveSenderKey(vpnKey, 1, 1, 'G2');
  const g3 = deriveSenderKey(vpnKey, 1, 1, 'G3');
  const tx: VectorStep = {
    op: 'installTxSa',
    sa: { spi: 0x1001, vpnId: 1, epoch: 1, key: hex(g2.key), salt: hex(g2.salt), nextSeq: '1' },
  };
  const rxG2: VectorStep = {
    op: 'installRxSa',
    sa: { spi: 0x1001, vpnId: 1, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) },
  };
  const rxG3: VectorStep = {
    op: 'installRxSa',
    sa: { spi: 0x1003, vpnId: 1, epoch: 1, sender: 'G3', key: hex(g3.key), salt: hex(g3.salt) },
  };
  const rxOtherVpn: VectorStep = {
    op: 'installRxSa',
    sa: { spi: 0x2001, vpnId: 2, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) },
  };

  // Sender side (G2, serving B): encrypt B→A.
  const senderSteps: VectorStep[] = [
    tx,
    { op: 'installPath', rule: { local: B, remote: A, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1500 } },
    { op: 'installPath', rule: { local: B, remote: C, action: 'discard' } },
    { op: 'installPath', rule: { local: B, remote: '192.0.2.99', action: 'plain' } },
    { op: 'installPath', rule: { local: B, remote: '10.9.0.1', action: 'pending' } },
    { op: 'installPath', rule: { local: B, remote: '10.8.0.1', action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 200 } },
    { op: 'installPath', rule: { local: B, remote: '10.7.0.1', action: 'encrypt', vpnId: 7, peer: 'G1', mtu: 1500 } },
    { op: 'installPath', rule: { local: B, remote: '10.8.0.2', action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 120 } },
    { op: 'installPath', rule: { local: B, remote: '10.8.0.3', action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 60 } },
    proc('encrypt first (DF: transport form)', 'inside', 1000, ping(B, A, 1, undefined, true)),
    proc('encrypt second (seq 2)', 'inside', 1001, ping(B, A, 2, undefined, true)),
    proc('encrypt odd length without DF (carried form, next header 4)', 'inside', 1002, ping(B, A, 3, 'odd')),
    proc('discard', 'inside', 1003, ping(B, C, 1)),
    proc('plain', 'inside', 1004, ping(B, '192.0.2.99', 1)),
    proc('pending', 'inside', 1005, ping(B, '10.9.0.1', 1)),
    proc('miss', 'inside', 1006, ping(B, '10.6.0.1', 1)),
    // The core runs a punted packet again (the table may have changed since the punt): one count.
    recheck('miss rechecked: not counted again', 'inside', 1006, ping(B, '10.6.0.1', 1)),
    recheck('pending rechecked: not counted again', 'inside', 1006, ping(B, '10.9.0.1', 1)),
    { op: 'counters', expect: null },
    recheck('rechecked on a plain rule: forwarded and counted', 'inside', 1006, ping(B, '192.0.2.99', 2)),
    { op: 'counters', expect: null },
    proc('too big with DF', 'inside', 1007, ping(B, '10.8.0.1', 1, 'x'.repeat(180), true)),
    proc(
      'big without DF: fragmented, each fragment carried with DF',
      'inside',
      1008,
      ping(B, '10.8.0.1', 2, 'x'.repeat(180), false),
    ),
    proc('no sending SA', 'inside', 1009, ping(B, '10.7.0.1', 1)),
    proc(
      'TCP SYN: MSS clamped then encrypted',
      'inside',
      1010,
      buildTcpSyn({ src: B, dst: '10.8.0.1', srcPort: 40000, dstPort: 80, seq: 7, mss: 1460 }),
    ),
    proc(
      'TCP SYN without DF: MSS clamped for the carried form',
      'inside',
      1010,
      buildTcpSegment({
        src: B,
        dst: '10.8.0.1',
        srcPort: 40001,
        dstPort: 80,
        seq: 7,
        mss: 1460,
        flags: 0x02,
        df: false,
      }),
    ),
    proc('a fragment from the terminal is carried whole', 'inside', 1011, fragment(ping(B, A, 9))),
    proc(
      'a fragment larger than the path is fragmented further (offsets continue, MF kept)',
      'inside',
      1011,
      fragment(ping(B, '10.8.0.1', 11, 'y'.repeat(300)), 64),
    ),
    proc(
      'a fragment with DF larger than the path: too big',
      'inside',
      1011,
      withDf(fragment(ping(B, '10.8.0.1', 12, 'y'.repeat(300)))),
    ),
    proc(
      'options: copied in every fragment, the others only in the first',
      'inside',
      1011,
      withOptions(ping(B, '10.8.0.1', 13, 'z'.repeat(250))),
    ),
    proc('more than 64 fragments: too big', 'inside', 1011, ping(B, '10.8.0.2', 14, 'w'.repeat(2700))),
    proc('64 fragments: sent', 'inside', 1011, ping(B, '10.8.0.2', 15, 'w'.repeat(2552))),
    proc('path too narrow to fragment: too big', 'inside', 1011, ping(B, '10.8.0.3', 16, 'v'.repeat(100))),
    proc(
      'IP in IP with DF is carried too (next header 4 means the whole packet)',
      'inside',
      1011,
      buildIpv4({ src: B, dst: A, protocol: 4, payload: ping('10.9.0.1', '10.9.0.2', 1), df: true }),
    ),
    proc('malformed (bad checksum)', 'inside', 1012, corruptChecksum(ping(B, A, 10))),
    proc('search message punted before rules', 'inside', 1013, searchPing(B, A)),
    { op: 'stats', local: B, remote: A, expect: null },
    { op: 'removePath', local: B, remote: C },
    proc('removed rule is a miss', 'inside', 1014, ping(B, C, 2)),
    // Raw ESP (protocol 50), selectable per VPN through its sending SA; UDP is the default.
    {
      op: 'installTxSa',
      sa: { ...(tx as Extract<VectorStep, { op: 'installTxSa' }>).sa, nextSeq: '500', encapsulation: 'esp' },
    },
    proc('raw ESP: transport form, protocol 50', 'inside', 1015, ping(B, A, 40, undefined, true)),
    proc('raw ESP: carried form', 'inside', 1015, ping(B, A, 41, 'odd')),
    proc(
      'raw ESP: fragmented with 8 bytes more room per piece than in UDP',
      'inside',
      1015,
      ping(B, '10.8.0.1', 42, 'x'.repeat(180), false),
    ),
    { op: 'counters', expect: null },
  ];
  const sender: VectorScenario = { name: 'sender', steps: senderSteps };
  fill(make(), sender);

  // Receiver side (G1, serving A): decrypt what the sender produced.
  const encrypted = sender.steps.filter(
    (s): s is Extract<VectorStep, { op: 'process' }> => s.op === 'process' && s.name.startsWith('encrypt'),
  );
  const e1 = (encrypted[0].expect as { bytes: string }).bytes;
  const e2 = (encrypted[1].expect as { bytes: string }).bytes;
  const e3 = (encrypted[2].expect as { bytes: string }).bytes;
  const tampered = unhex(e3);
  tampered[tampered.length - 3] ^= 0x01;
  // Carried ESP from G2 sealed here (next header 4), for what no sender of ours produces.
  const carried = (seq: number, inner: Uint8Array, outer: Uint8Array = inner) => {
    const esp = espSeal({ spi: 0x1001, key: g2.key, salt: g2.salt }, BigInt(seq), 4, inner);
    return buildIpv4({
      src: ipv4Src(outer),
      dst: ipv4Dst(outer),
      protocol: PROTO_ESP,
      payload: esp,
      ttl: 50,
      df: true,
      tos: 0x28,
    });
  };
  const carriedFragment = (
    sender.steps.find(
      (st): st is Extract<VectorStep, { op: 'process' }> =>
        st.op === 'process' && st.name === 'a fragment from the terminal is carried whole',
    )!.expect as { bytes: string }
  ).bytes;
  const outerFragment = (p: Uint8Array) => fixChecksum(Object.assign(p.slice(), { 6: p[6] | 0x20 }));
  const esp = (name: string) =>
    unhex(
      (sender.steps.find((x) => x.op === 'process' && x.name === name) as { expect: { bytes: string } }).expect.bytes,
    );
  const receiver: VectorScenario = {
    name: 'receiver',
    steps: [
      rxG2,
      rxG3,
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1500 } },
      proc('decrypt second first (out of order)', 'outside', 2000, unhex(e2)),
      proc('decrypt first', 'outside', 2001, unhex(e1)),
      proc('replay dropped', 'outside', 2002, unhex(e1)),
      proc('tampered ICV dropped', 'outside', 2003, tampered),
      proc('decrypt third (carried form: the inner packet, outer TOS and TTL)', 'outside', 2004, unhex(e3)),
      proc('raw ESP is accepted too: transport form', 'outside', 2004, esp('raw ESP: transport form, protocol 50')),
      proc('raw ESP is accepted too: carried form', 'outside', 2004, esp('raw ESP: carried form')),
      proc('UDP to another port than 4500: unsolicited plain', 'outside', 2004, Object.assign(unhex(e2), { 23: 0x95 })),
      proc(
        'UDP length other than the IP payload: malformed',
        'outside',
        2004,
        Object.assign(unhex(e2), { 25: unhex(e2)[25] ^ 4 }),
      ),
      proc('carried: a fragment arrives as the terminal sent it', 'outside', 2004, unhex(carriedFragment)),
      proc(
        'carried: inner packet for another path is malformed',
        'outside',
        2004,
        carried(101, ping(C, A, 32), ping(B, A, 32)),
      ),
      proc(
        'carried: inner not IPv4 is malformed',
        'outside',
        2004,
        carried(102, new Uint8Array(40).fill(0x60), ping(B, A, 33)),
      ),
      proc(
        'carried: inner length not the decrypted length is malformed',
        'outside',
        2004,
        carried(103, Uint8Array.from([...ping(B, A, 34), 0, 0, 0, 0])),
      ),
      proc('a fragment of ESP cannot be opened: dropped', 'outside', 2004, outerFragment(carried(104, ping(B, A, 35)))),
      proc('unsolicited plaintext dropped', 'outside', 2005, ping(B, A, 1)),
      proc('search message from outside punted', 'outside', 2006, searchPing(B, A)),
      proc(
        'ESP from a path without a rule: miss',
        'outside',
        2007,
        fixChecksum(unhex(e1).fill(0, 12, 16).fill(10, 12, 13).fill(5, 15, 16)),
      ),
      { op: 'stats', local: A, remote: B, expect: null },
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G3', mtu: 1500 } },
      proc('sender is not the peer', 'outside', 2008, unhex(e3)),
      rxOtherVpn,
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 2, peer: 'G2', mtu: 1500 } },
      proc('SA of another VPN', 'outside', 2009, unhex(e3)),
      { op: 'installPath', rule: { local: A, remote: B, action: 'plain' } },
      proc('plain rule relays ESP of another layer unchanged', 'outside', 2010, unhex(e3)),
      { op: 'counters', expect: null },
    ],
  };
  fill(make(), receiver);

  // Receiver after a restart: the SA is installed with the floor learned from the sender
  // (docs/protocol.md §3.2); everything below it is a replay, a reinstall only raises it.
  const floorAt = (floor: string): VectorStep => ({
    op: 'installRxSa',
    sa: { ...(rxG2 as Extract<VectorStep, { op: 'installRxSa' }>).sa, floor },
  });
  const restarted: VectorScenario = {
    name: 'receiver with a learned floor',
    steps: [
      floorAt('3'),
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1500 } },
      { op: 'installPath', rule: { local: '10.8.0.1', remote: B, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1500 } },
      proc('below the floor (seq 1): replay', 'outside', 3000, unhex(e1)),
      proc('below the floor (seq 2): replay', 'outside', 3001, unhex(e2)),
      proc('at the floor (seq 3): decrypted', 'outside', 3002, unhex(e3)),
      proc('seq 3 again: replay', 'outside', 3003, unhex(e3)),
      floorAt('2'),
      proc('a lower floor reopens nothing (seq 2)', 'outside', 3004, unhex(e2)),
      floorAt('6'),
      proc(
        'a raised floor (6) refuses seq 4',
        'outside',
        3005,
        esp('big without DF: fragmented, each fragment carried with DF'),
      ),
      proc('and takes seq 6', 'outside', 3006, esp('TCP SYN: MSS clamped then encrypted')),
    ],
  };
  fill(make(), restarted);
  return [sender, receiver, restarted, arrivingSynVectors(make, g2), ...tunnelVectors(make)];
}

/** A TCP segment from B to A with an MSS option; SYN-ACK by default. */
function tcpToA(mss: number, o: { flags?: number; df?: boolean; srcPort?: number } = {}): Uint8Array {
  return buildTcpSegment({
    src: B,
    dst: A,
    srcPort: o.srcPort ?? 80,
    dstPort: 40000,
    seq: 99,
    ack: 8,
    mss,
    flags: o.flags ?? 0x12,
    df: o.df ?? true,
  });
}

/**
 * G1 at a WAN of 1280 decrypts TCP SYNs that B's gateway clamped for its own, wider path: they leave
 * with the MSS G1 can encrypt the replies with (mtu - ESP 37 - UDP 8 - 40), in every form.
 */
function arrivingSynVectors(make: () => TunnelExecutor, g2: { key: Uint8Array; salt: Uint8Array }): VectorScenario {
  const sa = { spi: 0x1001, key: g2.key, salt: g2.salt };
  const transport = (seq: number, inner: Uint8Array, udp = true): Uint8Array => {
    const esp = espSeal(sa, BigInt(seq), inner[9], inner.subarray(20));
    const u = new Uint8Array(8 + esp.length);
    u.set([0x11, 0x94, 0x11, 0x94, u.length >> 8, u.length & 0xff], 0);
    u.set(esp, 8);
    return buildIpv4({
      src: B,
      dst: A,
      protocol: udp ? PROTO_UDP : PROTO_ESP,
      payload: udp ? u : esp,
      ttl: 50,
      df: true,
    });
  };
  const carried = (seq: number, inner: Uint8Array): Uint8Array =>
    buildIpv4({ src: B, dst: A, protocol: PROTO_ESP, payload: espSeal(sa, BigInt(seq), 4, inner), ttl: 50, df: true });
  const g1 = deriveSenderKey(
    new Uint8Array(32).map((_, i) => i + 1),
    1,
    1,
    'G1',
  );
  const txG1 = (encapsulation: 'udp' | 'esp'): VectorStep => ({
    op: 'installTxSa',
    sa: { spi: 0x1002, vpnId: 1, epoch: 1, key: hex(g1.key), salt: hex(g1.salt), nextSeq: '1', encapsulation },
  });
  const steps: VectorStep[] = [
    { op: 'installRxSa', sa: { spi: 0x1001, vpnId: 1, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) } },
    { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1280 } },
    proc(
      'arriving SYN-ACK, no sending SA yet: clamped for UDP (MSS 1195)',
      'outside',
      5000,
      transport(1, tcpToA(1460)),
    ),
    txG1('udp'),
    proc('arriving SYN-ACK in UDP: clamped (MSS 1195)', 'outside', 5001, transport(2, tcpToA(1460))),
    proc(
      'arriving SYN in raw ESP: clamped for our own UDP (MSS 1195)',
      'outside',
      5002,
      transport(3, tcpToA(1460, { flags: 0x02 }), false),
    ),
    proc('arriving SYN-ACK below the limit: untouched (MSS 1100)', 'outside', 5003, transport(4, tcpToA(1100))),
    proc(
      'arriving ACK: only SYNs are clamped (MSS 1460)',
      'outside',
      5004,
      transport(5, tcpToA(1460, { flags: 0x10 })),
    ),
    proc(
      'arriving SYN-ACK, carried form: clamped (MSS 1195)',
      'outside',
      5005,
      carried(6, tcpToA(1460, { df: false })),
    ),
    proc(
      'arriving SYN-ACK, carried first fragment: untouched',
      'outside',
      5006,
      carried(7, fragment(tcpToA(1460, { df: false }))),
    ),
    txG1('esp'),
    proc(
      'arriving SYN-ACK, our replies in raw ESP: 8 bytes more (MSS 1203)',
      'outside',
      5007,
      transport(8, tcpToA(1460)),
    ),
    { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G2' } },
    proc(
      'arriving SYN-ACK on a path without an MTU: untouched (MSS 1460)',
      'outside',
      5008,
      transport(9, tcpToA(1460)),
    ),
    { op: 'counters', expect: null },
  ];
  const s: VectorScenario = { name: 'receiver clamps arriving SYNs', steps };
  fill(make(), s);
  return s;
}

// ---- tunnel mode (IKE Child SAs: ESP in UDP, docs/executor.md "Tunnel mode") ----

const G1_ADDR = '192.0.2.1';
const G2_ADDR = '198.51.100.2';
const T256 = 0xc0000001;
const T128 = 0xc0000002;
const TWRAP = 0xc0000003;
const TSOFT = 0xc0000004;

/** Child SA keys as IKE would take them from KEYMAT: key then 4-byte salt. Fixed bytes. */
function keymat(len: 16 | 32, seed: number): { key: string; salt: string } {
  const b = new Uint8Array(len + 4).map((_, i) => (i * 29 + seed * 13 + 7) & 0xff);
  return { key: hex(b.subarray(0, len)), salt: hex(b.subarray(len)) };
}

/**
 * An ESP-in-UDP payload sealed here, independently of both executors (for the cases no sender
 * produces: dummy packets, other next headers, TFC padding, arbitrary sequence numbers).
 */
export function sealTunnelEsp(
  k: { key: string; salt: string },
  spi: number,
  seq: number,
  nh: number,
  payload: Uint8Array,
  trailer?: Uint8Array,
): Uint8Array {
  const key = unhex(k.key);
  const pad = (4 - ((payload.length + 2) % 4)) % 4;
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32BE(spi, 0);
  hdr.writeUInt32BE(seq, 4);
  hdr.writeUInt32BE(seq, 12);
  const c = createCipheriv(
    key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm',
    key,
    Buffer.concat([unhex(k.salt), hdr.subarray(8, 16)]),
  );
  c.setAAD(hdr.subarray(0, 8));
  const pt = Buffer.concat([
    payload,
    trailer ?? Uint8Array.from([...Array.from({ length: pad }, (_, i) => i + 1), pad, nh]),
  ]);
  return new Uint8Array(Buffer.concat([hdr, c.update(pt), c.final(), c.getAuthTag()]));
}

export function udp(name: string, src: string, srcPort: number, now: number, payload: Uint8Array): VectorStep {
  return {
    op: 'processUdp',
    name,
    src,
    srcPort,
    now,
    payload: hex(payload),
    expect: { kind: 'drop', reason: 'unfilled' },
  };
}

function tunnelVectors(make: () => TunnelExecutor): VectorScenario[] {
  const k256 = keymat(32, 1);
  const k128 = keymat(16, 2);
  const kWrap = keymat(32, 3);
  const txSa = (
    spi: number,
    k: { key: string; salt: string },
    extra: Partial<Omit<TunnelTxSa, 'key' | 'salt'>> = {},
  ): VectorStep => ({
    op: 'installTunnelTx',
    sa: {
      spi,
      vpnId: 5,
      peer: 'G2',
      ...k,
      localAddr: G1_ADDR,
      localPort: 4500,
      remoteAddr: G2_ADDR,
      remotePort: 4500,
      ...extra,
    },
  });
  const tunnelRule = (remote: string, spi: number, mtu = 1400): VectorStep => ({
    op: 'installPath',
    rule: { local: A, remote, action: 'encrypt', vpnId: 5, peer: 'G2', mtu, tunnel: { spi } },
  });
  const tos = (p: Uint8Array, v: number): Uint8Array => fixChecksum(Object.assign(p.slice(), { 1: v }));

  // G1 (192.0.2.1) serves A; its Child SA with G2 (198.51.100.2) serves B's LAN 10.2.0.0/24.
  const sender: VectorScenario = {
    name: 'tunnel sender',
    steps: [
      txSa(T256, k256),
      // A NAT in front of G2 mapped its port 4500 to 4501; AES-128.
      txSa(T128, k128, { remotePort: 4501 }),
      tunnelRule(B, T256),
      tunnelRule('10.2.0.11', T128),
      tunnelRule('10.2.0.12', 0xdead),
      tunnelRule('10.2.0.13', T256, 200),
      tunnelRule('10.9.9.9', T256),
      proc('tunnel encrypt first (AES-256-GCM, seq 1)', 'inside', 3000, ping(A, B, 1)),
      proc(
        'tunnel encrypt second (seq 2, DF copied to the outer header)',
        'inside',
        3001,
        ping(A, B, 2, 'kasane vector payload', true),
      ),
      proc('tunnel encrypt odd length (padding)', 'inside', 3002, ping(A, B, 3, 'odd')),
      proc('tunnel encrypt: DSCP copied, ECN not', 'inside', 3003, tos(ping(A, B, 4), 0xb9)),
      proc('tunnel encrypt a fragment (tunnel mode carries it whole)', 'inside', 3004, fragment(ping(A, B, 5))),
      proc('tunnel encrypt AES-128-GCM to a NAT-mapped port', 'inside', 3005, ping(A, '10.2.0.11', 1)),
      proc('tunnel SA not installed: no-sa', 'inside', 3006, ping(A, '10.2.0.12', 1)),
      proc('tunnel too big with DF', 'inside', 3007, ping(A, '10.2.0.13', 1, 'x'.repeat(140), true)),
      proc('tunnel big without DF is sent', 'inside', 3008, ping(A, '10.2.0.13', 2, 'x'.repeat(140), false)),
      proc(
        'tunnel TCP SYN: MSS clamped to mtu - 65 - 40',
        'inside',
        3009,
        buildTcpSyn({ src: A, dst: B, srcPort: 40000, dstPort: 80, seq: 7, mss: 1460 }),
      ),
      proc('tunnel encrypt toward a destination outside the peer selectors', 'inside', 3010, ping(A, '10.9.9.9', 1)),
      proc('tunnel rule: a packet from outside is unsolicited', 'outside', 3011, ping(B, A, 1)),
      proc('tunnel rule: search messages still punted first', 'inside', 3012, searchPing(A, B)),
      { op: 'stats', local: A, remote: B, expect: null },
      { op: 'tunnelTxStats', spi: T256, expect: null },
      { op: 'tunnelTxStats', spi: 0xdead, expect: null },
      // The sender never wraps: the last sequence number is 2^32-1, then the SA refuses.
      txSa(TWRAP, kWrap, { nextSeq: 0xfffffffe }),
      tunnelRule('10.2.0.14', TWRAP),
      proc('tunnel seq 2^32-2', 'inside', 3020, ping(A, '10.2.0.14', 1)),
      { op: 'tunnelTxStats', spi: TWRAP, expect: null },
      proc('tunnel seq 2^32-1, the last one', 'inside', 3021, ping(A, '10.2.0.14', 2)),
      proc('tunnel sequence space used up: refused', 'inside', 3022, ping(A, '10.2.0.14', 3)),
      { op: 'tunnelTxStats', spi: TWRAP, expect: null },
      // A reinstall (say, with the peer's new NAT port) never moves the sequence number back.
      txSa(TWRAP, kWrap, { nextSeq: 1, remotePort: 4600 }),
      proc('tunnel reinstall does not reuse sequence numbers', 'inside', 3023, ping(A, '10.2.0.14', 4)),
      // Soft limit: rekeyNeeded once nextSeq reaches it.
      txSa(TSOFT, kWrap, { nextSeq: 99, softSeqLimit: 100 }),
      tunnelRule('10.2.0.15', TSOFT),
      { op: 'tunnelTxStats', spi: TSOFT, expect: null },
      proc('tunnel encrypt reaching the soft limit', 'inside', 3030, ping(A, '10.2.0.15', 1)),
      { op: 'tunnelTxStats', spi: TSOFT, expect: null },
      { op: 'removeTunnelTx', spi: TSOFT },
      proc('tunnel SA removed: no-sa', 'inside', 3031, ping(A, '10.2.0.15', 2)),
      { op: 'tunnelTxStats', spi: TSOFT, expect: null },
    ],
  };
  fill(make(), sender);

  const out = (name: string): Uint8Array => {
    const st = sender.steps.find(
      (s): s is Extract<VectorStep, { op: 'process' }> => s.op === 'process' && s.name === name,
    )!;
    return unhex((st.expect as { bytes: string }).bytes).subarray(28);
  };
  const e1 = out('tunnel encrypt first (AES-256-GCM, seq 1)');
  const e2 = out('tunnel encrypt second (seq 2, DF copied to the outer header)');
  const e3 = out('tunnel encrypt odd length (padding)');
  const e4 = out('tunnel encrypt: DSCP copied, ECN not');
  const e5 = out('tunnel encrypt a fragment (tunnel mode carries it whole)');
  const e128 = out('tunnel encrypt AES-128-GCM to a NAT-mapped port');
  const eSyn = out('tunnel TCP SYN: MSS clamped to mtu - 65 - 40');
  const eSel = out('tunnel encrypt toward a destination outside the peer selectors');
  const tampered = e3.slice();
  tampered[tampered.length - 3] ^= 0x01;
  const ike = Uint8Array.from([0, 0, 0, 0, ...Array.from({ length: 28 }, (_, i) => (i * 5 + 1) & 0xff)]);
  const inner = ping(A, B, 50);
  const rxSa = (
    spi: number,
    k: { key: string; salt: string },
    extra: Partial<Omit<TunnelRxSa, 'key' | 'salt'>> = {},
  ): VectorStep => ({
    op: 'installTunnelRx',
    sa: {
      spi,
      vpnId: 5,
      peer: 'G1',
      ...k,
      localAddr: G2_ADDR,
      localPort: 4500,
      remoteAddr: G1_ADDR,
      remotePort: 4500,
      localSelectors: [{ start: '10.2.0.0', end: '10.2.0.255' }],
      remoteSelectors: [{ start: '10.1.0.0', end: '10.1.0.255' }],
      ...extra,
    },
  });
  const seal = (seq: number, nh: number, payload: Uint8Array) => sealTunnelEsp(k256, T256, seq, nh, payload);
  const receiver: VectorScenario = {
    name: 'tunnel receiver',
    steps: [
      rxSa(T256, k256, { replayWindow: 64 }),
      rxSa(T128, k128),
      {
        op: 'installPath',
        rule: { local: B, remote: A, action: 'encrypt', vpnId: 5, peer: 'G1', mtu: 1400, tunnel: { spi: 0xd0000001 } },
      },
      udp('tunnel decrypt second first (out of order)', G1_ADDR, 4500, 4000, e2),
      udp('tunnel decrypt first', G1_ADDR, 4500, 4001, e1),
      udp('tunnel replay dropped', G1_ADDR, 4500, 4002, e1),
      udp('tunnel tampered ICV dropped', G1_ADDR, 4500, 4003, tampered),
      udp('tunnel decrypt third', G1_ADDR, 4500, 4004, e3),
      udp('tunnel decrypt: DSCP as sent', G1_ADDR, 4500, 4005, e4),
      udp('tunnel decrypt a fragment', G1_ADDR, 4500, 4006, e5),
      udp('tunnel decrypt TCP SYN (MSS as clamped)', G1_ADDR, 4500, 4007, eSyn),
      udp('tunnel decrypt AES-128 from a NAT-mapped source port', G1_ADDR, 4501, 4008, e128),
      udp('tunnel inner destination outside the selectors: dropped', G1_ADDR, 4500, 4009, eSel),
      udp('tunnel port: IKE behind the non-ESP marker is punted', '203.0.113.7', 4500, 4010, ike),
      udp('tunnel port: NAT keepalive counted and dropped', G1_ADDR, 4500, 4011, Uint8Array.of(0xff)),
      udp('tunnel port: 2-byte datagram malformed', G1_ADDR, 4500, 4012, Uint8Array.of(1, 2)),
      udp('tunnel port: ESP shorter than header + ICV malformed', G1_ADDR, 4500, 4013, e1.subarray(0, 30)),
      udp(
        'tunnel port: ESP with sequence number 0 malformed',
        G1_ADDR,
        4500,
        4014,
        Object.assign(e1.slice(), { 4: 0, 5: 0, 6: 0, 7: 0 }),
      ),
      udp('tunnel port: ciphertext not a multiple of 4 malformed', G1_ADDR, 4500, 4015, e1.subarray(0, e1.length - 1)),
      udp('tunnel port: unknown SPI punted', G1_ADDR, 4500, 4016, sealTunnelEsp(k256, 0x77777777, 1, 4, inner)),
      udp('tunnel dummy packet (next header 59) discarded', G1_ADDR, 4500, 4020, seal(20, 59, new Uint8Array(16))),
      udp('tunnel next header 41 is not carried: malformed', G1_ADDR, 4500, 4021, seal(21, 41, inner)),
      udp(
        'tunnel inner packet not IPv4: malformed',
        G1_ADDR,
        4500,
        4022,
        seal(22, 4, Uint8Array.from([0x60, ...inner.subarray(1)])),
      ),
      udp(
        'tunnel TFC padding after the inner packet is removed',
        G1_ADDR,
        4500,
        4023,
        seal(23, 4, Uint8Array.from([...inner, ...new Uint8Array(13)])),
      ),
      // inner is 49 bytes: one padding byte, which must be 1.
      udp(
        'tunnel bad padding bytes: auth-failed',
        G1_ADDR,
        4500,
        4024,
        sealTunnelEsp(k256, T256, 24, 4, inner, Uint8Array.of(9, 1, 4)),
      ),
      udp(
        'tunnel pad length beyond the ciphertext: auth-failed',
        G1_ADDR,
        4500,
        4025,
        sealTunnelEsp(k256, T256, 25, 4, inner.subarray(0, 46), Uint8Array.of(250, 4)),
      ),
      udp('tunnel seq 100 (window moves)', G1_ADDR, 4500, 4030, seal(100, 4, inner)),
      udp('tunnel seq 30: older than the 64-packet window', G1_ADDR, 4500, 4031, seal(30, 4, inner)),
      udp('tunnel seq 40: inside the window, not seen', G1_ADDR, 4500, 4032, seal(40, 4, inner)),
      udp('tunnel seq 40 again: replay', G1_ADDR, 4500, 4033, seal(40, 4, inner)),
      { op: 'stats', local: B, remote: A, expect: null },
      { op: 'tunnelRxStats', spi: T256, expect: null },
      { op: 'tunnelRxStats', spi: T128, expect: null },
      {
        op: 'installPath',
        rule: { local: B, remote: A, action: 'encrypt', vpnId: 5, peer: 'G9', tunnel: { spi: 0xd0000001 } },
      },
      udp('tunnel rule names another peer: peer-mismatch', G1_ADDR, 4500, 4040, seal(41, 4, inner)),
      {
        op: 'installPath',
        rule: { local: B, remote: A, action: 'encrypt', vpnId: 6, peer: 'G1', tunnel: { spi: 0xd0000001 } },
      },
      udp('tunnel rule names another VPN: vpn-mismatch', G1_ADDR, 4500, 4041, seal(42, 4, inner)),
      { op: 'installPath', rule: { local: B, remote: A, action: 'discard' } },
      udp('tunnel path discarded by the core', G1_ADDR, 4500, 4042, seal(43, 4, inner)),
      { op: 'removePath', local: B, remote: A },
      udp('tunnel without a path rule: the selectors decide', G1_ADDR, 4500, 4043, seal(44, 4, inner)),
      // Reinstalling keeps the window: 44 stays spent.
      rxSa(T256, k256, { replayWindow: 64, remotePort: 4501 }),
      udp('tunnel reinstall keeps the replay window', G1_ADDR, 4500, 4044, seal(44, 4, inner)),
      { op: 'tunnelRxStats', spi: T256, expect: null },
      { op: 'removeTunnelRx', spi: T256 },
      udp('tunnel SA removed: unknown-spi', G1_ADDR, 4500, 4045, seal(45, 4, inner)),
      { op: 'tunnelRxStats', spi: T256, expect: null },
    ],
  };
  fill(make(), receiver);

  // G2 at a WAN of 1280 decrypts A's SYN that G1 clamped for a wider path.
  const syn = (mss: number, flags = 0x02) =>
    buildTcpSegment({ src: A, dst: B, srcPort: 40000, dstPort: 80, seq: 7, mss, flags });
  const arriving: VectorScenario = {
    name: 'tunnel receiver clamps arriving SYNs',
    steps: [
      rxSa(T256, k256),
      {
        op: 'installPath',
        rule: { local: B, remote: A, action: 'encrypt', vpnId: 5, peer: 'G1', mtu: 1280, tunnel: { spi: 0xd0000001 } },
      },
      udp('tunnel arriving SYN: clamped to mtu - 65 - 40 (MSS 1175)', G1_ADDR, 4500, 5000, seal(1, 4, syn(1460))),
      udp('tunnel arriving SYN-ACK: clamped (MSS 1175)', G1_ADDR, 4500, 5001, seal(2, 4, syn(1360, 0x12))),
      udp('tunnel arriving SYN below the limit (MSS 1000)', G1_ADDR, 4500, 5002, seal(3, 4, syn(1000))),
    ],
  };
  fill(make(), arriving);
  return [sender, receiver, arriving];
}

export function proc(name: string, from: Side, now: number, packet: Uint8Array): VectorStep {
  return { op: 'process', name, from, now, packet: hex(packet), expect: { kind: 'drop', reason: 'unfilled' } };
}

/** The same packet run again by the core after a punt (Executor.process `recheck`). */
function recheck(name: string, from: Side, now: number, packet: Uint8Array): VectorStep {
  return {
    op: 'process',
    name,
    from,
    now,
    packet: hex(packet),
    recheck: true,
    expect: { kind: 'drop', reason: 'unfilled' },
  };
}

export function fill(exec: TunnelExecutor, s: VectorScenario): void {
  for (const r of replayScenario(exec, s)) {
    const st = s.steps[r.step];
    if (st.op === 'process' || st.op === 'processUdp') st.expect = r.actual as JsonVerdict;
    else if (st.op === 'stats') st.expect = r.actual as { packets: number; bytes: number; lastUsed: number } | null;
    else if (st.op === 'tunnelTxStats' || st.op === 'tunnelRxStats') st.expect = r.actual;
    else if (st.op === 'counters') st.expect = r.actual as Record<string, number>;
  }
}

/** The first fragment of a datagram (MF set), or a later one at `offset` bytes (MF set too). */
function fragment(p: Uint8Array, offset = 0): Uint8Array {
  const q = p.slice();
  q[6] = 0x20 | ((offset / 8) >> 8); // MF
  q[7] = (offset / 8) & 0xff;
  return fixChecksum(q);
}

function withDf(p: Uint8Array): Uint8Array {
  const q = p.slice();
  q[6] |= 0x40;
  return fixChecksum(q);
}

/** The packet with two IP options: a copied one (loose source route, 0x83) and one that is not (record route, 7). */
function withOptions(p: Uint8Array): Uint8Array {
  const opts = [0x83, 7, 4, 10, 0, 0, 1, 7, 7, 4, 0, 0, 0, 0, 0, 0];
  const hl = 20 + opts.length;
  const q = new Uint8Array(p.length + opts.length);
  q.set(p.subarray(0, 20), 0);
  q.set(opts, 20);
  q.set(p.subarray(20), hl);
  q[0] = 0x40 | (hl / 4);
  q[2] = q.length >> 8;
  q[3] = q.length & 0xff;
  return fixChecksum(q);
}

function corruptChecksum(p: Uint8Array): Uint8Array {
  const q = p.slice();
  q[10] ^= 0xff;
  return q;
}

function fixChecksum(q: Uint8Array): Uint8Array {
  q[10] = 0;
  q[11] = 0;
  let sum = 0;
  const ihl = (q[0] & 15) * 4;
  for (let i = 0; i < ihl; i += 2) sum += (q[i] << 8) | q[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  q[10] = c >> 8;
  q[11] = c & 0xff;
  return q;
}

/** The body of a key search's destination-phase message from G2 about the path src -> dst (either family). */
export function searchBody(src: string, dst: string): Uint8Array {
  return encodeSearchMessage({
    phase: 'destination',
    proxied: false,
    txid: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    pathSrc: src,
    pathDst: dst,
    originator: 'G2',
    proxiedBy: '',
    entries: [],
  });
}

function searchPing(src: string, dst: string): Uint8Array {
  const data = searchBody(src, dst);
  const icmp = buildIcmpEcho({ type: 8, id: 0x0102, seq: 0x0304, data });
  return buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: icmp, ttl: 64 });
}

void PROTO_TCP;
void PROTO_UDP;

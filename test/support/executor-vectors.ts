// The shared executor vectors: scenarios of installs and packets with the verdict each must give.
// Both executors (TypeScript reference and native) replay test/vectors/executor.json and must match
// byte for byte. `generateExecutorVectors` rebuilds the file from the TypeScript executor:
//   node --import tsx scripts/gen-executor-vectors.ts
import type { Executor, PathRule, RxSa, Side, TxSa, Verdict } from '../../src/core/executor.js';
import { buildIpv4, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { buildTcpSyn } from '../../src/core/packet/tcp.js';
import { encodeSearchMessage } from '../../src/core/packet/search-message.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';

export type VectorStep =
  | { op: 'installPath'; rule: PathRule }
  | { op: 'removePath'; local: string; remote: string }
  | { op: 'installTxSa'; sa: Omit<TxSa, 'key' | 'salt' | 'nextSeq'> & { key: string; salt: string; nextSeq: string } }
  | { op: 'installRxSa'; sa: Omit<RxSa, 'key' | 'salt'> & { key: string; salt: string } }
  | { op: 'process'; name: string; from: Side; now: number; packet: string; expect: JsonVerdict }
  | { op: 'stats'; local: string; remote: string; expect: { packets: number; bytes: number; lastUsed: number } | null };

export type JsonVerdict =
  | { kind: 'forward'; bytes: string; note: Record<string, string | number> }
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
  for (const [k, val] of Object.entries(v.note)) note[k] = typeof val === 'bigint' ? val.toString() : (val as string | number);
  return { kind: 'forward', bytes: hex(v.bytes), note };
}

/** Applies one scenario to an executor, returning what it actually did at each process/stats step. */
export function replayScenario(exec: Executor, s: VectorScenario): { step: number; name: string; expected: unknown; actual: unknown }[] {
  const out: { step: number; name: string; expected: unknown; actual: unknown }[] = [];
  s.steps.forEach((st, i) => {
    switch (st.op) {
      case 'installPath':
        return exec.installPath(st.rule);
      case 'removePath':
        return exec.removePath(st.local, st.remote);
      case 'installTxSa':
        return exec.installTxSa({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt), nextSeq: BigInt(st.sa.nextSeq) });
      case 'installRxSa':
        return exec.installRxSa({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt) });
      case 'process':
        out.push({ step: i, name: st.name, expected: st.expect, actual: verdictToJson(exec.process(st.from, unhex(st.packet), st.now)) });
        return;
      case 'stats':
        out.push({ step: i, name: 'stats', expected: st.expect, actual: exec.pathStats(st.local, st.remote) ?? null });
        return;
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

/** The scenarios, with expectations filled in by running them on `make()` (the reference). */
export function generateExecutorVectors(make: () => Executor): VectorScenario[] {
  const vpnKey = new Uint8Array(32).map((_, i) => i + 1);
  const g2 = deriveSenderKey(vpnKey, 1, 1, 'G2');
  const g3 = deriveSenderKey(vpnKey, 1, 1, 'G3');
  const tx: VectorStep = { op: 'installTxSa', sa: { spi: 0x1001, vpnId: 1, epoch: 1, key: hex(g2.key), salt: hex(g2.salt), nextSeq: '1' } };
  const rxG2: VectorStep = { op: 'installRxSa', sa: { spi: 0x1001, vpnId: 1, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) } };
  const rxG3: VectorStep = { op: 'installRxSa', sa: { spi: 0x1003, vpnId: 1, epoch: 1, sender: 'G3', key: hex(g3.key), salt: hex(g3.salt) } };
  const rxOtherVpn: VectorStep = { op: 'installRxSa', sa: { spi: 0x2001, vpnId: 2, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) } };

  // Sender side (G2, serving B): encrypt B→A.
  const senderSteps: VectorStep[] = [
    tx,
    { op: 'installPath', rule: { local: B, remote: A, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1500 } },
    { op: 'installPath', rule: { local: B, remote: C, action: 'discard' } },
    { op: 'installPath', rule: { local: B, remote: '192.0.2.99', action: 'plain' } },
    { op: 'installPath', rule: { local: B, remote: '10.9.0.1', action: 'pending' } },
    { op: 'installPath', rule: { local: B, remote: '10.8.0.1', action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 200 } },
    { op: 'installPath', rule: { local: B, remote: '10.7.0.1', action: 'encrypt', vpnId: 7, peer: 'G1', mtu: 1500 } },
    proc('encrypt first', 'inside', 1000, ping(B, A, 1)),
    proc('encrypt second (seq 2)', 'inside', 1001, ping(B, A, 2)),
    proc('encrypt odd length (padding)', 'inside', 1002, ping(B, A, 3, 'odd')),
    proc('discard', 'inside', 1003, ping(B, C, 1)),
    proc('plain', 'inside', 1004, ping(B, '192.0.2.99', 1)),
    proc('pending', 'inside', 1005, ping(B, '10.9.0.1', 1)),
    proc('miss', 'inside', 1006, ping(B, '10.6.0.1', 1)),
    proc('too big with DF', 'inside', 1007, ping(B, '10.8.0.1', 1, 'x'.repeat(180), true)),
    proc('big without DF is sent', 'inside', 1008, ping(B, '10.8.0.1', 2, 'x'.repeat(180), false)),
    proc('no sending SA', 'inside', 1009, ping(B, '10.7.0.1', 1)),
    proc('TCP SYN: MSS clamped then encrypted', 'inside', 1010, buildTcpSyn({ src: B, dst: '10.8.0.1', srcPort: 40000, dstPort: 80, seq: 7, mss: 1460 })),
    proc('fragment not encrypted', 'inside', 1011, fragment(ping(B, A, 9))),
    proc('malformed (bad checksum)', 'inside', 1012, corruptChecksum(ping(B, A, 10))),
    proc('search message punted before rules', 'inside', 1013, searchPing(B, A)),
    { op: 'stats', local: B, remote: A, expect: null },
    { op: 'removePath', local: B, remote: C },
    proc('removed rule is a miss', 'inside', 1014, ping(B, C, 2)),
  ];
  const sender: VectorScenario = { name: 'sender', steps: senderSteps };
  fill(make(), sender);

  // Receiver side (G1, serving A): decrypt what the sender produced.
  const encrypted = sender.steps.filter((s): s is Extract<VectorStep, { op: 'process' }> => s.op === 'process' && s.name.startsWith('encrypt'));
  const e1 = (encrypted[0].expect as { bytes: string }).bytes;
  const e2 = (encrypted[1].expect as { bytes: string }).bytes;
  const e3 = (encrypted[2].expect as { bytes: string }).bytes;
  const tampered = unhex(e3);
  tampered[tampered.length - 3] ^= 0x01;
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
      proc('decrypt third', 'outside', 2004, unhex(e3)),
      proc('unsolicited plaintext dropped', 'outside', 2005, ping(B, A, 1)),
      proc('search message from outside punted', 'outside', 2006, searchPing(B, A)),
      proc('ESP from a path without a rule: miss', 'outside', 2007, fixChecksum(unhex(e1).fill(0, 12, 16).fill(10, 12, 13).fill(5, 15, 16))),
      { op: 'stats', local: A, remote: B, expect: null },
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G3', mtu: 1500 } },
      proc('sender is not the peer', 'outside', 2008, unhex(e3)),
      rxOtherVpn,
      { op: 'installPath', rule: { local: A, remote: B, action: 'encrypt', vpnId: 2, peer: 'G2', mtu: 1500 } },
      proc('SA of another VPN', 'outside', 2009, unhex(e3)),
      { op: 'installPath', rule: { local: A, remote: B, action: 'plain' } },
      proc('plain rule relays ESP of another layer unchanged', 'outside', 2010, unhex(e3)),
    ],
  };
  fill(make(), receiver);
  return [sender, receiver];
}

function proc(name: string, from: Side, now: number, packet: Uint8Array): VectorStep {
  return { op: 'process', name, from, now, packet: hex(packet), expect: { kind: 'drop', reason: 'unfilled' } };
}

function fill(exec: Executor, s: VectorScenario): void {
  for (const r of replayScenario(exec, s)) {
    const st = s.steps[r.step];
    if (st.op === 'process') st.expect = r.actual as JsonVerdict;
    else if (st.op === 'stats') st.expect = r.actual as { packets: number; bytes: number; lastUsed: number } | null;
  }
}

function fragment(p: Uint8Array): Uint8Array {
  const q = p.slice();
  q[6] |= 0x20; // MF
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

function searchPing(src: string, dst: string): Uint8Array {
  const data = encodeSearchMessage({
    phase: 'destination',
    proxied: false,
    txid: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    pathSrc: src,
    pathDst: dst,
    originator: 'G2',
    proxiedBy: '',
    entries: [],
  });
  const icmp = buildIcmpEcho({ type: 8, id: 0x0102, seq: 0x0304, data });
  return buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: icmp, ttl: 64 });
}

void PROTO_TCP;
void PROTO_UDP;

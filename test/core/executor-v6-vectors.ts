// The shared IPv6 executor vectors (test/vectors/executor-v6.json), in the format of
// test/vectors/executor.json: scenarios of installs and packets with the verdict each must give.
// Both executors replay the file (replayScenario) and must match byte for byte. The expectations
// come from the TypeScript reference executor:
//   node --import tsx test/core/gen-executor-v6-vectors.ts
// Covered (V6-SPEC "Vectors"): the transport form (UDP and raw ESP), extension-header chains
// (encrypted whole, an upper layer behind 8 headers, 16 and 17 headers, chains running past the
// packet), fragments, the carried form (41 and 4), too big instead of fragmentation, the MSS
// clamp over IPv6, key search over ICMPv6, the never-intercepted set (ND, RA, MLD, link-local,
// multicast, DAD), hostile input from outside, and tunnel mode v6 in v4, v4 in v6, v6 in v6.
import type { TunnelExecutor, TunnelTxSa } from '../../src/core/executor.js';
import { buildIpv4, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { buildIcmpv6PacketTooBig } from '../../src/core/packet/icmpv6.js';
import { buildIpv6, ipv6PseudoHeaderSum, NH_ESP } from '../../src/core/packet/ipv6.js';
import { internetChecksum } from '../../src/core/packet/checksum.js';
import { buildTcpSegment, buildTcpSyn } from '../../src/core/packet/tcp.js';
import { espSeal } from '../../src/crypto/esp.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';
import {
  fill,
  proc,
  sealTunnelEsp,
  searchBody,
  udp,
  type VectorScenario,
  type VectorStep,
} from '../support/executor-vectors.js';
import { v6Packet, type Ext } from './packet/v6-chain.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

export const A6 = 'fd00:1::10';
export const B6 = 'fd00:2::10';
const C6 = 'fd00:3::10';
const NARROW = 'fd00:8::1';
const text = (s: string) => new TextEncoder().encode(s);

/** An ICMPv6 message behind `exts`, with its checksum. */
export function icmp6(
  src: string,
  dst: string,
  type: number,
  data: Uint8Array,
  exts: Ext[] = [],
  hopLimit = 63,
): Uint8Array {
  const msg = new Uint8Array(8 + data.length);
  msg[0] = type;
  msg[4] = 0x42;
  msg[5] = 0x42;
  msg[7] = 1;
  msg.set(data, 8);
  const p = v6Packet(src, dst, exts, 58, msg, hopLimit);
  const at = p.length - msg.length;
  const c = internetChecksum(p, at, msg.length, ipv6PseudoHeaderSum(p, msg.length, 58));
  p[at + 2] = c >> 8;
  p[at + 3] = c & 0xff;
  return p;
}

export function ping6(src: string, dst: string, data = 'kasane vector payload', exts: Ext[] = []): Uint8Array {
  return icmp6(src, dst, 128, text(data), exts);
}

function searchPing6(src: string, dst: string, type: 128 | 129): Uint8Array {
  return icmp6(src, dst, type, searchBody(src, dst));
}

function output(s: VectorScenario, name: string): Uint8Array {
  const st = s.steps.find((x) => (x.op === 'process' || x.op === 'processUdp') && x.name === name);
  if (!st || (st.op !== 'process' && st.op !== 'processUdp') || st.expect.kind !== 'forward')
    throw new Error(`no forward in step ${name}`);
  return unhex(st.expect.bytes);
}

const CHAIN3: Ext[] = [{ type: 0 }, { type: 60, extra: 8 }, { type: 43 }];
const CHAIN8: Ext[] = [
  { type: 0 },
  { type: 60 },
  { type: 43 },
  { type: 51 },
  { type: 60 },
  { type: 43, extra: 16 },
  { type: 44 },
  { type: 60 },
];
const many = (n: number): Ext[] => Array.from({ length: n }, () => ({ type: 60 }) as Ext);

/** The scenarios, with expectations filled in by running them on `make()` (the reference). */
export function generateExecutorV6Vectors(make: () => TunnelExecutor): VectorScenario[] {
  const vpnKey = new Uint8Array(32).map((_, i) => i + 1);
  const g2 = deriveSenderKey(vpnKey, 1, 1, 'G2');
  const txSa = { spi: 0x1001, vpnId: 1, epoch: 1, key: hex(g2.key), salt: hex(g2.salt), nextSeq: '1' };
  const tx: VectorStep = { op: 'installTxSa', sa: txSa };

  const senderSteps: VectorStep[] = [
    tx,
    { op: 'installPath', rule: { local: B6, remote: A6, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1500 } },
    { op: 'installPath', rule: { local: B6, remote: C6, action: 'discard' } },
    { op: 'installPath', rule: { local: B6, remote: '2001:db8::99', action: 'plain' } },
    { op: 'installPath', rule: { local: B6, remote: 'fd00:9::1', action: 'pending' } },
    { op: 'installPath', rule: { local: B6, remote: NARROW, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1280 } },
    { op: 'installPath', rule: { local: B6, remote: 'fd00:7::1', action: 'encrypt', vpnId: 7, peer: 'G1', mtu: 1500 } },
    proc('encrypt v6 transport form (ESP in UDP, checksum computed)', 'inside', 1000, ping6(B6, A6)),
    proc('encrypt v6 second (seq 2)', 'inside', 1001, ping6(B6, A6, 'second')),
    proc(
      'encrypt v6 with hop-by-hop, destination options and routing: all encrypted',
      'inside',
      1002,
      ping6(B6, A6, 'chained', CHAIN3),
    ),
    proc('encrypt v6 with the upper layer behind 8 extension headers', 'inside', 1003, ping6(B6, A6, 'deep', CHAIN8)),
    proc('encrypt v6 with 16 extension headers', 'inside', 1004, ping6(B6, A6, 'sixteen', many(16))),
    proc(
      'encrypt v6 first fragment (transport form)',
      'inside',
      1005,
      ping6(B6, A6, 'first fragment', [{ type: 44, more: true }]),
    ),
    proc(
      'encrypt v6 later fragment (transport form)',
      'inside',
      1006,
      v6Packet(B6, A6, [{ type: 44, fragmentOffset: 1232 }], 58, text('later fragment data')),
    ),
    proc(
      'encrypt v6 in v6 (carried form, ESP next header 41)',
      'inside',
      1007,
      buildIpv6({
        src: B6,
        dst: A6,
        nextHeader: 41,
        payload: ping6('fd00:2::99', 'fd00:1::99'),
        hopLimit: 60,
        trafficClass: 0x20,
        flowLabel: 7,
      }),
    ),
    proc(
      'encrypt v4 in v6 (carried form, ESP next header 41)',
      'inside',
      1008,
      buildIpv6({
        src: B6,
        dst: A6,
        nextHeader: 4,
        payload: buildIpv4({
          src: '10.9.0.1',
          dst: '10.9.0.2',
          protocol: PROTO_ICMP,
          payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data: text('v4 inside') }),
        }),
      }),
    ),
    proc(
      'v6 too big for the path: punted (Packet Too Big, never fragmented)',
      'inside',
      1009,
      ping6(B6, NARROW, 'x'.repeat(1200)),
    ),
    // 40 + UDP 8 + ESP 16 + (ICMPv6 8 + 1190 data, no padding) + 2 + ICV 16 = 1280.
    proc('v6 that just fits the path (1280 after encryption)', 'inside', 1010, ping6(B6, NARROW, 'x'.repeat(1190))),
    proc('v6 one byte more: too big', 'inside', 1010, ping6(B6, NARROW, 'x'.repeat(1191))),
    proc(
      'v6 carried form too big: punted',
      'inside',
      1011,
      buildIpv6({ src: B6, dst: NARROW, nextHeader: 41, payload: ping6('fd00:2::99', 'fd00:1::99', 'y'.repeat(1150)) }),
    ),
    proc(
      'v6 TCP SYN: MSS clamped to mtu - 45 - 60',
      'inside',
      1012,
      buildTcpSyn({ src: B6, dst: NARROW, srcPort: 40000, dstPort: 80, seq: 7, mss: 1440 }),
    ),
    proc(
      'v6 TCP SYN behind destination options: MSS clamped',
      'inside',
      1013,
      v6Packet(
        B6,
        NARROW,
        [{ type: 60 }],
        6,
        buildTcpSegment({ src: B6, dst: NARROW, srcPort: 40001, dstPort: 80, seq: 7, mss: 1440 }).subarray(40),
      ),
    ),
    proc('v6 discard', 'inside', 1014, ping6(B6, C6)),
    proc('v6 plain', 'inside', 1015, ping6(B6, '2001:db8::99')),
    proc('v6 pending', 'inside', 1016, ping6(B6, 'fd00:9::1')),
    proc('v6 miss', 'inside', 1017, ping6(B6, 'fd00:6::1')),
    proc('v6 no sending SA', 'inside', 1018, ping6(B6, 'fd00:7::1')),
    proc('search request over ICMPv6: punted before rules', 'inside', 1019, searchPing6(B6, A6, 128)),
    proc('search reply over ICMPv6: punted', 'inside', 1020, searchPing6(B6, A6, 129)),
    proc(
      'never intercepted: neighbour solicitation to the solicited-node group',
      'inside',
      1021,
      icmp6(B6, 'ff02::1:ff00:10', 135, new Uint8Array(20), [], 255),
    ),
    proc(
      'never intercepted: duplicate address detection from ::',
      'inside',
      1022,
      icmp6('::', 'ff02::1:ff00:10', 135, new Uint8Array(20), [], 255),
    ),
    proc(
      'never intercepted: neighbour advertisement between global addresses',
      'inside',
      1023,
      icmp6(B6, A6, 136, new Uint8Array(20), [], 255),
    ),
    proc(
      'never intercepted: router advertisement from link-local',
      'inside',
      1024,
      icmp6('fe80::1', 'ff02::1', 134, new Uint8Array(8), [], 255),
    ),
    proc(
      'never intercepted: MLDv2 report behind hop-by-hop',
      'inside',
      1025,
      icmp6('fe80::2', 'ff02::16', 143, new Uint8Array(4), [{ type: 0 }], 1),
    ),
    proc('never intercepted: link-local unicast', 'inside', 1026, ping6('fe80::2', 'fe80::1')),
    proc('never intercepted: global multicast destination', 'inside', 1027, ping6(B6, 'ff0e::1234')),
    proc('never intercepted from outside too', 'outside', 1028, icmp6('fe80::9', B6, 135, new Uint8Array(20), [], 255)),
    proc('bad-ipv6: 17 extension headers', 'inside', 1029, ping6(B6, A6, 'too many', many(17))),
    proc('bad-ipv6: a chain running past the packet', 'inside', 1030, truncatedChain(B6, A6)),
    proc(
      'bad-ipv6: hop-by-hop after another header',
      'inside',
      1031,
      ping6(B6, A6, 'late hbh', [{ type: 60 }, { type: 0 }]),
    ),
    proc('bad-ipv6: payload length beyond the bytes', 'inside', 1032, ping6(B6, A6).subarray(0, 50)),
    { op: 'stats', local: B6, remote: A6, expect: null },
    { op: 'installTxSa', sa: { ...txSa, nextSeq: '500', encapsulation: 'esp' } },
    proc('raw ESP over v6: transport form, next header 50', 'inside', 1040, ping6(B6, A6, 'raw')),
    proc(
      'raw ESP over v6: carried form',
      'inside',
      1041,
      buildIpv6({ src: B6, dst: A6, nextHeader: 41, payload: ping6('fd00:2::99', 'fd00:1::99', 'raw carried') }),
    ),
    { op: 'counters', expect: null },
  ];
  const sender: VectorScenario = { name: 'v6 sender', steps: senderSteps };
  fill(make(), sender);

  const e1 = output(sender, 'encrypt v6 transport form (ESP in UDP, checksum computed)');
  const e2 = output(sender, 'encrypt v6 second (seq 2)');
  const tampered = output(sender, 'encrypt v6 with 16 extension headers').slice();
  tampered[tampered.length - 3] ^= 1;
  // ESP sealed here, for what no sender of ours produces.
  const sealed = (seq: number, nh: number, body: Uint8Array, src = B6, dst = A6) =>
    buildIpv6({
      src,
      dst,
      nextHeader: NH_ESP,
      payload: espSeal({ spi: 0x1001, key: g2.key, salt: g2.salt }, BigInt(seq), nh, body),
      hopLimit: 50,
    });
  const otherPath = ping6('fd00:3::10', A6, 'smuggled');
  const udpPort = e1.slice();
  udpPort[43] ^= 1;
  const ptb = buildIcmpv6PacketTooBig(e1, 1300, 'fd00:ff::1');
  const receiver: VectorScenario = {
    name: 'v6 receiver',
    steps: [
      {
        op: 'installRxSa',
        sa: { spi: 0x1001, vpnId: 1, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) },
      },
      { op: 'installPath', rule: { local: A6, remote: B6, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1500 } },
      proc('decrypt v6 second first (out of order)', 'outside', 2000, e2),
      proc('decrypt v6 first', 'outside', 2001, e1),
      proc('v6 replay dropped', 'outside', 2002, e1),
      proc('v6 tampered ICV dropped', 'outside', 2003, tampered),
      proc(
        'decrypt v6 chained: the extension headers come back',
        'outside',
        2004,
        output(sender, 'encrypt v6 with hop-by-hop, destination options and routing: all encrypted'),
      ),
      proc(
        'decrypt v6 behind 8 headers',
        'outside',
        2005,
        output(sender, 'encrypt v6 with the upper layer behind 8 extension headers'),
      ),
      proc('decrypt v6 later fragment', 'outside', 2006, output(sender, 'encrypt v6 later fragment (transport form)')),
      proc(
        'decrypt v6 in v6 (carried: the inner packet, outer traffic class and hop limit)',
        'outside',
        2007,
        output(sender, 'encrypt v6 in v6 (carried form, ESP next header 41)'),
      ),
      proc(
        'decrypt v4 in v6 (carried)',
        'outside',
        2008,
        output(sender, 'encrypt v4 in v6 (carried form, ESP next header 41)'),
      ),
      proc(
        'decrypt raw ESP over v6',
        'outside',
        2009,
        output(sender, 'raw ESP over v6: transport form, next header 50'),
      ),
      proc('decrypt raw ESP over v6, carried', 'outside', 2010, output(sender, 'raw ESP over v6: carried form')),
      proc('UDP to another port than 4500: unsolicited plain', 'outside', 2011, udpPort),
      proc('carried: inner packet for another path is malformed', 'outside', 2012, sealed(101, 41, otherPath)),
      proc(
        'carried: inner payload length not the decrypted length is malformed',
        'outside',
        2013,
        sealed(102, 41, Uint8Array.from([...ping6(B6, A6), 0, 0, 0, 0])),
      ),
      proc(
        'ESP next header 4 over v6 is malformed (the carried form says 41)',
        'outside',
        2014,
        sealed(103, 4, ping6(B6, A6)),
      ),
      proc(
        'decrypted garbage extension headers are malformed',
        'outside',
        2015,
        sealed(104, 60, new Uint8Array([17, 9, 0, 0])),
      ),
      proc(
        'a fragment of ESP cannot be opened',
        'outside',
        2016,
        v6Packet(B6, A6, [{ type: 44, more: true }], NH_ESP, e1.subarray(48)),
      ),
      proc('unsolicited plaintext v6 dropped', 'outside', 2017, ping6(B6, A6)),
      proc(
        'ESP behind a destination-options header: unsolicited',
        'outside',
        2018,
        v6Packet(B6, A6, [{ type: 60 }], NH_ESP, e1.subarray(48)),
      ),
      proc('garbage extension headers from outside: bad-ipv6', 'outside', 2019, truncatedChain(B6, A6)),
      proc('search over ICMPv6 from outside: punted', 'outside', 2020, searchPing6(B6, A6, 128)),
      proc('Packet Too Big quoting our ESP, from a router: miss (the core checks it)', 'outside', 2021, ptb),
      { op: 'stats', local: A6, remote: B6, expect: null },
      { op: 'counters', expect: null },
    ],
  };
  fill(make(), receiver);
  return [sender, receiver, arrivingSyn6Vectors(make, g2), ...tunnelV6Vectors(make)];
}

/**
 * G1 at a WAN of 1280 decrypts TCP SYNs that B's gateway clamped for its own, wider path: they leave
 * with the MSS G1 can encrypt the replies with (1280 - ESP 37 - UDP 8 - 60). Without it A's
 * segments would not fit, and A refuses the Packet Too Big below 1280 that would say so.
 */
function arrivingSyn6Vectors(make: () => TunnelExecutor, g2: { key: Uint8Array; salt: Uint8Array }): VectorScenario {
  const sa = { spi: 0x1001, key: g2.key, salt: g2.salt };
  const tcp = (mss: number, flags = 0x12) =>
    buildTcpSegment({ src: B6, dst: A6, srcPort: 443, dstPort: 40000, seq: 99, ack: 8, mss, flags }).subarray(40);
  const sealed = (seq: number, nh: number, body: Uint8Array, udp = true) => {
    const esp = espSeal(sa, BigInt(seq), nh, body);
    const u = new Uint8Array(8 + esp.length);
    u.set([0x11, 0x94, 0x11, 0x94, u.length >> 8, u.length & 0xff], 0);
    u.set(esp, 8);
    const p = buildIpv6({ src: B6, dst: A6, nextHeader: udp ? 17 : NH_ESP, payload: udp ? u : esp, hopLimit: 50 });
    if (udp) {
      const c = internetChecksum(p, 40, u.length, ipv6PseudoHeaderSum(p, u.length, 17));
      p[46] = c >> 8;
      p[47] = c & 0xff;
    }
    return p;
  };
  const chained = (ext: Ext[], body: Uint8Array) => v6Packet(B6, A6, ext, 6, body).subarray(40);
  const steps: VectorStep[] = [
    { op: 'installRxSa', sa: { spi: 0x1001, vpnId: 1, epoch: 1, sender: 'G2', key: hex(g2.key), salt: hex(g2.salt) } },
    { op: 'installPath', rule: { local: A6, remote: B6, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1280 } },
    proc('v6 arriving SYN-ACK in UDP: clamped to 1280 - 45 - 60 (MSS 1175)', 'outside', 5000, sealed(1, 6, tcp(1440))),
    proc('v6 arriving SYN in raw ESP: clamped (MSS 1175)', 'outside', 5001, sealed(2, 6, tcp(1440, 0x02), false)),
    proc(
      'v6 arriving SYN-ACK behind destination options: clamped (MSS 1175)',
      'outside',
      5002,
      sealed(3, 60, chained([{ type: 60 }], tcp(1440))),
    ),
    proc('v6 arriving SYN-ACK below the limit: untouched (MSS 1100)', 'outside', 5003, sealed(4, 6, tcp(1100))),
    proc('v6 arriving ACK: only SYNs are clamped (MSS 1440)', 'outside', 5004, sealed(5, 6, tcp(1440, 0x10))),
    proc(
      'v6 arriving first fragment of a SYN: untouched',
      'outside',
      5005,
      sealed(6, 44, chained([{ type: 44, more: true }], tcp(1440))),
    ),
    { op: 'counters', expect: null },
  ];
  const s: VectorScenario = { name: 'v6 receiver clamps arriving SYNs', steps };
  fill(make(), s);
  return s;
}

/** A packet whose routing header claims 24 bytes where 8 remain (the payload length is honest). */
function truncatedChain(src: string, dst: string): Uint8Array {
  const p = v6Packet(src, dst, [{ type: 60 }, { type: 43 }], 59, new Uint8Array(0));
  p[49] = 2;
  return p;
}

// ---- tunnel mode: v6 in v4, v4 in v6, v6 in v6 ----

const G1_V4 = '192.0.2.1';
const G2_V4 = '198.51.100.2';
const G1_V6 = '2001:db8:1::1';
const G2_V6 = '2001:db8:2::2';
const A4 = '10.1.0.10';
const B4 = '10.2.0.10';

function keymat(seed: number): { key: string; salt: string } {
  const b = new Uint8Array(36).map((_, i) => (i * 31 + seed * 17 + 3) & 0xff);
  return { key: hex(b.subarray(0, 32)), salt: hex(b.subarray(32)) };
}

function tunnelV6Vectors(make: () => TunnelExecutor): VectorScenario[] {
  const k64 = keymat(1); // v6 in v4
  const k46 = keymat(2); // v4 in v6
  const k66 = keymat(3); // v6 in v6
  const sa = (
    spi: number,
    k: { key: string; salt: string },
    v6: boolean,
  ): Omit<TunnelTxSa, 'key' | 'salt'> & { key: string; salt: string } => ({
    spi,
    vpnId: 5,
    peer: 'G2',
    ...k,
    localAddr: v6 ? G1_V6 : G1_V4,
    localPort: 4500,
    remoteAddr: v6 ? G2_V6 : G2_V4,
    remotePort: 4500,
  });
  const rule = (local: string, remote: string, spi: number, mtu = 1400): VectorStep => ({
    op: 'installPath',
    rule: { local, remote, action: 'encrypt', vpnId: 5, peer: 'G2', mtu, tunnel: { spi } },
  });
  const sender: VectorScenario = {
    name: 'v6 tunnel sender',
    steps: [
      { op: 'installTunnelTx', sa: sa(0xc1000064, k64, false) },
      { op: 'installTunnelTx', sa: sa(0xc1000046, k46, true) },
      { op: 'installTunnelTx', sa: sa(0xc1000066, k66, true) },
      rule(A6, B6, 0xc1000064),
      rule(A4, B4, 0xc1000046),
      rule(A6, 'fd00:2::11', 0xc1000066),
      rule(A6, 'fd00:2::12', 0xc1000066, 1280),
      proc('tunnel v6 in v4 (outer IPv4 with DF, ESP next header 41)', 'inside', 3000, ping6(A6, B6)),
      proc(
        'tunnel v4 in v6 (outer IPv6, UDP checksum computed, ESP next header 4)',
        'inside',
        3001,
        buildIpv4({
          src: A4,
          dst: B4,
          protocol: PROTO_ICMP,
          payload: buildIcmpEcho({ type: 8, id: 7, seq: 1, data: text('v4 in v6') }),
          ttl: 63,
        }),
      ),
      proc('tunnel v6 in v6 with extension headers', 'inside', 3002, ping6(A6, 'fd00:2::11', 'v6 in v6', CHAIN3)),
      proc(
        'tunnel v6 in v6: DSCP copied to the outer traffic class, ECN not',
        'inside',
        3003,
        withTrafficClass(ping6(A6, 'fd00:2::11'), 0xb9),
      ),
      proc('tunnel v6 too big: punted', 'inside', 3004, ping6(A6, 'fd00:2::12', 'x'.repeat(1200))),
      proc(
        'tunnel v6 TCP SYN in v6: MSS clamped to mtu - 85 - 60',
        'inside',
        3005,
        buildTcpSyn({ src: A6, dst: 'fd00:2::12', srcPort: 40000, dstPort: 443, seq: 1, mss: 1440 }),
      ),
      { op: 'tunnelTxStats', spi: 0xc1000066, expect: null },
    ],
  };
  fill(make(), sender);
  const rxSa = (spi: number, k: { key: string; salt: string }, v6: boolean, local: string, remote: string) => ({
    op: 'installTunnelRx' as const,
    sa: {
      ...sa(spi, k, v6),
      localAddr: v6 ? G2_V6 : G2_V4,
      remoteAddr: v6 ? G1_V6 : G1_V4,
      localSelectors: [{ start: local, end: local }],
      remoteSelectors: [{ start: remote, end: remote }],
    },
  });
  const udpOf = (p: Uint8Array) => p.subarray(p[0] >> 4 === 6 ? 48 : 28);
  const v6in4 = output(sender, 'tunnel v6 in v4 (outer IPv4 with DF, ESP next header 41)');
  const v4in6 = output(sender, 'tunnel v4 in v6 (outer IPv6, UDP checksum computed, ESP next header 4)');
  const v6in6 = output(sender, 'tunnel v6 in v6 with extension headers');
  const padded = Uint8Array.from([...ping6(A6, 'fd00:2::11', 'padded'), 0, 0, 0, 0, 0, 0]);
  const receiver: VectorScenario = {
    name: 'v6 tunnel receiver',
    steps: [
      rxSa(0xc1000064, k64, false, B6, A6),
      rxSa(0xc1000046, k46, true, B4, A4),
      {
        op: 'installTunnelRx',
        sa: {
          ...rxSa(0xc1000066, k66, true, 'fd00:2::11', A6).sa,
          localSelectors: [{ start: 'fd00:2::', end: 'fd00:2::ffff' }],
        },
      },
      udp('tunnel v6 in v4 decrypted', G1_V4, 4500, 4000, udpOf(v6in4)),
      udp('tunnel v4 in v6 decrypted', G1_V6, 4500, 4001, udpOf(v4in6)),
      udp('tunnel v6 in v6 decrypted, extension headers intact', G1_V6, 4500, 4002, udpOf(v6in6)),
      udp(
        'tunnel v6 inner with TFC padding: only the packet goes on',
        G1_V6,
        4500,
        4003,
        sealTunnelEsp(k66, 0xc1000066, 10, 41, padded),
      ),
      udp(
        'tunnel v6 inner outside the selectors',
        G1_V6,
        4500,
        4004,
        sealTunnelEsp(k66, 0xc1000066, 11, 41, ping6(A6, 'fd00:3::1')),
      ),
      udp(
        'tunnel v4 inner under an SA with v6 selectors: selector',
        G1_V6,
        4500,
        4005,
        sealTunnelEsp(
          k66,
          0xc1000066,
          12,
          4,
          buildIpv4({
            src: A4,
            dst: B4,
            protocol: PROTO_ICMP,
            payload: buildIcmpEcho({ type: 8, id: 7, seq: 1, data: text('x') }),
          }),
        ),
      ),
      udp(
        'tunnel v6 inner with a malformed chain',
        G1_V6,
        4500,
        4006,
        sealTunnelEsp(k66, 0xc1000066, 13, 41, truncatedChain(A6, 'fd00:2::11')),
      ),
      udp(
        'tunnel next header 41 with an IPv4 packet inside: malformed',
        G1_V6,
        4500,
        4007,
        sealTunnelEsp(
          k66,
          0xc1000066,
          14,
          41,
          buildIpv4({ src: A4, dst: B4, protocol: 17, payload: new Uint8Array(8) }),
        ),
      ),
      { op: 'tunnelRxStats', spi: 0xc1000066, expect: null },
    ],
  };
  fill(make(), receiver);

  // G2 at a WAN of 1280 decrypts A's SYNs that G1 clamped for a wider path.
  const syn = (src: string, dst: string, mss: number) =>
    buildTcpSyn({ src, dst, srcPort: 40000, dstPort: 443, seq: 1, mss });
  const arriving: VectorScenario = {
    name: 'v6 tunnel receiver clamps arriving SYNs',
    steps: [
      rxSa(0xc1000064, k64, false, B6, A6),
      rxSa(0xc1000046, k46, true, B4, A4),
      rxSa(0xc1000066, k66, true, 'fd00:2::11', A6),
      rule(B6, A6, 0xd1000064, 1280),
      rule(B4, A4, 0xd1000046, 1280),
      rule('fd00:2::11', A6, 0xd1000066, 1280),
      udp(
        'tunnel v6 in v4 arriving SYN: 1280 - 65 - 60 (MSS 1155)',
        G1_V4,
        4500,
        5000,
        sealTunnelEsp(k64, 0xc1000064, 1, 41, syn(A6, B6, 1440)),
      ),
      udp(
        'tunnel v4 in v6 arriving SYN: 1280 - 85 - 40 (MSS 1155)',
        G1_V6,
        4500,
        5001,
        sealTunnelEsp(k46, 0xc1000046, 1, 4, syn(A4, B4, 1460)),
      ),
      udp(
        'tunnel v6 in v6 arriving SYN: 1280 - 85 - 60 (MSS 1135)',
        G1_V6,
        4500,
        5002,
        sealTunnelEsp(k66, 0xc1000066, 1, 41, syn(A6, 'fd00:2::11', 1440)),
      ),
    ],
  };
  fill(make(), arriving);
  return [sender, receiver, arriving];
}

function withTrafficClass(p: Uint8Array, tc: number): Uint8Array {
  const q = p.slice();
  q[0] = 0x60 | (tc >> 4);
  q[1] = ((tc & 0x0f) << 4) | (q[1] & 0x0f);
  return q;
}

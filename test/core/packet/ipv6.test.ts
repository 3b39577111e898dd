// The IPv6 codec: the fixed header, the extension-header walk (bounded by the packet and by 16
// headers, hop-by-hop only first, fragments), ICMPv6 checksums, Packet Too Big, TCP/UDP over IPv6,
// the never-intercepted set, and that no input (truncated, mutated, random) makes any of it throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildIpv6,
  ipv6PseudoHeaderSum,
  isNeverIntercepted,
  MAX_EXTENSION_HEADERS,
  parseIpv6,
  rewriteIpv6,
  walkExtensionHeaders,
} from '../../../src/core/packet/ipv6.js';
import {
  buildIcmpv6Echo,
  buildIcmpv6PacketTooBig,
  echoReplyFor6,
  icmpv6ErrorAllowed,
  parseIcmpv6,
} from '../../../src/core/packet/icmpv6.js';
import { echoReplyFor } from '../../../src/core/packet/icmp.js';
import { buildTcpSyn, clampTcpMss, tcpChecksumOk, tcpMss } from '../../../src/core/packet/tcp.js';
import { setUdpChecksum, udpChecksumOk, udpDatagram } from '../../../src/core/packet/udp.js';
import { ipToBytes } from '../../../src/base/addr.js';
import { ipv6, mutate, mutation, naiveChecksum } from './arbitraries.js';
import { v6Packet, type Ext } from './v6-chain.js';

const A = 'fd00:1::10';
const B = 'fd00:2::10';
const ext: fc.Arbitrary<Ext> = fc.oneof(
  fc.record({ type: fc.constantFrom(43 as const, 60 as const), extra: fc.constantFrom(0, 8, 16) }),
  fc.record({ type: fc.constant(51 as const), extra: fc.constantFrom(0, 4, 8) }),
  fc.record({ type: fc.constant(44 as const), fragmentOffset: fc.constant(0), more: fc.boolean() }),
);

test('parses the fixed header, traffic class, flow label, and excludes link padding', () => {
  const p = buildIpv6({
    src: A,
    dst: B,
    nextHeader: 17,
    payload: new Uint8Array(12),
    hopLimit: 9,
    trafficClass: 0xb8,
    flowLabel: 0xabcde,
  });
  const padded = new Uint8Array(p.length + 6);
  padded.set(p);
  const r = parseIpv6(padded);
  assert.ok(r.ok);
  assert.deepEqual(r.value.header, {
    trafficClass: 0xb8,
    flowLabel: 0xabcde,
    payloadLength: 12,
    nextHeader: 17,
    hopLimit: 9,
    src: A,
    dst: B,
  });
  assert.equal(r.value.payload.length, 12);
  assert.deepEqual(r.value.walk, { upperProto: 17, upperOffset: 40, fragment: 'none', extLength: 0 });
});

test('typed errors: short, wrong version, payload length beyond the bytes received', () => {
  const p = buildIpv6({ src: A, dst: B, nextHeader: 17, payload: new Uint8Array(8) });
  const code = (b: Uint8Array) => {
    const r = parseIpv6(b);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(code(p.subarray(0, 39)), 'truncated');
  assert.equal(code(p.subarray(0, 47)), 'truncated');
  const v4 = p.slice();
  v4[0] = 0x45;
  assert.equal(code(v4), 'bad-version');
});

test('the upper-layer header behind 8 extension headers is found, with the chain length', () => {
  const exts: Ext[] = [
    { type: 0 },
    { type: 60, extra: 8 },
    { type: 43 },
    { type: 51, extra: 4 },
    { type: 60 },
    { type: 43, extra: 16 },
    { type: 44 },
    { type: 60 },
  ];
  const p = v6Packet(A, B, exts, 6, new Uint8Array(20));
  const r = parseIpv6(p);
  assert.ok(r.ok);
  const extLength = 8 + 16 + 8 + 16 + 8 + 24 + 8 + 8;
  assert.deepEqual(r.value.walk, { upperProto: 6, upperOffset: 40 + extLength, fragment: 'first', extLength });
});

test('16 extension headers are walked; 17 are malformed (bad-ipv6)', () => {
  const exts = (n: number): Ext[] => Array.from({ length: n }, () => ({ type: 60 }) as Ext);
  const ok16 = parseIpv6(v6Packet(A, B, exts(MAX_EXTENSION_HEADERS), 17, new Uint8Array(8)));
  assert.ok(ok16.ok);
  assert.equal(ok16.value.walk.upperOffset, 40 + 8 * 16);
  const bad = parseIpv6(v6Packet(A, B, exts(MAX_EXTENSION_HEADERS + 1), 17, new Uint8Array(8)));
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, 'bad-ipv6');
});

test('a chain longer than the packet is malformed, wherever it is cut', () => {
  const p = v6Packet(A, B, [{ type: 0 }, { type: 43, extra: 16 }, { type: 60 }], 17, new Uint8Array(0));
  // The header lengths claim 8 + 24 + 8 bytes; any shorter payload cuts a header.
  for (let cut = 1; cut <= 40; cut++) {
    const q = p.slice(0, p.length - cut);
    q[4] = (q.length - 40) >> 8;
    q[5] = (q.length - 40) & 0xff;
    const r = parseIpv6(q);
    assert.ok(!r.ok, `cut ${cut}`);
    assert.equal(r.error.code, 'bad-ipv6');
  }
});

test('hop-by-hop anywhere but first is malformed', () => {
  const r = parseIpv6(v6Packet(A, B, [{ type: 60 }, { type: 0 }], 17, new Uint8Array(8)));
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'bad-ipv6');
});

test('fragments: first (offset 0) has its upper layer; a non-first has none', () => {
  const first = parseIpv6(v6Packet(A, B, [{ type: 44, more: true }], 17, new Uint8Array(16)));
  assert.ok(first.ok);
  assert.deepEqual(first.value.walk, { upperProto: 17, upperOffset: 48, fragment: 'first', extLength: 8 });
  // Bytes after a non-first fragment header are data, even if they look like headers.
  const later = parseIpv6(v6Packet(A, B, [{ type: 44, fragmentOffset: 1448 }], 60, new Uint8Array(3)));
  assert.ok(later.ok);
  assert.deepEqual(later.value.walk, { upperProto: 60, fragment: 'non-first', extLength: 8 });
});

test('property: any chain of up to 16 headers walks to the upper layer, and the walk agrees with the lengths', () => {
  fc.assert(
    fc.property(
      fc.array(ext, { maxLength: MAX_EXTENSION_HEADERS }),
      fc.uint8Array({ maxLength: 64 }),
      (exts, upper) => {
        const p = v6Packet(A, B, exts, 17, upper);
        const r = parseIpv6(p);
        assert.ok(r.ok);
        assert.equal(r.value.walk.upperOffset, p.length - upper.length);
        assert.equal(r.value.walk.extLength, p.length - 40 - upper.length);
        assert.equal(r.value.walk.fragment, exts.some((e) => e.type === 44) ? 'first' : 'none');
      },
    ),
  );
});

test('property: truncated, mutated or random bytes never throw, and a success stays inside the packet', () => {
  const check = (b: Uint8Array) => {
    const r = parseIpv6(b);
    if (!r.ok) return assert.ok(['truncated', 'bad-version', 'bad-ipv6'].includes(r.error.code));
    assert.ok(r.value.walk.extLength <= r.value.header.payloadLength);
    if (r.value.walk.upperOffset !== undefined) assert.ok(r.value.walk.upperOffset <= b.length);
    isNeverIntercepted(b, r.value.walk);
    icmpv6ErrorAllowed(b);
    clampTcpMss(b.slice(), 1000);
    echoReplyFor6(b);
  };
  fc.assert(
    fc.property(
      fc.array(ext, { maxLength: 20 }),
      fc.uint8Array({ maxLength: 48 }),
      fc.nat(),
      mutation(200),
      (exts, upper, cut, m) => {
        const p = v6Packet(A, B, exts, 6, upper);
        check(p.subarray(0, cut % (p.length + 1)));
        check(mutate(p, { index: m.index % p.length, xor: m.xor }));
      },
    ),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (b) => check(b.length > 0 ? ((b[0] = 0x60 | (b[0] & 15)), b) : b)),
  );
  // The walk alone, on garbage with any first next header.
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.constantFrom(0, 43, 44, 51, 60),
      (b, nh) => void walkExtensionHeaders(b, nh, 0),
    ),
  );
});

test('rewriteIpv6 keeps the fixed header and sets the payload length and next header', () => {
  const p = buildIpv6({
    src: A,
    dst: B,
    nextHeader: 6,
    payload: new Uint8Array(30),
    hopLimit: 7,
    trafficClass: 0x10,
    flowLabel: 77,
  });
  const q = rewriteIpv6(p, { nextHeader: 17, payload: new Uint8Array(5) });
  const r = parseIpv6(q);
  assert.ok(r.ok);
  assert.deepEqual(r.value.header, {
    trafficClass: 0x10,
    flowLabel: 77,
    payloadLength: 5,
    nextHeader: 17,
    hopLimit: 7,
    src: A,
    dst: B,
  });
});

/** The RFC 8200 §8.1 pseudo-header as bytes, for a naive cross-check. */
function pseudo(src: string, dst: string, length: number, nh: number): Uint8Array {
  const b = new Uint8Array(40);
  b.set(ipToBytes(src), 0);
  b.set(ipToBytes(dst), 16);
  b[34] = length >> 8;
  b[35] = length & 0xff;
  b[39] = nh;
  return b;
}

test('property: ICMPv6 echo checksums agree with a naive pseudo-header sum and verify', () => {
  fc.assert(
    fc.property(
      ipv6,
      ipv6,
      fc.uint8Array({ maxLength: 100 }),
      fc.integer({ min: 0, max: 0xffff }),
      (src, dst, data, id) => {
        const p = buildIcmpv6Echo({ src, dst, type: 128, id, seq: 3, data });
        const icmp = p.subarray(40);
        const whole = new Uint8Array(40 + icmp.length);
        whole.set(pseudo(src, dst, icmp.length, 58));
        whole.set(icmp, 40);
        assert.equal(naiveChecksum(whole), 0);
        const m = parseIcmpv6(p, 40, p.length);
        assert.ok(m.ok);
        assert.deepEqual([m.value.type, m.value.id, m.value.seq, [...m.value.body]], [128, id, 3, [...data]]);
        // The same bytes with other addresses do not verify: the pseudo-header is covered.
        const moved = p.slice();
        moved[39] ^= 1;
        assert.ok(!parseIcmpv6(moved, 40, moved.length).ok);
        assert.equal(ipv6PseudoHeaderSum(p, icmp.length, 58) > 0, true);
      },
    ),
  );
});

test('echo replies over IPv6 (echoReplyFor dispatches on the version)', () => {
  const req = buildIcmpv6Echo({
    src: A,
    dst: B,
    type: 128,
    id: 9,
    seq: 10,
    data: new Uint8Array([1, 2, 3]),
    trafficClass: 0x20,
  });
  const r = echoReplyFor(req);
  assert.ok(r.ok);
  const p = parseIpv6(r.value);
  assert.ok(p.ok);
  assert.equal(p.value.header.src, B);
  assert.equal(p.value.header.dst, A);
  const m = parseIcmpv6(r.value, 40, r.value.length);
  assert.ok(m.ok);
  assert.deepEqual([m.value.type, m.value.id, m.value.seq, [...m.value.body]], [129, 9, 10, [1, 2, 3]]);
});

test('Packet Too Big: to the source, MTU never below 1280, the quote fits in 1280 bytes, checksum verifies', () => {
  const big = v6Packet(A, B, [{ type: 60 }], 17, new Uint8Array(3000));
  const ptb = buildIcmpv6PacketTooBig(big, 1000, 'fd00:ff::1');
  assert.equal(ptb.length, 1280);
  const p = parseIpv6(ptb);
  assert.ok(p.ok);
  assert.equal(p.value.header.dst, A);
  assert.equal(p.value.header.src, 'fd00:ff::1');
  const m = parseIcmpv6(ptb, 40, ptb.length);
  assert.ok(m.ok);
  assert.deepEqual([m.value.type, m.value.code, m.value.mtu], [2, 0, 1280]);
  assert.deepEqual(m.value.body.subarray(0, 48), big.subarray(0, 48));
  const small = v6Packet(A, B, [], 17, new Uint8Array(100));
  const m2 = parseIcmpv6(buildIcmpv6PacketTooBig(small, 1400, 'fd00:ff::1'), 40, 40 + 8 + small.length);
  assert.ok(m2.ok);
  assert.equal(m2.value.mtu, 1400);
  assert.equal(m2.value.body.length, small.length);
});

test('ICMPv6 errors are not sent about errors, link-scoped messages, or from unspecified/multicast/link-local sources', () => {
  const udp = v6Packet(A, B, [], 17, new Uint8Array(8));
  assert.ok(icmpv6ErrorAllowed(udp));
  assert.ok(!icmpv6ErrorAllowed(buildIcmpv6PacketTooBig(udp, 1300, 'fd00:ff::1')));
  assert.ok(!icmpv6ErrorAllowed(v6Packet('::', B, [], 17, new Uint8Array(8))));
  assert.ok(!icmpv6ErrorAllowed(v6Packet('fe80::1', B, [], 17, new Uint8Array(8))));
  assert.ok(!icmpv6ErrorAllowed(v6Packet(A, 'ff02::1', [], 17, new Uint8Array(8))));
  assert.ok(
    icmpv6ErrorAllowed(v6Packet(A, 'ff0e::1', [], 17, new Uint8Array(8)), true),
    'Packet Too Big may answer multicast',
  );
  const ns = buildIcmpv6Echo({ src: A, dst: B, type: 128, id: 0, seq: 0, data: new Uint8Array(0) });
  ns[40] = 135;
  assert.ok(!icmpv6ErrorAllowed(ns));
});

test('the never-intercepted set: link-local, multicast, unspecified source, ND/RA/MLD/RPL; not global unicast', () => {
  const walkOf = (p: Uint8Array) => {
    const r = parseIpv6(p);
    assert.ok(r.ok);
    return r.value.walk;
  };
  const icmp = (src: string, dst: string, type: number) => {
    const p = buildIcmpv6Echo({ src, dst, type: 128, id: 0, seq: 0, data: new Uint8Array(16) });
    p[40] = type;
    return p;
  };
  const never = (p: Uint8Array) => isNeverIntercepted(p, walkOf(p));
  assert.ok(never(v6Packet('fe80::1', B, [], 17, new Uint8Array(8))));
  assert.ok(never(v6Packet(A, 'febf::1', [], 17, new Uint8Array(8))));
  assert.ok(never(v6Packet(A, 'ff02::1:ff00:10', [], 17, new Uint8Array(8))));
  assert.ok(never(v6Packet('::', 'fd00::1', [], 17, new Uint8Array(8))));
  for (const t of [130, 131, 132, 133, 134, 135, 136, 137, 143, 155]) assert.ok(never(icmp(A, B, t)), `type ${t}`);
  // Behind a hop-by-hop header (as MLD always is), still found.
  assert.ok(never(v6Packet(A, B, [{ type: 0 }], 58, new Uint8Array([143, 0, 0, 0, 0, 0, 0, 0]))));
  for (const t of [1, 2, 128, 129]) assert.ok(!never(icmp(A, B, t)), `type ${t}`);
  assert.ok(!never(v6Packet(A, B, [], 6, new Uint8Array(20))));
  assert.ok(!never(v6Packet('fec0::1', B, [], 17, new Uint8Array(8))), 'fec0::/10 is not link-local');
  // ICMPv6 with an empty payload and link padding after it: the padding is not a type (the native
  // walk bounds by the payload length too; a padding byte of 135 must not make it neighbour discovery).
  const padded = new Uint8Array(41);
  padded.set(v6Packet(A, B, [], 58, new Uint8Array(0)));
  padded[40] = 135;
  assert.ok(!never(padded), 'link padding read as an ICMPv6 type');
});

test('TCP over IPv6: SYN checksums verify; the MSS clamp works behind extension headers and keeps the checksum', () => {
  const syn = buildTcpSyn({ src: A, dst: B, srcPort: 40000, dstPort: 80, seq: 1, mss: 1440 });
  assert.ok(tcpChecksumOk(syn));
  assert.equal(tcpMss(syn), 1440);
  assert.ok(clampTcpMss(syn, 1300));
  assert.equal(tcpMss(syn), 1300);
  assert.ok(tcpChecksumOk(syn));
  // The same segment behind destination options and routing: the pseudo-header is the same.
  const seg = syn.subarray(40);
  const chained = v6Packet(A, B, [{ type: 0 }, { type: 60 }, { type: 43 }], 6, seg.slice());
  assert.ok(tcpChecksumOk(chained));
  assert.ok(clampTcpMss(chained, 1200));
  assert.equal(tcpMss(chained), 1200);
  assert.ok(tcpChecksumOk(chained));
  // Fragments are never clamped (the TCP header may not be whole, nor the checksum computable).
  const frag = v6Packet(A, B, [{ type: 44, more: true }], 6, seg.slice());
  assert.ok(!clampTcpMss(frag, 1000));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (mss, limit) => {
      const p = buildTcpSyn({ src: A, dst: B, srcPort: 1, dstPort: 2, seq: 5, mss });
      const changed = clampTcpMss(p, limit);
      assert.equal(changed, mss > limit);
      assert.equal(tcpMss(p), Math.min(mss, limit));
      assert.ok(tcpChecksumOk(p));
    }),
  );
});

test('UDP over IPv6: the checksum is computed (never 0) and verifies; 0 is refused over IPv6', () => {
  fc.assert(
    fc.property(ipv6, ipv6, fc.uint8Array({ maxLength: 64 }), (src, dst, body) => {
      const p = buildIpv6({ src, dst, nextHeader: 17, payload: udpDatagram(4500, 4500, body) });
      setUdpChecksum(p, 40);
      assert.ok(p[46] !== 0 || p[47] !== 0);
      assert.ok(udpChecksumOk(p, 40));
      const whole = new Uint8Array(40 + p.length - 40);
      whole.set(pseudo(src, dst, p.length - 40, 17));
      whole.set(p.subarray(40), 40);
      const n = naiveChecksum(whole);
      assert.ok(n === 0 || (p[46] === 0xff && p[47] === 0xff));
    }),
  );
  const p = buildIpv6({ src: A, dst: B, nextHeader: 17, payload: udpDatagram(1, 2, new Uint8Array(4)) });
  assert.ok(!udpChecksumOk(p, 40));
});

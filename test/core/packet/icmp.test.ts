// The ICMP codec: echo and error messages parsed and built, "fragmentation needed" quoting as RFC
// 1191 asks, when an error may be sent (RFC 1812), and arbitrary bytes never throwing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildIcmpEcho,
  buildIcmpFragNeeded,
  buildIcmpUnreachable,
  echoReplyFor,
  icmpErrorAllowed,
  isIcmpEcho,
  isIcmpUnreachable,
  parseIcmp,
} from '../../../src/core/packet/icmp.js';
import { buildIpv4, parseIpv4, PROTO_ICMP, PROTO_TCP, setHeaderChecksum } from '../../../src/core/packet/ipv4.js';
import { hex, ipv4, mutate } from './arbitraries.js';

const CODES = new Set(['truncated', 'bad-checksum']);
const text = (s: string) => new TextEncoder().encode(s);
// A Windows-style ping: id 1, seq 1, 32 bytes "abc...", checksum 4d5a.
const KNOWN_ECHO = Uint8Array.from([...hex('0800 4d5a 0001 0001'), ...text('abcdefghijklmnopqrstuvwabcdefghi')]);

function parsed(b: Uint8Array) {
  const r = parseIcmp(b);
  assert.ok(r.ok, r.ok ? '' : r.error.code);
  return r.value;
}

test('parses and builds a known echo request', () => {
  const m = parsed(KNOWN_ECHO);
  assert.ok(isIcmpEcho(m));
  assert.deepEqual(
    { ...m, data: Buffer.from(m.data).toString() },
    { type: 8, code: 0, id: 1, seq: 1, data: 'abcdefghijklmnopqrstuvwabcdefghi' },
  );
  assert.deepEqual(
    buildIcmpEcho({ type: 8, id: 1, seq: 1, data: text('abcdefghijklmnopqrstuvwabcdefghi') }),
    KNOWN_ECHO,
  );
});

test('typed errors and other message types', () => {
  const r1 = parseIcmp(KNOWN_ECHO.subarray(0, 7));
  assert.equal(!r1.ok && r1.error.code, 'truncated');
  const r2 = parseIcmp(mutate(KNOWN_ECHO, { index: 20, xor: 1 }));
  assert.equal(!r2.ok && r2.error.code, 'bad-checksum');
  const tx = Uint8Array.from([11, 0, 0, 0, 0, 0, 0, 0, 0x45, 0]);
  const c = 0xffff - ((11 << 8) + 0x4500);
  tx[2] = c >> 8;
  tx[3] = c & 0xff;
  const m = parsed(tx);
  assert.ok(!isIcmpEcho(m) && !isIcmpUnreachable(m));
  assert.deepEqual(m, { type: 11, code: 0, rest: tx.subarray(4) });
});

const original = buildIpv4({
  src: '10.1.0.5',
  dst: '10.2.0.9',
  protocol: PROTO_TCP,
  payload: Uint8Array.from({ length: 1400 }, (_, i) => i & 0xff),
  df: true,
  id: 77,
});

test('fragmentation needed (RFC 1191) quotes as much as fits in 576 bytes (RFC 1812 §4.3.2.3)', () => {
  const pkt = buildIcmpFragNeeded(original, 1380, '192.0.2.1');
  const ip = parseIpv4(pkt);
  assert.ok(ip.ok);
  assert.deepEqual(
    [ip.value.header.src, ip.value.header.dst, ip.value.header.protocol, ip.value.header.ttl],
    ['192.0.2.1', '10.1.0.5', PROTO_ICMP, 64],
  );
  assert.equal(ip.value.header.tos, 0xc0);
  const m = parsed(ip.value.payload);
  assert.ok(isIcmpUnreachable(m));
  assert.deepEqual([m.type, m.code, m.nextHopMtu], [3, 4, 1380]);
  assert.deepEqual(m.original, original.subarray(0, Math.min(548, original.length)));
  assert.ok(pkt.length <= 576);
  assert.deepEqual(ip.value.payload.subarray(4, 6), Uint8Array.of(0, 0), 'unused field is zero');
});

test('other unreachable codes; options and short originals are quoted as they are', () => {
  const opts = new Uint8Array(24 + 3);
  opts.set(hex('4600 001b 0001 0000 4011 0000 0a000001 0a000002 01010100 aabbcc'));
  setHeaderChecksum(opts);
  const pkt = buildIcmpUnreachable(opts, 13, '10.0.0.254');
  const ip = parseIpv4(pkt);
  assert.ok(ip.ok);
  assert.equal(ip.value.header.dst, '10.0.0.1');
  const m = parsed(ip.value.payload);
  assert.ok(isIcmpUnreachable(m));
  assert.deepEqual([m.code, m.nextHopMtu], [13, 0]);
  assert.deepEqual(m.original, opts, 'only 3 payload bytes exist');
  // Link padding beyond the total length is not quoted.
  const padded = new Uint8Array(opts.length + 10);
  padded.set(opts);
  const ip2 = parseIpv4(buildIcmpUnreachable(padded, 1, '10.0.0.254'));
  assert.ok(ip2.ok);
  const m2 = parsed(ip2.value.payload);
  assert.ok(isIcmpUnreachable(m2));
  assert.deepEqual(m2.original, opts);
  assert.throws(() => buildIcmpUnreachable(new Uint8Array(10), 1, '10.0.0.1'), TypeError);
});

test('icmpErrorAllowed follows RFC 1812 4.3.2.7', () => {
  assert.equal(icmpErrorAllowed(original), true);
  assert.equal(icmpErrorAllowed(buildIcmpFragNeeded(original, 1300, '192.0.2.1')), false, 'never about an ICMP error');
  const echo = buildIpv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: PROTO_ICMP, payload: KNOWN_ECHO });
  assert.equal(icmpErrorAllowed(echo), true, 'queries may get errors');
  const frag = original.slice();
  frag[7] = 1;
  assert.equal(icmpErrorAllowed(frag), false, 'non-initial fragment');
  for (const [src, dst] of [
    ['0.0.0.0', '10.0.0.1'],
    ['224.0.0.1', '10.0.0.1'],
    ['127.0.0.1', '10.0.0.1'],
    ['10.0.0.1', '239.1.1.1'],
    ['10.0.0.1', '255.255.255.255'],
  ]) {
    assert.equal(
      icmpErrorAllowed(buildIpv4({ src, dst, protocol: PROTO_TCP, payload: new Uint8Array(20) })),
      false,
      `${src} -> ${dst}`,
    );
  }
  assert.equal(icmpErrorAllowed(new Uint8Array(19)), false);
});

test('echoReplyFor answers like an IP stack and refuses everything else', () => {
  const req = buildIpv4({
    src: '10.1.0.5',
    dst: '10.2.0.9',
    protocol: PROTO_ICMP,
    payload: KNOWN_ECHO,
    ttl: 3,
    tos: 0x10,
    id: 9,
  });
  const rep = echoReplyFor(req);
  assert.ok(rep.ok);
  const ip = parseIpv4(rep.value);
  assert.ok(ip.ok);
  assert.deepEqual(
    [ip.value.header.src, ip.value.header.dst, ip.value.header.ttl, ip.value.header.tos],
    ['10.2.0.9', '10.1.0.5', 64, 0x10],
  );
  const m = parsed(ip.value.payload);
  assert.ok(isIcmpEcho(m));
  assert.deepEqual([m.type, m.id, m.seq], [0, 1, 1]);
  assert.deepEqual(m.data, KNOWN_ECHO.subarray(8));

  const code = (b: Uint8Array) => {
    const r = echoReplyFor(b);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(code(rep.value), 'not-echo-request');
  assert.equal(code(original), 'not-icmp');
  const frag = req.slice();
  frag[6] |= 0x20;
  setHeaderChecksum(frag);
  assert.equal(code(frag), 'fragmented');
  const bad = req.slice();
  bad[30] ^= 0xff;
  assert.equal(code(bad), 'bad-checksum');
  assert.equal(code(req.subarray(0, 10)), 'truncated');
});

const echo = fc.record({
  type: fc.constantFrom(0 as const, 8 as const),
  id: fc.integer({ min: 0, max: 0xffff }),
  seq: fc.integer({ min: 0, max: 0xffff }),
  data: fc.uint8Array({ maxLength: 120 }),
});

test('echo build -> parse is the identity; echoReplyFor round-trips (property)', () => {
  fc.assert(
    fc.property(echo, ipv4, ipv4, (e, src, dst) => {
      const m = parsed(buildIcmpEcho(e));
      assert.deepEqual(m, { ...e, code: 0 });
      const req = buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: buildIcmpEcho({ ...e, type: 8 }) });
      const rep = echoReplyFor(req);
      assert.ok(rep.ok);
      const ip = parseIpv4(rep.value);
      assert.ok(ip.ok);
      assert.deepEqual([ip.value.header.src, ip.value.header.dst], [dst, src]);
      assert.deepEqual(parsed(ip.value.payload), { ...e, type: 0, code: 0 });
    }),
  );
});

test('arbitrary bytes, truncations and mutations never throw (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      const r = parseIcmp(b);
      if (!r.ok) assert.ok(CODES.has(r.error.code));
      const rep = echoReplyFor(b);
      if (rep.ok) assert.ok(parseIpv4(rep.value).ok);
      if (icmpErrorAllowed(b)) assert.ok(b.length >= 20);
    }),
  );
  fc.assert(
    fc.property(echo, fc.nat(), fc.integer({ min: 1, max: 255 }), (e, at, xor) => {
      const bytes = buildIcmpEcho(e);
      const t = parseIcmp(bytes.subarray(0, at % bytes.length));
      if (!t.ok) assert.ok(CODES.has(t.error.code));
      // Every single-byte change breaks the checksum.
      const m = parseIcmp(mutate(bytes, { index: at % bytes.length, xor }));
      assert.equal(!m.ok && m.error.code, 'bad-checksum');
    }),
  );
});

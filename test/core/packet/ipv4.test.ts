// The IPv4 header codec: known bytes, typed errors for every malformed header, fragments and
// options, header rewriting, and that no input (truncated, mutated, random) makes it throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildIpv4,
  ipv4Dst,
  ipv4Protocol,
  ipv4Src,
  parseIpv4,
  PROTO_ESP,
  PROTO_UDP,
  rewriteIpv4,
  setHeaderChecksum,
} from '../../../src/core/packet/ipv4.js';
import { hex, ipv4, mutate, mutation } from './arbitraries.js';

const CODES = new Set(['truncated', 'bad-version', 'bad-length', 'bad-checksum']);
// A well-known UDP header: 192.168.0.1 -> 192.168.0.199, total length 115, checksum b861.
const KNOWN = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');

function knownPacket(trailer = 0): Uint8Array {
  const p = new Uint8Array(115 + trailer);
  p.set(KNOWN);
  for (let i = 20; i < p.length; i++) p[i] = i & 0xff;
  return p;
}

test('parses a known header and excludes bytes beyond the total length', () => {
  const p = knownPacket(7);
  const r = parseIpv4(p);
  assert.ok(r.ok);
  assert.deepEqual(r.value.header, {
    headerLength: 20,
    tos: 0,
    totalLength: 115,
    id: 0,
    df: true,
    mf: false,
    fragmentOffset: 0,
    ttl: 64,
    protocol: PROTO_UDP,
    checksum: 0xb861,
    src: '192.168.0.1',
    dst: '192.168.0.199',
  });
  assert.equal(r.value.payload.length, 95);
  assert.equal(r.value.payload.buffer, p.buffer, 'payload is a view, not a copy');
  assert.equal(r.value.payload.byteOffset, p.byteOffset + 20);
  assert.equal(ipv4Protocol(p), 17);
  assert.equal(ipv4Src(p), '192.168.0.1');
  assert.equal(ipv4Dst(p), '192.168.0.199');
});

test('buildIpv4 reproduces the known header byte for byte', () => {
  const payload = knownPacket().subarray(20);
  const built = buildIpv4({ src: '192.168.0.1', dst: '192.168.0.199', protocol: PROTO_UDP, payload, df: true });
  assert.deepEqual(built, knownPacket());
});

test('typed errors for malformed headers', () => {
  const code = (b: Uint8Array) => {
    const r = parseIpv4(b);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(code(KNOWN.subarray(0, 19)), 'truncated');
  assert.equal(code(knownPacket().subarray(0, 114)), 'truncated');
  const v6 = knownPacket();
  v6[0] = 0x65;
  assert.equal(code(v6), 'bad-version');
  const ihl4 = knownPacket();
  ihl4[0] = 0x44;
  assert.equal(code(ihl4), 'bad-length');
  const ihl15 = knownPacket().subarray(0, 40);
  ihl15[0] = 0x4f;
  ihl15[3] = 40;
  assert.equal(code(ihl15), 'truncated');
  const shortTotal = knownPacket();
  shortTotal[2] = 0;
  shortTotal[3] = 19;
  setHeaderChecksum(shortTotal);
  assert.equal(code(shortTotal), 'bad-length');
  const badSum = knownPacket();
  badSum[11] ^= 1;
  assert.equal(code(badSum), 'bad-checksum');
});

test('fragment fields and options are decoded', () => {
  const p = new Uint8Array(24 + 8);
  p.set(hex('4600 0020 1234 3fff 0106 0000 0a000001 0a000002 01010100'));
  setHeaderChecksum(p);
  const r = parseIpv4(p);
  assert.ok(r.ok);
  assert.equal(r.value.header.headerLength, 24);
  assert.equal(r.value.header.mf, true);
  assert.equal(r.value.header.df, false);
  assert.equal(r.value.header.fragmentOffset, 0x1fff * 8);
  assert.equal(r.value.header.id, 0x1234);
  assert.equal(r.value.payload.length, 8);
});

test('rewriteIpv4 keeps the header (with options) and swaps protocol and payload', () => {
  const p = new Uint8Array(24 + 5);
  p.set(hex('4610 001d beef 4000 2a06 0000 0a000001 0a000002 01010100'));
  p.set([1, 2, 3, 4, 5], 24);
  setHeaderChecksum(p);
  const esp = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
  const out = rewriteIpv4(p, { protocol: PROTO_ESP, payload: esp });
  const r = parseIpv4(out);
  assert.ok(r.ok);
  const h = r.value.header;
  assert.equal(h.protocol, PROTO_ESP);
  assert.equal(h.totalLength, 324);
  assert.deepEqual(
    [h.headerLength, h.tos, h.id, h.df, h.ttl, h.src, h.dst],
    [24, 0x10, 0xbeef, true, 42, '10.0.0.1', '10.0.0.2'],
  );
  assert.deepEqual(out.subarray(20, 24), hex('01010100'));
  assert.deepEqual(r.value.payload, esp);
  // Without a protocol the original one stays.
  const back = rewriteIpv4(out, { payload: Uint8Array.of(9, 9) });
  assert.equal(ipv4Protocol(back), PROTO_ESP);
  assert.ok(parseIpv4(back).ok);
});

test('buildIpv4 refuses programmer errors', () => {
  const base = { src: '10.0.0.1', dst: '10.0.0.2', protocol: 1, payload: new Uint8Array(0) };
  assert.throws(() => buildIpv4({ ...base, src: 'fd00::1' }), TypeError);
  assert.throws(() => buildIpv4({ ...base, dst: '10.0.0.256' }), TypeError);
  assert.throws(() => buildIpv4({ ...base, payload: new Uint8Array(65516) }), RangeError);
  assert.equal(buildIpv4({ ...base, payload: new Uint8Array(65515) }).length, 65535);
});

const headerFields = fc.record({
  src: ipv4,
  dst: ipv4,
  protocol: fc.integer({ min: 0, max: 255 }),
  ttl: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  df: fc.boolean(),
  tos: fc.integer({ min: 0, max: 255 }),
  payload: fc.uint8Array({ maxLength: 200 }),
});

test('build -> parse is the identity, and rewrite keeps every header field (property)', () => {
  fc.assert(
    fc.property(
      headerFields,
      fc.uint8Array({ maxLength: 100 }),
      fc.integer({ min: 0, max: 255 }),
      (f, other, proto) => {
        const p = buildIpv4(f);
        const r = parseIpv4(p);
        assert.ok(r.ok);
        const h = r.value.header;
        assert.deepEqual(
          {
            src: h.src,
            dst: h.dst,
            protocol: h.protocol,
            ttl: h.ttl,
            id: h.id,
            df: h.df,
            tos: h.tos,
            payload: r.value.payload,
          },
          { ...f },
        );
        assert.deepEqual(
          [h.mf, h.fragmentOffset, h.headerLength, h.totalLength],
          [false, 0, 20, 20 + f.payload.length],
        );
        const w = parseIpv4(rewriteIpv4(p, { protocol: proto, payload: other }));
        assert.ok(w.ok);
        assert.deepEqual(
          { ...w.value.header, protocol: h.protocol, totalLength: h.totalLength, checksum: h.checksum },
          h,
        );
        assert.equal(w.value.header.protocol, proto);
        assert.deepEqual(w.value.payload, other);
      },
    ),
  );
});

test('arbitrary bytes never throw and fail with a known code (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      if (b.length > 0) b[0] = (b[0] & 0x0f) | 0x40; // mostly version 4, to get past the first check
      const r = parseIpv4(b);
      if (!r.ok) assert.ok(CODES.has(r.error.code), r.error.code);
      else assert.ok(r.value.payload.length === r.value.header.totalLength - r.value.header.headerLength);
    }),
  );
});

test('any truncation or single-byte header mutation of a valid packet is rejected (property)', () => {
  fc.assert(
    fc.property(headerFields, fc.nat(), fc.integer({ min: 1, max: 255 }), (f, cut, xor) => {
      const p = buildIpv4(f);
      const t = parseIpv4(p.subarray(0, cut % p.length));
      assert.equal(t.ok ? 'ok' : t.error.code, 'truncated');
      // The one's complement sum detects every single-byte change.
      const m = parseIpv4(mutate(p, { index: cut % 20, xor }));
      assert.ok(!m.ok && CODES.has(m.error.code));
    }),
  );
});

test('single-byte mutations anywhere never throw (property)', () => {
  fc.assert(
    fc.property(
      headerFields.chain((f) => fc.tuple(fc.constant(buildIpv4(f)), mutation(20 + f.payload.length))),
      ([p, m]) => {
        const r = parseIpv4(mutate(p, m));
        if (!r.ok) assert.ok(CODES.has(r.error.code));
        else assert.ok(m.index >= 20, 'a header mutation must not parse');
      },
    ),
  );
});

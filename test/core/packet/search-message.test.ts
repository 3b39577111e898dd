// The key-search message codec (docs/protocol.md): known bytes both ways, a typed error for every
// malformed message, and round trips, truncations and mutations on arbitrary input (properties).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeSearchMessage,
  encodeSearchMessage,
  isSearchPayload,
  SEARCH_MAGIC,
  SEARCH_VERSION,
  txidHex,
  validateGatewayId,
  type SearchMessage,
} from '../../../src/core/packet/search-message.js';
import { anyIp, hex, mutate, mutation } from './arbitraries.js';

const CODES = new Set([
  'truncated',
  'bad-magic',
  'unsupported-version',
  'bad-phase',
  'bad-flags',
  'too-many-entries',
  'bad-family',
  'bad-length',
  'bad-utf8',
  'bad-gateway-id',
  'bad-proxied',
  'bad-side',
  'too-many-vpns',
  'trailing-bytes',
]);

const KNOWN_BYTES = hex(`
  4b535243 02 02 01 01  0102030405060708
  04 0a000001
  06 fd000000000000000000000000000001
  03 672d61
  03 672d62
  02 03 672d62 04 c0000201 01 00000007 00000002 0000000100000005 000102030405060708090a0b0c0d0e0f
`);

const KNOWN: SearchMessage = {
  phase: 'destination',
  proxied: true,
  txid: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  pathSrc: '10.0.0.1',
  pathDst: 'fd00::1',
  originator: 'g-a',
  proxiedBy: 'g-b',
  entries: [
    {
      side: 'dst',
      gateway: 'g-b',
      address: '192.0.2.1',
      vpns: [{ vpnId: 7, epoch: 2, seq: 0x1_0000_0005n, proof: Uint8Array.from({ length: 16 }, (_, i) => i) }],
    },
  ],
};

function code(b: Uint8Array): string {
  const r = decodeSearchMessage(b);
  return r.ok ? 'ok' : r.error.code;
}

test('known bytes decode to the known message and back', () => {
  assert.deepEqual(SEARCH_MAGIC, new TextEncoder().encode('KSRC'));
  assert.equal(SEARCH_VERSION, 2);
  const r = decodeSearchMessage(KNOWN_BYTES);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.deepEqual(r.value, KNOWN);
  assert.deepEqual(encodeSearchMessage(KNOWN), KNOWN_BYTES);
  assert.equal(isSearchPayload(KNOWN_BYTES), true);
  assert.equal(txidHex(r.value.txid), '0102030405060708');
});

test('decoded byte arrays are copies, not views of the packet', () => {
  const buf = KNOWN_BYTES.slice();
  const r = decodeSearchMessage(buf);
  assert.ok(r.ok);
  buf.fill(0);
  assert.equal(txidHex(r.value.txid), '0102030405060708');
  assert.equal(r.value.entries[0].vpns[0].proof[15], 15);
});

test('isSearchPayload is a cheap magic test', () => {
  assert.equal(isSearchPayload(KNOWN_BYTES.subarray(0, 8)), true);
  assert.equal(isSearchPayload(KNOWN_BYTES.subarray(0, 7)), false);
  assert.equal(isSearchPayload(mutate(KNOWN_BYTES, { index: 3, xor: 1 })), false);
  assert.equal(isSearchPayload(new TextEncoder().encode('abcdefghijklmnop')), false);
});

/** Known bytes with one field replaced (offsets follow KNOWN_BYTES' layout). */
function patched(at: number, ...bytes: number[]): Uint8Array {
  const b = KNOWN_BYTES.slice();
  b.set(bytes, at);
  return b;
}

test('every kind of malformed message gets its typed error', () => {
  const origin = 16 + 5 + 17; // originator length byte
  const proxiedBy = origin + 4;
  const entry = proxiedBy + 4;
  const vpnCount = entry + 1 + 4 + 5;
  assert.equal(code(patched(0, 0x4a)), 'bad-magic');
  assert.equal(code(Uint8Array.of(0x4b, 0x53, 0x52)), 'truncated');
  assert.equal(code(Uint8Array.of(0x4b, 0x00)), 'bad-magic');
  assert.equal(code(patched(4, 1)), 'unsupported-version', 'version 1 (claims without sequence numbers)');
  assert.equal(code(patched(4, 3)), 'unsupported-version');
  assert.equal(code(patched(4, 0)), 'unsupported-version');
  assert.equal(code(KNOWN_BYTES.subarray(0, 15)), 'truncated');
  assert.equal(code(patched(5, 3)), 'bad-phase');
  assert.equal(code(patched(6, 3)), 'bad-flags');
  assert.equal(code(patched(7, 33)), 'too-many-entries');
  assert.equal(code(patched(16, 5)), 'bad-family');
  assert.equal(code(patched(21, 16)), 'bad-family');
  assert.equal(code(patched(origin, 0)), 'bad-length');
  assert.equal(code(patched(origin, 64)), 'bad-length');
  assert.equal(code(patched(origin + 1, 0xff)), 'bad-utf8');
  assert.equal(code(patched(origin + 1, 0xc3, 0x28)), 'bad-utf8');
  assert.equal(code(patched(origin + 1, 0xc2, 0x85)), 'bad-gateway-id', 'C1 control NEL');
  assert.equal(code(patched(origin + 2, 0x0a)), 'bad-gateway-id');
  assert.equal(code(patched(proxiedBy + 1, 0x7f)), 'bad-gateway-id');
  assert.equal(code(patched(6, 0)), 'bad-proxied', 'proxiedBy without the flag');
  const unproxied = encodeSearchMessage({ ...KNOWN, proxied: false, proxiedBy: '' });
  const flagOnly = unproxied.slice();
  flagOnly[6] = 1;
  assert.equal(code(flagOnly), 'bad-proxied');
  assert.equal(code(patched(entry, 0)), 'bad-side');
  assert.equal(code(patched(entry, 3)), 'bad-side');
  assert.equal(code(patched(entry + 1, 0)), 'bad-length');
  assert.equal(code(patched(vpnCount, 33)), 'too-many-vpns');
  assert.equal(code(patched(vpnCount, 2)), 'truncated');
  assert.equal(code(patched(7, 2)), 'truncated');
  assert.equal(code(patched(7, 0)), 'trailing-bytes');
  assert.equal(code(Uint8Array.of(...KNOWN_BYTES, 0)), 'trailing-bytes');
});

test('validateGatewayId', () => {
  const c = (s: string) => {
    const r = validateGatewayId(s);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(c('gw-tokyo-1'), 'ok');
  assert.equal(c('a'.repeat(63)), 'ok');
  assert.equal(c('東'.repeat(21)), 'ok', '63 bytes of UTF-8');
  assert.equal(c('東'.repeat(22)), 'bad-length');
  assert.equal(c('a'.repeat(64)), 'bad-length');
  assert.equal(c(''), 'bad-length');
  for (const ctl of ['\u0000', '\t', '\n', '\u001b', '\u007f', '\u0085', '\u009f'])
    assert.equal(c(`gw${ctl}1`), 'bad-gateway-id', JSON.stringify(ctl));
  assert.equal(c('gw\ud800'), 'bad-utf8');
  assert.equal(c('gw\udc00x'), 'bad-utf8');
  assert.equal(c('gw😀'), 'ok');
});

test('encode refuses programmer errors', () => {
  const bad: Array<[string, SearchMessage]> = [
    ['txid', { ...KNOWN, txid: new Uint8Array(7) }],
    ['proxied without proxiedBy', { ...KNOWN, proxiedBy: '' }],
    ['proxiedBy without proxied', { ...KNOWN, proxied: false }],
    ['originator', { ...KNOWN, originator: '' }],
    ['address', { ...KNOWN, pathSrc: '10.0.0.256' }],
    ['entries', { ...KNOWN, entries: new Array(33).fill(KNOWN.entries[0]) }],
    ['gateway', { ...KNOWN, entries: [{ ...KNOWN.entries[0], gateway: 'x\ny' }] }],
    [
      'proof',
      {
        ...KNOWN,
        entries: [{ ...KNOWN.entries[0], vpns: [{ vpnId: 1, epoch: 1, seq: 1n, proof: new Uint8Array(15) }] }],
      },
    ],
    [
      'vpnId',
      {
        ...KNOWN,
        entries: [{ ...KNOWN.entries[0], vpns: [{ vpnId: -1, epoch: 1, seq: 1n, proof: new Uint8Array(16) }] }],
      },
    ],
    [
      'epoch',
      {
        ...KNOWN,
        entries: [{ ...KNOWN.entries[0], vpns: [{ vpnId: 1, epoch: 2 ** 32, seq: 1n, proof: new Uint8Array(16) }] }],
      },
    ],
    [
      'seq',
      {
        ...KNOWN,
        entries: [{ ...KNOWN.entries[0], vpns: [{ vpnId: 1, epoch: 1, seq: 1n << 64n, proof: new Uint8Array(16) }] }],
      },
    ],
    [
      'seq',
      {
        ...KNOWN,
        entries: [{ ...KNOWN.entries[0], vpns: [{ vpnId: 1, epoch: 1, seq: -1n, proof: new Uint8Array(16) }] }],
      },
    ],
    [
      'seq',
      {
        ...KNOWN,
        entries: [
          {
            ...KNOWN.entries[0],
            vpns: [{ vpnId: 1, epoch: 1, seq: 1 as unknown as bigint, proof: new Uint8Array(16) }],
          },
        ],
      },
    ],
    ['vpns', { ...KNOWN, entries: [{ ...KNOWN.entries[0], vpns: new Array(33).fill(KNOWN.entries[0].vpns[0]) }] }],
  ];
  for (const [what, m] of bad) assert.throws(() => encodeSearchMessage(m), TypeError, what);
  const full = {
    ...KNOWN,
    entries: new Array(32).fill({ ...KNOWN.entries[0], vpns: new Array(32).fill(KNOWN.entries[0].vpns[0]) }),
  };
  const r = decodeSearchMessage(encodeSearchMessage(full));
  assert.ok(r.ok);
  assert.equal(r.value.entries.length, 32);
});

// Gateway ids: mostly ASCII, sometimes any Unicode; only valid ones are kept.
const gatewayId = fc
  .oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }))
  .filter((s) => validateGatewayId(s).ok);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const claim = fc.record({
  vpnId: u32,
  epoch: u32,
  seq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  proof: fc.uint8Array({ minLength: 16, maxLength: 16 }),
});
const entry = fc.record({
  side: fc.constantFrom('src' as const, 'dst' as const),
  gateway: gatewayId,
  address: anyIp,
  vpns: fc.array(claim, { maxLength: 4 }),
});
const message: fc.Arbitrary<SearchMessage> = fc
  .record({
    phase: fc.constantFrom('source' as const, 'destination' as const),
    proxiedBy: fc.oneof(fc.constant(''), gatewayId),
    txid: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    pathSrc: anyIp,
    pathDst: anyIp,
    originator: gatewayId,
    entries: fc.array(entry, { maxLength: 5 }),
  })
  .map((m) => ({
    ...m,
    proxied: m.proxiedBy !== '',
    entries: m.entries.map((e) => ({ ...e, vpns: e.vpns.map((c) => ({ ...c })) })),
  }));

test('encode -> decode is the identity, IPv4 and IPv6 alike (property)', () => {
  fc.assert(
    fc.property(message, (m) => {
      const bytes = encodeSearchMessage(m);
      assert.ok(isSearchPayload(bytes));
      const r = decodeSearchMessage(bytes);
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.deepEqual(r.value, m);
    }),
  );
});

test('every strict prefix is truncated, every extension has trailing bytes (property)', () => {
  fc.assert(
    fc.property(message, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), (m, cut, extra) => {
      const bytes = encodeSearchMessage(m);
      assert.equal(code(bytes.subarray(0, cut % bytes.length)), 'truncated');
      assert.equal(code(Uint8Array.of(...bytes, ...extra)), 'trailing-bytes');
    }),
    { numRuns: 60 },
  );
});

test('single-byte mutations never throw; what still decodes re-encodes to the same bytes (property)', () => {
  fc.assert(
    fc.property(
      message.chain((m) => {
        const bytes = encodeSearchMessage(m);
        return fc.tuple(fc.constant(bytes), mutation(bytes.length));
      }),
      ([bytes, mut]) => {
        const b = mutate(bytes, mut);
        const r = decodeSearchMessage(b);
        if (!r.ok) assert.ok(CODES.has(r.error.code), r.error.code);
        else assert.deepEqual(encodeSearchMessage(r.value), b, 'the encoding is canonical');
      },
    ),
    { numRuns: 300 },
  );
});

test('arbitrary bytes never throw (property)', () => {
  const header = Uint8Array.of(...SEARCH_MAGIC, 1);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (tail, withHeader) => {
      const b = withHeader ? Uint8Array.of(...header, ...tail) : tail;
      const r = decodeSearchMessage(b);
      if (!r.ok) assert.ok(CODES.has(r.error.code), r.error.code);
      else assert.deepEqual(encodeSearchMessage(r.value), b);
    }),
    { numRuns: 300 },
  );
});

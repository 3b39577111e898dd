// The wake-up channel's datagram codec (hand-written, ours): every datagram encodes and parses back
// to itself and checks under its key only; the parser never throws on any input, never accepts
// anything longer or shorter than the layout, and any change to an authentic datagram is either
// refused by the parser or fails its MAC. A DELIVER's answer is encrypted (a fresh IV each time)
// and only protocols 2 and 3 have DELIVERs, only 3 the SUBSCRIBE's acknowledges flag.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeDatagram,
  MAX_ANSWER_BYTES,
  MAX_DATAGRAM_BYTES,
  openAnswer,
  packAnswer,
  parseDatagram,
  pushKey,
  sealAnswer,
  verifyDatagram,
  type PushDatagram,
  type PushProtocol,
} from '../../src/authority/push-datagram.js';
import { readDelivered } from '../../src/authority/push-subscriber.js';

const u64 = fc.maxSafeNat();
const keyId = fc.integer({ min: 0, max: 0xffffffff });
const name = fc
  .string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
  .filter((s) => !s.includes('\u0000') && Buffer.byteLength(s) <= 63);
const datagram: fc.Arbitrary<PushDatagram> = fc.oneof(
  fc.record({ type: fc.constant('subscribe' as const), keyId, seq: u64, cursor: u64, gateway: name }),
  fc.record({
    type: fc.constant('subscribe' as const),
    keyId,
    seq: u64,
    cursor: u64,
    gateway: name,
    acknowledges: fc.constant(true as const),
  }),
  fc.record({ type: fc.constant('ack' as const), keyId, seq: u64, version: u64 }),
  fc.record({ type: fc.constant('wake' as const), keyId, seq: u64, version: u64, reset: fc.boolean() }),
  fc.record({
    type: fc.constant('deliver' as const),
    keyId,
    seq: u64,
    version: u64,
    since: u64,
    sealed: fc.uint8Array({ minLength: 16, maxLength: MAX_ANSWER_BYTES + 16 }),
  }),
);
const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** DELIVERs exist from protocol 2 on, acknowledging SUBSCRIBEs from 3 on. */
const protocolOf = (d: PushDatagram, p: PushProtocol): PushProtocol =>
  d.type === 'subscribe' && d.acknowledges ? 3 : d.type === 'deliver' && p < 2 ? 2 : p;
const protocol = fc.constantFrom<PushProtocol>(1, 2, 3);

describe('push datagrams', () => {
  it('round-trip, and check under their key only', () => {
    fc.assert(
      fc.property(datagram, key, key, protocol, (d, k, other, v) => {
        const b = encodeDatagram(d, k, protocolOf(d, v));
        assert.ok(b.length <= MAX_DATAGRAM_BYTES);
        const p = parseDatagram(b);
        assert.ok(p.ok, JSON.stringify(p));
        assert.equal(p.value.protocol, protocolOf(d, v));
        assert.deepEqual(p.value.datagram, d.type === 'deliver' ? { ...d, sealed: b.subarray(32, -16) } : { ...d });
        assert.equal(verifyDatagram(p.value, k), true);
        if (Buffer.compare(Buffer.from(k), Buffer.from(other)) !== 0)
          assert.equal(verifyDatagram(p.value, other), false);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1300 }), (b) => {
        const p = parseDatagram(b);
        if (p.ok) assert.ok(b.length >= 40 && b.length <= MAX_DATAGRAM_BYTES);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses or fails the MAC of any mutated, truncated or extended authentic datagram', () => {
    fc.assert(
      fc.property(
        datagram,
        key,
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('add' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
        ),
        protocol,
        (d, k, m, v) => {
          const b = encodeDatagram(d, k, protocolOf(d, v));
          let x: Buffer;
          if (m.kind === 'flip') {
            x = Buffer.from(b);
            x[m.at % b.length] ^= 1 << m.bit;
          } else if (m.kind === 'cut') x = b.subarray(0, m.at % b.length);
          else x = Buffer.concat([b, m.bytes]);
          const p = parseDatagram(x);
          if (p.ok) assert.equal(verifyDatagram(p.value, k), false, 'a changed datagram must not check');
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('derives per-gateway, per-key-id keys from the secret', () => {
    const secret = new Uint8Array(32).fill(7);
    const a = pushKey(secret, 'gw-1', 1000);
    assert.equal(a.length, 32);
    assert.deepEqual(a, pushKey(secret, 'gw-1', 1000));
    assert.notDeepEqual(a, pushKey(secret, 'gw-1', 1001));
    assert.notDeepEqual(a, pushKey(secret, 'gw-2', 1000));
    assert.notDeepEqual(a, pushKey(new Uint8Array(32).fill(8), 'gw-1', 1000));
  });

  it('refuses what our encoder would not make', () => {
    const k = new Uint8Array(32);
    const sub = encodeDatagram({ type: 'subscribe', keyId: 1, seq: 2, cursor: 3, gateway: 'g' }, k);
    const codes = (f: (b: Buffer) => void): string => {
      const b = Buffer.from(sub);
      f(b);
      const p = parseDatagram(b);
      return p.ok ? 'ok' : p.error.code;
    };
    const cases: [string, (b: Buffer) => void][] = [
      ['ok', () => undefined],
      ['ok', (b) => (b[0] = 2)],
      ['ok', (b) => (b[0] = 3)],
      ['bad-version', (b) => (b[0] = 4)],
      ['bad-version', (b) => (b[0] = 0)],
      ['bad-type', (b) => (b[1] = 9)],
      ['bad-flags', (b) => (b[2] = 1)], // acknowledges, in protocol 1
      ['bad-flags', (b) => ((b[0] = 2), (b[2] = 1))],
      ['ok', (b) => ((b[0] = 3), (b[2] = 1))],
      ['bad-flags', (b) => ((b[0] = 3), (b[2] = 2))],
      ['bad-length', (b) => (b[3] = 2)],
      ['bad-number', (b) => (b[8] = 0xff)],
      ['bad-name', (b) => (b[24] = 0xff)],
      ['bad-name', (b) => (b[24] = 0)],
    ];
    for (const [code, change] of cases) assert.equal(codes(change), code);
    assert.throws(() => encodeDatagram({ type: 'subscribe', keyId: 1, seq: 2, cursor: 3, gateway: 'x'.repeat(64) }, k));
    assert.throws(() => encodeDatagram({ type: 'ack', keyId: -1, seq: 2, version: 3 }, k));
    const acknowledging = { type: 'subscribe', keyId: 1, seq: 2, cursor: 3, gateway: 'g', acknowledges: true } as const;
    assert.throws(() => encodeDatagram(acknowledging, k, 2), /protocol 3/);
    const a = parseDatagram(encodeDatagram(acknowledging, k, 3));
    assert.ok(a.ok && a.value.datagram.type === 'subscribe' && a.value.datagram.acknowledges === true);
    // DELIVERs: protocol 2 only, never beyond one datagram.
    const deliver = { type: 'deliver', keyId: 1, seq: 2, version: 4, since: 3, sealed: new Uint8Array(20) } as const;
    assert.throws(() => encodeDatagram(deliver, k, 1), /protocol 2/);
    assert.throws(() => encodeDatagram({ ...deliver, sealed: new Uint8Array(MAX_ANSWER_BYTES + 17) }, k, 2));
    const d = encodeDatagram(deliver, k, 2);
    d[0] = 1;
    assert.equal(parseDatagram(d).ok ? 'ok' : (parseDatagram(d) as { error: { code: string } }).error.code, 'bad-type');
  });

  it('encrypts a DELIVER answer under the push key, with a fresh IV each time', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: MAX_ANSWER_BYTES }), key, key, (plain, k, other) => {
        const a = sealAnswer(plain, k);
        const b = sealAnswer(plain, k);
        assert.equal(a.length, plain.length + 16);
        assert.notDeepEqual(a, b);
        assert.deepEqual(openAnswer(a, k), Buffer.from(plain));
        if (plain.length >= 8 && Buffer.compare(Buffer.from(k), Buffer.from(other)) !== 0)
          assert.notDeepEqual(openAnswer(a, other), Buffer.from(plain));
      }),
      { numRuns: 300 },
    );
  });

  it("takes from a DELIVER only a change stream answer of the datagram's version; never throws", () => {
    const k = new Uint8Array(32).fill(3);
    const answer = { version: 9, changed: true, reset: false, delivery: { x: 1 }, events: [], eventsTruncated: false };
    const deliver = (plain: Uint8Array, version = 9) =>
      ({ type: 'deliver', keyId: 1, seq: 2, version, since: 3, sealed: sealAnswer(plain, k) }) as const;
    const deflated = (v: unknown): Buffer => packAnswer(JSON.stringify(v));
    assert.deepEqual(readDelivered(deliver(deflated(answer)), k), answer);
    for (const bad of [
      deliver(deflated(answer), 10), // another version than the datagram says
      deliver(deflated({ ...answer, changed: false })),
      deliver(deflated({ ...answer, reset: true })),
      deliver(deflated({ ...answer, delivery: null })),
      deliver(deflated({ ...answer, events: 'no' })),
      deliver(deflated([answer])),
      deliver(Buffer.from('not deflated')),
      deliver(packAnswer('{"version":')),
      deliver(packAnswer(' '.repeat(300 * 1024))), // inflates beyond the limit
    ])
      assert.equal(readDelivered(bad, k), undefined);
    assert.equal(readDelivered(deliver(deflated(answer)), new Uint8Array(32)), undefined, 'another key');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (b) => {
        assert.equal(readDelivered(deliver(b), k), undefined);
      }),
      { numRuns: 500 },
    );
  });
});

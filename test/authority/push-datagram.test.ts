// The wake-up channel's datagram codec (hand-written, ours): every datagram encodes and parses back
// to itself and checks under its key only; the parser never throws on any input, never accepts
// anything longer or shorter than the layout, and any change to an authentic datagram is either
// refused by the parser or fails its MAC.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeDatagram,
  MAX_DATAGRAM_BYTES,
  parseDatagram,
  pushKey,
  verifyDatagram,
  type PushDatagram,
} from '../../src/authority/push-datagram.js';

const u64 = fc.maxSafeNat();
const keyId = fc.integer({ min: 0, max: 0xffffffff });
const name = fc
  .string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
  .filter((s) => !s.includes('\u0000') && Buffer.byteLength(s) <= 63);
const datagram: fc.Arbitrary<PushDatagram> = fc.oneof(
  fc.record({ type: fc.constant('subscribe' as const), keyId, seq: u64, cursor: u64, gateway: name }),
  fc.record({ type: fc.constant('ack' as const), keyId, seq: u64, version: u64 }),
  fc.record({ type: fc.constant('wake' as const), keyId, seq: u64, version: u64, reset: fc.boolean() }),
);
const key = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('push datagrams', () => {
  it('round-trip, and check under their key only', () => {
    fc.assert(
      fc.property(datagram, key, key, (d, k, other) => {
        const b = encodeDatagram(d, k);
        assert.ok(b.length <= MAX_DATAGRAM_BYTES);
        const p = parseDatagram(b);
        assert.ok(p.ok, JSON.stringify(p));
        assert.deepEqual(p.value.datagram, { ...d });
        assert.equal(verifyDatagram(p.value, k), true);
        if (Buffer.compare(Buffer.from(k), Buffer.from(other)) !== 0)
          assert.equal(verifyDatagram(p.value, other), false);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
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
        (d, k, m) => {
          const b = encodeDatagram(d, k);
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
      ['bad-version', (b) => (b[0] = 2)],
      ['bad-type', (b) => (b[1] = 9)],
      ['bad-flags', (b) => (b[2] = 1)],
      ['bad-length', (b) => (b[3] = 2)],
      ['bad-number', (b) => (b[8] = 0xff)],
      ['bad-name', (b) => (b[24] = 0xff)],
      ['bad-name', (b) => (b[24] = 0)],
    ];
    for (const [code, change] of cases) assert.equal(codes(change), code);
    assert.throws(() => encodeDatagram({ type: 'subscribe', keyId: 1, seq: 2, cursor: 3, gateway: 'x'.repeat(64) }, k));
    assert.throws(() => encodeDatagram({ type: 'ack', keyId: -1, seq: 2, version: 3 }, k));
  });
});

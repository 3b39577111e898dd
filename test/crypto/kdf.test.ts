// The group mode's key derivation: per-sender keys from the VPN key, epoch and sender id; every
// input separates the keys, and programmer errors throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { deriveSearchKey, deriveSenderKey } from '../../src/crypto/kdf.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const K = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 ^ i);

test('sender keys are deterministic, 32 + 4 bytes, and independent copies', () => {
  const a = deriveSenderKey(K, 1, 1, 'gw1');
  const b = deriveSenderKey(K.slice(), 1, 1, 'gw1');
  assert.equal(a.key.length, 32);
  assert.equal(a.salt.length, 4);
  assert.equal(hex(a.key), hex(b.key));
  assert.equal(hex(a.salt), hex(b.salt));
  a.key.fill(0);
  assert.notEqual(hex(deriveSenderKey(K, 1, 1, 'gw1').key), hex(a.key));
  assert.equal(deriveSearchKey(K, 1, 1).length, 32);
  assert.equal(hex(deriveSearchKey(K, 1, 1)), hex(deriveSearchKey(K.slice(), 1, 1)));
});

test('every input separates: sender, epoch, VPN id, VPN key, and sender vs search keys', () => {
  const base = deriveSenderKey(K, 7, 3, 'gw-a');
  const variants = [
    deriveSenderKey(K, 7, 3, 'gw-b'),
    deriveSenderKey(K, 7, 3, 'gw-a '),
    deriveSenderKey(K, 7, 4, 'gw-a'),
    deriveSenderKey(K, 8, 3, 'gw-a'),
    deriveSenderKey(K, 3, 7, 'gw-a'), // vpnId and epoch swapped
    deriveSenderKey(
      Uint8Array.from(K, (x, i) => (i === 31 ? x ^ 1 : x)),
      7,
      3,
      'gw-a',
    ),
  ];
  const seen = new Set([hex(base.key), hex(deriveSearchKey(K, 7, 3))]);
  assert.equal(seen.size, 2);
  for (const v of variants) {
    assert.ok(!seen.has(hex(v.key)));
    seen.add(hex(v.key));
  }
  assert.notEqual(hex(deriveSearchKey(K, 7, 3)), hex(deriveSearchKey(K, 7, 4)));
  assert.notEqual(hex(deriveSearchKey(K, 7, 3)), hex(deriveSearchKey(K, 8, 3)));
  assert.notEqual(hex(deriveSearchKey(K, 7, 3)), hex(deriveSearchKey(K, 3, 7)));
});

test('distinct (vpnId, epoch, sender) give distinct keys (property)', () => {
  const arb = fc.record({
    vpnId: fc.integer({ min: 0, max: 0xffffffff }),
    epoch: fc.integer({ min: 0, max: 0xffffffff }),
    sender: fc.string({ minLength: 1, maxLength: 20 }),
  });
  fc.assert(
    fc.property(arb, arb, (a, b) => {
      fc.pre(a.vpnId !== b.vpnId || a.epoch !== b.epoch || a.sender !== b.sender);
      assert.notEqual(
        hex(deriveSenderKey(K, a.vpnId, a.epoch, a.sender).key),
        hex(deriveSenderKey(K, b.vpnId, b.epoch, b.sender).key),
      );
    }),
    { numRuns: 300 },
  );
});

test('sender ids are UTF-8 up to 63 bytes', () => {
  assert.doesNotThrow(() => deriveSenderKey(K, 1, 1, 'x'));
  assert.doesNotThrow(() => deriveSenderKey(K, 1, 1, 'x'.repeat(63)));
  assert.doesNotThrow(() => deriveSenderKey(K, 1, 1, '東'.repeat(21))); // 63 bytes
  assert.throws(() => deriveSenderKey(K, 1, 1, '東'.repeat(22)), TypeError); // 66 bytes
  assert.throws(() => deriveSenderKey(K, 1, 1, 'x'.repeat(64)), TypeError);
  assert.throws(() => deriveSenderKey(K, 1, 1, ''), TypeError);
  // A lone surrogate would encode as U+FFFD and alias another sender.
  assert.throws(() => deriveSenderKey(K, 1, 1, 'gw\ud800'), TypeError);
  assert.doesNotThrow(() => deriveSenderKey(K, 1, 1, 'gw\ud83d\ude00'));
  assert.notEqual(hex(deriveSenderKey(K, 1, 1, 'é').key), hex(deriveSenderKey(K, 1, 1, 'e\u0301').key)); // no normalisation
});

test('programmer errors throw TypeError', () => {
  for (const bad of [
    new Uint8Array(31),
    new Uint8Array(33),
    new Uint8Array(0),
    'k'.repeat(32) as unknown as Uint8Array,
  ]) {
    assert.throws(() => deriveSenderKey(bad, 1, 1, 'gw'), TypeError);
    assert.throws(() => deriveSearchKey(bad, 1, 1), TypeError);
  }
  for (const n of [-1, 2 ** 32, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => deriveSenderKey(K, n, 1, 'gw'), TypeError);
    assert.throws(() => deriveSenderKey(K, 1, n, 'gw'), TypeError);
    assert.throws(() => deriveSearchKey(K, n, 1), TypeError);
    assert.throws(() => deriveSearchKey(K, 1, n), TypeError);
  }
  assert.doesNotThrow(() => deriveSenderKey(K, 0xffffffff, 0xffffffff, 'gw'));
  assert.throws(() => deriveSenderKey(K, 1, 1, 5 as unknown as string), TypeError);
});

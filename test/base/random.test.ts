// The randomness sources: cryptoRandom for production, seededRandom (deterministic, documented
// construction) for the simulator and tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cryptoRandom, seededRandom } from '../../src/base/random.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('cryptoRandom returns the requested number of fresh bytes', () => {
  for (const n of [0, 1, 4, 32, 1000, 70000]) {
    const b = cryptoRandom(n);
    assert.ok(b instanceof Uint8Array);
    assert.equal(b.length, n);
  }
  assert.notEqual(hex(cryptoRandom(32)), hex(cryptoRandom(32)));
  assert.throws(() => cryptoRandom(-1), TypeError);
  assert.throws(() => cryptoRandom(1.5), TypeError);
});

test('seededRandom follows its documented construction', () => {
  const block = (seed: string, i: number) => {
    const c = Buffer.alloc(8);
    c.writeBigUInt64BE(BigInt(i));
    return createHash('sha256')
      .update(Buffer.from('kasane seeded random v1\0' + seed, 'utf8'))
      .update(c)
      .digest('hex');
  };
  assert.equal(hex(seededRandom('abc')(64)), block('s:abc', 0) + block('s:abc', 1));
  assert.equal(hex(seededRandom(42)(32)), block('n:42', 0));
});

test('seededRandom is a deterministic stream: calls continue it, seeds separate it', () => {
  const whole = hex(seededRandom('x')(100));
  const r = seededRandom('x');
  assert.equal([3, 0, 29, 1, 31, 36].map((n) => hex(r(n))).join(''), whole);
  assert.equal(hex(seededRandom('x')(100)), whole);
  assert.notEqual(hex(seededRandom('y')(32)), hex(seededRandom('x')(32)));
  assert.notEqual(hex(seededRandom(1)(32)), hex(seededRandom('1')(32)));
  assert.notEqual(hex(seededRandom(1)(32)), hex(seededRandom(2)(32)));
  assert.throws(() => seededRandom('x')(-1), TypeError);
  assert.throws(() => seededRandom({} as unknown as string), TypeError);
});

// The proof on key-search entries: HMAC-SHA256 truncated to 16 bytes (RFC 4231 vector), verify
// rejects every bit flip and never throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SEARCH_PROOF_LENGTH, searchProof, verifySearchProof } from '../../src/crypto/search-proof.js';
import { deriveSearchKey } from '../../src/crypto/kdf.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const key = deriveSearchKey(new Uint8Array(32).fill(7), 1, 1);
const te = new TextEncoder();

test('searchProof is HMAC-SHA256 truncated to 16 bytes (RFC 4231 test case 1)', () => {
  const p = searchProof(new Uint8Array(20).fill(0x0b), te.encode('Hi There'));
  assert.equal(SEARCH_PROOF_LENGTH, 16);
  assert.equal(hex(p), 'b0344c61d8db38535ca8afceaf0bf12b');
});

test('verify accepts the proof and rejects every single-bit flip, other inputs and other keys', () => {
  const input = te.encode('txid 1 / 10.0.0.1 -> 10.0.1.1 / gw1 / vpn 1');
  const p = searchProof(key, input);
  assert.equal(verifySearchProof(key, input, p), true);
  for (let bit = 0; bit < 128; bit++) {
    const t = p.slice();
    t[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(verifySearchProof(key, input, t), false, `bit ${bit}`);
  }
  assert.equal(verifySearchProof(key, te.encode('txid 2 / 10.0.0.1 -> 10.0.1.1 / gw1 / vpn 1'), p), false);
  assert.equal(verifySearchProof(deriveSearchKey(new Uint8Array(32).fill(7), 1, 2), input, p), false);
});

test('verify returns false, never throws, for proofs of the wrong length or type', () => {
  const input = te.encode('x');
  const p = searchProof(key, input);
  for (const bad of [new Uint8Array(0), p.subarray(0, 15), Uint8Array.from([...p, 0]), new Uint8Array(32)]) {
    assert.equal(verifySearchProof(key, input, bad), false);
  }
  for (const bad of [undefined, null, 'abc', 16, [...p]]) {
    assert.equal(verifySearchProof(key, input, bad as unknown as Uint8Array), false);
  }
});

test('round trip and tamper (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 64 }),
      fc.uint8Array({ maxLength: 200 }),
      fc.nat(127),
      (k, input, bit) => {
        const p = searchProof(k, input);
        assert.equal(p.length, 16);
        assert.equal(verifySearchProof(k, input, p), true);
        const t = p.slice();
        t[bit >> 3] ^= 1 << (bit & 7);
        assert.equal(verifySearchProof(k, input, t), false);
      },
    ),
    { numRuns: 300 },
  );
});

test('a malformed key or input is a programmer error (TypeError)', () => {
  assert.throws(() => searchProof(new Uint8Array(15), new Uint8Array(1)), TypeError);
  assert.throws(() => searchProof(key, 'x' as unknown as Uint8Array), TypeError);
  assert.throws(() => verifySearchProof(new Uint8Array(0), new Uint8Array(1), new Uint8Array(16)), TypeError);
});

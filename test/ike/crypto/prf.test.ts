// IKEv2's prf (HMAC-SHA2, RFC 4231 vectors) and prf+ (RFC 7296 §2.13), including its limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prf, prfPlus, prfPlusMax } from '../../../src/ike/crypto/prf.js';
import { referencePrfPlus } from './reference.js';
import {
  PRF_HMAC_SHA2_256,
  PRF_HMAC_SHA2_384,
  PRF_HMAC_SHA2_512,
  prfById,
} from '../../../src/ike/crypto/transforms.js';

const PRFS = [PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512];

// RFC 4231 test cases 1, 2 and 6 (the last with a key longer than the hash block).
const RFC4231 = [
  {
    key: Buffer.alloc(20, 0x0b),
    data: Buffer.from('Hi There'),
    out: [
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
      'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6',
      '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
    ],
  },
  {
    key: Buffer.from('Jefe'),
    data: Buffer.from('what do ya want for nothing?'),
    out: [
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649',
      '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
    ],
  },
  {
    key: Buffer.alloc(131, 0xaa),
    data: Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    out: [
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
      '4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952',
      '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598',
    ],
  },
];

test('prf is HMAC-SHA2 per RFC 4231 for transforms 5, 6 and 7', () => {
  for (const v of RFC4231) {
    PRFS.forEach((alg, i) => assert.equal(prf(alg, v.key, v.data).toString('hex'), v.out[i], `${alg.hash}`));
  }
  assert.deepEqual(
    [5, 6, 7].map((id) => prfById(id)?.hash),
    ['sha256', 'sha384', 'sha512'],
  );
  assert.equal(prfById(2), undefined); // PRF_HMAC_SHA1: not implemented
});

test('prf+ matches an independent iteration of HMAC for many lengths', () => {
  const key = Buffer.from('a key for prf plus, any length is fine with HMAC');
  const seed = Buffer.from('0123456789abcdef0123456789abcdef fedcba9876543210', 'utf8');
  for (const alg of PRFS) {
    for (const len of [0, 1, alg.length - 1, alg.length, alg.length + 1, 100, 3 * alg.length + 7, 255 * alg.length]) {
      const got = prfPlus(alg, key, seed, len);
      assert.equal(got.length, len);
      assert.ok(got.equals(referencePrfPlus(alg.hash, key, seed, len)), `${alg.hash} length ${len}`);
    }
  }
});

test('prf+ output is a prefix of any longer output, and T1 is prf(K, S | 0x01)', () => {
  const key = Buffer.alloc(32, 7);
  const seed = Buffer.from('seed');
  const long = prfPlus(PRF_HMAC_SHA2_256, key, seed, 200);
  assert.ok(prfPlus(PRF_HMAC_SHA2_256, key, seed, 77).equals(long.subarray(0, 77)));
  assert.ok(long.subarray(0, 32).equals(prf(PRF_HMAC_SHA2_256, key, Buffer.concat([seed, Buffer.of(1)]))));
});

test('prf+ refuses more than 255 blocks and nonsense lengths', () => {
  for (const alg of PRFS) {
    assert.equal(prfPlusMax(alg), 255 * alg.length);
    assert.throws(() => prfPlus(alg, Buffer.alloc(1), Buffer.alloc(1), 255 * alg.length + 1), RangeError);
  }
  assert.throws(() => prfPlus(PRF_HMAC_SHA2_256, Buffer.alloc(1), Buffer.alloc(1), -1), RangeError);
  assert.throws(() => prfPlus(PRF_HMAC_SHA2_256, Buffer.alloc(1), Buffer.alloc(1), 1.5), RangeError);
});

// IKEv2 key derivation (RFC 7296 §2.14, §2.17, §2.18): SKEYSEED and SK_* for every transform
// combination, rekeying, Child SA KEYMAT with and without PFS, and agreement between both peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../../src/base/random.js';
import { dhGenerate, dhSharedSecret } from '../../../src/ike/crypto/dh.js';
import {
  aeadKey,
  deriveChildSaKeys,
  deriveIkeSaKeys,
  deriveRekeyedIkeSaKeys,
  ikeKeyLengths,
  ikeSkKeys,
  type IkeSaKeys,
} from '../../../src/ike/crypto/keys.js';
import {
  AES_GCM_16_128,
  AES_GCM_16_256,
  DH_CURVE25519,
  DH_ECP256,
  DH_ECP384,
  espKeymatLength,
  PRF_HMAC_SHA2_256,
  PRF_HMAC_SHA2_384,
  PRF_HMAC_SHA2_512,
  aeadById,
} from '../../../src/ike/crypto/transforms.js';
import { hmac, referencePrfPlus, slices } from './reference.js';

const rnd = seededRandom('ike keys tests');
const ENCRS = [AES_GCM_16_128, AES_GCM_16_256];
const PRFS = [PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512];

function input(secretLength = 32) {
  return {
    sharedSecret: Buffer.from(rnd(secretLength)),
    ni: Buffer.from(rnd(32)),
    nr: Buffer.from(rnd(32)),
    spiI: Buffer.from(rnd(8)),
    spiR: Buffer.from(rnd(8)),
  };
}

function asList(k: IkeSaKeys): Buffer[] {
  return [k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr];
}

test('transform registry: AES-GCM-16 sizes and lookups', () => {
  assert.equal(aeadById(20, 128), AES_GCM_16_128);
  assert.equal(aeadById(20, 256), AES_GCM_16_256);
  assert.equal(aeadById(20, undefined), undefined); // GCM needs the Key Length attribute
  assert.equal(aeadById(20, 192), undefined);
  assert.equal(aeadById(12, 256), undefined); // ENCR_AES_CBC: not ours
  assert.deepEqual(
    ENCRS.map((e) => [e.keyLength, e.saltLength, e.keymatLength, e.ivLength, e.icvLength]),
    [
      [16, 4, 20, 8, 16],
      [32, 4, 36, 8, 16],
    ],
  );
  assert.equal(espKeymatLength({ encr: AES_GCM_16_128 }), 20);
  assert.equal(espKeymatLength({ encr: AES_GCM_16_256 }), 36);
  assert.deepEqual([DH_ECP256.id, DH_ECP384.id, DH_CURVE25519.id], [19, 20, 31]);
});

test('SK_* lengths for every ENCR x PRF combination (AEAD: SK_a* empty, SK_e* = key + salt)', () => {
  for (const encr of ENCRS) {
    for (const prf of PRFS) {
      const { keys } = deriveIkeSaKeys({ encr, prf }, input());
      assert.deepEqual(
        asList(keys).map((k) => k.length),
        [prf.length, 0, 0, encr.keyLength + 4, encr.keyLength + 4, prf.length, prf.length],
        `${encr.cipher} ${prf.hash}`,
      );
      const len = ikeKeyLengths({ encr, prf });
      assert.equal(len.total, 3 * prf.length + 2 * encr.keymatLength);
    }
  }
});

test('initial derivation equals SKEYSEED = prf(Ni | Nr, g^ir) and prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)', () => {
  for (const encr of ENCRS) {
    for (const prf of PRFS) {
      const inp = input();
      const got = deriveIkeSaKeys({ encr, prf }, inp);
      const skeyseed = hmac(prf.hash, Buffer.concat([inp.ni, inp.nr]), inp.sharedSecret);
      assert.ok(got.skeyseed.equals(skeyseed));
      const sizes = [prf.length, 0, 0, encr.keymatLength, encr.keymatLength, prf.length, prf.length];
      const stream = referencePrfPlus(
        prf.hash,
        skeyseed,
        Buffer.concat([inp.ni, inp.nr, inp.spiI, inp.spiR]),
        sizes.reduce((a, b) => a + b),
      );
      assert.deepEqual(
        asList(got.keys).map((b) => b.toString('hex')),
        slices(stream, sizes).map((b) => b.toString('hex')),
      );
      // All keys distinct.
      assert.equal(
        new Set(
          [got.keys.skD, got.keys.skEi, got.keys.skEr, got.keys.skPi, got.keys.skPr].map((b) => b.toString('hex')),
        ).size,
        5,
      );
    }
  }
});

test('rekey derivation: SKEYSEED with the OLD prf over SK_d(old) and g^ir | Ni | Nr; prf+ with the new prf and new SPIs', () => {
  const oldPrf = PRF_HMAC_SHA2_512;
  const newSuite = { encr: AES_GCM_16_256, prf: PRF_HMAC_SHA2_256 };
  const old = deriveIkeSaKeys({ encr: AES_GCM_16_128, prf: oldPrf }, input());
  const inp = input(48);
  const got = deriveRekeyedIkeSaKeys(oldPrf, old.keys.skD, newSuite, inp);
  const skeyseed = hmac('sha512', old.keys.skD, inp.sharedSecret, inp.ni, inp.nr);
  assert.ok(got.skeyseed.equals(skeyseed));
  assert.equal(got.skeyseed.length, 64);
  const sizes = [32, 0, 0, 36, 36, 32, 32];
  const stream = referencePrfPlus('sha256', skeyseed, Buffer.concat([inp.ni, inp.nr, inp.spiI, inp.spiR]), 168);
  assert.deepEqual(
    asList(got.keys).map((b) => b.toString('hex')),
    slices(stream, sizes).map((b) => b.toString('hex')),
  );
  // Using the new PRF for SKEYSEED would give different keys.
  const wrong = deriveRekeyedIkeSaKeys(PRF_HMAC_SHA2_256, old.keys.skD, newSuite, inp);
  assert.ok(!wrong.keys.skD.equals(got.keys.skD));
  // And the rekeyed SA shares no key with the old one.
  assert.ok(!got.keys.skD.subarray(0, 32).equals(old.keys.skD.subarray(0, 32)));
});

test('Child SA KEYMAT: prf+(SK_d, Ni | Nr), initiator-to-responder first, key then salt', () => {
  for (const encr of ENCRS) {
    for (const prf of PRFS) {
      const skD = Buffer.from(rnd(prf.length));
      const ni = Buffer.from(rnd(32));
      const nr = Buffer.from(rnd(24));
      const got = deriveChildSaKeys(prf, skD, { encr }, { ni, nr });
      const km = referencePrfPlus(prf.hash, skD, Buffer.concat([ni, nr]), 2 * encr.keymatLength);
      const [ir, ri] = slices(km, [encr.keymatLength, encr.keymatLength]);
      assert.ok(got.initiatorToResponder.key.equals(ir.subarray(0, encr.keyLength)));
      assert.ok(got.initiatorToResponder.salt.equals(ir.subarray(encr.keyLength)));
      assert.ok(got.responderToInitiator.key.equals(ri.subarray(0, encr.keyLength)));
      assert.ok(got.responderToInitiator.salt.equals(ri.subarray(encr.keyLength)));
      assert.equal(got.initiatorToResponder.salt.length, 4);
      assert.equal(got.initiatorToResponder.key.length, encr.keyLength);
    }
  }
});

test('Child SA KEYMAT with PFS: prf+(SK_d, g^ir | Ni | Nr), and it differs from the non-PFS keys', () => {
  const skD = Buffer.from(rnd(32));
  const ni = Buffer.from(rnd(32));
  const nr = Buffer.from(rnd(32));
  const gir = Buffer.from(rnd(32));
  const pfs = deriveChildSaKeys(PRF_HMAC_SHA2_256, skD, { encr: AES_GCM_16_256 }, { ni, nr, sharedSecret: gir });
  const km = referencePrfPlus('sha256', skD, Buffer.concat([gir, ni, nr]), 72);
  assert.ok(
    Buffer.concat([
      pfs.initiatorToResponder.key,
      pfs.initiatorToResponder.salt,
      pfs.responderToInitiator.key,
      pfs.responderToInitiator.salt,
    ]).equals(km),
  );
  const plain = deriveChildSaKeys(PRF_HMAC_SHA2_256, skD, { encr: AES_GCM_16_256 }, { ni, nr });
  assert.ok(!plain.initiatorToResponder.key.equals(pfs.initiatorToResponder.key));
});

test('aeadKey splits key | salt and ikeSkKeys pairs the directions by role', () => {
  const km = Buffer.from(rnd(36));
  const k = aeadKey(AES_GCM_16_256, km);
  assert.ok(k.key.equals(km.subarray(0, 32)) && k.salt.equals(km.subarray(32)));
  assert.throws(() => aeadKey(AES_GCM_16_256, km.subarray(0, 35)), RangeError);
  const { keys } = deriveIkeSaKeys({ encr: AES_GCM_16_128, prf: PRF_HMAC_SHA2_256 }, input());
  const i = ikeSkKeys(AES_GCM_16_128, keys, 'initiator');
  const r = ikeSkKeys(AES_GCM_16_128, keys, 'responder');
  assert.ok(i.seal.key.equals(keys.skEi.subarray(0, 16)) && i.seal.salt.equals(keys.skEi.subarray(16)));
  assert.ok(i.open.key.equals(r.seal.key) && r.open.key.equals(i.seal.key));
  assert.ok(!i.seal.key.equals(i.open.key));
});

test('both peers derive identical keys from their own DH halves, for each group', () => {
  for (const group of [DH_ECP256, DH_ECP384, DH_CURVE25519]) {
    const a = dhGenerate(group, rnd);
    const b = dhGenerate(group, rnd);
    const sa = dhSharedSecret(a, b.publicValue);
    const sb = dhSharedSecret(b, a.publicValue);
    assert.ok(sa.ok && sb.ok);
    const common = {
      ni: Buffer.from(rnd(32)),
      nr: Buffer.from(rnd(32)),
      spiI: Buffer.from(rnd(8)),
      spiR: Buffer.from(rnd(8)),
    };
    const suite = { encr: AES_GCM_16_256, prf: PRF_HMAC_SHA2_384 };
    const ka = deriveIkeSaKeys(suite, { ...common, sharedSecret: sa.value });
    const kb = deriveIkeSaKeys(suite, { ...common, sharedSecret: sb.value });
    assert.deepEqual(asList(ka.keys), asList(kb.keys));
  }
});

test('SPIs must be 8 bytes', () => {
  assert.throws(
    () => deriveIkeSaKeys({ encr: AES_GCM_16_128, prf: PRF_HMAC_SHA2_256 }, { ...input(), spiR: Buffer.alloc(4) }),
    RangeError,
  );
});

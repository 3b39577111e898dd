// IKEv2's encrypted payloads (SK and SKF) with AES-GCM (RFC 5282): layout, round trips for both key
// sizes, and that every tampered or random body is an error, never an exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createDecipheriv } from 'node:crypto';
import { seededRandom } from '../../../src/base/random.js';
import {
  aeadOpen,
  aeadSeal,
  SkIvCounter,
  skBodyLength,
  skMinBodyLength,
  skOpen,
  skSeal,
} from '../../../src/ike/crypto/aead.js';
import { aeadKey, type AeadKey } from '../../../src/ike/crypto/keys.js';
import { AES_GCM_16_128, AES_GCM_16_256, type AeadAlgorithm } from '../../../src/ike/crypto/transforms.js';

const h = (s: string) => Buffer.from(s, 'hex');
const rnd = seededRandom('ike aead tests');
const SK_ERRORS = new Set(['sk-truncated', 'sk-auth-failed', 'sk-bad-pad-length']);
const key = (encr: AeadAlgorithm): AeadKey => aeadKey(encr, rnd(encr.keymatLength));
const k256 = key(AES_GCM_16_256);
const code = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 4 (AES-128) and 16 (AES-256):
// the 12-byte IV cafebabe facedbaddecaf888 is exactly salt (4) | explicit IV (8).
const MV_P =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39';
const MV_A = 'feedfacedeadbeeffeedfacedeadbeefabaddad2';
const MV = [
  {
    encr: AES_GCM_16_128,
    key: 'feffe9928665731c6d6a8f9467308308',
    c: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091',
    t: '5bc94fbc3221a5db94fae95ae7121a47',
  },
  {
    encr: AES_GCM_16_256,
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    c: '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    t: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

for (const v of MV) {
  test(`GCM spec test case (AES-${v.encr.keyBits}) through the AEAD core with salt cafebabe and IV facedbaddecaf888`, () => {
    const k = aeadKey(v.encr, h(v.key + 'cafebabe'));
    const sealed = aeadSeal(k, h('facedbaddecaf888'), h(MV_A), h(MV_P));
    assert.equal(sealed.ciphertext.toString('hex'), v.c);
    assert.equal(sealed.icv.toString('hex'), v.t);
    const opened = aeadOpen(k, h('facedbaddecaf888'), h(MV_A), h(v.c), h(v.t));
    assert.ok(opened.ok);
    assert.equal(opened.value.toString('hex'), MV_P);
    // As an SK body: the last plaintext byte (0x39 = 57) is read as the pad length, and any
    // padding content is accepted, leaving 60 - 1 - 57 = 2 bytes of inner payload.
    const body = Buffer.concat([h('facedbaddecaf888'), h(v.c), h(v.t)]);
    const sk = skOpen(k, h(MV_A), body);
    assert.ok(sk.ok);
    assert.equal(sk.value.toString('hex'), MV_P.slice(0, 4));
  });
}

test('draft-mcgrew-gcm-test-01 AES-256 case (salt 11223344, AAD = SPI | seq) through the AEAD core', () => {
  const k = aeadKey(AES_GCM_16_256, h('abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344'));
  const plain = h(
    '4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201',
  );
  const s = aeadSeal(k, h('0102030405060708'), h('4a2cbfe300000002'), plain);
  assert.equal(
    s.ciphertext.toString('hex'),
    'ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8e',
  );
  assert.equal(s.icv.toString('hex'), 'b335f4eecfdbf831824b4c4915956c96');
});

test('skSeal layout: IV = counter (8, big-endian) | ciphertext of inner | padding | pad length | ICV', () => {
  const ad = Buffer.from(rnd(32));
  const inner = Buffer.from(rnd(45));
  for (const pad of [0, 1, 5, 255]) {
    const body = skSeal(k256, 0x0102030405060708n, ad, inner, pad);
    assert.equal(body.length, skBodyLength(AES_GCM_16_256, inner.length, pad));
    assert.equal(body.subarray(0, 8).toString('hex'), '0102030405060708');
    // Decrypt independently of the module.
    const d = createDecipheriv('aes-256-gcm', k256.key, Buffer.concat([k256.salt, body.subarray(0, 8)]), {
      authTagLength: 16,
    });
    d.setAAD(ad);
    d.setAuthTag(body.subarray(body.length - 16));
    const pt = Buffer.concat([d.update(body.subarray(8, body.length - 16)), d.final()]);
    assert.ok(pt.equals(Buffer.concat([inner, Buffer.alloc(pad), Buffer.of(pad)])));
  }
  assert.throws(() => skSeal(k256, 0n, ad, inner, 256), RangeError);
  assert.throws(() => skSeal(k256, -1n, ad, inner), RangeError);
  assert.throws(() => skSeal(k256, 1n << 64n, ad, inner), RangeError);
});

test('SK round trip for both key sizes, many lengths and paddings; the other direction key fails', () => {
  for (const encr of [AES_GCM_16_128, AES_GCM_16_256]) {
    const k = key(encr);
    const other = key(encr);
    const ivs = new SkIvCounter();
    for (const len of [0, 1, 15, 16, 17, 100, 1300, 4000]) {
      for (const pad of [0, 3, 16]) {
        const ad = Buffer.from(rnd(28 + 4));
        const inner = Buffer.from(rnd(len));
        const body = skSeal(k, ivs.next(), ad, inner, pad);
        const r = skOpen(k, ad, body);
        assert.ok(r.ok);
        assert.ok(r.value.equals(inner));
        assert.equal(code(skOpen(other, ad, body)), 'sk-auth-failed');
      }
    }
  }
});

test('every flipped bit in AD, IV, ciphertext or ICV is an auth failure, never an exception', () => {
  const ad = Buffer.from(rnd(32));
  const inner = Buffer.from(rnd(12));
  const body = skSeal(k256, 7n, ad, inner);
  assert.equal(body.length, 8 + 13 + 16);
  for (let i = 0; i < ad.length * 8; i++) {
    const a = Buffer.from(ad);
    a[i >> 3] ^= 1 << (i & 7);
    assert.equal(code(skOpen(k256, a, body)), 'sk-auth-failed');
  }
  for (let i = 0; i < body.length * 8; i++) {
    const b = Buffer.from(body);
    b[i >> 3] ^= 1 << (i & 7);
    assert.equal(code(skOpen(k256, ad, b)), 'sk-auth-failed', `bit ${i}`);
  }
  // Appending or dropping AD bytes fails too.
  assert.equal(code(skOpen(k256, ad.subarray(1), body)), 'sk-auth-failed');
  assert.equal(code(skOpen(k256, Buffer.concat([ad, Buffer.of(0)]), body)), 'sk-auth-failed');
});

test('short bodies and impossible pad lengths are errors', () => {
  const ad = Buffer.from('header');
  const body = skSeal(k256, 1n, ad, Buffer.alloc(0));
  assert.equal(body.length, skMinBodyLength(AES_GCM_16_256));
  assert.ok(skOpen(k256, ad, body).ok);
  for (let n = 0; n < body.length; n++)
    assert.equal(code(skOpen(k256, ad, body.subarray(0, n))), n < 25 ? 'sk-truncated' : 'sk-auth-failed');
  // An authentic plaintext whose pad length byte points before its start.
  for (const [plainLen, pad] of [
    [1, 1],
    [10, 10],
    [10, 255],
  ]) {
    const pt = Buffer.alloc(plainLen);
    pt[plainLen - 1] = pad;
    const iv = h('0000000000000009');
    const s = aeadSeal(k256, iv, ad, pt);
    assert.equal(code(skOpen(k256, ad, Buffer.concat([iv, s.ciphertext, s.icv]))), 'sk-bad-pad-length');
  }
  // The largest legal pad length leaves an empty inner payload.
  const pt = Buffer.alloc(10);
  pt[9] = 9;
  const s = aeadSeal(k256, h('000000000000000a'), ad, pt);
  const r = skOpen(k256, ad, Buffer.concat([h('000000000000000a'), s.ciphertext, s.icv]));
  assert.ok(r.ok && r.value.length === 0);
});

test('fast-check: random bodies under random AD decrypt to errors without throwing', () => {
  const k128 = key(AES_GCM_16_128);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (body, ad, big) => {
      const r = skOpen(big ? k256 : k128, ad, body);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(SK_ERRORS.has(r.error.code));
    }),
    { numRuns: 2000 },
  );
});

test('fast-check: seal then open is the identity, and truncating or extending the body fails', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.integer({ min: 0, max: 255 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      (inner, ad, pad, iv) => {
        const body = skSeal(k256, iv, ad, inner, pad);
        const r = skOpen(k256, ad, body);
        assert.ok(r.ok && r.value.equals(Buffer.from(inner)));
        assert.equal(skOpen(k256, ad, body.subarray(0, body.length - 1)).ok, false);
        assert.equal(skOpen(k256, ad, Buffer.concat([body, Buffer.of(0)])).ok, false);
      },
    ),
    { numRuns: 300 },
  );
});

// RFC 7383 §2.5: an SKF body is sealed exactly like an SK body; only the AD differs: the IKE
// header followed by the SKF payload header including Fragment Number and Total Fragments.
function skfAd(fragment: number, total: number, bodyLength: number): Buffer {
  const ike = Buffer.alloc(28);
  ike.write('0011223344556677', 0, 'hex'); // SPIi
  ike.write('8899aabbccddeeff', 8, 'hex'); // SPIr
  ike[16] = 53; // next payload: SKF
  ike[17] = 0x20; // version 2.0
  ike[18] = 35; // IKE_AUTH
  ike[19] = 0x08; // initiator
  ike.writeUInt32BE(1, 20); // message id
  ike.writeUInt32BE(28 + 8 + bodyLength, 24);
  const skf = Buffer.alloc(8);
  skf[0] = fragment === 1 ? 35 : 0; // first inner payload type only in fragment 1
  skf.writeUInt16BE(8 + bodyLength, 2);
  skf.writeUInt16BE(fragment, 4);
  skf.writeUInt16BE(total, 6);
  return Buffer.concat([ike, skf]);
}

test('SKF fragments use the same seal/open with the header and fragment numbers as AD', () => {
  const k = key(AES_GCM_16_256);
  const ivs = new SkIvCounter(100n);
  const message = Buffer.from(rnd(2000));
  const parts = [message.subarray(0, 1200), message.subarray(1200)];
  const sealed = parts.map((p, i) => {
    const ad = skfAd(i + 1, 2, skBodyLength(k.encr, p.length));
    return { ad, body: skSeal(k, ivs.next(), ad, p) };
  });
  assert.notEqual(sealed[0].body.subarray(0, 8).toString('hex'), sealed[1].body.subarray(0, 8).toString('hex'));
  const opened = sealed.map((s) => skOpen(k, s.ad, s.body));
  assert.ok(opened.every((r) => r.ok));
  assert.ok(Buffer.concat(opened.map((r) => (r.ok ? r.value : Buffer.alloc(0)))).equals(message));
  // A fragment presented under another fragment number or total is refused.
  assert.equal(code(skOpen(k, skfAd(2, 2, skBodyLength(k.encr, 1200)), sealed[0].body)), 'sk-auth-failed');
  assert.equal(code(skOpen(k, skfAd(1, 3, skBodyLength(k.encr, 1200)), sealed[0].body)), 'sk-auth-failed');
});

test('SkIvCounter counts from its start and refuses to wrap', () => {
  const c = new SkIvCounter();
  assert.deepEqual([c.next(), c.next(), c.next()], [0n, 1n, 2n]);
  assert.equal(c.used, 3n);
  const end = new SkIvCounter((1n << 64n) - 2n);
  assert.equal(end.next(), (1n << 64n) - 2n);
  assert.equal(end.next(), (1n << 64n) - 1n);
  assert.throws(() => end.next(), /exhausted/);
  assert.throws(() => new SkIvCounter(-1n), RangeError);
});

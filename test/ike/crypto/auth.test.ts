// IKEv2 authentication with digital signatures (RFC 7296 §2.15, RFC 7427): the signed octets, the
// AlgorithmIdentifiers, P-256/P-384/RSA, injected signers, and arbitrary AUTH data never throwing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { seededRandom } from '../../../src/base/random.js';
import { authSignedOctets, idPayloadBody } from '../../../src/ike/crypto/auth.js';
import { deriveIkeSaKeys } from '../../../src/ike/crypto/keys.js';
import {
  AUTH_METHOD_DIGITAL_SIGNATURE,
  decodeSignatureHashAlgorithms,
  encodeSignatureHashAlgorithms,
  HashAlgorithmId,
  keyObjectSigner,
  parseSignatureAuthData,
  signAuth,
  signatureScheme,
  verifyAuth,
  type AuthSigner,
} from '../../../src/ike/crypto/signature.js';
import { ecdsaRawToDer, isDerEcdsaSignature } from '../../../src/pki/ecdsa-signature.js';
import { AES_GCM_16_256, PRF_HMAC_SHA2_256 } from '../../../src/ike/crypto/transforms.js';
import { hmac } from './reference.js';

const rnd = seededRandom('ike auth tests');
const code = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p256b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { keys } = deriveIkeSaKeys(
  { encr: AES_GCM_16_256, prf: PRF_HMAC_SHA2_256 },
  { sharedSecret: rnd(32), ni: rnd(32), nr: rnd(32), spiI: rnd(8), spiR: rnd(8) },
);
const ID_FQDN = 2;
/** The octets `signer` signs (RFC 7296 section 2.15), under this file's IKE SA keys. */
const signedOctets = (signer: 'initiator' | 'responder', realMessage: Buffer, peerNonce: Buffer, idBody: Buffer) =>
  authSignedOctets(PRF_HMAC_SHA2_256, keys, signer, { realMessage, peerNonce, idBody });
const message1 = Buffer.from(rnd(300)); // stands for the IKE_SA_INIT request as sent
const nonceR = Buffer.from(rnd(32));
const idI = idPayloadBody(ID_FQDN, Buffer.from('gw-a.example'));
const octetsI = signedOctets('initiator', message1, nonceR, idI);

test('RestOfIDPayload is ID type | 3 zero RESERVED bytes | data', () => {
  assert.equal(idI.toString('hex'), '02000000' + Buffer.from('gw-a.example').toString('hex'));
  assert.throws(() => idPayloadBody(256, Buffer.alloc(1)), RangeError);
});

test('signed octets are RealMessage | peer NonceData | prf(SK_p, RestOfIDPayload), SK_pi or SK_pr by signer', () => {
  assert.ok(octetsI.equals(Buffer.concat([message1, nonceR, hmac('sha256', keys.skPi, idI)])));
  const message2 = Buffer.from(rnd(280));
  const nonceI = Buffer.from(rnd(32));
  const idR = idPayloadBody(ID_FQDN, Buffer.from('gw-b.example'));
  const octetsR = signedOctets('responder', message2, nonceI, idR);
  assert.ok(octetsR.equals(Buffer.concat([message2, nonceI, hmac('sha256', keys.skPr, idR)])));
  // The RESERVED bytes are signed as they were on the wire.
  const oddReserved = Buffer.from(idI);
  oddReserved[2] = 1;
  assert.ok(!signedOctets('initiator', message1, nonceR, oddReserved).equals(octetsI));
  assert.throws(() => signedOctets('initiator', message1, nonceR, Buffer.alloc(3)), RangeError);
});

test('AlgorithmIdentifier bytes are those of RFC 7427 Appendix A and decode to the right OIDs', () => {
  assert.equal(AUTH_METHOD_DIGITAL_SIGNATURE, 14);
  // A.3.1 ecdsa-with-sha256: 300a 0608 2a86 48ce 3d04 0302 (no parameters).
  assert.equal(signatureScheme('ecdsa-with-SHA256').algorithmIdentifier.toString('hex'), '300a06082a8648ce3d040302');
  assert.equal(signatureScheme('ecdsa-with-SHA384').algorithmIdentifier.toString('hex'), '300a06082a8648ce3d040303');
  assert.equal(signatureScheme('ecdsa-with-SHA512').algorithmIdentifier.toString('hex'), '300a06082a8648ce3d040304');
  // A.1 sha256WithRSAEncryption, with NULL parameters.
  assert.equal(
    signatureScheme('sha256WithRSAEncryption').algorithmIdentifier.toString('hex'),
    '300d06092a864886f70d01010b0500',
  );
  const oids: Record<string, string> = {
    'ecdsa-with-SHA256': '1.2.840.10045.4.3.2',
    'ecdsa-with-SHA384': '1.2.840.10045.4.3.3',
    'ecdsa-with-SHA512': '1.2.840.10045.4.3.4',
    sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
    sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
    sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  };
  for (const [name, oid] of Object.entries(oids)) {
    const s = signatureScheme(name as never);
    const ai = AsnConvert.parse(s.algorithmIdentifier, AlgorithmIdentifier);
    assert.equal(ai.algorithm, oid);
    // Re-encoding gives the same bytes: parameters absent for ECDSA, NULL for RSA.
    assert.ok(Buffer.from(AsnConvert.serialize(ai)).equals(s.algorithmIdentifier), name);
    assert.equal(s.algorithmIdentifier.subarray(-2).toString('hex') === '0500', s.keyType === 'rsa');
  }
});

test('sign/verify round trip with a P-256 key: AUTH data = 12 | AlgorithmIdentifier | DER signature', () => {
  const auth = signAuth(keyObjectSigner(p256.privateKey, 'ecdsa-with-SHA256'), 'ecdsa-with-SHA256', octetsI);
  assert.equal(auth[0], 12);
  assert.equal(auth.subarray(1, 13).toString('hex'), '300a06082a8648ce3d040302');
  assert.ok(isDerEcdsaSignature(auth.subarray(13)));
  assert.deepEqual(verifyAuth(p256.publicKey, octetsI, auth), { ok: true, value: { scheme: 'ecdsa-with-SHA256' } });
  const spki = p256.publicKey.export({ format: 'der', type: 'spki' });
  assert.equal(code(verifyAuth(spki, octetsI, auth)), 'ok');
  assert.equal(code(verifyAuth(spki, octetsI, auth, { accept: ['ecdsa-with-SHA384'] })), 'auth-algorithm-not-allowed');
});

test('verification fails on any changed octet, a changed ID, the wrong key, a bad AlgorithmIdentifier', () => {
  const auth = signAuth(keyObjectSigner(p256.privateKey, 'ecdsa-with-SHA256'), 'ecdsa-with-SHA256', octetsI);
  for (let i = 0; i < octetsI.length; i++) {
    const o = Buffer.from(octetsI);
    o[i] ^= 0x40;
    assert.equal(code(verifyAuth(p256.publicKey, o, auth)), 'auth-bad-signature', `octet ${i}`);
  }
  assert.equal(code(verifyAuth(p256.publicKey, octetsI.subarray(0, octetsI.length - 1), auth)), 'auth-bad-signature');
  const otherId = signedOctets('initiator', message1, nonceR, idPayloadBody(ID_FQDN, Buffer.from('gw-x.example')));
  assert.equal(code(verifyAuth(p256.publicKey, otherId, auth)), 'auth-bad-signature');
  // The responder's octets (SK_pr) do not verify an initiator's signature.
  const mirrored = signedOctets('responder', message1, nonceR, idI);
  assert.equal(code(verifyAuth(p256.publicKey, mirrored, auth)), 'auth-bad-signature');
  assert.equal(code(verifyAuth(p256b.publicKey, octetsI, auth)), 'auth-bad-signature');

  // Every change inside the signature value itself.
  for (let i = 13; i < auth.length; i++) {
    const a = Buffer.from(auth);
    a[i] ^= 0x01;
    assert.equal(code(verifyAuth(p256.publicKey, octetsI, a)), 'auth-bad-signature', `byte ${i}`);
  }
  // Truncated AlgorithmIdentifier: length byte kept with bytes missing, or a shortened length.
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, auth.subarray(0, 8))), 'auth-algid-truncated');
  const shortAlg = Buffer.concat([Buffer.of(11), auth.subarray(1, 12), auth.subarray(13)]);
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, shortAlg)), 'auth-algid-truncated');
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, Buffer.of(0))), 'auth-algid-truncated');
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, Buffer.alloc(0))), 'auth-truncated');
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, auth.subarray(0, 13))), 'auth-truncated'); // no signature
  // Unknown AlgorithmIdentifier (Ed25519), and ecdsa-with-SHA1.
  const ed = Buffer.from('300506032b6570', 'hex');
  assert.equal(
    code(verifyAuth(p256.publicKey, octetsI, Buffer.concat([Buffer.of(ed.length), ed, auth.subarray(13)]))),
    'auth-unknown-algorithm',
  );
  const sha1 = Buffer.from('300906072a8648ce3d0401', 'hex');
  assert.equal(
    code(verifyAuth(p256.publicKey, octetsI, Buffer.concat([Buffer.of(sha1.length), sha1, auth.subarray(13)]))),
    'auth-unknown-algorithm',
  );
  // A different hash in the AlgorithmIdentifier than the signer used.
  const as384 = Buffer.concat([
    Buffer.of(12),
    signatureScheme('ecdsa-with-SHA384').algorithmIdentifier,
    auth.subarray(13),
  ]);
  assert.equal(code(verifyAuth(p256.publicKey, octetsI, as384)), 'auth-bad-signature');
});

test('key problems: wrong key type and an SPKI that does not parse', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const auth = signAuth(keyObjectSigner(p256.privateKey, 'ecdsa-with-SHA256'), 'ecdsa-with-SHA256', octetsI);
  assert.equal(code(verifyAuth(rsa.publicKey, octetsI, auth)), 'auth-key-mismatch');
  assert.equal(code(verifyAuth(Buffer.from('3000', 'hex'), octetsI, auth)), 'auth-bad-public-key');
  assert.equal(code(verifyAuth(p256.privateKey, octetsI, auth)), 'auth-key-mismatch');
});

test('P-384 with ecdsa-with-SHA384, and RSA sha256WithRSAEncryption recognised on verify (with or without NULL)', () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const a384 = signAuth(keyObjectSigner(p384.privateKey, 'ecdsa-with-SHA384'), 'ecdsa-with-SHA384', octetsI);
  assert.deepEqual(verifyAuth(p384.publicKey, octetsI, a384), { ok: true, value: { scheme: 'ecdsa-with-SHA384' } });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sig = nodeSign('sha256', octetsI, rsa.privateKey);
  const withNull = Buffer.concat([Buffer.of(15), Buffer.from('300d06092a864886f70d01010b0500', 'hex'), sig]);
  const withoutNull = Buffer.concat([Buffer.of(13), Buffer.from('300b06092a864886f70d01010b', 'hex'), sig]);
  assert.deepEqual(verifyAuth(rsa.publicKey, octetsI, withNull), {
    ok: true,
    value: { scheme: 'sha256WithRSAEncryption' },
  });
  assert.equal(code(verifyAuth(rsa.publicKey, octetsI, withoutNull)), 'ok');
  const bad = Buffer.from(withNull);
  bad[bad.length - 1] ^= 1;
  assert.equal(code(verifyAuth(rsa.publicKey, octetsI, bad)), 'auth-bad-signature');
});

test('an injected signer (e.g. a PKCS#11 token returning r | s) works through ecdsaRawToDer; raw output is refused', () => {
  const raw: AuthSigner = { sign: (d) => nodeSign('sha256', d, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' }) };
  assert.throws(() => signAuth(raw, 'ecdsa-with-SHA256', octetsI), /DER ECDSA/);
  const token: AuthSigner = { sign: (d) => ecdsaRawToDer(raw.sign(d)) };
  for (let i = 0; i < 20; i++) {
    const auth = signAuth(token, 'ecdsa-with-SHA256', octetsI);
    assert.equal(code(verifyAuth(p256.publicKey, octetsI, auth)), 'ok');
  }
  assert.throws(() => signAuth({ sign: () => Buffer.alloc(0) }, 'ecdsa-with-SHA256', octetsI), /empty/);
});

test('ecdsaRawToDer: minimal INTEGERs, a 0x00 before a high bit, long-form length for P-521', () => {
  const r = Buffer.concat([Buffer.alloc(31), Buffer.of(1)]);
  const s = Buffer.concat([Buffer.of(0x80), Buffer.alloc(31)]);
  assert.equal(
    ecdsaRawToDer(Buffer.concat([r, s])).toString('hex'),
    '3026' + '020101' + '022100' + '80' + '00'.repeat(31),
  );
  const big = ecdsaRawToDer(Buffer.alloc(132, 0xff));
  assert.equal(big.subarray(0, 3).toString('hex'), '30818a');
  assert.ok(isDerEcdsaSignature(big));
  assert.throws(() => ecdsaRawToDer(Buffer.alloc(3)), RangeError);
  assert.equal(isDerEcdsaSignature(Buffer.from('3006020101020101ff', 'hex')), false); // trailing byte
  assert.equal(isDerEcdsaSignature(Buffer.from('30050201010201', 'hex')), false);
});

test('fast-check: arbitrary AUTH data never throws in parse or verify', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (data, prefixed) => {
      const d = prefixed
        ? Buffer.concat([Buffer.of(12), signatureScheme('ecdsa-with-SHA256').algorithmIdentifier, data])
        : Buffer.from(data);
      const p = parseSignatureAuthData(d);
      const v = verifyAuth(p256.publicKey, octetsI, d);
      assert.equal(v.ok, false);
      if (!p.ok) assert.equal(code(v), code(p));
    }),
    { numRuns: 500 },
  );
});

test('SIGNATURE_HASH_ALGORITHMS notify data: 2-byte ids, SHA2-256 = 2, SHA2-384 = 3, SHA2-512 = 4', () => {
  assert.deepEqual([HashAlgorithmId.SHA2_256, HashAlgorithmId.SHA2_384, HashAlgorithmId.SHA2_512], [2, 3, 4]);
  const data = encodeSignatureHashAlgorithms([2, 3, 4]);
  assert.equal(data.toString('hex'), '000200030004');
  assert.deepEqual(decodeSignatureHashAlgorithms(data), { ok: true, value: [2, 3, 4] });
  assert.deepEqual(decodeSignatureHashAlgorithms(Buffer.from('0005ffff', 'hex')), { ok: true, value: [5, 0xffff] });
  assert.equal(code(decodeSignatureHashAlgorithms(Buffer.from('000200', 'hex'))), 'bad-hash-algorithms');
  assert.equal(code(decodeSignatureHashAlgorithms(Buffer.alloc(0))), 'bad-hash-algorithms');
});

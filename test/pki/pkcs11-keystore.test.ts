// The gateway key in a PKCS#11 token (seed 001's IC chip), with SoftHSM2 from Debian as the token:
// generated inside, never readable, signatures and the enrollment CSR made inside, and IKE AUTH
// signatures that verify with the public key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Pkcs11Keystore } from '../../src/pki/pkcs11-keystore.js';
import { FileKeyKeystore } from '../../src/pki/signer.js';
import { keystoreSigner } from '../../src/gateway/ike-identity.js';
import { verifyCsr } from '../../src/pki/ca.js';
import { exportPkcs8Pem, generateKeyPair } from '../../src/pki/keys.js';
import { signAuth, signatureScheme, verifyAuth } from '../../src/ike/crypto/signature.js';
import { privateSofthsmToken, SOFTHSM_MODULE, softhsmMissing } from '../support/softhsm.js';

const MODULE = SOFTHSM_MODULE;
const missing = softhsmMissing();
const skip = missing && !process.env.CI ? `skipped: ${missing}` : false;
const privateToken = privateSofthsmToken;

test(
  'PKCS#11 keystore (SoftHSM2): the key is made in the token, never leaves it, and signs the CSR and IKE AUTH',
  { skip },
  async () => {
    assert.equal(missing, undefined, `SoftHSM2 is required in CI: ${missing}`);
    const { dir, pinFile } = privateToken('kasane-test', '123456');
    try {
      const ks = Pkcs11Keystore.open({ module: MODULE, token: 'kasane-test', pinFile, keyLabel: 'gw1' });
      try {
        assert.equal(ks.ensureKey(), true, 'generated on first use');
        assert.equal(ks.ensureKey(), false, 'found, not generated again');
        // The key cannot be read out.
        assert.deepEqual(ks.privateKeyProtection(), { sensitive: true, extractable: false, neverExtractable: true });
        assert.match(ks.tryReadPrivateValue(), /^refused/);

        const spki = ks.publicKeySpki();
        const pub = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
        assert.equal(pub.asymmetricKeyDetails?.namedCurve, 'prime256v1');
        const data = Buffer.from('kasane: signed inside the token');
        const sig = ks.sign(data);
        assert.equal(verify('sha256', data, { key: pub, dsaEncoding: 'der' }, Buffer.from(sig)), true);
        assert.equal(
          verify('sha256', Buffer.from('something else'), { key: pub, dsaEncoding: 'der' }, Buffer.from(sig)),
          false,
        );

        // The enrollment CSR, signed in the token, verifies and carries the token's key.
        for (const cn of ['G1', undefined]) {
          const csr = await verifyCsr(ks.csr(cn));
          assert.ok(csr.ok, csr.ok ? '' : csr.error.message);
          assert.deepEqual(Buffer.from(csr.value.spki), Buffer.from(spki));
          assert.equal(csr.value.commonName, cn);
        }

        // IKE AUTH (RFC 7427, ECDSA P-256 with SHA-256) through the token.
        const scheme = 'ecdsa-with-SHA256' as const;
        assert.equal(signatureScheme(scheme).name, scheme);
        const octets = Buffer.from('InitiatorSignedOctets stand-in: RealMessage1 | NonceRData | MACedIDForI');
        const auth = signAuth(keystoreSigner(ks), scheme, octets);
        assert.equal(verifyAuth(Buffer.from(spki), octets, auth).ok, true);
        assert.equal(verifyAuth(Buffer.from(spki), Buffer.concat([octets, Buffer.from('x')]), auth).ok, false);
      } finally {
        ks.close();
      }

      // The key persists in the token across sessions; a new session finds it.
      const again = Pkcs11Keystore.open({ module: MODULE, token: 'kasane-test', pinFile, keyLabel: 'gw1' });
      try {
        assert.equal(again.ensureKey(), false);
      } finally {
        again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'PKCS#11 keystore: clear errors for a wrong PIN, a missing token, a missing module, a missing key',
  { skip },
  () => {
    assert.equal(missing, undefined, `SoftHSM2 is required in CI: ${missing}`);
    const { dir } = privateToken('kasane-test2', '123456');
    try {
      assert.throws(
        () => Pkcs11Keystore.open({ module: MODULE, token: 'kasane-test2', pin: '000000' }),
        (e: Error & { code?: string }) => e.code === 'pkcs11-pin' && /wrong PIN/.test(e.message),
      );
      assert.throws(
        () => Pkcs11Keystore.open({ module: MODULE, token: 'no-such-token', pin: '123456' }),
        (e: Error & { code?: string }) => e.code === 'pkcs11-no-token',
      );
      assert.throws(
        () => Pkcs11Keystore.open({ module: '/nonexistent/lib.so', token: 'kasane-test2', pin: '123456' }),
        (e: Error & { code?: string }) => e.code === 'pkcs11-module',
      );
      assert.throws(
        () => Pkcs11Keystore.open({ module: MODULE, token: 'kasane-test2' }),
        (e: Error & { code?: string }) => e.code === 'pkcs11-no-pin',
      );
      const ks = Pkcs11Keystore.open({ module: MODULE, token: 'kasane-test2', pin: '123456', keyLabel: 'absent' });
      try {
        assert.throws(
          () => ks.publicKeySpki(),
          (e: Error & { code?: string }) => e.code === 'pkcs11-no-key',
        );
      } finally {
        ks.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('file keystore: the same interface (CSR, signatures, IKE AUTH signer)', async () => {
  const keys = await generateKeyPair();
  const ks = new FileKeyKeystore(await exportPkcs8Pem(keys.privateKey));
  const spki = ks.publicKeySpki();
  const csr = await verifyCsr(ks.csr('G2'));
  assert.ok(csr.ok, csr.ok ? '' : csr.error.message);
  assert.equal(csr.value.commonName, 'G2');
  assert.deepEqual(Buffer.from(csr.value.spki), Buffer.from(spki));
  const scheme = 'ecdsa-with-SHA256' as const;
  const octets = Buffer.from('octets');
  assert.equal(verifyAuth(Buffer.from(spki), octets, signAuth(keystoreSigner(ks), scheme, octets)).ok, true);
});

// The two-tier CA, gateway and server certificates, CSR checks, CRLs and the file keystore.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  createAuthorityCa,
  createCrl,
  createCsr,
  issueGatewayCertificate,
  issueServerCertificate,
  verifyCsr,
  type AuthorityCa,
} from '../../src/pki/ca.js';
import { derToPem, exportPkcs8Pem, exportSpkiDer, generateKeyPair, importPrivateKey } from '../../src/pki/keys.js';
import { FileKeystore } from '../../src/pki/keystore.js';
import { x509 } from '../../src/pki/x509.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('PKI', () => {
  let ca: AuthorityCa;
  let dir: string;
  const now = Date.now();

  before(async () => {
    ca = await createAuthorityCa({ authority: 'ACME, "Inc" 重ね', now });
    dir = mkdtempSync(join(tmpdir(), 'kasane-pki-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('builds root -> issuing -> gateway chains that node and openssl verify', async () => {
    const keys = await generateKeyPair();
    const cert = await issueGatewayCertificate({
      issuing: ca.issuing,
      authority: 'ACME, "Inc" 重ne',
      gateway: 'gw,=+"1"',
      publicKey: await exportSpkiDer(keys.publicKey),
      now,
    });
    const leaf = new X509Certificate(Buffer.from(cert.rawData));
    const issuing = new X509Certificate(Buffer.from(ca.issuing.cert.rawData));
    const root = new X509Certificate(Buffer.from(ca.root.cert.rawData));
    assert.ok(leaf.checkIssued(issuing) && leaf.verify(issuing.publicKey));
    assert.ok(issuing.checkIssued(root) && issuing.verify(root.publicKey));
    assert.ok(root.verify(root.publicKey));
    assert.ok(leaf.checkPrivateKey(await toNodeKey(keys.privateKey)));
    assert.equal(x509CommonName(cert), 'gw,=+"1"');
    assert.equal(issuing.ca, true);
    assert.equal(leaf.ca, false);
    if (!hasOpenssl) return;
    writeFileSync(join(dir, 'gw.der'), Buffer.from(cert.rawData));
    writeFileSync(join(dir, 'gw.pem'), cert.toString('pem'));
    writeFileSync(join(dir, 'root.pem'), ca.root.cert.toString('pem'));
    writeFileSync(join(dir, 'issuing.pem'), ca.issuing.cert.toString('pem'));
    const text = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'gw.der'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /CA:FALSE/);
    const v = spawnSync(
      'openssl',
      [
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        join(dir, 'root.pem'),
        '-untrusted',
        join(dir, 'issuing.pem'),
        join(dir, 'gw.pem'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(v.status, 0, v.stdout + v.stderr);
  });

  it('issues server certificates with the requested names and serverAuth', async () => {
    const keys = await generateKeyPair();
    const cert = await issueServerCertificate({
      issuing: ca.issuing,
      authority: 'ACME',
      publicKey: keys.publicKey,
      sans: ['127.0.0.1', '::1', 'authority.example'],
      now,
    });
    const c = new X509Certificate(Buffer.from(cert.rawData));
    assert.ok(c.checkHost('authority.example'));
    assert.ok(c.checkIP('127.0.0.1'));
    assert.ok(c.checkIP('::1'));
    assert.equal(c.checkHost('other.example'), undefined);
    assert.match(c.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1/);
  });

  it('accepts a P-256 CSR and reports its key and CN', async () => {
    const keys = await generateKeyPair();
    const r = await verifyCsr(await createCsr(keys, 'gw-9'));
    assert.ok(r.ok);
    assert.equal(r.value.commonName, 'gw-9');
    assert.deepEqual(Buffer.from(r.value.spki), Buffer.from(await exportSpkiDer(keys.publicKey)));
  });

  it('accepts a CSR without a name (the enrollment token then decides which gateway it is)', async () => {
    const keys = await generateKeyPair();
    const r = await verifyCsr(await createCsr(keys));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.commonName, undefined);
  });

  it('refuses CSRs with a bad signature, another curve, RSA, or garbage', async () => {
    const keys = await generateKeyPair();
    const good = await createCsr(keys, 'gw');
    const der = Buffer.from(good.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 5] ^= 0x01; // inside the signature
    let r = await verifyCsr(derToPem(der, 'CERTIFICATE REQUEST'));
    assert.ok(!r.ok && r.error.code === 'bad-csr', JSON.stringify(r));
    const p384 = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    r = await verifyCsr(
      (
        await x509.Pkcs10CertificateRequestGenerator.create({
          name: 'CN=x',
          keys: p384,
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
        })
      ).toString('pem'),
    );
    assert.ok(!r.ok && r.error.code === 'bad-csr-key');
    const rsa = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    r = await verifyCsr(
      (
        await x509.Pkcs10CertificateRequestGenerator.create({
          name: 'CN=x',
          keys: rsa,
          signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
        })
      ).toString('pem'),
    );
    assert.ok(!r.ok && r.error.code === 'bad-csr-key');
    for (const junk of [
      '',
      'hello',
      '-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----',
      'x'.repeat(20000),
    ]) {
      r = await verifyCsr(junk);
      assert.ok(!r.ok && r.error.code === 'bad-csr', junk.slice(0, 20));
    }
  });

  it('property: no byte string makes the CSR check throw; only real CSRs pass', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
        const r = await verifyCsr(derToPem(bytes, 'CERTIFICATE REQUEST'));
        assert.equal(r.ok, false);
        const d = await verifyCsr(bytes);
        assert.equal(d.ok, false);
      }),
      { numRuns: 200 },
    );
  });

  it('makes CRLs that openssl uses to refuse a revoked certificate', async () => {
    const keys = await generateKeyPair();
    const issue = (gateway: string) =>
      issueGatewayCertificate({ issuing: ca.issuing, authority: 'A', gateway, publicKey: keys.publicKey, now });
    const revoked = await issue('bad');
    const fine = await issue('good');
    const crl = await createCrl({
      issuer: ca.issuing,
      entries: [{ serial: revoked.serialNumber, revokedAt: now, reason: 'keyCompromise' }],
      now,
      nextUpdate: now + 86_400_000,
    });
    assert.ok(await crl.verify({ publicKey: ca.issuing.cert.publicKey }));
    assert.ok(crl.findRevoked(revoked.serialNumber));
    assert.equal(crl.findRevoked(fine.serialNumber), null);
    if (!hasOpenssl) return;
    writeFileSync(join(dir, 'crl.pem'), derToPem(crl.rawData, 'X509 CRL'));
    writeFileSync(join(dir, 'root.pem'), ca.root.cert.toString('pem'));
    writeFileSync(join(dir, 'issuing.pem'), ca.issuing.cert.toString('pem'));
    writeFileSync(join(dir, 'revoked.pem'), revoked.toString('pem'));
    writeFileSync(join(dir, 'fine.pem'), fine.toString('pem'));
    const args = [
      'verify',
      '-crl_check',
      '-CRLfile',
      join(dir, 'crl.pem'),
      '-CAfile',
      join(dir, 'root.pem'),
      '-untrusted',
      join(dir, 'issuing.pem'),
    ];
    assert.equal(spawnSync('openssl', [...args, join(dir, 'fine.pem')]).status, 0);
    const bad = spawnSync('openssl', [...args, join(dir, 'revoked.pem')], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout + bad.stderr, /revoked/);
  });

  it('keeps keys in 0600 files in a 0700 directory and refuses readable ones', async () => {
    const ks = new FileKeystore(join(dir, 'keystore'));
    ks.ensure();
    const keys = await generateKeyPair();
    const pem = await exportPkcs8Pem(keys.privateKey);
    ks.write('gw.key', pem);
    assert.equal(statSync(join(dir, 'keystore')).mode & 0o777, 0o700);
    assert.equal(statSync(ks.path('gw.key')).mode & 0o777, 0o600);
    const back = await importPrivateKey(ks.read('gw.key'), 'sign');
    assert.equal(back.type, 'private');
    chmodSync(ks.path('gw.key'), 0o644);
    assert.throws(() => ks.read('gw.key'), /readable by others/);
    assert.throws(() => ks.path('../x'), /bad keystore entry/);
  });
});

function x509CommonName(cert: x509.X509Certificate): string | undefined {
  return cert.subjectName.getField('CN')[0];
}

async function toNodeKey(k: CryptoKey) {
  const { createPrivateKey } = await import('node:crypto');
  return createPrivateKey(await exportPkcs8Pem(k));
}

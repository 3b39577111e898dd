// The authority's CA keys in a PKCS#11 token (SoftHSM2 from Debian), shared by two replicas on
// PostgreSQL. It proves: `init` makes the root and issuing keys inside the token, non-extractable,
// and writes neither to the keystore; `replica` copies no CA key and names the same token; both
// replicas (in one process: they share the module) sign there — their TLS certificates, a
// gateway's certificate issued through the replica, and the CRL each one rebuilds after a
// revocation made through the other; a token without these keys is refused, saying why.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuthorityClient } from '../../src/authority/client.js';
import { readConfig } from '../../src/authority/config.js';
import {
  createReplica,
  initAuthority,
  loadCa,
  startAuthority,
  type RunningAuthority,
} from '../../src/authority/lifecycle.js';
import { Pkcs11Keystore } from '../../src/pki/pkcs11-keystore.js';
import { x509 } from '../../src/pki/x509.js';
import { privateSofthsmToken, SOFTHSM_MODULE, softhsmMissing } from '../support/softhsm.js';
import { postgresForTests } from './helpers/postgres.js';
import { until } from './helpers/replicas.js';

const pg = await postgresForTests();
after(() => pg.server?.stop());
const missing = softhsmMissing();
const skip = pg.skip ?? (missing && process.env.CI !== 'true' ? `skipped: ${missing}` : false);

describe('CA keys in a PKCS#11 token', { skip }, () => {
  it('are made in the token and never written out; two replicas sign there; a token without them is refused', async () => {
    assert.equal(missing, undefined, `SoftHSM2 is required in CI: ${missing}`);
    const base = mkdtempSync(join(tmpdir(), 'kasane-ca-pkcs11-'));
    const hsm = privateSofthsmToken('kasane-ca', '4321', mkdtempSync(join(base, 'hsm-')));
    const running: RunningAuthority[] = [];
    const clients: AuthorityClient[] = [];
    try {
      const [a, b] = [join(base, 'a'), join(base, 'b')];
      const token = { module: SOFTHSM_MODULE, token: 'kasane-ca', pinFile: hsm.pinFile };
      const init = await initAuthority({
        dataDir: a,
        name: 'hsm',
        database: await pg.server!.createDatabase(),
        listen: { host: '127.0.0.1', port: 0 },
        caPkcs11: token,
      });
      assert.match(init.caKeys, /PKCS#11 token "kasane-ca"/);
      assert.deepEqual(
        readdirSync(join(a, 'keystore')).sort(),
        ['attribute-authority.key', 'kek', 'push', 'server.key'],
        'no CA key in the keystore',
      );
      for (const label of ['hsm root CA', 'hsm issuing CA']) {
        const ks = Pkcs11Keystore.open({ ...token, keyLabel: label });
        try {
          assert.deepEqual(
            ks.privateKeyProtection(),
            { sensitive: true, extractable: false, neverExtractable: true },
            label,
          );
          assert.match(ks.tryReadPrivateValue(), /^refused/);
        } finally {
          ks.close();
        }
      }

      const replica = await createReplica({ from: a, dataDir: b, listen: { host: '127.0.0.1', port: 0 } });
      assert.ok(
        !replica.copied.some((f) => /root-ca\.key|issuing-ca\.key/.test(f)),
        `copied: ${replica.copied.join(', ')}`,
      );
      assert.deepEqual(readConfig(b).ca, readConfig(a).ca, 'the replica names the same token');
      assert.deepEqual(readdirSync(join(b, 'keystore')).sort(), [
        'attribute-authority.key',
        'kek',
        'push',
        'server.key',
      ]);

      for (const dir of [a, b])
        running.push(
          await startAuthority({
            dataDir: dir,
            listen: { host: '127.0.0.1', port: 0 },
            logLevel: 'silent',
            schedulerIntervalMs: 0,
          }),
        );
      const rootPem = readFileSync(join(a, 'certs', 'root-ca.pem'), 'utf8');
      const issuing = new x509.X509Certificate(readFileSync(join(a, 'certs', 'issuing-ca.pem'), 'utf8'));
      // TLS to each replica verifies against the root: their server certificates were signed in the token.
      const [adminA, adminB] = running.map(
        (r) => new AuthorityClient({ url: r.url, ca: rootPem, adminToken: init.adminToken }),
      );
      clients.push(adminA, adminB);

      await adminB.addGateway('g1', '192.0.2.1');
      const bundle = await adminB.makeBundle('g1');
      const cert = new x509.X509Certificate(bundle.certificate);
      assert.ok(
        await cert.verify({ publicKey: issuing.publicKey, signatureOnly: true }),
        'the gateway certificate issued through replica b is signed by the issuing key',
      );

      await adminA.revokeGateway('g1', { reason: 'test' });
      await until(
        async () => new x509.X509Crl((await adminB.crls()).issuing).findRevoked(cert.serialNumber) !== null,
        'replica b lists the revocation made through a',
      );
      const crl = new x509.X509Crl((await adminB.crls()).issuing);
      assert.ok(await crl.verify({ publicKey: issuing.publicKey }), "replica b's CRL is signed by the issuing key");

      // A host whose token lacks the keys: refused, naming the key and the token (a new token is
      // seen once the module is loaded again: after the replicas stop).
      for (const c of clients.splice(0)) c.close();
      for (const r of running.splice(0)) await r.close();
      privateSofthsmToken('empty', '4321', hsm.dir);
      await assert.rejects(
        loadCa(b, { ...readConfig(b), ca: { pkcs11: { ...readConfig(b).ca!.pkcs11, token: 'empty' } } }),
        /no key pair "hsm root CA" in token "empty"/,
      );
    } finally {
      for (const c of clients) c.close();
      for (const r of running) await r.close();
      rmSync(base, { recursive: true, force: true });
    }
  });
});

// Gateway certificates (src/authority/certificates.ts), driven directly over SQLite and
// PostgreSQL. It proves: a TLS client certificate maps to its gateway by serial and exact DER,
// whatever the serial's spelling; an unknown, a forged (same serial, other bytes), a superseded
// and a revoked gateway's certificate are refused, each with its reason; the issuing CA's CRL
// lists revoked and superseded serials, the root's lists none, and every listener gets each new
// pair; an IKE certificate names the gateway, supersedes the previous one, authenticates IKE only
// (never the TLS channel), tells the gateway's pairwise peers, and is refused to a gateway that
// is not active or a CSR that names another. A TLS connection is checked once, and again after a
// certificate was superseded or revoked (on PostgreSQL also through another replica).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCsr } from '../../src/pki/ca.js';
import { fingerprint, generateKeyPair, pemToDer } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { ADMIN, refusal, testStores, withAuthority, type DirectGateway } from './helpers/direct.js';

const tlsIdentity = (g: DirectGateway): { der: Uint8Array; serial: string } => ({
  der: pemToDer(g.bundle.certificate, 'CERTIFICATE'),
  serial: new x509.X509Certificate(g.bundle.certificate).serialNumber,
});

for (const store of await testStores()) {
  describe(`gateway certificates on ${store.kind}`, { skip: store.skip }, () => {
    it('a client certificate maps to its gateway by serial and exact DER; unknown, forged, superseded and revoked ones are refused', () =>
      withAuthority(store, async (a) => {
        const { certificates } = a.service;
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        const { der, serial } = tlsIdentity(gw1);
        assert.equal(await certificates.authenticate(der, serial), 'gw1');
        assert.equal(
          await certificates.authenticate(der, '00' + serial.toUpperCase()),
          'gw1',
          'as the TLS layer may spell the serial',
        );
        const forged = Uint8Array.from(der, (x, i) => (i === der.length - 1 ? x ^ 1 : x));
        assert.deepEqual(await refusal(certificates.authenticate(forged, serial)), [403, 'unknown-certificate']);
        assert.deepEqual(await refusal(certificates.authenticate(der, '0123456789abcdef')), [
          403,
          'unknown-certificate',
        ]);
        const renewed = await a.service.enrollment.makeBundle(ADMIN, 'gw1', { replace: true });
        assert.deepEqual(await refusal(certificates.authenticate(der, serial)), [403, 'certificate-revoked']);
        const next = new x509.X509Certificate(renewed.certificate);
        assert.equal(
          await certificates.authenticate(pemToDer(renewed.certificate, 'CERTIFICATE'), next.serialNumber),
          'gw1',
        );
        await a.service.gateways.revoke(ADMIN, 'gw1', {});
        assert.deepEqual(
          await refusal(certificates.authenticate(pemToDer(renewed.certificate, 'CERTIFICATE'), next.serialNumber)),
          [403, 'gateway-revoked'],
        );
      }));

    it('a connection is checked once; a certificate superseded or revoked, here or through another replica, is checked again and refused', () =>
      withAuthority(store, async (a) => {
        const { certificates } = a.service;
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        let asked = 0;
        const peer = (): { der: Uint8Array; serial: string } => (asked++, tlsIdentity(gw1));
        const connection = {};
        assert.equal(await certificates.authenticateConnection(connection, peer), 'gw1');
        assert.equal(await certificates.authenticateConnection(connection, peer), 'gw1');
        assert.equal(asked, 1, 'the second request on the connection is not checked again');
        assert.equal(await certificates.authenticateConnection({}, peer), 'gw1');
        assert.equal(asked, 2, 'another connection is');
        // Superseded by a re-enrollment: the connection with the old certificate is refused.
        await a.service.enrollment.makeBundle(ADMIN, 'gw1', { replace: true });
        assert.deepEqual(await refusal(certificates.authenticateConnection(connection, peer)), [
          403,
          'certificate-revoked',
        ]);
        if (store.kind !== 'postgres') return;
        // Revoked through another replica: this one hears of it by version and refuses the connection.
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        const onGw2 = {};
        assert.equal(await certificates.authenticateConnection(onGw2, () => tlsIdentity(gw2)), 'gw2');
        const other = await a.replica();
        await other.service.gateways.revoke(ADMIN, 'gw2', {});
        const deadline = Date.now() + 5000;
        for (;;) {
          const r = await certificates
            .authenticateConnection(onGw2, () => tlsIdentity(gw2))
            .catch((e: { code?: string }) => e.code);
          if (r === 'gateway-revoked') break;
          assert.ok(
            Date.now() < deadline,
            `still authenticated 5 s after the revocation through another replica: ${String(r)}`,
          );
          await new Promise((res) => setTimeout(res, 50));
        }
      }));

    it("the issuing CA's CRL lists revoked and superseded serials with their reasons; every listener gets each new pair", () =>
      withAuthority(store, async (a) => {
        const { certificates } = a.service;
        const heard: string[] = [];
        certificates.onCrlChange((c) => heard.push(c.issuing));
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        await a.service.enrollment.makeBundle(ADMIN, 'gw1', { replace: true });
        await a.service.gateways.revoke(ADMIN, 'gw2', { compromised: true });
        assert.equal(heard.length, 2, 'one new pair per change that revoked a certificate');
        const crls = certificates.currentCrls();
        assert.equal(heard[1], crls.issuing);
        const issuing = new x509.X509Crl(crls.issuing);
        const reasons = new Map(issuing.entries.map((e) => [e.serialNumber, e.reason]));
        assert.deepEqual(
          [reasons.get(tlsIdentity(gw1).serial), reasons.get(tlsIdentity(gw2).serial)],
          [x509.X509CrlReason.superseded, x509.X509CrlReason.keyCompromise],
        );
        assert.equal(new x509.X509Crl(crls.root).entries.length, 0, 'the root revokes nothing');
        assert.ok(
          issuing.nextUpdate && issuing.nextUpdate.getTime() > a.clock.now + 6 * 86_400_000,
          'valid for a week',
        );
      }));

    it('an IKE certificate names the gateway, supersedes the previous one, authenticates IKE only and tells its pairwise peers', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('p2p', { mode: 'pairwise' });
        await a.enrolled('gw1', '192.0.2.1');
        await a.enrolled('gw2', '192.0.2.2');
        await a.addMember('p2p', 'gw1', '10.1.0.0/16');
        await a.addMember('p2p', 'gw2', '10.2.0.0/16');
        const token = await generateKeyPair();
        const first = new x509.X509Certificate(
          (await service.certificates.issueIke('gw1', await createCsr(token, 'gw1'))).certificate,
        );
        assert.equal(first.subjectName.getField('2.5.4.3')[0], 'gw1');
        assert.equal(first.issuer, new x509.X509Certificate(service.certificates.chainPem()[0]).subject);
        const peer = await a.store.read((tx) => tx.getGateway('gw2'));
        assert.equal(
          peer!.changedVersion,
          (await a.store.read((tx) => tx.state())).version,
          'its pairwise peer is told',
        );
        const second = new x509.X509Certificate(
          (await service.certificates.issueIke('gw1', await createCsr(token, 'gw1'))).certificate,
        );
        const rows = await a.store.read(async (tx) => ({
          gw: await tx.getGateway('gw1'),
          first: await tx.getCertificate(first.serialNumber),
        }));
        assert.equal(rows.gw!.ikeCertSerial, second.serialNumber);
        assert.equal(rows.first!.revokeReason, 'superseded');
        assert.deepEqual(
          await refusal(service.certificates.authenticate(new Uint8Array(second.rawData), second.serialNumber)),
          [403, 'certificate-revoked'],
          'never the TLS channel',
        );
        assert.deepEqual(await refusal(service.certificates.issueIke('gw1', await createCsr(token, 'gw2'))), [
          400,
          'csr-name-mismatch',
        ]);
        await a.addPendingGateway('pending', '192.0.2.3');
        assert.deepEqual(await refusal(service.certificates.issueIke('pending', await createCsr(token, 'pending'))), [
          403,
          'gateway-revoked',
        ]);
      }));

    it("the CA view and the gateway's certificate with its chain", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        const view = service.certificates.caView();
        assert.equal(view.fingerprint, fingerprint(pemToDer(view.rootCertificate, 'CERTIFICATE')));
        assert.equal(view.fingerprint, service.identity().caFingerprint);
        await a.addPendingGateway('gw1', '192.0.2.1');
        assert.deepEqual(await refusal(service.certificates.ofGateway('gw1')), [404, 'no-certificate']);
        const bundle = await service.enrollment.makeBundle(ADMIN, 'gw1', {});
        const mine = await service.certificates.ofGateway('gw1');
        assert.equal(mine.certificate.trim(), bundle.certificate.trim());
        assert.deepEqual(mine.chain, [view.issuingCertificate, view.rootCertificate]);
      }));
  });
}

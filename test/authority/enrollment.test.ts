// Enrollment (src/authority/enrollment.ts), driven directly over SQLite and PostgreSQL. It
// proves: a token and a CSR make a gateway active with a certificate for the gateway's own key;
// a token is single-use, expires by the authority's clock, is stored only as a hash, and is
// refused once its gateway was revoked after it was made; a bad CSR, or one naming another
// gateway, is refused without using the token up; enrolling makes the gateway's configured
// memberships effective (an SPI and the key of every live epoch, and the members hear of it);
// re-enrolling needs `replace`, supersedes the old certificate, keeps the SPIs and seals every
// key again to the new key only.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openDelivery } from '../../src/authority/snapshot.js';
import { createCsr } from '../../src/pki/ca.js';
import { exportSpkiDer, generateKeyPair, sha256Hex } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { ADMIN, gatewayWith, refusal, testStores, version, withAuthority } from './helpers/direct.js';
import { tampered } from '../support/tokens.js';

for (const store of await testStores()) {
  describe(`enrollment on ${store.kind}`, { skip: store.skip }, () => {
    it("online: a token and a CSR make the gateway active with a certificate for its own key; the token's secret is stored only hashed", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addPendingGateway('gw1', '192.0.2.1');
        const tok = await service.enrollment.createToken(ADMIN, 'gw1', {});
        assert.equal(tok.expiresAt, a.clock.now + 3_600_000, 'the default lifetime');
        assert.deepEqual(tok.authority, service.identity());
        const keys = await generateKeyPair();
        const answer = await service.enrollment.enroll({ token: tok.token, csr: await createCsr(keys, 'gw1') });
        assert.ok(!('privateKey' in answer), 'the key stayed with the gateway');
        const cert = new x509.X509Certificate(answer.certificate);
        assert.deepEqual(new Uint8Array(cert.publicKey.rawData), await exportSpkiDer(keys.publicKey));
        assert.deepEqual(
          [answer.authority.caCertificate, ...answer.chain.slice(0, 1)],
          [service.certificates.rootPem(), service.certificates.chainPem()[0]],
        );
        const g = await service.gateways.get('gw1');
        assert.deepEqual(
          [g.status, g.certificate?.method, g.certificate?.serial],
          ['active', 'csr', cert.serialNumber],
        );
        const [, id, secret] = tok.token.split('.');
        const row = await a.store.read((tx) => tx.getEnrollToken(id));
        assert.equal(row!.secretHash, sha256Hex(secret));
        assert.equal(row!.usedAt, a.clock.now);
      }));

    it('a token is single-use and expires by the clock; a bad CSR or one for another gateway does not use it up', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        await a.addPendingGateway('gw1', '192.0.2.1');
        await a.addPendingGateway('gw2', '192.0.2.2');
        const keys = await generateKeyPair();
        const tok = await service.enrollment.createToken(ADMIN, 'gw1', { ttlMs: 60_000 });
        const badCsr = '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n';
        assert.deepEqual(await refusal(service.enrollment.enroll({ token: tok.token, csr: badCsr })), [400, 'bad-csr']);
        assert.deepEqual(
          await refusal(service.enrollment.enroll({ token: tok.token, csr: await createCsr(keys, 'gw2') })),
          [400, 'csr-name-mismatch'],
        );
        assert.deepEqual(
          await refusal(
            service.enrollment.enroll({ token: 'kasane-enroll-v1.nothex', csr: await createCsr(keys, 'gw1') }),
          ),
          [401, 'bad-token'],
        );
        assert.deepEqual(
          await refusal(service.enrollment.enroll({ token: tampered(tok.token), csr: await createCsr(keys, 'gw1') })),
          [401, 'bad-token'],
        );
        await service.enrollment.enroll({ token: tok.token, csr: await createCsr(keys, 'gw1') });
        assert.deepEqual(
          await refusal(service.enrollment.enroll({ token: tok.token, csr: await createCsr(keys, 'gw1') })),
          [401, 'token-used'],
        );
        const short = await service.enrollment.createToken(ADMIN, 'gw2', { ttlMs: 60_000 });
        clock.now += 60_000;
        assert.deepEqual(
          await refusal(service.enrollment.enroll({ token: short.token, csr: await createCsr(keys, 'gw2') })),
          [401, 'token-expired'],
        );
        assert.equal((await service.gateways.get('gw2')).status, 'pending');
        assert.deepEqual(await refusal(service.enrollment.createToken(ADMIN, 'gw2', { ttlMs: 999 })), [400, 'bad-ttl']);
        assert.deepEqual(await refusal(service.enrollment.createToken(ADMIN, 'gw2', { ttlMs: 31 * 86_400_000 })), [
          400,
          'bad-ttl',
        ]);
      }));

    it('a token made before its gateway was revoked is refused', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        await a.enrolled('gw1', '192.0.2.1');
        const tok = await service.enrollment.createToken(ADMIN, 'gw1', { replace: true });
        clock.now += 1;
        await service.gateways.revoke(ADMIN, 'gw1', { compromised: true });
        assert.deepEqual(
          await refusal(
            service.enrollment.enroll({ token: tok.token, csr: await createCsr(await generateKeyPair(), 'gw1') }),
          ),
          [401, 'token-revoked'],
        );
        // A token made after the revocation brings it back.
        clock.now += 1;
        const fresh = await service.enrollment.createToken(ADMIN, 'gw1', {});
        await service.enrollment.enroll({ token: fresh.token, csr: await createCsr(await generateKeyPair(), 'gw1') });
        assert.equal((await service.gateways.get('gw1')).status, 'active');
      }));

    it('enrolling makes the configured memberships effective: an SPI and the key of every live epoch, and the members hear of it', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        await service.epochs.rotate(ADMIN, 'corp', false);
        await a.addPendingGateway('gw2', '192.0.2.2');
        await a.addMember('corp', 'gw2', '10.2.0.0/16');
        const gw2 = gatewayWith(service, await service.enrollment.makeBundle(ADMIN, 'gw2', {}));
        const [s1, s2] = [await gw1.snapshot(), await gw2.snapshot()];
        assert.deepEqual(
          s2.vpns[0].epochs.map((e) => [e.epoch, e.key]),
          s1.vpns[0].epochs.map((e) => [e.epoch, e.key]),
        );
        assert.deepEqual(
          s1.vpns[0].members.find((m) => m.gateway === 'gw2')?.spis.map((s) => s.epoch),
          [1, 2],
        );
        assert.equal(
          (await a.store.read((tx) => tx.getGateway('gw1')))!.changedVersion,
          await version(a),
          'the other member is told',
        );
        assert.deepEqual(
          (await service.admin.audit({ gateway: 'gw2' })).slice(-2).map((e) => e.action),
          ['member.join', 'gateway.enroll'],
        );
      }));

    it('re-enrolling needs replace; it supersedes the old certificate, keeps the SPIs and seals the keys again to the new key only', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        const old = await a.enrolled('gw1', '192.0.2.1');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        const before = await old.snapshot();
        assert.deepEqual(await refusal(service.enrollment.makeBundle(ADMIN, 'gw1', {})), [409, 'gateway-enrolled']);
        assert.deepEqual(await refusal(service.enrollment.createToken(ADMIN, 'gw1', {})), [409, 'gateway-enrolled']);
        assert.deepEqual(
          await refusal(service.enrollment.makeBundle(ADMIN, 'gw1', { replace: true, validityDays: 0 })),
          [400, 'bad-validity'],
        );
        const renewed = gatewayWith(
          service,
          await service.enrollment.makeBundle(ADMIN, 'gw1', { replace: true, validityDays: 30 }),
        );
        const oldSerial = new x509.X509Certificate(old.bundle.certificate).serialNumber;
        assert.equal((await a.store.read((tx) => tx.getCertificate(oldSerial)))!.revokeReason, 'superseded');
        const cert = new x509.X509Certificate(renewed.bundle.certificate);
        assert.equal(Math.round((cert.notAfter.getTime() - a.clock.now) / 86_400_000), 30);
        const after = await renewed.snapshot();
        assert.deepEqual(after.vpns[0].epochs, before.vpns[0].epochs, 'the same keys');
        assert.deepEqual(after.vpns[0].members, before.vpns[0].members, 'the same SPIs');
        await assert.rejects(
          openDelivery(await service.delivery.of('gw1'), old.bundle.privateKey!, { gateway: 'gw1' }),
          /does not open/,
        );
      }));
  });
}

// The gateway registry (src/authority/gateways.ts), driven directly over SQLite and PostgreSQL. It
// proves: a registered gateway is pending, without a certificate; a new outside address of an
// active gateway reaches every member of its VPNs, while a pending one's concerns only itself;
// revocation puts the certificate on the CRL, stops the gateway authenticating, takes its sealed
// keys and SPIs, re-keys its group VPNs at once, tells its pairwise peers, and keeps its
// memberships configured (its prefixes stay protected); names, addresses and a second
// revocation are refused without writing anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pemToDer } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { ADMIN, refusal, testStores, version, withAuthority, type DirectAuthority } from './helpers/direct.js';

const changedVersion = async (a: DirectAuthority, gateway: string): Promise<number> =>
  (await a.store.read((tx) => tx.getGateway(gateway)))!.changedVersion;

for (const store of await testStores()) {
  describe(`the gateway registry on ${store.kind}`, { skip: store.skip }, () => {
    it('a registered gateway is pending, without a certificate, in the VPNs configured for it', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        await a.addVpn('corp');
        const g = await service.gateways.add(ADMIN, { name: '東京/gw #1', address: '2001:db8::1' });
        assert.deepEqual(g, {
          name: '東京/gw #1',
          address: '2001:db8::1',
          status: 'pending',
          certificate: null,
          vpns: [],
          createdAt: clock.now,
          enrolledAt: null,
          revokedAt: null,
          revokeReason: null,
          lastReport: null,
        });
        await a.addMember('corp', '東京/gw #1', '10.1.0.0/16');
        assert.deepEqual((await service.gateways.get('東京/gw #1')).vpns, ['corp']);
        assert.deepEqual(
          (await service.gateways.list()).map((x) => [x.name, x.status, x.vpns]),
          [['東京/gw #1', 'pending', ['corp']]],
        );
      }));

    it("a new address of an active member reaches every member of its VPNs; a pending member's concerns only itself", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addVpn('dept');
        await a.enrolled('gw1', '192.0.2.1');
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        const gw3 = await a.enrolled('gw3', '192.0.2.3');
        await a.addPendingGateway('later', '192.0.2.4');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        await a.addMember('dept', 'gw1', '10.11.0.0/16');
        await a.addMember('corp', 'gw2', '10.2.0.0/16');
        await a.addMember('dept', 'gw3', '10.3.0.0/16');
        await a.addMember('corp', 'later', '10.4.0.0/16');
        const updated = await service.gateways.update(ADMIN, 'gw1', { address: '198.51.100.1' });
        assert.equal(updated.address, '198.51.100.1');
        assert.equal((await gw2.snapshot()).vpns[0].members.find((m) => m.gateway === 'gw1')?.address, '198.51.100.1');
        assert.equal((await gw3.snapshot()).vpns[0].members.find((m) => m.gateway === 'gw1')?.address, '198.51.100.1');
        assert.deepEqual(
          (await service.admin.audit({ gateway: 'gw1' })).slice(-3).map((e) => [e.action, e.vpn]),
          [
            ['gateway.update', null],
            ['member.address', 'corp'],
            ['member.address', 'dept'],
          ],
        );
        const others = await changedVersion(a, 'gw2');
        await service.gateways.update(ADMIN, 'later', { address: '198.51.100.4' });
        assert.equal(await changedVersion(a, 'later'), await version(a));
        assert.equal(await changedVersion(a, 'gw2'), others, 'nobody else receives a pending member');
        // The same address again changes nothing.
        const v = await version(a);
        await service.gateways.update(ADMIN, 'gw1', { address: '198.51.100.1' });
        assert.equal(await changedVersion(a, 'gw2'), others);
        assert.ok((await service.admin.audit({})).every((e) => e.version <= v));
      }));

    it('revocation: the certificate goes on the CRL and stops authenticating, keys go, group VPNs re-key at once, pairwise peers hear of it, memberships stay', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        await a.addVpn('corp');
        await a.addVpn('p2p', { mode: 'pairwise' });
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        for (const vpn of ['corp', 'p2p']) {
          await a.addMember(vpn, 'gw1', '10.1.0.0/16');
          await a.addMember(vpn, 'gw2', '10.2.0.0/16');
        }
        await a.enrolled('gw3', '192.0.2.3');
        await a.addMember('p2p', 'gw3', '10.5.0.0/16');
        const cert = new x509.X509Certificate(gw2.bundle.certificate);
        clock.now += 1000;
        const info = await service.gateways.revoke(ADMIN, 'gw2', { reason: 'stolen', compromised: true });
        assert.deepEqual(
          [info.status, info.revokedAt, info.revokeReason, info.certificate?.revokeReason],
          ['revoked', clock.now, 'stolen', 'key-compromise'],
        );
        const crl = new x509.X509Crl(service.certificates.currentCrls().issuing);
        assert.ok(crl.entries.some((e) => e.serialNumber === cert.serialNumber));
        assert.deepEqual(
          await refusal(
            service.certificates.authenticate(pemToDer(gw2.bundle.certificate, 'CERTIFICATE'), cert.serialNumber),
          ),
          [403, 'gateway-revoked'],
        );
        assert.equal(await changedVersion(a, 'gw3'), await version(a), 'a member of its pairwise VPN only is told too');
        const s1 = await gw1.snapshot();
        const corp = s1.vpns.find((v) => v.name === 'corp')!;
        assert.deepEqual(
          corp.epochs.map((e) => [e.epoch, e.activeFrom]),
          [
            [1, clock.now - 1000],
            [2, clock.now],
          ],
          'a new epoch, active at once',
        );
        assert.deepEqual(
          s1.vpns.map((v) => [v.name, v.members.map((m) => m.gateway)]),
          [
            ['corp', ['gw1']],
            ['p2p', ['gw1', 'gw3']],
          ],
        );
        assert.deepEqual(await a.store.read((tx) => tx.listSealedKeys('gw2')), []);
        assert.deepEqual(
          (await service.vpns.members('corp')).map((m) => [m.gateway, m.effective]),
          [
            ['gw1', true],
            ['gw2', false],
          ],
          'the membership stays configured',
        );
        assert.ok((await service.prefixDirectory.view()).protectedPrefixes.includes('10.2.0.0/16'));
        assert.deepEqual(await refusal(service.gateways.revoke(ADMIN, 'gw2', {})), [409, 'already-revoked']);
      }));

    it('IPv6 outside addresses: canonical, enrolled, moved between families, and delivered to the other members', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        const added = await service.gateways.add(ADMIN, {
          name: 'gw1',
          address: '2001:0DB8:0000:0000:0000:0000:0000:0001',
        });
        assert.equal(added.address, '2001:db8::1');
        await service.enrollment.makeBundle(ADMIN, 'gw1', {});
        const gw2 = await a.enrolled('gw2', 'fd00:2::2');
        await a.addMember('corp', 'gw1', '2001:db8:1::/48');
        await a.addMember('corp', 'gw2', '10.2.0.0/16', 'fd00:2:1::/48');
        const listed = async (): Promise<string | undefined> =>
          (await gw2.snapshot()).vpns[0].members.find((m) => m.gateway === 'gw1')?.address;
        assert.equal(await listed(), '2001:db8::1');
        // From v6 to v4 and back: each move reaches the other member; the same address spelled
        // otherwise is no change.
        const first = await service.changeStream.changes('gw2', 0, 0);
        await service.gateways.update(ADMIN, 'gw1', { address: '198.51.100.1' });
        assert.equal(await listed(), '198.51.100.1');
        await service.gateways.update(ADMIN, 'gw1', { address: '2001:db8:ffff::1' });
        assert.equal(await listed(), '2001:db8:ffff::1');
        const moved = await service.changeStream.changes('gw2', first.version, 0);
        assert.deepEqual(
          moved.events.map((e) => e.action),
          ['member.address', 'member.address'],
        );
        const v = await version(a);
        await service.gateways.update(ADMIN, 'gw1', { address: '2001:DB8:FFFF:0::1' });
        assert.equal(await version(a), v, 'the same address in another spelling changes nothing');
        assert.equal((await service.gateways.get('gw1')).address, '2001:db8:ffff::1');
        for (const bad of [
          '::ffff:192.0.2.1',
          'fe80::1',
          'ff02::1',
          '::',
          '2001:db8::1%eth0',
          '[2001:db8::1]',
          '2001:db8::1/128',
        ]) {
          assert.deepEqual(
            await refusal(service.gateways.update(ADMIN, 'gw1', { address: bad })),
            [400, 'bad-address'],
            bad,
          );
          assert.deepEqual(
            await refusal(service.gateways.add(ADMIN, { name: 'gwx', address: bad })),
            [400, 'bad-address'],
            bad,
          );
        }
        assert.equal(await version(a), v);
      }));

    it('refuses a taken name, a bad name or address, and an unknown gateway; nothing written', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addPendingGateway('gw1', '192.0.2.1');
        const before = await version(a);
        assert.deepEqual(await refusal(service.gateways.add(ADMIN, { name: 'gw1', address: '192.0.2.9' })), [
          409,
          'gateway-exists',
        ]);
        assert.deepEqual(await refusal(service.gateways.add(ADMIN, { name: 'x'.repeat(64), address: '192.0.2.9' })), [
          400,
          'bad-name',
        ]);
        assert.deepEqual(await refusal(service.gateways.add(ADMIN, { name: 'gwx', address: '224.0.0.1' })), [
          400,
          'bad-address',
        ]);
        assert.deepEqual(await refusal(service.gateways.update(ADMIN, 'gw1', { address: '300.1.1.1' })), [
          400,
          'bad-address',
        ]);
        assert.deepEqual(await refusal(service.gateways.revoke(ADMIN, 'nope', {})), [404, 'unknown-gateway']);
        assert.equal(await version(a), before);
      }));
  });
}

// The directory of protected prefixes (src/authority/directory.ts), driven directly over SQLite
// and PostgreSQL. It proves: the directory lists every prefix a membership names — a pending or
// revoked gateway's too, so nobody relays toward it in the clear — and the entries added by hand,
// compacted; it changes only when a prefix first appears or last disappears, and such a change
// reaches every gateway, even one in no VPN; a duplicate entry, an unknown one and a bad prefix
// are refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN, refusal, testStores, version, withAuthority, type DirectAuthority } from './helpers/direct.js';

const directoryVersion = async (a: DirectAuthority): Promise<number> =>
  (await a.store.read((tx) => tx.state())).directoryVersion;

for (const store of await testStores()) {
  describe(`the directory of protected prefixes on ${store.kind}`, { skip: store.skip }, () => {
    it("lists every membership's prefixes whatever the gateway's status, and the manual entries, compacted", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addPendingGateway('pending', '192.0.2.1');
        await a.addMember('corp', 'pending', '10.1.0.0/16');
        await a.enrolled('gw2', '192.0.2.2');
        await a.addMember('corp', 'gw2', '192.168.2.0/24', '2001:db8:2::/48');
        const view = await service.prefixDirectory.add(ADMIN, '10.0.0.0/16', 'head office, not yet enrolled');
        assert.deepEqual(
          view.entries.map((e) => [e.prefix, e.note]),
          [['10.0.0.0/16', 'head office, not yet enrolled']],
        );
        // 10.0.0.0/16 and 10.1.0.0/16 are the two halves of 10.0.0.0/15.
        assert.deepEqual([...view.protectedPrefixes].sort(), ['10.0.0.0/15', '192.168.2.0/24', '2001:db8:2::/48']);
        await service.gateways.revoke(ADMIN, 'gw2', { reason: 'decommissioned' });
        assert.ok(
          (await service.prefixDirectory.view()).protectedPrefixes.includes('192.168.2.0/24'),
          "a revoked gateway's prefix stays protected",
        );
      }));

    it('changes only when a prefix first appears or last disappears', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addVpn('dept');
        await a.addPendingGateway('gw1', '192.0.2.1');
        await a.addPendingGateway('gw2', '192.0.2.2');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        const appeared = await directoryVersion(a);
        assert.equal(appeared, await version(a));
        // The same prefix again, in another VPN (a LAN in two VPNs), and as a manual entry: no change.
        await a.addMember('dept', 'gw2', '10.1.0.0/16');
        await service.prefixDirectory.add(ADMIN, '10.1.0.0/16', 'also by hand');
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { removeAll: true });
        await service.vpns.updateMembership(ADMIN, 'dept', 'gw2', { removeAll: true });
        assert.equal(await directoryVersion(a), appeared, 'still used by the manual entry');
        await service.prefixDirectory.remove(ADMIN, '10.1.0.0/16');
        assert.equal(await directoryVersion(a), await version(a), 'gone with its last use');
        assert.deepEqual((await service.prefixDirectory.view()).protectedPrefixes, []);
      }));

    it('a change of the directory reaches every gateway, even one in no VPN', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        const loner = await a.enrolled('loner', '192.0.2.9');
        const first = await service.changeStream.changes('loner', 0, 0);
        await service.prefixDirectory.add(ADMIN, '172.16.0.0/12', 'future site');
        const next = await service.changeStream.changes('loner', first.version, 0);
        assert.ok(next.changed);
        assert.deepEqual(
          next.events.map((e) => e.action),
          ['directory.add'],
        );
        assert.deepEqual((await loner.snapshot()).protectedPrefixes.map(String), ['172.16.0.0/12']);
      }));

    it('IPv6 entries and memberships: canonical, compacted per family, changed only when a prefix first appears or last disappears', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addVpn('dept');
        const loner = await a.enrolled('loner', 'fd00:ffff::9');
        await a.addPendingGateway('gw1', '2001:db8:ffff::1');
        await a.addPendingGateway('gw2', '192.0.2.2');
        await a.addMember('corp', 'gw1', '2001:db8:0:0::/49', '10.1.0.0/16');
        await a.addMember('corp', 'gw2', '2001:DB8:0:8000::/49');
        const view = await service.prefixDirectory.add(ADMIN, 'FD00:0001::/32', 'v6 site, not yet enrolled');
        assert.deepEqual(
          view.entries.map((e) => e.prefix),
          ['fd00:1::/32'],
        );
        // The two /49 halves are one /48 to the gateways; IPv4 and IPv6 never merge.
        assert.deepEqual(view.protectedPrefixes, ['10.1.0.0/16', '2001:db8::/48', 'fd00:1::/32']);
        assert.deepEqual((await loner.snapshot()).protectedPrefixes.map(String), [
          '10.1.0.0/16',
          '2001:db8::/48',
          'fd00:1::/32',
        ]);
        const appeared = await directoryVersion(a);
        // The same v6 prefix in another VPN and by hand (spelled otherwise): no change of the directory.
        await a.addMember('dept', 'gw2', '2001:db8::/49');
        await service.prefixDirectory.add(ADMIN, '2001:0db8::/49', 'also by hand');
        assert.equal(await directoryVersion(a), appeared);
        assert.deepEqual(await refusal(service.prefixDirectory.add(ADMIN, '2001:DB8::/49', 'again')), [
          409,
          'directory-entry-exists',
        ]);
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { remove: ['2001:db8::/49'] });
        await service.vpns.updateMembership(ADMIN, 'dept', 'gw2', { removeAll: true });
        assert.equal(await directoryVersion(a), appeared, 'still used by the manual entry');
        const first = await service.changeStream.changes('loner', 0, 0);
        await service.prefixDirectory.remove(ADMIN, '2001:db8:0::/49');
        assert.equal(await directoryVersion(a), await version(a), 'gone with its last use');
        const next = await service.changeStream.changes('loner', first.version, 0);
        assert.deepEqual(
          next.events.map((e) => e.action),
          ['directory.remove'],
        );
        assert.deepEqual((await loner.snapshot()).protectedPrefixes.map(String), [
          '10.1.0.0/16',
          '2001:db8:0:8000::/49',
          'fd00:1::/32',
        ]);
        const before = await version(a);
        for (const bad of ['fd00:1::1/32', '::ffff:10.0.0.0/104', 'ff02::/16', 'fe80::/10', '2001:db8::/129']) {
          assert.deepEqual(await refusal(service.prefixDirectory.add(ADMIN, bad, '')), [400, 'bad-cidr'], bad);
        }
        assert.deepEqual(await refusal(service.prefixDirectory.remove(ADMIN, 'fd00:2::/32')), [
          404,
          'unknown-directory-entry',
        ]);
        assert.equal(await version(a), before);
      }));

    it('refuses a duplicate entry, removing one that is not there, and a bad prefix; nothing written', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.prefixDirectory.add(ADMIN, '172.16.0.0/12', '');
        const before = await version(a);
        assert.deepEqual(await refusal(service.prefixDirectory.add(ADMIN, '172.16.0.0/12', 'again')), [
          409,
          'directory-entry-exists',
        ]);
        assert.deepEqual(await refusal(service.prefixDirectory.remove(ADMIN, '10.0.0.0/8')), [
          404,
          'unknown-directory-entry',
        ]);
        assert.deepEqual(await refusal(service.prefixDirectory.add(ADMIN, '172.16.0.1/12', '')), [400, 'bad-cidr']);
        assert.equal(await version(a), before);
      }));
  });
}

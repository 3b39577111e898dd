// VPNs and their memberships (src/authority/vpns.ts), driven directly over SQLite and PostgreSQL
// without the HTTPS API. It proves: a group VPN starts with one epoch, active at once, and its
// schedule, a pairwise VPN with neither; ids are kept or allocated after the highest; a refused
// change writes nothing; a pending gateway's membership is configured but takes effect only when
// it enrolls; a member that leaves a group VPN loses its keys and SPIs and the VPN re-keys at
// once, while leaving a pairwise VPN re-keys nothing; prefix changes obey the overlap rule;
// deleting a VPN with members needs force, and then its prefixes leave the directory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEVER } from '../../src/authority/epochs.js';
import type { MembershipChange } from '../../src/authority/vpns.js';
import { ADMIN, gatewayWith, refusal, TEST_ROTATION, testStores, version, withAuthority } from './helpers/direct.js';

for (const store of await testStores()) {
  describe(`VPNs and memberships on ${store.kind}`, { skip: store.skip }, () => {
    it('a group VPN starts with epoch 1 active at once and its schedule; a pairwise VPN has no epochs and no schedule', () =>
      withAuthority(store, async ({ service, clock }) => {
        const t0 = clock.now;
        const corp = await service.vpns.create(ADMIN, { name: 'corp', id: 10, rotationPeriodMs: 3_600_000 });
        assert.deepEqual(
          {
            id: corp.id,
            mode: corp.mode,
            currentEpoch: corp.currentEpoch,
            nextRotationAt: corp.nextRotationAt,
            epochs: corp.epochs,
          },
          {
            id: 10,
            mode: 'group',
            currentEpoch: 1,
            nextRotationAt: t0 + 3_600_000,
            epochs: [{ epoch: 1, activeFrom: t0, expiresAt: NEVER, createdAt: t0 }],
          },
        );
        // No id: the next after the highest. No period: the authority's default (here 0: on demand only).
        const next = await service.vpns.create(ADMIN, { name: 'next' });
        assert.deepEqual([next.id, next.rotationPeriodMs, next.nextRotationAt], [11, TEST_ROTATION.periodMs, null]);
        const p2p = await service.vpns.create(ADMIN, { name: 'p2p', mode: 'pairwise', rotationPeriodMs: 3_600_000 });
        assert.deepEqual(
          [p2p.id, p2p.currentEpoch, p2p.epochs, p2p.rotationPeriodMs, p2p.nextRotationAt],
          [12, null, [], 0, null],
        );
        assert.deepEqual(
          (await service.vpns.list()).map((v) => [v.name, v.members]),
          [
            ['corp', 0],
            ['next', 0],
            ['p2p', 0],
          ],
        );
        const audit = await service.admin.audit({});
        assert.deepEqual(
          audit.map((e) => [e.action, e.vpn, e.actor]),
          ['corp', 'next', 'p2p'].map((v) => ['vpn.create', v, ADMIN]),
        );
      }));

    it('refuses a taken name or id, a bad id, name or rotation period, and writes nothing', () =>
      withAuthority(store, async (a) => {
        await a.service.vpns.create(ADMIN, { name: 'corp', id: 10 });
        const before = await version(a);
        assert.deepEqual(await refusal(a.service.vpns.create(ADMIN, { name: 'corp' })), [409, 'vpn-exists']);
        assert.deepEqual(await refusal(a.service.vpns.create(ADMIN, { name: 'other', id: 10 })), [409, 'vpn-id-taken']);
        assert.deepEqual(await refusal(a.service.vpns.create(ADMIN, { name: 'zero', id: 0 })), [400, 'bad-vpn-id']);
        assert.deepEqual(await refusal(a.service.vpns.create(ADMIN, { name: 'bad\u0007name' })), [400, 'bad-name']);
        assert.deepEqual(await refusal(a.service.vpns.create(ADMIN, { name: 'fast', rotationPeriodMs: 10 })), [
          400,
          'bad-rotation-period',
        ]);
        assert.equal(await version(a), before, 'no version taken');
        assert.deepEqual(
          (await a.service.vpns.list()).map((v) => v.name),
          ['corp'],
        );
      }));

    it("a pending gateway's membership is configured but not effective; it takes effect when the gateway enrolls", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create(ADMIN, { name: 'corp' });
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['10.2.0.0/16'], create: true });
        await service.gateways.add(ADMIN, { name: 'gw1', address: '192.0.2.1' });
        const pending = await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', {
          add: ['10.1.0.0/16'],
          create: true,
        });
        assert.deepEqual(pending, {
          vpn: 'corp',
          vpnId: 1,
          gateway: 'gw1',
          gatewayStatus: 'pending',
          address: '192.0.2.1',
          prefixes: ['10.1.0.0/16'],
          effective: false,
        });
        let s2 = await gw2.snapshot();
        assert.deepEqual(
          s2.vpns[0].members.map((m) => m.gateway),
          ['gw2'],
          'the others do not list a pending member',
        );
        assert.ok(
          s2.protectedPrefixes.some((p) => String(p) === '10.1.0.0/16'),
          'but its prefix is protected already',
        );
        const gw1 = gatewayWith(service, await service.enrollment.makeBundle(ADMIN, 'gw1', {}));
        assert.equal((await service.vpns.members('corp')).find((m) => m.gateway === 'gw1')?.effective, true);
        s2 = await gw2.snapshot();
        const s1 = await gw1.snapshot();
        const listed = s2.vpns[0].members.find((m) => m.gateway === 'gw1');
        assert.ok(
          listed && listed.spis.length === 1 && listed.spis[0].epoch === 1,
          'listed with its SPI for the live epoch',
        );
        assert.deepEqual(s1.vpns[0].epochs[0].key, s2.vpns[0].epochs[0].key, 'both hold the same key');
      }));

    it('a member that leaves a group VPN loses its keys and SPIs; the VPN re-keys at once, the old epoch ending after the urgent grace', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        const corp = await service.vpns.create(ADMIN, { name: 'corp' });
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { add: ['10.1.0.0/16'], create: true });
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['10.2.0.0/16'], create: true });
        const held = (await gw2.snapshot()).vpns[0].epochs.map((e) => e.epoch);
        clock.now += 1000;
        assert.equal(await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { removeAll: true }), null);
        const s1 = await gw1.snapshot();
        const epochs = s1.vpns[0].epochs;
        assert.deepEqual(
          epochs.map((e) => e.epoch),
          [1, 2],
        );
        assert.ok(!held.includes(2), 'a new epoch the leaver never held');
        assert.equal(epochs[1].activeFrom, clock.now, 'active at once');
        assert.equal(epochs[0].expiresAt, clock.now + TEST_ROTATION.urgentGraceMs);
        assert.deepEqual(
          s1.vpns[0].members.map((m) => m.gateway),
          ['gw1'],
        );
        assert.deepEqual((await gw2.snapshot()).vpns, [], 'the leaver no longer receives the VPN');
        const rows = await a.store.read(async (tx) => ({
          sealed: await tx.listSealedKeys('gw2'),
          spis: await tx.listSpis(corp.id),
        }));
        assert.deepEqual(rows.sealed, []);
        assert.ok(!rows.spis.some((s) => s.gateway === 'gw2'));
        const actions = (await service.admin.audit({ vpn: 'corp' })).map((e) => e.action);
        assert.deepEqual(actions.slice(-2), ['member.remove', 'vpn.rotate']);
      }));

    it('leaving a pairwise VPN re-keys nothing; the remaining members stop listing the leaver', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create(ADMIN, { name: 'p2p', mode: 'pairwise' });
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        await a.enrolled('gw2', '192.0.2.2');
        await service.vpns.updateMembership(ADMIN, 'p2p', 'gw1', { add: ['10.1.0.0/16'], create: true });
        await service.vpns.updateMembership(ADMIN, 'p2p', 'gw2', { add: ['10.2.0.0/16'], create: true });
        assert.deepEqual(
          (await gw1.snapshot()).vpns[0].members.map((m) => m.gateway),
          ['gw1', 'gw2'],
        );
        await service.vpns.updateMembership(ADMIN, 'p2p', 'gw2', { removeAll: true });
        const v = (await gw1.snapshot()).vpns[0];
        assert.deepEqual([v.mode, v.epochs, v.members.map((m) => m.gateway)], ['pairwise', [], ['gw1']]);
        assert.ok(!(await service.admin.audit({ vpn: 'p2p' })).some((e) => e.action === 'vpn.rotate'));
      }));

    it('prefix changes obey the overlap rule; an unknown prefix, a non-member and an empty membership are refused', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create(ADMIN, { name: 'corp' });
        await service.gateways.add(ADMIN, { name: 'gw1', address: '192.0.2.1' });
        await service.gateways.add(ADMIN, { name: 'gw2', address: '192.0.2.2' });
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { add: ['10.1.0.0/16'], create: true });
        const before = await version(a);
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['10.1.5.0/24'], create: true })),
          [409, 'ambiguous-prefix'],
        );
        assert.deepEqual(await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { add: ['10.1.7.0/24'] })), [
          409,
          'overlapping-prefixes',
        ]);
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { remove: ['10.9.0.0/16'] })),
          [404, 'unknown-prefix'],
        );
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { remove: ['10.2.0.0/16'] })),
          [404, 'not-member'],
        );
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: [], create: true })),
          [400, 'no-prefixes'],
        );
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['10.9.0.1/16'], create: true })),
          [400, 'bad-cidr'],
        );
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'nope', 'gw2', { add: ['10.9.0.0/16'], create: true })),
          [404, 'unknown-vpn'],
        );
        assert.deepEqual(
          await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'nope', { add: ['10.9.0.0/16'], create: true })),
          [404, 'unknown-gateway'],
        );
        assert.equal(await version(a), before, 'no version taken');
        // Replacing a prefix in one change; a nested prefix in another VPN is fine (multi-stage).
        const m = await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', {
          add: ['10.11.0.0/16'],
          remove: ['10.1.0.0/16'],
        });
        assert.deepEqual(m?.prefixes, ['10.11.0.0/16']);
        await service.vpns.create(ADMIN, { name: 'dept' });
        await service.vpns.updateMembership(ADMIN, 'dept', 'gw2', { add: ['10.11.1.0/24'], create: true });
      }));

    it('IPv6 and dual-stack memberships: the overlap rule as for IPv4, canonical prefixes, delivered to the members', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create(ADMIN, { name: 'corp' });
        const gw1 = await a.enrolled('gw1', '2001:db8:ffff::1');
        const gw2 = await a.enrolled('gw2', '192.0.2.2');
        // One membership with a v4 and a v6 prefix (a dual-stack LAN); the v6 one written unusually.
        const m1 = await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', {
          add: ['10.1.0.0/16', '2001:0DB8:0001:0000::/48'],
          create: true,
        });
        assert.deepEqual(m1?.prefixes, ['10.1.0.0/16', '2001:db8:1::/48']);
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['fd00:2::/48'], create: true });
        const before = await version(a);
        const refused: [string, MembershipChange, [number, string]][] = [
          ['gw2', { add: ['2001:db8:1:5::/64'] }, [409, 'ambiguous-prefix']],
          ['gw2', { add: ['2001:db8::/32'] }, [409, 'ambiguous-prefix']],
          ['gw1', { add: ['2001:db8:1:8000::/49'] }, [409, 'overlapping-prefixes']],
          ['gw1', { add: ['fd00:9::/48', 'fd00:9::/64'] }, [409, 'overlapping-prefixes']],
          ['gw2', { add: ['fd00:3::1/48'] }, [400, 'bad-cidr']],
          ['gw2', { add: ['::ffff:10.9.0.0/112'] }, [400, 'bad-cidr']],
          ['gw2', { add: ['fe80::/64'] }, [400, 'bad-cidr']],
          ['gw2', { remove: ['fd00:3::/48'] }, [404, 'unknown-prefix']],
        ];
        for (const [gw, change, want] of refused)
          assert.deepEqual(await refusal(service.vpns.updateMembership(ADMIN, 'corp', gw, change)), want);
        assert.equal(await version(a), before, 'no version taken');
        // The same v6 prefix again (in another spelling) is a no-op; a neighbouring /48 is disjoint.
        const same = await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { add: ['2001:DB8:1::/48'] });
        assert.deepEqual(same?.prefixes, ['10.1.0.0/16', '2001:db8:1::/48']);
        assert.equal(await version(a), before);
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['2001:db8:2::/48'] });
        // Members receive each other's v6 prefixes and outside addresses.
        const s2 = await gw2.snapshot();
        const peer = s2.vpns[0].members.find((m) => m.gateway === 'gw1');
        assert.deepEqual(
          [peer?.address, peer?.prefixes.map(String)],
          ['2001:db8:ffff::1', ['10.1.0.0/16', '2001:db8:1::/48']],
        );
        const s1 = await gw1.snapshot();
        assert.deepEqual(s1.vpns[0].members.find((m) => m.gateway === 'gw2')?.prefixes.map(String), [
          '2001:db8:2::/48',
          'fd00:2::/48',
        ]);
        // Removing in another spelling removes the canonical prefix; the v4 half of the membership stays.
        const m = await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { remove: ['2001:db8:0001::/48'] });
        assert.deepEqual(m?.prefixes, ['10.1.0.0/16']);
        // Now gw2 may take the freed prefix; across VPNs an overlap is nesting, and allowed.
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['2001:db8:1::/48'] });
        await service.vpns.create(ADMIN, { name: 'dept' });
        await service.vpns.updateMembership(ADMIN, 'dept', 'gw1', { add: ['2001:db8:1:1::/64'], create: true });
        const actions = (await service.admin.audit({ vpn: 'corp' }))
          .filter((e) => e.action.startsWith('member.'))
          .map((e) => [e.action, e.gateway, e.detail]);
        assert.deepEqual(actions.at(-2), ['member.update', 'gw1', { added: [], removed: ['2001:db8:1::/48'] }]);
        // A prefix stored before the IPv6 rules existed (link-local, now refused) can still be removed.
        await a.store.write((tx) =>
          tx.insertMemberPrefixes([{ vpnId: 1, gateway: 'gw2', prefix: 'fe80::/64', addedAt: a.clock.now }]),
        );
        assert.deepEqual(await refusal(service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['fe80::/64'] })), [
          400,
          'bad-cidr',
        ]);
        const cleaned = await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { remove: ['FE80::/64'] });
        assert.ok(!cleaned?.prefixes.includes('fe80::/64'));
      }));

    it('deleting a VPN with members needs force; then its prefixes leave the directory and its members stop receiving it', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create(ADMIN, { name: 'corp' });
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw1', { add: ['10.1.0.0/16'], create: true });
        assert.equal((await gw1.snapshot()).vpns.length, 1);
        assert.deepEqual(await refusal(service.vpns.delete(ADMIN, 'corp', false)), [409, 'vpn-has-members']);
        await service.vpns.delete(ADMIN, 'corp', true);
        assert.deepEqual(await service.vpns.list(), []);
        assert.deepEqual((await service.prefixDirectory.view()).protectedPrefixes, []);
        const s = await gw1.snapshot();
        assert.deepEqual([s.vpns, s.protectedPrefixes], [[], []]);
        assert.deepEqual(await refusal(service.vpns.get('corp')), [404, 'unknown-vpn']);
      }));
  });
}

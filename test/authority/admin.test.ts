// Administration (src/authority/admin.ts), driven directly over SQLite and PostgreSQL. It proves:
// an administrator token authenticates as `admin:<name>` only when presented as a well-formed,
// known, unrevoked Bearer token; tokens are listed without secrets and stored only as hashes; the
// last one cannot be revoked; the audit log says who changed what, filtered by VPN or by gateway
// and paged; the status counts what the authority holds and who waits on it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256Hex } from '../../src/pki/keys.js';
import { ADMIN, refusal, testStores, withAuthority } from './helpers/direct.js';
import { tampered } from '../support/tokens.js';

for (const store of await testStores()) {
  describe(`administration on ${store.kind}`, { skip: store.skip }, () => {
    it('administrator tokens: Bearer only, well-formed, known and unrevoked; listed without secrets; the last one stays', () =>
      withAuthority(store, async (a) => {
        const { admin } = a.service;
        const alice = await admin.createToken(ADMIN, 'alice');
        const bob = await admin.createToken(ADMIN, 'bob');
        assert.equal(await admin.authenticate(`Bearer ${alice.token}`), 'admin:alice');
        assert.equal(await admin.authenticate(`bearer  ${bob.token}`), 'admin:bob');
        assert.deepEqual(await refusal(admin.authenticate(undefined)), [401, 'unauthorized']);
        assert.deepEqual(await refusal(admin.authenticate(`Basic ${alice.token}`)), [401, 'unauthorized']);
        assert.deepEqual(await refusal(admin.authenticate('Bearer kasane-admin-v1.garbage')), [401, 'bad-token']);
        assert.deepEqual(await refusal(admin.authenticate(`Bearer ${tampered(alice.token)}`)), [401, 'bad-token']);
        assert.deepEqual(
          await refusal(admin.authenticate(`Bearer kasane-admin-v1.0000000000000000.${'A'.repeat(43)}`)),
          [401, 'bad-token'],
        );
        const listed = await admin.listTokens();
        assert.deepEqual(
          listed.map((t) => Object.keys(t).sort()),
          [
            ['createdAt', 'id', 'name', 'revokedAt'],
            ['createdAt', 'id', 'name', 'revokedAt'],
          ],
        );
        const row = await a.store.read((tx) => tx.getAdminToken(alice.info.id));
        assert.equal(row!.secretHash, sha256Hex(alice.token.split('.')[2]));
        await admin.revokeToken(ADMIN, alice.info.id);
        assert.deepEqual(await refusal(admin.authenticate(`Bearer ${alice.token}`)), [401, 'token-revoked']);
        assert.deepEqual(await refusal(admin.revokeToken(ADMIN, alice.info.id)), [409, 'already-revoked']);
        assert.deepEqual(await refusal(admin.revokeToken(ADMIN, bob.info.id)), [409, 'last-admin-token']);
        assert.deepEqual(await refusal(admin.revokeToken(ADMIN, '0123456789abcdef')), [404, 'unknown-token']);
        assert.deepEqual(await refusal(admin.createToken(ADMIN, '')), [400, 'bad-name']);
      }));

    it('the audit log says who changed what, by VPN or by gateway, and pages', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await service.vpns.create('admin:alice', { name: 'corp' });
        await a.enrolled('gw1', '192.0.2.1');
        await service.vpns.updateMembership('admin:bob', 'corp', 'gw1', { add: ['10.1.0.0/16'], create: true });
        await service.epochs.rotate('admin:alice', 'corp', true);
        assert.deepEqual(
          (await service.admin.audit({ vpn: 'corp' })).map((e) => [e.actor, e.action]),
          [
            ['admin:alice', 'vpn.create'],
            ['admin:bob', 'member.add'],
            ['admin:alice', 'vpn.rotate'],
          ],
        );
        assert.deepEqual(
          (await service.admin.audit({ gateway: 'gw1' })).map((e) => e.action),
          ['gateway.add', 'gateway.enroll', 'member.add'],
        );
        const all = await service.admin.audit({});
        assert.deepEqual(
          (await service.admin.audit({ afterId: all[1].id, limit: 2 })).map((e) => e.id),
          all.slice(2, 4).map((e) => e.id),
        );
        assert.ok(
          all.every((e, i) => i === 0 || (e.id > all[i - 1].id && e.version >= all[i - 1].version)),
          'oldest first',
        );
      }));

    it('the audit log filters by who, what (an action or a family), when, newest first, and pages backwards', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        const t0 = a.clock.now;
        await service.vpns.create('admin:alice', { name: 'corp' });
        await a.enrolled('gw1', '192.0.2.1');
        a.clock.now = t0 + 3_600_000;
        await service.vpns.updateMembership('admin:bob', 'corp', 'gw1', { add: ['10.1.0.0/16'], create: true });
        await service.vpns.updateMembership('admin:bob', 'corp', 'gw1', { add: ['10.2.0.0/16'] });
        a.clock.now = t0 + 7_200_000;
        await service.vpns.updateMembership('admin:alice', 'corp', 'gw1', { remove: ['10.2.0.0/16'] });
        await service.epochs.rotate('admin:alice', 'corp', true);
        const actions = (q: Parameters<typeof service.admin.audit>[0]) =>
          service.admin.audit(q).then((l) => l.map((e) => `${e.actor} ${e.action}`));

        assert.deepEqual(await actions({ actor: 'admin:bob' }), [
          'admin:bob member.add',
          'admin:bob directory.change',
          'admin:bob member.update',
          'admin:bob directory.change',
        ]);
        assert.deepEqual(await actions({ actor: 'admin:bo' }), [], 'who: exactly that actor');
        // A family ends in a dot: member.add, member.update, member.update (a removed prefix).
        assert.deepEqual(await actions({ action: 'member.' }), [
          'admin:bob member.add',
          'admin:bob member.update',
          'admin:alice member.update',
        ]);
        assert.deepEqual(await actions({ action: 'member' }), [], 'without the dot: that action only');
        assert.deepEqual(await actions({ action: 'vpn.rotate', actor: 'admin:alice' }), ['admin:alice vpn.rotate']);
        // When: from and to are inclusive.
        assert.deepEqual(await actions({ from: t0 + 3_600_000, to: t0 + 3_600_000, action: 'member.' }), [
          'admin:bob member.add',
          'admin:bob member.update',
        ]);
        assert.deepEqual(await actions({ from: t0 + 7_200_000, action: 'member.' }), ['admin:alice member.update']);
        const early = await actions({ to: t0 });
        assert.equal(early[0], 'admin:alice vpn.create');
        assert.ok(early.length > 1 && early.every((e) => !e.includes('member.')), early.join(', '));
        // Newest first, and the page before an entry (the console's "older entries").
        const newest = await service.admin.audit({ order: 'desc', limit: 2 });
        assert.deepEqual(
          newest.map((e) => e.action),
          ['vpn.rotate', 'directory.change'],
        );
        const older = await service.admin.audit({ order: 'desc', limit: 2, beforeId: newest[1].id });
        assert.deepEqual(
          older.map((e) => e.action),
          ['member.update', 'directory.change'],
        );
        assert.ok(older.every((e) => e.id < newest[1].id));
      }));

    it('the status counts VPNs, memberships and gateways by status, and the gateways waiting on the change stream', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addVpn('dept');
        await a.enrolled('gw1', '192.0.2.1');
        await a.enrolled('gw2', '192.0.2.2');
        await a.addPendingGateway('gw3', '192.0.2.3');
        await service.gateways.revoke(ADMIN, 'gw2', {});
        await a.addMember('corp', 'gw1', '10.1.0.0/16', '10.11.0.0/16');
        await a.addMember('dept', 'gw1', '10.1.0.0/16');
        await a.addMember('dept', 'gw3', '10.3.0.0/16');
        const s = await service.admin.status();
        assert.deepEqual(
          [s.authority, s.url, s.store, s.vpns, s.memberships, s.gateways, s.waitingGateways, s.now],
          [
            'direct authority',
            'https://authority.test:7443',
            store.kind,
            2,
            3,
            { pending: 1, active: 1, revoked: 1 },
            0,
            a.clock.now,
          ],
        );
        assert.ok(s.schemaVersion >= 1);
        const waiting = service.changeStream.changes('gw1', s.version, 10_000);
        await new Promise((r) => setTimeout(r, 50));
        assert.equal((await service.admin.status()).waitingGateways, 1);
        await service.epochs.rotate(ADMIN, 'corp', false);
        assert.ok((await waiting).changed);
        assert.equal((await service.admin.status()).waitingGateways, 0);
      }));
  });
}

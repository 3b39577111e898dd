// What a gateway receives (src/authority/delivery.ts), driven directly over SQLite and PostgreSQL.
// It proves: a gateway receives only the VPNs it is a member of; in each, the live epochs with the
// key sealed to it, and the effective members (pending and revoked ones left out) in name order
// with their SPIs of live epochs only; the protected prefixes of every VPN; the authority's name
// and the version it was read at. A member of no VPN still receives the directory. Once a VPN
// changes, every delivery shows the change (a VPN's shared view is rebuilt, never served stale).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DELIVERY_FORMAT } from '../../src/authority/wire.js';
import { ADMIN, TEST_ROTATION, testStores, version, withAuthority } from './helpers/direct.js';

for (const store of await testStores()) {
  describe(`deliveries on ${store.kind}`, { skip: store.skip }, () => {
    it('a member receives its VPNs only, with the effective members in name order and their SPIs', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.addVpn('dept');
        // Enrolled in reverse name order: the delivery sorts them.
        await a.enrolled('gw2', '192.0.2.2');
        const gw1 = await a.enrolled('gw1', '192.0.2.1');
        await a.enrolled('gw3', '192.0.2.3');
        await a.addPendingGateway('gw0-pending', '192.0.2.9');
        await a.addMember('corp', 'gw2', '10.4.0.0/16');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        await a.addMember('corp', 'gw0-pending', '10.9.0.0/16');
        await a.addMember('dept', 'gw3', '10.6.0.0/16');
        const d = await service.delivery.of('gw1');
        assert.deepEqual(
          [d.format, d.authority, d.gateway, d.version, d.issuedAt],
          [DELIVERY_FORMAT, 'direct authority', 'gw1', await version(a), a.clock.now],
        );
        assert.deepEqual(
          d.vpns.map((v) => v.name),
          ['corp'],
        );
        const corp = d.vpns[0];
        assert.deepEqual(
          corp.members.map((m) => [m.gateway, m.address, m.prefixes, m.spis.map((s) => s.epoch)]),
          [
            ['gw1', '192.0.2.1', ['10.1.0.0/16'], [1]],
            ['gw2', '192.0.2.2', ['10.4.0.0/16'], [1]],
          ],
        );
        assert.deepEqual(
          corp.epochs.map((e) => e.epoch),
          [1],
        );
        assert.deepEqual(
          [...d.protectedPrefixes].sort(),
          ['10.1.0.0/16', '10.4.0.0/16', '10.6.0.0/16', '10.9.0.0/16'],
          "every VPN's prefixes, a pending member's too",
        );
        assert.equal(d.attributeAuthority, undefined, 'no attribute authority, no federation');
        const s = await gw1.snapshot();
        assert.equal(s.vpns[0].epochs[0].key.length, 32);
      }));

    it('an epoch past its end is no longer delivered, nor its SPIs', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.enrolled('gw1', '192.0.2.1');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        await service.epochs.rotate(ADMIN, 'corp', true);
        assert.deepEqual(
          (await service.delivery.of('gw1')).vpns[0].epochs.map((e) => e.epoch),
          [1, 2],
        );
        a.clock.now += TEST_ROTATION.urgentGraceMs;
        const corp = (await service.delivery.of('gw1')).vpns[0];
        assert.deepEqual([corp.epochs.map((e) => e.epoch), corp.members[0].spis.map((s) => s.epoch)], [[2], [2]]);
      }));

    it('a member of no VPN receives the directory and nothing else', () =>
      withAuthority(store, async (a) => {
        await a.addVpn('corp');
        await a.addPendingGateway('gw1', '192.0.2.1');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        const loner = await a.enrolled('loner', '192.0.2.8');
        const s = await loner.snapshot();
        assert.deepEqual([s.vpns, s.protectedPrefixes.map(String)], [[], ['10.1.0.0/16']]);
      }));

    it("after a VPN changes, every member's delivery shows the change", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.addVpn('corp');
        await a.enrolled('gw1', '192.0.2.1');
        await a.enrolled('gw2', '192.0.2.2');
        await a.enrolled('gw3', '192.0.2.3');
        await a.addMember('corp', 'gw1', '10.1.0.0/16');
        await a.addMember('corp', 'gw2', '10.2.0.0/16');
        await a.addMember('corp', 'gw3', '10.3.0.0/16');
        await Promise.all(['gw1', 'gw2', 'gw3'].map((g) => service.delivery.of(g)));
        await service.gateways.update(ADMIN, 'gw3', { address: '198.51.100.3' });
        const after = await Promise.all(['gw1', 'gw2', 'gw3'].map((g) => service.delivery.of(g)));
        for (const d of after)
          assert.equal(
            d.vpns[0].members.find((m) => m.gateway === 'gw3')?.address,
            '198.51.100.3',
            `${d.gateway} sees the new address`,
          );
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { removeAll: true });
        assert.deepEqual(
          (await service.delivery.of('gw1')).vpns[0].members.map((m) => m.gateway),
          ['gw1', 'gw3'],
        );
      }));

    it("one read of many gateways' deliveries builds every VPN's view at once, in a few queries", () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        const names = Array.from({ length: 12 }, (_, i) => `gw${i}`);
        for (let v = 0; v < 4; v++) await a.addVpn(`vpn${v}`);
        for (const [i, g] of names.entries()) {
          await a.enrolled(g, `192.0.2.${i + 1}`);
          await a.addMember(`vpn${i % 4}`, g, `10.${i}.0.0/16`);
        }
        const singly = await Promise.all(names.map((g) => service.delivery.of(g)));
        await service.gateways.update(ADMIN, 'gw0', { address: '198.51.100.1' }); // vpn0 changes
        for (let v = 1; v < 4; v++) await service.epochs.rotate(ADMIN, `vpn${v}`, true); // and the others
        // Count the per-VPN and the many-VPN reads of one batch of every gateway.
        const calls: string[] = [];
        const counted = <T extends object>(tx: T): T =>
          new Proxy(tx, {
            get(target, prop, receiver) {
              const v = Reflect.get(target, prop, receiver) as unknown;
              if (typeof v !== 'function') return v;
              return (...args: unknown[]) => {
                if (/^list(VpnMembers|Spis|Epochs)(Of)?$/.test(String(prop))) calls.push(String(prop));
                return (v as (...x: unknown[]) => unknown).apply(target, args);
              };
            },
          });
        const all = await a.store.read(async (tx) =>
          service.delivery.many(counted(tx), await tx.state(), names, a.clock.now),
        );
        assert.deepEqual(calls.sort(), ['listEpochsOf', 'listSpisOf', 'listVpnMembersOf']);
        for (const [i, g] of names.entries()) {
          const d = all.get(g)!;
          assert.equal(d.vpns[0].name, `vpn${i % 4}`);
          assert.deepEqual(
            d.vpns[0].members.map((m) => m.gateway),
            names.filter((_, j) => j % 4 === i % 4).sort(),
          );
          if (i % 4) assert.equal(d.vpns[0].epochs.length, singly[i].vpns[0].epochs.length + 1, 'the new epoch');
          else assert.equal(d.vpns[0].members.find((m) => m.gateway === 'gw0')?.address, '198.51.100.1');
        }
        // Built once: the next read shares the views.
        calls.length = 0;
        await a.store.read(async (tx) => service.delivery.many(counted(tx), await tx.state(), names, a.clock.now));
        assert.deepEqual(calls, []);
      }));
  });
}

// Group keys by epoch (src/authority/epochs.ts), driven directly over SQLite and PostgreSQL. It
// proves: a rotation reaches every member before its epoch becomes active (the overlap) and the
// previous epoch ends a grace after that; an immediate rotation is active at once and the old
// epoch ends after the urgent grace; every (member, epoch) has its own SPI, unique and at least
// 256; the members hold the same key, each through its own sealed copy that nobody else opens;
// expired epochs go with their sealed keys and SPIs at the next rotation; the scheduler rotates
// exactly the VPNs that are due; keys rest in the database only wrapped; pairwise VPNs have no
// epochs to rotate; a rotation of many VPNs (sealed in worker threads) is one change, whole or not at all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEVER } from '../../src/authority/epochs.js';
import { openDelivery } from '../../src/authority/snapshot.js';
import { failingStore } from './helpers/authority.js';
import {
  addMember,
  addVpn,
  ADMIN,
  refusal,
  version,
  TEST_ROTATION,
  testStores,
  withAuthority,
  type DirectAuthority,
  type DirectGateway,
} from './helpers/direct.js';

/** corp (group) with members gw1 and gw2, enrolled. */
async function corpWithTwoMembers(
  a: DirectAuthority,
  vpn: { rotationPeriodMs?: number } = {},
): Promise<[DirectGateway, DirectGateway]> {
  await addVpn(a.service, 'corp', { ...vpn });
  const gw1 = await a.enrolled('gw1', '192.0.2.1');
  const gw2 = await a.enrolled('gw2', '192.0.2.2');
  await addMember(a.service, 'corp', 'gw1', '10.1.0.0/16');
  await addMember(a.service, 'corp', 'gw2', '10.2.0.0/16');
  return [gw1, gw2];
}

for (const store of await testStores()) {
  describe(`group keys by epoch on ${store.kind}`, { skip: store.skip }, () => {
    it('a rotation is delivered at once and becomes active after the overlap; the previous epoch ends a grace later', () =>
      withAuthority(store, async (a) => {
        const [gw1, gw2] = await corpWithTwoMembers(a);
        const t = a.clock.now;
        assert.deepEqual(await a.service.epochs.rotate(ADMIN, 'corp', false), {
          vpn: 'corp',
          epoch: 2,
          activeFrom: t + TEST_ROTATION.overlapMs,
        });
        const [s1, s2] = [await gw1.snapshot(), await gw2.snapshot()];
        const e = s1.vpns[0].epochs;
        assert.deepEqual(
          e.map((x) => [x.epoch, x.activeFrom, x.expiresAt]),
          [
            [1, t, t + TEST_ROTATION.overlapMs + TEST_ROTATION.graceMs],
            [2, t + TEST_ROTATION.overlapMs, NEVER],
          ],
        );
        assert.notDeepEqual(e[0].key, e[1].key);
        assert.deepEqual(
          s2.vpns[0].epochs.map((x) => x.key),
          e.map((x) => x.key),
          'both members hold the same keys',
        );
        const spis = s1.vpns[0].members.flatMap((m) => m.spis.map((s) => s.spi));
        assert.equal(spis.length, 4, 'one SPI per member and epoch');
        assert.equal(new Set(spis).size, 4);
        assert.ok(spis.every((s) => s >= 256));
        // Each member's copy is sealed to its key alone.
        await assert.rejects(
          openDelivery(await a.service.delivery.of('gw2'), gw1.bundle.privateKey!, { gateway: 'gw2' }),
          /does not open/,
        );
      }));

    it('an immediate rotation is active at once; the previous epoch ends after the urgent grace', () =>
      withAuthority(store, async (a) => {
        const [gw1] = await corpWithTwoMembers(a);
        a.clock.now += 5000;
        const r = await a.service.epochs.rotate(ADMIN, 'corp', true);
        assert.deepEqual(r, { vpn: 'corp', epoch: 2, activeFrom: a.clock.now });
        const e = (await gw1.snapshot()).vpns[0].epochs;
        assert.equal(e[0].expiresAt, a.clock.now + TEST_ROTATION.urgentGraceMs);
      }));

    it('expired epochs are dropped at the next rotation, with their sealed keys and SPIs', () =>
      withAuthority(store, async (a) => {
        const [gw1] = await corpWithTwoMembers(a);
        await a.service.epochs.rotate(ADMIN, 'corp', true);
        a.clock.now += TEST_ROTATION.urgentGraceMs + 1;
        await a.service.epochs.rotate(ADMIN, 'corp', true);
        const rows = await a.store.read(async (tx) => ({
          epochs: await tx.listEpochs(1),
          spis: await tx.listSpis(1),
          sealed: await tx.listSealedKeys('gw1'),
        }));
        assert.deepEqual(
          rows.epochs.map((e) => e.epoch),
          [2, 3],
        );
        assert.ok(rows.spis.every((s) => s.epoch !== 1));
        assert.ok(rows.sealed.every((s) => s.epoch !== 1));
        assert.deepEqual(
          (await gw1.snapshot()).vpns[0].epochs.map((e) => e.epoch),
          [2, 3],
        );
      }));

    it('the scheduler rotates exactly the VPNs that are due and moves their next rotation by the period', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        await addVpn(service, 'hourly', { rotationPeriodMs: 3_600_000 });
        await addVpn(service, 'daily', { rotationPeriodMs: 86_400_000 });
        await addVpn(service, 'on-demand', { rotationPeriodMs: 0 });
        await addVpn(service, 'p2p', { mode: 'pairwise' });
        assert.equal(await service.epochs.runDueRotations(), 0);
        clock.now += 3_600_000;
        assert.equal(await service.epochs.runDueRotations(), 1);
        assert.equal(await service.epochs.runDueRotations(), 0, 'nothing is due twice');
        const vpns = new Map((await service.vpns.list()).map((v) => [v.name, v]));
        assert.deepEqual(
          [...vpns.values()].map((v) => [v.name, v.currentEpoch]),
          [
            ['hourly', 2],
            ['daily', 1],
            ['on-demand', 1],
            ['p2p', null],
          ],
        );
        assert.equal(vpns.get('hourly')!.nextRotationAt, clock.now + 3_600_000);
        const rotations = (await service.admin.audit({ vpn: 'hourly' })).filter((e) => e.action === 'vpn.rotate');
        assert.deepEqual(
          rotations.map((e) => [e.actor, e.detail.reason]),
          [['authority:scheduler', 'scheduled']],
        );
      }));

    it('rotating all rotates every group VPN and no pairwise one; a pairwise or unknown VPN cannot be rotated', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await addVpn(service, 'corp');
        await addVpn(service, 'dept');
        await addVpn(service, 'p2p', { mode: 'pairwise' });
        const rotated = await service.epochs.rotateAll(ADMIN, false);
        assert.deepEqual(
          rotated.map((r) => [r.vpn, r.epoch]),
          [
            ['corp', 2],
            ['dept', 2],
          ],
        );
        assert.deepEqual(await refusal(service.epochs.rotate(ADMIN, 'p2p', false)), [409, 'not-group-vpn']);
        assert.deepEqual(await refusal(service.epochs.rotate(ADMIN, 'nope', false)), [404, 'unknown-vpn']);
      }));

    it('rotating many VPNs is one change: one version, an entry per VPN; a failure half-way leaves every VPN as it was', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        // 60 VPNs of 2 members (once rotated in transactions of 50): 120 seals, made in worker threads.
        const [VPNS, MEMBERS] = [60, 2];
        const gateways: DirectGateway[] = [];
        for (let g = 0; g < MEMBERS; g++) gateways.push(await a.enrolled(`gw${g}`, `192.0.2.${g + 1}`));
        for (let v = 0; v < VPNS; v++) {
          await addVpn(service, `vpn${v}`);
          for (let g = 0; g < MEMBERS; g++) await addMember(service, `vpn${v}`, `gw${g}`, `10.${g}.${v}.0/24`);
        }
        const state = async () => ({
          version: await version(a),
          vpns: await service.vpns.list(),
          audit: await service.admin.audit({ limit: 1000 }),
          sealed: await a.store.read((tx) => tx.listSealedKeysOf(gateways.map((g) => g.name))),
        });
        const before = await state();
        // Another process over the same database whose transactions fail at their end (the audit
        // rows come after every epoch, SPI and sealed key of every VPN), then at the sealed keys.
        for (const op of ['insertAudit', 'insertSealedKeys'] as const) {
          const failing = await a.replica((s) => {
            const f = failingStore(s, op);
            f.arm(true);
            return f.store;
          });
          await assert.rejects(failing.service.epochs.rotateAll(ADMIN, false), new RegExp(`injected failure in ${op}`));
          assert.deepEqual(await state(), before, `nothing written when ${op} fails`);
        }
        const rotated = await service.epochs.rotateAll(ADMIN, false);
        assert.deepEqual(
          rotated.map((r) => [r.vpn, r.epoch]),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, 2]),
        );
        assert.equal(await version(a), before.version + 1, 'one version for the whole rotation');
        const entries = (await service.admin.audit({ limit: 1000 })).filter((e) => e.action === 'vpn.rotate');
        assert.deepEqual(
          entries.map((e) => [e.vpn, e.version, e.detail.epoch, e.detail.members]),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, before.version + 1, 2, MEMBERS]),
        );
        // Every member opens its own copy of each VPN's new key; the members of a VPN agree.
        const keys = new Map<string, string>();
        for (const g of gateways) {
          const snap = await g.snapshot();
          assert.equal(snap.vpns.length, VPNS);
          for (const v of snap.vpns) {
            const key = Buffer.from(v.epochs.find((e) => e.epoch === 2)!.key).toString('hex');
            assert.equal(keys.get(v.name) ?? key, key, `the members of ${v.name} agree`);
            keys.set(v.name, key);
          }
        }
        assert.equal(new Set(keys.values()).size, VPNS, 'a key of its own per VPN');
      }));

    it('group keys rest in the database only wrapped with the key-encryption key', () =>
      withAuthority(store, async (a) => {
        const [gw1] = await corpWithTwoMembers(a);
        await a.service.epochs.rotate(ADMIN, 'corp', false);
        const keys = (await gw1.snapshot()).vpns[0].epochs.map((e) => Buffer.from(e.key));
        const rows = await a.store.read(async (tx) => ({
          epochs: await tx.listEpochs(1),
          sealed: await tx.listSealedKeys('gw1'),
        }));
        const stored = [...rows.epochs.map((e) => e.wrappedKey), ...rows.sealed.flatMap((s) => [s.enc, s.ct])].map(
          (b) => Buffer.from(b),
        );
        for (const key of keys)
          for (const b of stored) assert.equal(b.indexOf(key), -1, 'a clear group key in the database');
      }));
  });
}

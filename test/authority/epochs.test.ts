// Group keys by epoch (src/authority/epochs.ts), driven directly over SQLite and PostgreSQL. It
// proves: a rotation reaches every member before its epoch becomes active (the overlap) and the
// previous epoch ends a grace after that; an immediate rotation is active at once and the old
// epoch ends after the urgent grace; every (member, epoch) has its own SPI, unique and at least
// 256; the members hold the same key, each through its own sealed copy that nobody else opens;
// expired epochs go with their sealed keys and SPIs at the next rotation; the scheduler rotates
// exactly the VPNs that are due; keys rest in the database only wrapped; pairwise VPNs have no
// epochs to rotate; a rotation of many VPNs (sealed in worker threads) of up to ~1,000 seals is one
// change, whole or not at all; a larger one commits change by change, and a failure in a later change
// keeps the earlier ones, says so (rotation-incomplete) and is safe to repeat; the scheduler passes its
// fence in each change and its next run rotates only what is still due.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEVER } from '../../src/authority/epochs.js';
import { ApiError } from '../../src/authority/errors.js';
import { LeaseLost } from '../../src/authority/replicas.js';
import type { MemberPrefixRow } from '../../src/authority/storage/types.js';
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

/**
 * Group VPNs vpn0.. (made in that order) with the same enrolled members gw0.., a /24 each. The
 * memberships are written straight into the store, in one transaction (1,000 of them through the
 * API take seconds), so the members hold no copy of the first epochs, only of the rotations'.
 */
async function manyVpns(
  a: DirectAuthority,
  vpns: number,
  members: number,
  vpn: { rotationPeriodMs?: number } = {},
): Promise<DirectGateway[]> {
  const gateways: DirectGateway[] = [];
  for (let g = 0; g < members; g++) gateways.push(await a.enrolled(`gw${g}`, `192.0.2.${g + 1}`));
  const rows: MemberPrefixRow[] = [];
  for (let v = 0; v < vpns; v++) {
    await addVpn(a.service, `vpn${v}`, vpn);
    const { id } = await a.service.vpns.get(`vpn${v}`);
    for (let g = 0; g < members; g++)
      rows.push({ vpnId: id, gateway: `gw${g}`, prefix: `10.${g}.${v}.0/24`, addedAt: a.clock.now });
  }
  await a.store.write((tx) => tx.insertMemberPrefixes(rows));
  return gateways;
}

/** The audit log's rotations, oldest first: VPN, version, epoch, members. */
async function rotationEntries(a: DirectAuthority): Promise<[string | null, number, unknown, unknown][]> {
  return (await a.service.admin.audit({ action: 'vpn.rotate', limit: 1000 })).map(
    (e) => [e.vpn, e.version, e.detail.epoch, e.detail.members] as [string | null, number, unknown, unknown],
  );
}

/**
 * The members' snapshots hold the VPNs vpn0..vpn<vpns - 1> and of each vpn<v> exactly the live
 * epochs `epochs(v)`, each opened from the member's own sealed copy; the members of a VPN agree on
 * each key, and no two VPNs share one.
 */
async function assertMembersHold(
  gateways: DirectGateway[],
  vpns: number,
  epochs: (v: number) => number[],
): Promise<void> {
  const keys = new Map<string, string>();
  for (const g of gateways) {
    const snapshot = await g.snapshot();
    assert.deepEqual(snapshot.vpns.map((v) => v.name).sort(), Array.from({ length: vpns }, (_, v) => `vpn${v}`).sort());
    for (const v of snapshot.vpns) {
      assert.deepEqual(
        v.epochs.map((e) => e.epoch),
        epochs(Number(v.name.slice(3))),
        `${g.name}'s epochs of ${v.name}`,
      );
      for (const e of v.epochs) {
        const key = Buffer.from(e.key).toString('hex');
        const at = `${v.name} ${e.epoch}`;
        assert.equal(keys.get(at) ?? key, key, `the members of ${v.name} agree on epoch ${e.epoch}`);
        keys.set(at, key);
      }
    }
  }
  assert.equal(new Set(keys.values()).size, keys.size, 'a key of its own per VPN and epoch');
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

    it('a rotation of 60 VPNs (fewer seals than a change takes) is one version, an entry per VPN; a failure injected half-way writes nothing', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        // 60 VPNs of 2 members: 120 seals, made in worker threads, one change.
        const [VPNS, MEMBERS] = [60, 2];
        const gateways = await manyVpns(a, VPNS, MEMBERS);
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
        assert.deepEqual(
          await rotationEntries(a),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, before.version + 1, 2, MEMBERS]),
        );
        await assertMembersHold(gateways, VPNS, () => [2]);
      }));

    it('a rotation of more seals than a change takes commits whole VPNs change by change; a failure in a later change keeps the earlier ones and says so; repeating it completes', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        // 50 VPNs of 21 members: 1,050 seals; a change takes whole VPNs up to 1,000 seals or just
        // past: the first 48 VPNs (1,008 seals), then the last 2.
        const [VPNS, MEMBERS, FIRST] = [50, 21, 48];
        const gateways = await manyVpns(a, VPNS, MEMBERS);
        const before = await version(a);
        // Another process over the same database whose second transaction of the rotation fails at its end.
        let writes: number | undefined;
        const failing = await a.replica((s) => {
          const f = failingStore(s, 'insertAudit');
          return {
            ...f.store,
            write: (fn, o) => {
              if (writes !== undefined && ++writes === 2) f.arm(true);
              return f.store.write(fn, o);
            },
          };
        });
        writes = 0;
        const err = await failing.service.epochs.rotateAll(ADMIN, false).then(
          () => assert.fail('the rotation succeeded'),
          (e: unknown) => e,
        );
        // What the administrator sees (the API sends code and message; the cause goes to the log).
        assert.ok(err instanceof ApiError);
        assert.deepEqual([err.status, err.code], [500, 'rotation-incomplete']);
        assert.equal(
          err.message,
          `rotated ${FIRST} of ${VPNS} VPNs (vpn0 to vpn${FIRST - 1}), then failed: internal error (see the ` +
            'authority log); repeating the rotation is safe',
        );
        assert.match((err.cause as Error).message, /injected failure in insertAudit/);
        // The first change is committed and delivered; the second wrote nothing.
        assert.equal(await version(a), before + 1);
        assert.deepEqual(
          (await service.vpns.list()).map((v) => [v.name, v.currentEpoch]),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, v < FIRST ? 2 : 1]),
        );
        assert.deepEqual(
          await rotationEntries(a),
          Array.from({ length: FIRST }, (_, v) => [`vpn${v}`, before + 1, 2, MEMBERS]),
        );
        // Its first and last members (each snapshot opens 50 VPNs' keys).
        const sample = [gateways[0], gateways[MEMBERS - 1]];
        await assertMembersHold(sample, VPNS, (v) => (v < FIRST ? [2] : []));

        // Repeated: every VPN rotates, the first 48 once more, in two changes.
        const rotated = await service.epochs.rotateAll(ADMIN, false);
        assert.deepEqual(
          rotated.map((r) => [r.vpn, r.epoch]),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, v < FIRST ? 3 : 2]),
        );
        assert.equal(await version(a), before + 3);
        assert.deepEqual(
          (await rotationEntries(a)).slice(FIRST),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, before + (v < FIRST ? 2 : 3), v < FIRST ? 3 : 2, MEMBERS]),
        );
        await assertMembersHold(sample, VPNS, (v) => (v < FIRST ? [2, 3] : [2]));
      }));

    it('the scheduler passes the fence in each change of a long rotation; when it fails after the first, the next run rotates only what is still due', () =>
      withAuthority(store, async (a) => {
        const { service, clock } = a;
        const [VPNS, MEMBERS, FIRST] = [50, 21, 48];
        await manyVpns(a, VPNS, MEMBERS, { rotationPeriodMs: 3_600_000 });
        clock.now += 3_600_000;
        // The jobs lease is lost while the first change commits: the second one's fence refuses.
        let fences = 0;
        const err = await service.epochs
          .runDueRotations({
            fence: async () => {
              if (++fences === 2) throw new LeaseLost('other-replica');
            },
          })
          .then(
            () => assert.fail('the rotation succeeded'),
            (e: unknown) => e,
          );
        assert.ok(err instanceof ApiError);
        assert.deepEqual([err.status, err.code, fences], [409, 'rotation-incomplete', 2]);
        assert.match(err.message, /^rotated 48 of 50 VPNs .* then failed: this replica no longer holds the jobs lease/);
        fences = 0;
        const fence = async (): Promise<void> => void fences++;
        assert.equal(await service.epochs.runDueRotations({ fence }), VPNS - FIRST);
        assert.equal(fences, 1, 'the two VPNs still due in one change');
        assert.equal(await service.epochs.runDueRotations({ fence }), 0);
        assert.deepEqual(
          (await service.vpns.list()).map((v) => [v.name, v.currentEpoch, v.nextRotationAt]),
          Array.from({ length: VPNS }, (_, v) => [`vpn${v}`, 2, clock.now + 3_600_000]),
        );
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

// The gateways' change stream (src/authority/change-stream.ts), driven directly over SQLite and
// PostgreSQL. It proves: a gateway behind the authority gets an answer at once, with its current
// delivery and the events since its cursor (at most 500, saying so); one that is up to date waits,
// and a change wakes exactly the gateways it concerns (a directory change: all of them); a first
// sync or a cursor ahead of the authority (a restored database) gets the whole state and no
// events; a gateway that is not active is refused; stopping ends every wait; and on PostgreSQL a
// change committed through another replica wakes a gateway waiting on this one, at once by its
// notification, and within a second by version when the notification is lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewayChanges } from '../../src/authority/wire.js';
import { ADMIN, refusal, testStores, version, withAuthority, type DirectAuthority } from './helpers/direct.js';

/** corp with gw1 and gw2, dept with gw3; all enrolled. */
async function twoVpns(a: DirectAuthority): Promise<void> {
  await a.addVpn('corp');
  await a.addVpn('dept');
  for (const [vpn, gw, prefix] of [
    ['corp', 'gw1', '10.1.0.0/16'],
    ['corp', 'gw2', '10.4.0.0/16'],
    ['dept', 'gw3', '10.6.0.0/16'],
  ]) {
    await a.enrolled(gw, `192.0.2.${gw.slice(2)}`);
    await a.addMember(vpn, gw, prefix);
  }
}

/**
 * gw1 waits on `waiter`'s change stream from the current version while `changer` (another replica)
 * rotates corp's key: the answer, and how long after the rotation it came.
 */
async function rotationSeenBy(
  waiter: DirectAuthority,
  changer: DirectAuthority,
): Promise<{ c: GatewayChanges; wokenAfterMs: number }> {
  const waiting = waiter.service.changeStream.changes('gw1', await version(changer), 10_000);
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  await changer.service.epochs.rotate(ADMIN, 'corp', false);
  const c = await waiting;
  return { c, wokenAfterMs: Date.now() - t0 };
}

/** A replica of `a` whose store never reports other processes' commits (NOTIFY lost, listener down). */
function deafReplica(a: DirectAuthority): Promise<DirectAuthority> {
  return a.replica((s) => ({
    kind: s.kind,
    write: (fn, hint) => s.write(fn, hint),
    read: (fn) => s.read(fn),
    onRemoteChange: () => undefined,
    schemaVersion: () => s.schemaVersion(),
    close: () => s.close(),
  }));
}

for (const store of await testStores()) {
  describe(`the change stream on ${store.kind}`, { skip: store.skip }, () => {
    it('answers at once with the delivery and the events since the cursor; an up-to-date cursor gets "unchanged"', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await twoVpns(a);
        const first = await service.changeStream.changes('gw1', 0, 0);
        assert.ok(first.changed);
        assert.deepEqual(
          [first.reset, first.events, first.version, first.delivery?.gateway],
          [false, [], await version(a), 'gw1'],
          'a first sync: the whole state, no events',
        );
        await service.epochs.rotate(ADMIN, 'corp', false);
        await service.vpns.updateMembership(ADMIN, 'corp', 'gw2', { add: ['10.44.0.0/16'] });
        await service.vpns.updateMembership(ADMIN, 'dept', 'gw3', { add: ['10.66.0.0/16'] });
        const next = await service.changeStream.changes('gw1', first.version, 0);
        assert.deepEqual(
          next.events.map((e) => [e.action, e.vpn]),
          [
            ['vpn.rotate', 'corp'],
            ['member.update', 'corp'],
            ['directory.change', null],
            ['directory.change', null],
          ],
          "its VPN's changes and the directory's, not dept's own",
        );
        assert.deepEqual(
          next.delivery?.vpns[0].epochs.map((e) => e.epoch),
          [1, 2],
        );
        assert.deepEqual(await service.changeStream.changes('gw1', next.version, 0), {
          version: next.version,
          changed: false,
          reset: false,
          events: [],
          eventsTruncated: false,
        });
      }));

    it('a waiting gateway is woken by a change that concerns it, and only by such a change', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await twoVpns(a);
        const v = await version(a);
        const t0 = Date.now();
        const member = service.changeStream.changes('gw1', v, 10_000);
        const outsider = service.changeStream.changes('gw3', v, 500);
        await new Promise((r) => setTimeout(r, 50));
        await service.epochs.rotate(ADMIN, 'corp', false);
        const woken = await member;
        assert.ok(woken.changed && Date.now() - t0 < 5000);
        assert.deepEqual(
          woken.events.map((e) => e.action),
          ['vpn.rotate'],
        );
        assert.equal((await outsider).changed, false, 'a gateway outside the VPN hears nothing');
      }));

    it('a change of the directory wakes every gateway', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await twoVpns(a);
        const v = await version(a);
        const waits = ['gw1', 'gw2', 'gw3'].map((g) => service.changeStream.changes(g, v, 10_000));
        await new Promise((r) => setTimeout(r, 50));
        await service.prefixDirectory.add(ADMIN, '172.16.0.0/12', 'future site');
        for (const c of await Promise.all(waits)) {
          assert.ok(c.changed);
          assert.deepEqual(
            c.events.map((e) => e.action),
            ['directory.add'],
          );
        }
      }));

    it('a cursor ahead of the authority (a restored database) gets the whole state again', () =>
      withAuthority(store, async (a) => {
        await twoVpns(a);
        const c = await a.service.changeStream.changes('gw1', (await version(a)) + 1000, 0);
        assert.deepEqual(
          [c.changed, c.reset, c.events, c.delivery?.vpns.map((v) => v.name)],
          [true, true, [], ['corp']],
        );
      }));

    it('events stop at 500 and say so; the delivery is whole anyway', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.enrolled('gw1', '192.0.2.1');
        const since = await version(a);
        for (let k = 0; k < 501; k++)
          await service.gateways.update(ADMIN, 'gw1', { address: `192.0.2.${k % 2 ? 1 : 101}` });
        const c = await service.changeStream.changes('gw1', since, 0);
        assert.deepEqual([c.events.length, c.eventsTruncated, c.version], [500, true, await version(a)]);
        assert.equal(c.events[0].version, since + 1, 'the oldest first');
      }));

    it('a pending or revoked gateway is refused', () =>
      withAuthority(store, async (a) => {
        const { service } = a;
        await a.enrolled('gw1', '192.0.2.1');
        await a.addPendingGateway('gw2', '192.0.2.2');
        assert.deepEqual(await refusal(service.changeStream.changes('gw2', 0, 0)), [403, 'gateway-revoked']);
        await service.gateways.revoke(ADMIN, 'gw1', {});
        assert.deepEqual(await refusal(service.changeStream.changes('gw1', 0, 0)), [403, 'gateway-revoked']);
      }));

    it('stopping the authority ends every waiting stream with "unchanged"', () =>
      withAuthority(store, async (a) => {
        await twoVpns(a);
        const v = await version(a);
        const t0 = Date.now();
        const waits = ['gw1', 'gw3'].map((g) => a.service.changeStream.changes(g, v, 30_000));
        await new Promise((r) => setTimeout(r, 50));
        await a.service.stop();
        for (const c of await Promise.all(waits)) assert.equal(c.changed, false);
        assert.ok(Date.now() - t0 < 5000, 'at once, not after the wait');
        assert.equal((await a.service.changeStream.changes('gw1', v, 30_000)).changed, false, 'and no new wait starts');
      }));

    // Replicas share a PostgreSQL database; SQLite has a single authority process.
    if (store.kind === 'postgres') {
      it('a change committed through another replica wakes a gateway waiting on this one', () =>
        withAuthority(store, async (a) => {
          await twoVpns(a);
          const { c, wokenAfterMs } = await rotationSeenBy(a, await a.replica());
          assert.ok(c.changed);
          assert.ok(wokenAfterMs < 2000, `woken after ${wokenAfterMs} ms`);
          assert.deepEqual(
            c.delivery?.vpns[0].epochs.map((e) => e.epoch),
            [1, 2],
          );
        }));

      it('a lost notification is not a lost change: a replica that hears none finds the change by version', () =>
        withAuthority(store, async (a) => {
          await twoVpns(a);
          const deaf = await deafReplica(a);
          const { c, wokenAfterMs } = await rotationSeenBy(deaf, a);
          assert.ok(c.changed, 'woken');
          assert.ok(wokenAfterMs < 1000, `by the version poll, after ${wokenAfterMs} ms`);
          assert.ok(c.delivery?.vpns[0].epochs.some((e) => e.epoch === 2));
        }));

      it("another replica's changes wake each gateway with the version it changed at, not the newest", () =>
        withAuthority(store, async (a) => {
          await twoVpns(a);
          // Deaf: its version poll finds both changes below at once.
          const deaf = await deafReplica(a);
          const woken = new Map<string, number>();
          let newest = 0;
          deaf.service.changeStream.onWake((target, v) => {
            newest = Math.max(newest, v);
            if (target !== 'all') for (const g of target) woken.set(g, v);
          });
          await a.service.epochs.rotate(ADMIN, 'corp', false);
          const corp = await version(a);
          await a.service.epochs.rotate(ADMIN, 'dept', false);
          const dept = await version(a);
          for (const t0 = Date.now(); newest < dept; await new Promise((r) => setTimeout(r, 50)))
            assert.ok(Date.now() - t0 < 5000, 'the version poll found the changes');
          // (A gateway woken for the newest version after a DELIVER of its own change would fetch for nothing.)
          assert.deepEqual(Object.fromEntries(woken), { gw1: corp, gw2: corp, gw3: dept });
        }));
    }
  });
}

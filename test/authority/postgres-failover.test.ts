// The authority's database fails over: a PostgreSQL primary with a synchronous streaming standby
// (Debian's PostgreSQL, started here), two authority replicas (separate `kasane authority serve`
// processes) on a multi-host URL with target_session_attrs=read-write, gateways following them.
// Administrators keep changing the authority through both replicas while the primary is killed
// (kill -9 of all its processes) and the standby promoted. It proves: while no primary exists the
// replicas answer 503 database-unavailable (or the client reports a change it cannot confirm),
// never anything else; after the promotion both replicas serve again without a restart, and so do
// their change streams (a rotation reaches every gateway); and no change that was acknowledged is
// lost — changes commit synchronously on the standby.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startPostgresPair, type PgPair } from '../../scripts/temp-postgres.js';
import {
  DirectoryWriters,
  FollowingGateway,
  fullAudit,
  ReplicaSet,
  rotateThroughEach,
  sleep,
  until,
} from './helpers/replicas.js';

const started = await startPostgresPair();
if (!started.ok && process.env.CI === 'true')
  throw new Error(
    `CI=true and a PostgreSQL primary and standby could not be started: ${started.ok ? '' : started.reason}`,
  );
const pair: PgPair | undefined = started.ok ? started.pair : undefined;
after(() => pair?.stop());

describe(
  'PostgreSQL failover under two authority replicas',
  { skip: pair ? false : `PostgreSQL tests skipped: ${started.ok ? '' : started.reason}` },
  () => {
    it('primary killed, standby promoted: replicas and gateways recover without a restart; no acknowledged change is lost', async (t) => {
      const set = await ReplicaSet.create({ database: await pair!.createDatabase(), replicas: 2, leaseMs: 2000 });
      const gateways: FollowingGateway[] = [];
      try {
        const [a, b] = set.replicas;
        await a.admin.createVpn({ name: 'corp', id: 1 });
        for (let g = 0; g < 4; g++) {
          const gw = await set.gateway(`f${g}`, `192.0.2.${g + 1}`, g % 2);
          await set.replicas[g % 2].admin.addMember('corp', gw.name, [`10.${g}.0.0/16`]);
          const f = new FollowingGateway(
            gw.name,
            join(set.base, 'gw', gw.name),
            g % 2 ? [b.url, a.url] : [a.url, b.url],
          );
          await f.start();
          gateways.push(f);
        }
        const pids = set.replicas.map((r) => set.pidOf(r.index));

        // Two administrators keep adding directory entries, one through each replica.
        const writers = new DirectoryWriters(set, [0, 1], { pauseAfterFailureMs: 100 });
        const { acked, ackedAt, failures } = writers;
        await until(() => acked.length >= 20, 'twenty acknowledged changes');

        pair!.killPrimary();
        const killedAt = Date.now();
        await sleep(1500); // the operator notices
        await pair!.promoteStandby();
        const promotedAt = Date.now();
        const ackedBefore = acked.length;
        const byWriter = (w: number) => acked.slice(ackedBefore).filter((p) => p.startsWith(`172.${16 + w}.`)).length;
        await until(
          () => byWriter(0) >= 5 && byWriter(1) >= 5,
          'both replicas acknowledge changes again',
          60_000,
        ).catch((e: Error) => {
          throw new Error(
            `${e.message}; refusals ${JSON.stringify([...failures])}; replicas said: ${set.replicas.map((r) => r.stderr.slice(-3000)).join('\n---\n')}`,
          );
        });
        const recoveredAt = ackedAt[ackedBefore];
        await writers.stop();
        t.diagnostic(
          `${ackedBefore} changes acknowledged before the kill; the first after it ${recoveredAt - promotedAt} ms after the promotion; refusals meanwhile: ${JSON.stringify([...failures])}`,
        );

        for (const kind of failures.keys())
          assert.ok(
            kind === '503 database-unavailable' || kind === 'unreachable',
            `only clean refusals during the outage, got ${kind}`,
          );
        assert.ok(failures.size > 0, 'the outage was seen');
        assert.deepEqual(
          set.replicas.map((r) => set.pidOf(r.index)),
          pids,
          'the replicas were not restarted',
        );

        // No acknowledged change is lost: each is in the promoted database, with its audit entry.
        const entries = new Set((await a.admin.directory()).entries.map((e) => e.prefix));
        assert.deepEqual(
          acked.filter((p) => !entries.has(p)),
          [],
          'every acknowledged change survived the failover',
        );
        const audited = new Set(
          (await fullAudit(b.admin))
            .filter((e) => e.action === 'directory.add')
            .map((e) => (e.detail as { prefix: string }).prefix),
        );
        assert.deepEqual(
          acked.filter((p) => !audited.has(p)),
          [],
          'and its audit entry',
        );

        // The change streams work again on both replicas: a rotation through each reaches every gateway.
        await rotateThroughEach(set, gateways, 'corp');
        const listed = await a.admin.replicas();
        assert.deepEqual(listed.filter((x) => x.alive).length, 2, 'both replicas heartbeat again');
        assert.equal(listed.filter((x) => x.runsJobs).length, 1, 'one of them runs the jobs');
        assert.ok(killedAt < promotedAt);
      } finally {
        for (const g of gateways) await g.stop();
        await set.close();
      }
    });
  },
);

// The database ends the authority's sessions under it (PostgreSQL error 57P01 admin_shutdown, what
// `pg_terminate_backend`, a pooler or a restarting server does): two replicas (separate `kasane
// authority serve` processes) on a real PostgreSQL server, gateways following them, administrators
// changing the authority through both, while every session of the database is terminated again and
// again — the pools' connections in the middle of requests and each replica's LISTEN connection.
// It proves: the replicas survive (same processes), a failing request gets a clean 503
// database-unavailable and nothing else, every acknowledged change is kept, and afterwards each
// replica listens again and its gateways receive a change made through either replica.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { postgresForTests } from './helpers/postgres.js';
import { DirectoryWriters, FollowingGateway, ReplicaSet, rotateThroughEach, sleep, until } from './helpers/replicas.js';

const server = await postgresForTests();
/** Rounds of terminating every session, and the pause between two: ~3 s of sessions ending under the replicas. */
const ROUNDS = 150;
const PAUSE_MS = 15;
after(() => server.server?.stop());

/** Terminates every other session of the database; returns how many. */
async function terminateAll(admin: pg.Client): Promise<number> {
  const r = await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
  return r.rowCount ?? 0;
}

describe('PostgreSQL sessions terminated under two authority replicas', { skip: server.skip ?? false }, () => {
  it('replicas survive 57P01: clean 503s, nothing lost, LISTEN and the change streams come back', async (t) => {
    const database = await server.server!.createDatabase();
    const set = await ReplicaSet.create({ database, replicas: 2, leaseMs: 2000 });
    const admin = new pg.Client({ connectionString: database });
    const gateways: FollowingGateway[] = [];
    let writers: DirectoryWriters | undefined;
    try {
      await admin.connect();
      const [a, b] = set.replicas;
      await a.admin.createVpn({ name: 'corp', id: 1 });
      for (let g = 0; g < 4; g++) {
        const gw = await set.gateway(`t${g}`, `192.0.2.${g + 1}`, g % 2);
        await set.replicas[g % 2].admin.addMember('corp', gw.name, [`10.${g}.0.0/16`]);
        const f = new FollowingGateway(gw.name, join(set.base, 'gw', gw.name), g % 2 ? [b.url, a.url] : [a.url, b.url]);
        await f.start();
        gateways.push(f);
      }
      const pids = set.replicas.map((r) => set.pidOf(r.index));

      writers = new DirectoryWriters(set, [0, 1]);
      const { acked, failures } = writers;
      await until(() => acked.length >= 10, 'ten acknowledged changes');
      let terminated = 0;
      for (let i = 0; i < ROUNDS; i++) {
        terminated += await terminateAll(admin);
        await sleep(PAUSE_MS);
      }
      const ackedBefore = acked.length;
      await until(() => acked.length >= ackedBefore + 10, 'changes acknowledged again', 30_000).catch((e: Error) => {
        throw new Error(
          `${e.message}; replicas said: ${set.replicas.map((r) => r.stderr.slice(-3000)).join('\n---\n')}`,
        );
      });
      await writers.stop();
      t.diagnostic(`${terminated} sessions terminated; refusals meanwhile: ${JSON.stringify([...failures])}`);

      assert.deepEqual(
        set.replicas.map((r) => [set.pidOf(r.index), r.child?.exitCode ?? null]),
        pids.map((p) => [p, null]),
        `the replicas survived: ${set.replicas.map((r) => r.stderr.slice(-2000)).join('\n---\n')}`,
      );
      for (const kind of failures.keys())
        assert.equal(kind, '503 database-unavailable', 'only clean refusals while sessions are terminated');
      const entries = new Set((await a.admin.directory()).entries.map((e) => e.prefix));
      assert.deepEqual(
        acked.filter((p) => !entries.has(p)),
        [],
        'every acknowledged change is kept',
      );

      // Each replica listens again (its LISTEN connection came back)...
      await until(
        async () =>
          Number(
            (
              await admin.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
              )
            ).rows[0].n,
          ) >= 2,
        'both replicas listening again',
        15_000,
      );
      // ...and a change through either reaches every gateway, wherever it is connected.
      await rotateThroughEach(set, gateways, 'corp');
    } finally {
      await writers?.stop();
      for (const g of gateways) await g.stop();
      await admin.end().catch(() => undefined);
      await set.close();
    }
  });
});

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
import { AuthorityApiError, AuthorityUnreachableError } from '../../src/authority/client.js';
import { postgresForTests } from './helpers/postgres.js';
import { FollowingGateway, ReplicaSet, sleep, until } from './helpers/replicas.js';

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
    let stop = false;
    let writers: Promise<void>[] = [];
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

      const acked: string[] = [];
      const failures = new Map<string, number>();
      const writer = async (w: number): Promise<void> => {
        for (let k = 0; !stop; k++) {
          const prefix = `172.${16 + w}.${(k >> 8) & 255}.${k & 255}/32`;
          try {
            await set.replicas[w].admin.addDirectory(prefix, `writer ${w}`);
            acked.push(prefix);
          } catch (e) {
            const kind =
              e instanceof AuthorityApiError
                ? `${e.status} ${e.code}`
                : e instanceof AuthorityUnreachableError
                  ? 'unreachable'
                  : `other: ${(e as Error).message}`;
            failures.set(kind, (failures.get(kind) ?? 0) + 1);
          }
        }
      };
      writers = [writer(0), writer(1)];
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
      stop = true;
      await Promise.all(writers);
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
      for (const r of set.replicas) {
        const rotated = await r.admin.rotateVpn('corp');
        await until(
          () => gateways.every((g) => g.epochs('corp').includes(rotated.epoch)),
          `epoch ${rotated.epoch} at every gateway`,
          15_000,
        );
      }
    } finally {
      stop = true;
      await Promise.all(writers);
      for (const g of gateways) await g.stop();
      await admin.end().catch(() => undefined);
      await set.close();
    }
  });
});

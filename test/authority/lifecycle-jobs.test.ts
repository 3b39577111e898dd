// The running authority's periodic jobs (startJobs and authorityJobs in src/authority/lifecycle.ts).
// It proves: a job runs at its interval and never overlaps itself, however slow a run; a failing
// run is logged and the job runs again at its next time; a job that keeps failing (the heartbeat
// while the database is down) logs its first failure, then a line per interval with the count,
// and once when it works again; once stopped, no run starts; and an
// authority's jobs are its due rotations and its CRL refresh, which do their work over the store
// (on SQLite and PostgreSQL) when their timers fire; between replicas (PostgreSQL) the federation's
// rounds (exchanges with peers, permit renewals) run on the holder of the jobs lease only, and move
// with the lease.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { authorityJobs, startJobs } from '../../src/authority/lifecycle.js';
import { x509 } from '../../src/pki/x509.js';
import { addVpn, testStores, withAuthority } from './helpers/direct.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` holds (timers on a loaded machine may be late: a generous deadline). */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

describe('periodic jobs', () => {
  it('a job runs at its interval and never overlaps itself, however slow a run', async () => {
    let runs = 0;
    let running = 0;
    let most = 0;
    const stop = startJobs([
      {
        name: 'slow',
        everyMs: 5,
        run: async () => {
          runs++;
          most = Math.max(most, ++running);
          await sleep(40);
          running--;
        },
      },
    ]);
    try {
      await until(() => runs >= 3, 'three runs');
    } finally {
      stop();
    }
    assert.equal(most, 1);
  });

  it('a failing run is logged, and the job runs again at its next time', async () => {
    const lines: { level: number; msg: string; err?: { message: string } }[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    let runs = 0;
    const stop = startJobs(
      [
        {
          name: 'flaky job',
          everyMs: 5,
          run: async () => {
            if (++runs === 1) throw new Error('the store is away');
          },
        },
      ],
      log,
    );
    try {
      await until(() => lines.length >= 2, 'a second run');
    } finally {
      stop();
    }
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.err?.message]),
      [
        [50, 'flaky job failed', 'the store is away'],
        [30, 'flaky job works again', undefined],
      ],
    );
  });

  it('a job that keeps failing logs its first failure, then a line per interval with the count, then its recovery', async () => {
    const lines: { level: number; msg: string; failures?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    let failures = 0;
    let down = true;
    const stop = startJobs(
      [
        {
          name: 'heartbeat',
          everyMs: 2,
          run: async () => {
            if (!down) return;
            failures++;
            throw new Error('the database is away');
          },
        },
      ],
      log,
      { failingLogMs: 100 },
    );
    const started = Date.now();
    try {
      await until(() => failures >= 60, 'sixty failures');
      await sleep(150);
      down = false;
      await until(() => lines.some((l) => l.msg === 'heartbeat works again'), 'the recovery');
    } finally {
      stop();
    }
    const elapsed = Date.now() - started;
    const [first, ...rest] = lines;
    const last = rest.pop()!;
    assert.deepEqual([first.level, first.msg], [50, 'heartbeat failed']);
    assert.deepEqual([last.level, last.msg, last.failures], [30, 'heartbeat works again', failures]);
    assert.ok(rest.length >= 1, 'a reminder while it keeps failing');
    assert.ok(rest.every((l) => l.level === 50 && l.msg === 'heartbeat still failing'));
    // At most one line per interval, and no failure counted twice.
    assert.ok(rest.length <= elapsed / 100 + 1, `${rest.length} lines in ${elapsed} ms`);
    assert.ok(rest.reduce((n, l) => n + l.failures!, 1) <= failures);
  });

  it('once stopped, no run starts', async () => {
    let runs = 0;
    const stop = startJobs([{ name: 'counted', everyMs: 5, run: async () => void runs++ }]);
    await until(() => runs >= 1, 'a run');
    stop();
    const after = runs;
    await sleep(50);
    assert.equal(runs, after);
  });
});

for (const store of await testStores()) {
  describe(`an authority's jobs on ${store.kind}`, { skip: store.skip }, () => {
    it('are the heartbeat, the due rotations (on the holder of the jobs lease), the CRL refresh and deleting ended console sessions', () =>
      withAuthority(store, async ({ service, clock }) => {
        const jobs = authorityJobs(service, 1000);
        assert.deepEqual(
          jobs.map((j) => [j.name, j.everyMs, j.when !== undefined]),
          [
            ['heartbeat', 2000, false],
            ['scheduled rotation', 1000, true],
            ['CRL refresh', 12 * 3_600_000, false],
            ['ended console sessions', 10 * 60_000, false],
          ],
        );
        await addVpn(service, 'hourly', { rotationPeriodMs: 3_600_000 });
        clock.now += 3_600_000;
        assert.equal(jobs[1].when!(), false, 'not before the heartbeat took the jobs lease');
        await assert.rejects(jobs[1].run(), { code: 'lease-lost' }, 'and a run without the lease commits nothing');
        assert.equal((await service.vpns.get('hourly')).currentEpoch, 1);
        await jobs[0].run();
        assert.equal(jobs[1].when!(), true);
        assert.equal(await jobs[1].run(), 1);
        assert.equal((await service.vpns.get('hourly')).currentEpoch, 2);
        const heard: string[] = [];
        service.certificates.onCrlChange((c) => heard.push(c.issuing));
        clock.now += 86_400_000;
        await jobs[2].run();
        assert.equal(heard.length, 1);
        assert.equal(
          new x509.X509Crl(heard[0]).nextUpdate?.getTime(),
          Math.floor(clock.now / 1000) * 1000 + 7 * 86_400_000,
          're-signed now, valid a week',
        );
      }));

    it('rotate a due VPN when their timer fires', () =>
      withAuthority(store, async ({ service, clock }) => {
        await addVpn(service, 'hourly', { rotationPeriodMs: 3_600_000 });
        clock.now += 3_600_000;
        await service.replicas.beat();
        const stop = startJobs(authorityJobs(service, 10));
        try {
          const deadline = Date.now() + 10_000;
          while ((await service.vpns.get('hourly')).currentEpoch !== 2) {
            if (Date.now() > deadline) throw new Error('the scheduled rotation did not run');
            await sleep(10);
          }
        } finally {
          stop();
        }
        const rotations = (await service.admin.audit({ vpn: 'hourly' })).filter((e) => e.action === 'vpn.rotate');
        assert.deepEqual(
          rotations.map((e) => e.actor),
          ['authority:scheduler'],
          'once, by the scheduler',
        );
      }));

    if (store.kind === 'postgres') {
      it("run the federation's rounds on the holder of the jobs lease only; they move with the lease", () =>
        withAuthority(
          store,
          async (a) => {
            const b = await a.replica();
            const rounds = { a: 0, b: 0 };
            a.service.federation!.syncAll = async () => void rounds.a++;
            b.service.federation!.syncAll = async () => void rounds.b++;
            await a.service.replicas.beat();
            await b.service.replicas.beat();
            assert.deepEqual(
              [a.service.replicas.holdsJobs, b.service.replicas.holdsJobs],
              [true, false],
              'the first to beat holds the lease',
            );
            await until(() => rounds.a === 1, 'a round as the holder took the lease');
            for (const r of [a, b]) r.service.federation!.kick(0);
            await until(() => rounds.a === 2, 'a round asked of the holder');
            await sleep(100);
            assert.equal(rounds.b, 0, 'none on the other replica');
            // The holder stops: it hands the lease back; the other takes it at its next heartbeat.
            await a.service.replicas.stop();
            await b.service.replicas.beat();
            assert.equal(b.service.replicas.holdsJobs, true);
            await until(() => rounds.b === 1, 'a round on the new holder');
          },
          { federation: true },
        ));
    }
  });
}

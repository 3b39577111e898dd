// Active/active replicas of one authority on one PostgreSQL database, as separate `kasane authority
// serve` processes made with `kasane authority replica`, with gateways following the change stream
// through the gateway's own code, each starting at its own replica and knowing all of them. It proves:
//
// - three replicas: a change made through any replica reaches the gateways on every replica within
//   a second;
// - 50 administrators (50 tokens) changing memberships at once through different replicas: every
//   answer is a success or a clean refusal, the overlap rules hold at every step of the audit log,
//   and the audit log replayed gives exactly the memberships the store holds;
// - kill -9 of a replica (the one running a rotation of 100 VPNs, and the jobs' lease holder):
//   the rotation, one change, is made whole or not at all; it completes when the administrator
//   repeats it through the surviving replicas (the
//   CLI with every replica's URL, the dead one first); every gateway converges on one epoch and one
//   key per VPN; no epoch is made twice; the audit log matches the state; the gateways of the
//   killed replica move to another and miss no event; a scheduled rotation due while its holder
//   was dead happens once, on a survivor;
// - two replicas behind one name with two addresses: gateways and the CLI use the name, move to the
//   other address when one replica dies, and miss nothing;
// - SQLite stays one process: `authority replica` and a second `serve` are refused, saying why.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Prefix } from '../../src/base/addr.js';
import { AuthorityApiError, AuthorityClient, type AuditEntry } from '../../src/authority/client.js';
import { initAuthority, startAuthority } from '../../src/authority/lifecycle.js';
import { postgresForTests } from './helpers/postgres.js';
import { FollowingGateway, fullAudit, kasane, ReplicaSet, until } from './helpers/replicas.js';

const pg = await postgresForTests();
after(() => pg.server?.stop());

const GATEWAYS = 24;
const VPNS = 100;
/** VPN v's members: three gateways, which follow three different replicas (gateway g starts at replica g % 3). */
const membersOf = (v: number): number[] => [v % GATEWAYS, (v + 5) % GATEWAYS, (v + 10) % GATEWAYS];
const gwName = (g: number): string => `gw${g}`;
const vpnName = (v: number): string => `vpn${v}`;

/** Runs `fn` over items with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

describe('three replicas of one authority', { skip: pg.skip }, () => {
  let set: ReplicaSet;
  const gateways: FollowingGateway[] = [];

  before(async () => {
    // The second replica listens on IPv6: gateways and administrators reach it at https://[::1]:port.
    set = await ReplicaSet.create({
      database: await pg.server!.createDatabase(),
      replicas: 3,
      hosts: ['127.0.0.1', '::1', '127.0.0.1'],
      leaseMs: 2000,
      rotation: { overlapMs: 60_000 },
    });
    const admins = set.replicas.map((r) => r.admin);
    await pool(
      Array.from({ length: GATEWAYS }, (_, g) => g),
      6,
      async (g) => void (await set.gateway(gwName(g), `192.0.2.${g + 1}`, g % 3)),
    );
    await pool(
      Array.from({ length: VPNS }, (_, v) => v),
      6,
      async (v) => {
        await admins[v % 3].createVpn({ name: vpnName(v), id: v + 1, rotationPeriodMs: 0 });
        for (const g of membersOf(v)) await admins[(v + g) % 3].addMember(vpnName(v), gwName(g), [`10.${g}.0.0/16`]);
      },
    );
    for (let g = 0; g < GATEWAYS; g++) {
      // Gateway g starts at replica g % 3 and knows the others.
      const urls = [0, 1, 2].map((k) => set.replicas[(g + k) % 3].url);
      const f = new FollowingGateway(gwName(g), join(set.base, 'gw', gwName(g)), urls);
      await f.start();
      gateways.push(f);
    }
  });

  after(async () => {
    for (const g of gateways) await g.stop();
    await set?.close();
  });

  it('a change made through any replica reaches the gateways on every replica within a second', async (t) => {
    const listed = (await set.replicas[0].admin.replicas()).map((r) => r.url).sort();
    assert.deepEqual(listed, [...set.urls].sort(), 'the replica list names each by its URL, the IPv6 one in brackets');
    assert.match(set.urls[1], /^https:\/\/\[::1\]:\d+$/);
    for (const [i, r] of set.replicas.entries()) {
      const prefix = `172.${20 + 2 * i}.0.0/16`; // not halves of one /15: the directory would merge those
      const t0 = Date.now();
      await r.admin.addDirectory(prefix, `through replica ${i}`);
      const committed = Date.now();
      const seenAt: number[] = [];
      await until(() => {
        gateways.forEach((g, k) => {
          if (seenAt[k] === undefined && g.snapshot?.protectedPrefixes.some((p) => p.toString() === prefix))
            seenAt[k] = Date.now();
        });
        return seenAt.filter((x) => x !== undefined).length === GATEWAYS;
      }, `every gateway has ${prefix}`);
      const slowest = Math.max(...seenAt) - t0;
      t.diagnostic(
        `directory change through replica ${i}: committed after ${committed - t0} ms, seen by the gateways after ${seenAt
          .map((x) => x - t0)
          .sort((a, b) => a - b)
          .join(' ')} ms`,
      );
      assert.ok(slowest < 1000, `a directory change through replica ${i} reached the last gateway after ${slowest} ms`);

      // A VPN's members sit on all three replicas: a rotation through replica i reaches each.
      const v = 10 + i;
      const t1 = Date.now();
      const rotated = await r.admin.rotateVpn(vpnName(v));
      const members = membersOf(v).map((g) => gateways[g]);
      assert.deepEqual(
        new Set(members.map((g) => g.link.client.url.port)).size,
        3,
        'the members follow three different replicas',
      );
      await until(
        () => members.every((g) => g.epochs(vpnName(v)).includes(rotated.epoch)),
        `every member of ${vpnName(v)} holds epoch ${rotated.epoch}`,
      );
      assert.ok(
        Date.now() - t1 < 1000 + 200,
        `rotation through replica ${i} reached its members after ${Date.now() - t1} ms`,
      );
    }
  });

  it('50 administrators changing IPv4 and IPv6 memberships at once through different replicas keep the store consistent; every refusal is clean', async () => {
    const RACE_VPNS = 10;
    const RACE_GWS = 12;
    const first = set.replicas[0].admin;
    for (let v = 0; v < RACE_VPNS; v++)
      await first.createVpn({
        name: `race${v}`,
        id: 1000 + v,
        mode: v % 2 ? 'pairwise' : 'group',
        rotationPeriodMs: 0,
      });
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, a) => first.createAdminToken(`admin${a}`)));
    const clients = tokens.map(
      (t, a) => new AuthorityClient({ url: set.replicas[a % 3].url, ca: set.ca, adminToken: t.token }),
    );
    const outcomes: { ok: number; refused: Map<string, number>; other: string[] } = {
      ok: 0,
      refused: new Map(),
      other: [],
    };
    try {
      await Promise.all(
        clients.map(async (c, a) => {
          for (let k = 0; k < 10; k++) {
            const vpn = `race${(a + k) % RACE_VPNS}`;
            const gw = gwName((a * 7 + k) % RACE_GWS);
            // Prefixes from a small pool, /23s among /24s: many overlap, in one membership and across gateways.
            // Half the administrators work in IPv6 (/47s among /48s, spelled in upper case with
            // leading zeros: stored and compared canonically), so memberships are dual stack.
            const third = (a * 5 + k * 3) % 16;
            const v6 = (n: number, len: number): string =>
              `2001:0DB8:${n.toString(16).toUpperCase().padStart(4, '0')}::/${len}`;
            const v4prefix = k % 4 === 3 ? `172.16.${third & ~1}.0/23` : `172.16.${third}.0/24`;
            const prefix = a % 2 === 0 ? v4prefix : k % 4 === 3 ? v6(third & ~1, 47) : v6(third, 48);
            try {
              if (k % 5 === 4) await c.updateMember(vpn, gw, { remove: [prefix] });
              else if (k % 7 === 6) await c.removeMember(vpn, gw);
              else await c.addMember(vpn, gw, [prefix]);
              outcomes.ok++;
            } catch (e) {
              if (e instanceof AuthorityApiError && e.status >= 400 && e.status < 500)
                outcomes.refused.set(`${e.status} ${e.code}`, (outcomes.refused.get(`${e.status} ${e.code}`) ?? 0) + 1);
              else outcomes.other.push((e as Error).message);
            }
          }
        }),
      );
    } finally {
      for (const c of clients) c.close();
    }
    assert.deepEqual(outcomes.other, [], 'no failure other than a clean refusal');
    const clean = new Set(['409 ambiguous-prefix', '409 overlapping-prefixes', '404 not-member', '404 unknown-prefix']);
    for (const code of outcomes.refused.keys()) assert.ok(clean.has(code), `refusal ${code}`);
    assert.ok(
      outcomes.ok > 50 && (outcomes.refused.get('409 ambiguous-prefix') ?? 0) > 0,
      `the race made changes and conflicts: ${outcomes.ok} ok, ${JSON.stringify([...outcomes.refused])}`,
    );

    // Replay the audit log: at every step the overlap rules hold, and the end is the store's state.
    const audit = (await fullAudit(first)).filter((e) => e.vpn?.startsWith('race') && e.action.startsWith('member.'));
    const state = new Map<string, Map<string, string[]>>(); // vpn -> gateway -> prefixes
    for (const e of audit) {
      const members = state.get(e.vpn!) ?? new Map<string, string[]>();
      state.set(e.vpn!, members);
      const d = e.detail as { prefixes?: string[]; added?: string[]; removed?: string[] };
      const cur = members.get(e.gateway!) ?? [];
      if (e.action === 'member.add') members.set(e.gateway!, [...cur, ...d.prefixes!]);
      else if (e.action === 'member.update')
        members.set(e.gateway!, [...cur.filter((p) => !d.removed!.includes(p)), ...d.added!]);
      else members.delete(e.gateway!);
      assertOverlapRules(e, members);
    }
    for (let v = 0; v < RACE_VPNS; v++) {
      const stored = new Map(
        (await set.replicas[v % 3].admin.listMembers(`race${v}`)).map((m) => [m.gateway, [...m.prefixes].sort()]),
      );
      const replayed = new Map(
        [...(state.get(`race${v}`) ?? new Map<string, string[]>())].map(([g, ps]) => [g, [...ps].sort()]),
      );
      assert.deepEqual(stored, replayed, `race${v}: the store holds what the audit log says`);
    }
    const stored = audit.flatMap((e) => Object.values(e.detail as Record<string, string[]>).flat());
    assert.ok(
      stored.some((p) => p.startsWith('2001:db8:')) && stored.some((p) => p.startsWith('172.16.')),
      'both families were changed',
    );
    assert.ok(
      stored.every((p) => !/[A-F]|:0/.test(p)),
      'every IPv6 prefix recorded canonically',
    );
    // Each administrator's changes are recorded under its own name.
    const actors = new Set(audit.map((e) => e.actor));
    assert.ok(
      [...actors].every((x) => /^admin:admin\d+$/.test(x)) && actors.size > 40,
      `actors: ${[...actors].join(', ')}`,
    );
  });

  it('kill -9 of the replica running a rotation of 100 VPNs: gateways converge, move, miss nothing; a due scheduled rotation happens once', async () => {
    const K = await set.jobsHolder();
    assert.ok(K >= 0, 'a replica holds the jobs lease');
    const killed = set.replicas[K];
    const killedPid = set.pidOf(K)!;
    const survivor = set.replicas[(K + 1) % 3];
    // A VPN rotated by the scheduler every 4 s, on the holder of the jobs lease (the replica to kill):
    // its next rotation after the kill is due while its holder is dead.
    await survivor.admin.createVpn({ name: 'sched', id: 2000, rotationPeriodMs: 4000 });
    await survivor.admin.addMember('sched', gwName(0), ['10.0.0.0/16']);
    await survivor.admin.addMember('sched', gwName(1), ['10.1.0.0/16']);
    const sinceBefore = Math.max(...(await fullAudit(survivor.admin)).map((e) => e.id));
    const onKilled = gateways.filter((g) => g.link.client.url.host === new URL(killed.url).host);
    assert.ok(onKilled.length >= 6, `${onKilled.length} gateways follow the replica to kill`);

    // The administrator rotates every VPN through replica K; K dies while it works on it (seen by
    // its CPU time: sealing 300 keys, the transaction); the rotation is one change, so it is either
    // all committed or none of it.
    const groupVpns = (await survivor.admin.listVpns()).filter((v) => v.mode === 'group' && v.name !== 'sched').length;
    const cpuMs = (): number => {
      // /proc/PID/stat after the command name: utime and stime (fields 14 and 15) in clock ticks of 10 ms.
      const f = readFileSync(`/proc/${killedPid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const idleCpu = cpuMs();
    const rotating = killed.admin.rotateAll().catch((e: unknown) => e);
    const deadline = Date.now() + 60_000;
    while (cpuMs() - idleCpu < 30) {
      if (Date.now() > deadline) throw new Error('replica K never started working on the rotation');
      await new Promise((r) => setTimeout(r, 1));
    }
    await set.kill(K);
    const killedAt = Date.now();
    const outcome = await rotating;
    assert.ok(outcome instanceof Error, 'the rotate-all through the killed replica did not answer');
    const beforeKill = (await fullAudit(survivor.admin)).filter(
      (e) => e.id > sinceBefore && e.action === 'vpn.rotate' && e.actor !== 'authority:scheduler',
    );
    assert.ok(
      beforeKill.length === 0 || beforeKill.length === groupVpns,
      `the rotation under the kill is all or nothing: ${beforeKill.length} of ${groupVpns} VPNs rotated`,
    );

    // The administrator repeats it with every replica's URL, the dead one first (the CLI moves on).
    const urls = [killed.url, ...set.replicas.filter((r) => r !== killed).map((r) => r.url)].join(',');
    const cli = JSON.parse(
      await kasane([
        'vpn',
        'rotate',
        '--all',
        '--json',
        '--url',
        urls,
        '--token',
        set.adminToken,
        '--ca',
        join(set.replicas[(K + 1) % 3].dir, 'certs', 'root-ca.pem'),
      ]),
    ) as unknown[];
    assert.ok(cli.length >= VPNS, `the repeated rotate-all rotated ${cli.length} VPNs`);

    // Every gateway converges on the stored latest epoch of each of its VPNs, and members agree on its key.
    const vpns = new Map((await survivor.admin.listVpns()).map((v) => [v.name, v]));
    const lagging = (): string[] =>
      gateways.flatMap((g) =>
        g
          .snapshot!.vpns.filter(
            (v) => v.mode === 'group' && !g.epochs(v.name).includes(vpns.get(v.name)!.currentEpoch!),
          )
          .map(
            (v) =>
              `${g.name} ${v.name} has ${g.epochs(v.name)} not ${vpns.get(v.name)!.currentEpoch} (v${g.link.version}, ${g.servedBy.join(' -> ')}${g.revoked ? ', refused: ' + g.revoked.message : ''})`,
          ),
      );
    await until(() => lagging().length === 0, 'every gateway holds the current epoch of each of its VPNs').catch(
      (e: Error) => {
        throw new Error(`${e.message}: ${lagging().slice(0, 10).join('; ')}`);
      },
    );
    for (let v = 0; v < VPNS; v++) {
      const epoch = vpns.get(vpnName(v))!.currentEpoch!;
      const keys = membersOf(v).map((g) =>
        Buffer.from(
          gateways[g].snapshot!.vpns.find((x) => x.name === vpnName(v))!.epochs.find((e) => e.epoch === epoch)!.key,
        ).toString('hex'),
      );
      assert.equal(new Set(keys).size, 1, `the members of ${vpnName(v)} hold one key for epoch ${epoch}`);
      assert.ok(epoch >= 2, `${vpnName(v)} rotated`);
    }

    // The audit log matches the state: one rotation per epoch, numbered without a gap or a repeat.
    const audit = await fullAudit(survivor.admin);
    for (const [name, info] of vpns) {
      if (info.mode !== 'group') continue;
      const epochs = audit
        .filter((e) => e.vpn === name && e.action === 'vpn.rotate')
        .map((e) => (e.detail as { epoch: number }).epoch);
      const expected = Array.from({ length: info.currentEpoch! - 1 }, (_, i) => i + 2);
      if (name === 'sched')
        assert.deepEqual(
          epochs.slice().sort((a, b) => a - b),
          expected,
          'sched: no epoch twice',
        );
      else assert.deepEqual(epochs, expected, `${name}: epochs in the audit log`);
    }

    // The gateways of the killed replica moved to another one and missed no event of theirs.
    for (const g of onKilled) {
      assert.ok(
        g.servedBy.length >= 2 && !g.servedBy[g.servedBy.length - 1].includes(`:${killed.port}`),
        `${g.name} moved: ${g.servedBy.join(' -> ')}`,
      );
    }
    for (const g of gateways) {
      const mine = new Set(g.snapshot!.vpns.map((v) => v.name));
      const expected = audit
        .filter((e) => e.action === 'vpn.rotate' && mine.has(e.vpn!) && e.id > sinceBefore)
        .map((e) => e.version);
      const heard = new Set(g.events.filter((e) => e.action === 'vpn.rotate').map((e) => e.version));
      assert.deepEqual(
        expected.filter((v) => !heard.has(v)),
        [],
        `${g.name} heard of every rotation of its VPNs`,
      );
    }

    // sched: rotated by the scheduler while K was dead, on a survivor, never twice for one due time.
    // (The repeated rotate-all rotates it too, which moves its next due time a period on.)
    const schedRotations = async () =>
      (await survivor.admin.audit({ vpn: 'sched', limit: 1000 })).filter((e) => e.action === 'vpn.rotate');
    await until(
      async () => (await schedRotations()).some((e) => e.actor === 'authority:scheduler' && e.at > killedAt),
      'a scheduled rotation after the kill',
      20_000,
    );
    const all = await schedRotations();
    const sched = all.filter((e) => e.actor === 'authority:scheduler');
    const afterKill = sched.filter((e) => e.at > killedAt);
    assert.ok(
      afterKill.every(
        (e) =>
          (e.detail as { replica: string }).replica !== undefined &&
          !(e.detail as { replica: string }).replica.includes(`-${killedPid}-`),
      ),
      'on a surviving replica',
    );
    const at = sched.map((e) => e.at);
    for (let i = 1; i < at.length; i++)
      assert.ok(at[i] - at[i - 1] >= 4000, `scheduled rotations ${at[i] - at[i - 1]} ms apart: one per due time`);
    const dueAt = Math.max(...all.filter((e) => e.at < afterKill[0].at).map((e) => e.at)) + 4000;
    assert.ok(
      afterKill[0].at - Math.max(dueAt, killedAt) < 2000 + 3000,
      `the rotation due ${dueAt - killedAt} ms after the kill waited ${afterKill[0].at - Math.max(dueAt, killedAt)} ms more for the lease to move`,
    );

    // The killed replica comes back and serves again.
    await set.start(K);
    const back = await killed.admin.status();
    assert.equal(back.version >= (await survivor.admin.status()).version - 5, true);
  });
});

describe('two replicas behind one name with two addresses', { skip: pg.skip }, () => {
  it('gateways and the CLI use the name; when one replica dies they move to the other address and miss nothing', async () => {
    const { freePortOn } = await import('./helpers/replicas.js');
    const port = await freePortOn('127.0.0.2');
    const set = await ReplicaSet.create({
      database: await pg.server!.createDatabase(),
      replicas: 2,
      hosts: ['127.0.0.2', '127.0.0.3'],
      port,
      url: `https://authority.test:${port}`,
      sans: ['authority.test'],
      leaseMs: 2000,
    });
    // The test's resolver stands in for DNS: authority.test has both replicas' addresses.
    const resolve = async (host: string): Promise<string[]> =>
      host === 'authority.test' ? ['127.0.0.2', '127.0.0.3'] : [];
    const followers: FollowingGateway[] = [];
    try {
      const admin = new AuthorityClient({
        url: `https://authority.test:${port}`,
        ca: set.ca,
        adminToken: set.adminToken,
        resolve,
      });
      await admin.createVpn({ name: 'corp', id: 1 });
      for (let g = 0; g < 4; g++) {
        const gw = await set.gateway(`n${g}`, `192.0.2.${g + 1}`, g % 2);
        await admin.addMember('corp', gw.name, [`10.${g}.0.0/16`]);
        assert.equal(gw.bundle.authority.url, `https://authority.test:${port}`, 'bundles carry the name');
        // Half of them reach the name first through the second address.
        const f = new FollowingGateway(gw.name, gw.data, [], {
          resolve: async (h) => (await resolve(h)).slice(g % 2).concat((await resolve(h)).slice(0, g % 2)),
        });
        await f.start();
        followers.push(f);
      }
      assert.deepEqual(
        new Set(followers.map((f) => f.link.client.endpoint)).size,
        2,
        'the gateways follow both addresses',
      );
      for (const r of set.replicas) {
        const t0 = Date.now();
        const rotated = await r.admin.rotateVpn('corp');
        await until(
          () => followers.every((f) => f.epochs('corp').includes(rotated.epoch)),
          `epoch ${rotated.epoch} everywhere`,
        );
        assert.ok(
          Date.now() - t0 < 1200,
          `a rotation through ${r.url} reached every gateway after ${Date.now() - t0} ms`,
        );
      }
      await set.kill(0);
      // An administrator's next command (a new client) finds the name's other address by itself.
      admin.close();
      const later = new AuthorityClient({
        url: `https://authority.test:${port}`,
        ca: set.ca,
        adminToken: set.adminToken,
        resolve,
      });
      const rotated = await later.rotateVpn('corp');
      await until(
        () => followers.every((f) => f.epochs('corp').includes(rotated.epoch)),
        `epoch ${rotated.epoch} everywhere after the kill`,
      );
      for (const f of followers)
        assert.ok(f.link.client.endpoint.includes('127.0.0.3'), `${f.name} follows the surviving address`);
      const rotations = (await later.audit({ vpn: 'corp', limit: 1000 }))
        .filter((e) => e.action === 'vpn.rotate')
        .map((e) => e.version);
      for (const f of followers) {
        const heard = new Set(f.events.map((e) => e.version));
        assert.deepEqual(
          rotations.filter((v) => !heard.has(v)),
          [],
          `${f.name} heard of every rotation`,
        );
      }
      later.close();
    } finally {
      for (const f of followers) await f.stop();
      await set.close();
    }
  });
});

describe('SQLite is one process', () => {
  it('`authority replica` from a SQLite authority and a second `serve` on its data directory are refused, saying why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kasane-sqlite-one-'));
    try {
      await initAuthority({ dataDir: join(dir, 'a'), name: 'solo', listen: { host: '127.0.0.1', port: 0 } });
      await assert.rejects(
        kasane(['authority', 'replica', '--from', join(dir, 'a'), '--data', join(dir, 'b')]),
        /replicas need PostgreSQL/,
      );
      const running = await startAuthority({
        dataDir: join(dir, 'a'),
        listen: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
        schedulerIntervalMs: 0,
      });
      try {
        await assert.rejects(
          kasane(['authority', 'serve', '--data', join(dir, 'a'), '--listen', '127.0.0.1:0']),
          /SQLite is a single-process store[\s\S]*Replicas need PostgreSQL/,
        );
      } finally {
        await running.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Within one VPN: two gateways' prefixes never overlap, one membership's prefixes are disjoint. */
function assertOverlapRules(e: AuditEntry, members: Map<string, string[]>): void {
  const all = [...members].flatMap(([g, ps]) => ps.map((p) => ({ g, p: Prefix.from(p) })));
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const [x, y] = [all[i], all[j]];
      if (x.p.overlaps(y.p)) {
        assert.fail(
          `after audit entry ${e.id} (${e.action} ${e.vpn} ${e.gateway} by ${e.actor}): ${x.g} ${x.p} and ${y.g} ${y.p} overlap in ${e.vpn}`,
        );
      }
    }
  }
}

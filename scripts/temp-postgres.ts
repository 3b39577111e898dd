// A private, temporary PostgreSQL server for tests and benchmarks: initdb into a temporary
// directory, started on 127.0.0.1 with a free port (and its socket in that directory), stopped by
// PID and deleted afterwards, also when the process fails. initdb refuses root, so as root it runs
// as the `postgres` user (or `nobody`) through runuser. Binaries: Debian's
// /usr/lib/postgresql/<version>/bin, else PATH.
// scripts/ci-postgres.sh installs the binaries on a fresh Debian machine.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../test/support/ports.js';

export interface PgServer {
  /** A connection URL for a new, empty database. */
  createDatabase(): Promise<string>;
  /** The server's processes now (the postmaster and its backends), e.g. to add up their CPU. */
  processes(): number[];
  stop(): Promise<void>;
}

export type PgStart = { ok: true; server: PgServer } | { ok: false; reason: string };

function findBinDir(): string | undefined {
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => existsSync(join(debian, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(debian, versions[0], 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  return undefined;
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Cleans up after a server that did not start and says why: the error, its stderr, the end of the logs. */
function startFailed(what: string, e: unknown, logs: string, cleanup: () => void): { ok: false; reason: string } {
  const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
  process.off('exit', cleanup);
  cleanup();
  return {
    ok: false,
    reason: `could not start ${what}: ${e instanceof Error ? e.message : String(e)} ${stderr} ${logs}`.trim(),
  };
}

/** SIGKILLs the processes this script started; one already gone is fine. */
function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where test servers run: the binaries, a new directory owned by the user that runs them (not root), and how to run a
 * binary there.
 */
type ServerHome =
  { ok: true; bin: string; dir: string; run(cmd: string, args: string[]): void } | { ok: false; reason: string };

function serverHome(prefix: string, timeoutMs: number): ServerHome {
  const bin = findBinDir();
  if (!bin)
    return {
      ok: false,
      reason:
        'PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH); run scripts/ci-postgres.sh',
    };
  let as: { name: string; uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    for (const name of ['postgres', 'nobody']) {
      const ids = userIds(name);
      if (ids) {
        as = { name, ...ids };
        break;
      }
    }
    if (!as)
      return {
        ok: false,
        reason: 'running as root and neither the postgres nor the nobody user exists (initdb refuses root)',
      };
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (as) chownSync(dir, as.uid, as.gid);
  const run = (cmd: string, args: string[]): void => {
    const full = as ? ['runuser', ['-u', as.name, '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    execFileSync(full[0] as string, full[1] as string[], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
      timeout: timeoutMs,
    });
  };
  return { ok: true, bin, dir, run };
}

/** CREATE DATABASE `name` on the server at `base` (postgres://user@host:port). */
async function createDatabaseAt(base: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: `${base}/postgres` });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
}

export async function startPostgres(): Promise<PgStart> {
  const home = serverHome('kasane-pg-', 60_000);
  if (!home.ok) return home;
  const { bin, dir, run } = home;
  const data = join(dir, 'data');
  let pid: number | undefined;
  const cleanup = (): void => {
    if (pid !== undefined && alive(pid)) killAll([pid]);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    run('initdb', ['-D', data, '-U', 'kasane', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const port = await freePort();
    run('pg_ctl', [
      '-D',
      data,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      'start',
    ]);
    pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const base = `postgres://kasane@127.0.0.1:${port}`;
    let n = 0;
    const server: PgServer = {
      async createDatabase() {
        const name = `kasane_test_${process.pid}_${++n}`;
        await createDatabaseAt(base, name);
        return `${base}/${name}`;
      },
      processes: () => (pid !== undefined && alive(pid) ? processTree(pid) : []),
      async stop() {
        if (pid !== undefined && alive(pid)) {
          process.kill(pid, 'SIGINT'); // fast shutdown
          for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
        }
        process.off('exit', cleanup);
        cleanup();
      },
    };
    return { ok: true, server };
  } catch (e) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    return startFailed(`PostgreSQL from ${bin}`, e, log, cleanup);
  }
}

/** A primary and a streaming standby (synchronous replication) for failover tests. */
export interface PgPair {
  /** Both servers as a multi-host URL that finds the primary: host1,host2 with target_session_attrs=read-write. */
  url(database: string): string;
  /** A new, empty database (made on the primary; it reaches the standby by replication). */
  createDatabase(): Promise<string>;
  ports: { primary: number; standby: number };
  /** kill -9 of the primary's postmaster and every process of it. */
  killPrimary(): void;
  /** pg_ctl promote on the standby; resolves once it accepts writes. */
  promoteStandby(): Promise<void>;
  stop(): Promise<void>;
}

export type PgPairStart = { ok: true; pair: PgPair } | { ok: false; reason: string };

/** The PIDs of `pid` and all its descendants (from /proc). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/**
 * Starts a primary (wal_level replica, synchronous_standby_names = the standby) and a standby made
 * with pg_basebackup, streaming from it; resolves once the standby is the synchronous one.
 */
export async function startPostgresPair(): Promise<PgPairStart> {
  const home = serverHome('kasane-pg-pair-', 120_000);
  if (!home.ok) return home;
  const { bin, dir, run } = home;
  const primaryData = join(dir, 'primary');
  const standbyData = join(dir, 'standby');
  const pids: { primary?: number; standby?: number } = {};
  const cleanup = (): void => {
    for (const pid of [pids.primary, pids.standby]) {
      if (pid !== undefined && alive(pid)) killAll(processTree(pid));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    const ports = { primary: await freePort(), standby: await freePort() };
    run('initdb', ['-D', primaryData, '-U', 'kasane', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const common = (port: number) =>
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on`;
    run('pg_ctl', [
      '-D',
      primaryData,
      '-l',
      join(dir, 'primary.log'),
      '-w',
      '-t',
      '60',
      '-o',
      `${common(ports.primary)} -c synchronous_standby_names=standby1`,
      'start',
    ]);
    pids.primary = Number(readFileSync(join(primaryData, 'postmaster.pid'), 'utf8').split('\n')[0]);
    run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(ports.primary),
      '-U',
      'kasane',
      '-D',
      standbyData,
      '-X',
      'stream',
      '--no-sync',
    ]);
    // A standby that streams from the primary and names itself as the synchronous one.
    appendFileSync(
      join(standbyData, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=${ports.primary} user=kasane application_name=standby1'\n`,
    );
    appendFileSync(join(standbyData, 'standby.signal'), '');
    run('pg_ctl', [
      '-D',
      standbyData,
      '-l',
      join(dir, 'standby.log'),
      '-w',
      '-t',
      '60',
      '-o',
      common(ports.standby),
      'start',
    ]);
    pids.standby = Number(readFileSync(join(standbyData, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const base = (port: number) => `postgres://kasane@127.0.0.1:${port}`;
    const admin = new pg.Client({ connectionString: `${base(ports.primary)}/postgres` });
    await admin.connect();
    try {
      for (let i = 0; ; i++) {
        const r = await admin.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'");
        if (r.rows[0]?.sync_state === 'sync') break;
        if (i > 600) throw new Error('the standby did not become the synchronous standby within a minute');
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await admin.end();
    }
    let n = 0;
    const pair: PgPair = {
      ports,
      url: (database) =>
        `postgres://kasane@127.0.0.1:${ports.primary},127.0.0.1:${ports.standby}/${database}?target_session_attrs=read-write&connect_timeout=2`,
      async createDatabase() {
        const name = `kasane_pair_${process.pid}_${++n}`;
        await createDatabaseAt(base(ports.primary), name);
        return pair.url(name);
      },
      killPrimary() {
        if (pids.primary !== undefined) killAll(processTree(pids.primary));
      },
      async promoteStandby() {
        run('pg_ctl', ['-D', standbyData, '-w', '-t', '60', 'promote']);
      },
      async stop() {
        process.off('exit', cleanup);
        for (const pid of [pids.standby, pids.primary])
          if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGINT');
        for (let i = 0; i < 100 && [pids.standby, pids.primary].some((p) => p !== undefined && alive(p)); i++)
          await new Promise((r) => setTimeout(r, 50));
        cleanup();
      },
    };
    return { ok: true, pair };
  } catch (e) {
    const logs = ['primary.log', 'standby.log']
      .map((f) => (existsSync(join(dir, f)) ? `${f}: ${readFileSync(join(dir, f), 'utf8').slice(-1500)}` : ''))
      .join(' ');
    return startFailed(`a PostgreSQL primary and standby from ${bin}`, e, logs, cleanup);
  }
}

// A private, temporary PostgreSQL server for tests and benchmarks: initdb into a temporary
// directory, started on 127.0.0.1 with a free port (and its socket in that directory), stopped by
// PID and deleted afterwards, also when the process fails. initdb refuses root, so as root it runs as the `postgres` user (or
// `nobody`) through runuser. Binaries: Debian's /usr/lib/postgresql/<version>/bin, else PATH.
// scripts/ci-postgres.sh installs the binaries on a fresh Debian machine.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgServer {
  /** A connection URL for a new, empty database. */
  createDatabase(): Promise<string>;
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
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  return undefined;
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startPostgres(): Promise<PgStart> {
  const bin = findBinDir();
  if (!bin) return { ok: false, reason: 'PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH); run scripts/ci-postgres.sh' };
  const root = process.getuid?.() === 0;
  let as: { name: string; uid: number; gid: number } | undefined;
  if (root) {
    for (const name of ['postgres', 'nobody']) {
      const ids = userIds(name);
      if (ids) {
        as = { name, ...ids };
        break;
      }
    }
    if (!as) return { ok: false, reason: 'running as root and neither the postgres nor the nobody user exists (initdb refuses root)' };
  }
  const dir = mkdtempSync(join(tmpdir(), 'kasane-pg-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  const run = (cmd: string, args: string[]): void => {
    const full = as ? ['runuser', ['-u', as.name, '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    execFileSync(full[0] as string, full[1] as string[], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, timeout: 60_000 });
  };
  let pid: number | undefined;
  const cleanup = (): void => {
    if (pid !== undefined && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    run('initdb', ['-D', data, '-U', 'kasane', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const port = await freePort();
    run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start']);
    pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const base = `postgres://kasane@127.0.0.1:${port}`;
    let n = 0;
    const server: PgServer = {
      async createDatabase() {
        const name = `kasane_test_${process.pid}_${++n}`;
        const c = new pg.Client({ connectionString: `${base}/postgres` });
        await c.connect();
        try {
          await c.query(`CREATE DATABASE ${name}`);
        } finally {
          await c.end();
        }
        return `${base}/${name}`;
      },
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
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
    process.off('exit', cleanup);
    cleanup();
    return { ok: false, reason: `could not start PostgreSQL from ${bin}: ${e instanceof Error ? e.message : String(e)} ${stderr} ${log}`.trim() };
  }
}

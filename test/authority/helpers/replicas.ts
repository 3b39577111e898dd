// Several replicas of one authority as an operator runs them: `kasane authority init` with a
// PostgreSQL database, `kasane authority replica` for each further one, and a separate
// `kasane authority serve` process per replica (so that one can be killed with SIGKILL), each on
// its own loopback address or port. Gateways follow the change stream through the gateway's own
// code (src/gateway/authority-link.ts) from credentials saved as `kasane gateway enroll` saves
// them, each configured with every replica's URL, starting at its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  AuthorityApiError,
  AuthorityClient,
  AuthorityUnreachableError,
  openDelivery,
  type AuditEntry,
  type GatewayBundle,
  type GatewayChanges,
  type PushWatchOptions,
} from '../../../src/authority/client.js';
import { dataPaths, readConfig, writeConfig, type AuthorityConfig } from '../../../src/authority/config.js';
import { initAuthority } from '../../../src/authority/lifecycle.js';
import type { AuthoritySnapshot } from '../../../src/core/types.js';
import { AuthorityLink } from '../../../src/gateway/authority-link.js';
import { loadCredentials, saveCredentials } from '../../../src/gateway/credentials.js';
import { ROOT } from './authority.js';
import { freePort as freePortOn } from '../../support/ports.js';

export const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

/** Runs the kasane CLI (a separate process) and returns its stdout; throws with its stderr on failure. */
export function kasane(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI[0], [...CLI.slice(1), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`kasane ${args.join(' ')} exited ${code}: ${err}${out}`)),
    );
  });
}

export interface Replica {
  index: number;
  dir: string;
  host: string;
  port: number;
  url: string;
  child?: ChildProcess;
  stderr: string;
  admin: AuthorityClient;
}

export interface ReplicaSetOptions {
  database: string;
  replicas: number;
  /** Loopback address of each replica, IPv4 or IPv6 (default 127.0.0.1 for all, each on its own port). */
  hosts?: string[];
  /** One port for every replica (with distinct hosts: one name with several addresses). */
  port?: number;
  /** The URL put into bundles (default: the first replica's). */
  url?: string;
  sans?: string[];
  leaseMs?: number;
  /** Rotation timers (ms) for the authority.json of every replica. */
  rotation?: { overlapMs?: number; graceMs?: number; urgentGraceMs?: number };
  /**
   * The wake-up channel of every replica (default: on, SUBSCRIBEs refreshed every 2 s, so that a
   * gateway notices a killed replica within seconds, as it does on the long poll).
   */
  push?: AuthorityConfig['push'];
}

export class ReplicaSet {
  readonly replicas: Replica[] = [];
  ca = '';
  adminToken = '';
  private constructor(readonly base: string) {}

  static async create(o: ReplicaSetOptions): Promise<ReplicaSet> {
    const set = new ReplicaSet(mkdtempSync(join(tmpdir(), 'kasane-replicas-')));
    try {
      await set.setUp(o);
    } catch (e) {
      await set.close();
      throw e;
    }
    return set;
  }

  private async setUp(o: ReplicaSetOptions): Promise<void> {
    const ports: number[] = [];
    for (let i = 0; i < o.replicas; i++) ports.push(o.port ?? (await freePortOn(o.hosts?.[i] ?? '127.0.0.1')));
    const hosts = Array.from({ length: o.replicas }, (_, i) => o.hosts?.[i] ?? '127.0.0.1');
    const first = join(this.base, 'r0');
    const init = await initAuthority({
      dataDir: first,
      name: 'replicated',
      database: o.database,
      listen: { host: hosts[0], port: ports[0] },
      url: o.url,
      sans: [...(o.sans ?? []), ...hosts],
      rotation: { periodMs: 0, ...o.rotation },
    });
    const c = readConfig(first);
    writeConfig(first, {
      ...c,
      ...(o.leaseMs !== undefined && { jobs: { leaseMs: o.leaseMs } }),
      push: o.push ?? { refreshSeconds: 2 },
    });
    this.adminToken = init.adminToken;
    this.ca = readFileSync(dataPaths(first).rootCert, 'utf8');
    for (let i = 0; i < o.replicas; i++) {
      const dir = i === 0 ? first : join(this.base, `r${i}`);
      const hostPort = `${hosts[i].includes(':') ? `[${hosts[i]}]` : hosts[i]}:${ports[i]}`;
      if (i > 0) await kasane(['authority', 'replica', '--from', first, '--data', dir, '--listen', hostPort]);
      const url = `https://${hostPort}`;
      this.replicas.push({
        index: i,
        dir,
        host: hosts[i],
        port: ports[i],
        url,
        stderr: '',
        admin: new AuthorityClient({ url, ca: this.ca, adminToken: this.adminToken, timeoutMs: 120_000 }),
      });
    }
    await Promise.all(this.replicas.map((r) => this.start(r.index)));
  }

  get urls(): string[] {
    return this.replicas.map((r) => r.url);
  }

  /** Starts replica `i` as a separate `kasane authority serve` process and waits until it listens. */
  async start(i: number): Promise<void> {
    const r = this.replicas[i];
    const child = spawn(CLI[0], [...CLI.slice(1), 'authority', 'serve', '--data', r.dir, '--log-level', 'warn'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    r.child = child;
    r.stderr = '';
    child.stderr!.on('data', (d: Buffer) => (r.stderr = (r.stderr + d.toString()).slice(-20_000)));
    const reap = (): void => void child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.off('exit', reap));
    const deadline = Date.now() + 60_000;
    while (!r.stderr.includes('listening on')) {
      if (child.exitCode !== null) throw new Error(`replica ${i} exited with ${child.exitCode}: ${r.stderr}`);
      if (Date.now() > deadline) throw new Error(`replica ${i} did not start: ${r.stderr}`);
      await sleep(50);
    }
  }

  /** kill -9 of replica `i`; resolves once it is gone. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.replicas[i].child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /** The replica that holds the jobs lease now, by the replicas' own listing. */
  async jobsHolder(via = 0): Promise<number> {
    for (const r of await this.replicas[via].admin.replicas()) {
      if (r.runsJobs) {
        const i = this.replicas.findIndex((x) => this.pidOf(x.index) === r.pid);
        if (i >= 0) return i;
      }
    }
    return -1;
  }

  pidOf(i: number): number | undefined {
    return this.replicas[i].child?.pid;
  }

  /** Registers a gateway, makes its bundle and saves its credentials as `gateway enroll` does. */
  async gateway(
    name: string,
    address: string,
    via = 0,
  ): Promise<{ name: string; data: string; bundle: GatewayBundle }> {
    const admin = this.replicas[via].admin;
    await admin.addGateway(name, address);
    const bundle = await admin.makeBundle(name);
    const data = join(this.base, 'gw', name);
    saveCredentials(data, bundle, bundle.privateKey!);
    return { name, data, bundle };
  }

  async close(): Promise<void> {
    for (const r of this.replicas) {
      r.admin.close();
      await this.kill(r.index, 'SIGTERM');
    }
    rmSync(this.base, { recursive: true, force: true });
  }
}

/** A gateway following the change stream through the gateway's own code, recording what it receives. */
export class FollowingGateway {
  readonly link: AuthorityLink;
  snapshot: AuthoritySnapshot | undefined;
  /** Every event it was told of, in order. */
  readonly events: GatewayChanges['events'] = [];
  /** Endpoints it was served by, in order (a move shows as a new entry). */
  readonly servedBy: string[] = [];
  revoked: Error | undefined;
  private readonly abort = new AbortController();
  private following: Promise<void> | undefined;

  constructor(
    readonly name: string,
    data: string,
    urls: string[],
    o: { resolve?: (host: string) => Promise<string[]>; waitSeconds?: number; push?: PushWatchOptions } = {},
  ) {
    this.link = new AuthorityLink({
      data,
      creds: loadCredentials(data),
      urls,
      log: pino({ level: 'silent' }),
      resolve: o.resolve,
      waitSeconds: o.waitSeconds ?? 20,
      backoffMs: { min: 100, max: 1000 },
      push: o.push,
    });
  }

  async start(): Promise<void> {
    this.snapshot = await this.link.initial();
    this.servedBy.push(this.link.client.endpoint);
    this.following = this.link.follow(
      this.abort.signal,
      (s, c) => {
        this.snapshot = s;
        this.events.push(...c.events);
        const at = this.link.client.endpoint;
        if (this.servedBy[this.servedBy.length - 1] !== at) this.servedBy.push(at);
      },
      (e) => (this.revoked = e),
    );
  }

  /** The epochs it holds for `vpn`, newest last. */
  epochs(vpn: string): number[] {
    return this.snapshot?.vpns.find((v) => v.name === vpn)?.epochs.map((e) => e.epoch) ?? [];
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.following;
    this.link.close();
  }
}

/** Opens a gateway's delivery of `vpn`'s epoch `epoch` key (hex), to compare members' keys. */
export async function keyOf(
  bundle: GatewayBundle,
  c: GatewayChanges,
  vpn: string,
  epoch: number,
): Promise<string | undefined> {
  const s = await openDelivery(c.delivery, bundle.privateKey!, { gateway: bundle.gateway.name });
  const e = s.vpns.find((v) => v.name === vpn)?.epochs.find((x) => x.epoch === epoch);
  return e ? Buffer.from(e.key).toString('hex') : undefined;
}

/** The whole audit log, through one replica. */
export async function fullAudit(admin: AuthorityClient): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (;;) {
    const page = await admin.audit({ after: out.length ? out[out.length - 1].id : 0, limit: 1000 });
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `check()` is true (polling), or fails saying what it waited for. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

export { freePortOn };

/** What an administrator's call that failed met: "STATUS code" from the authority, "unreachable", or "other: ...". */
export function refusalKind(e: unknown): string {
  return e instanceof AuthorityApiError
    ? `${e.status} ${e.code}`
    : e instanceof AuthorityUnreachableError
      ? 'unreachable'
      : `other: ${(e as Error).message}`;
}

/**
 * Administrators adding directory entries (172.16+w.x.y/32) through replica w of each of `via`, one after another,
 * until stopped: what they got acknowledged (and when) and how the others were refused.
 */
export class DirectoryWriters {
  readonly acked: string[] = [];
  readonly ackedAt: number[] = [];
  readonly failures = new Map<string, number>();
  private stopped = false;
  private readonly running: Promise<void>[];

  constructor(set: ReplicaSet, via: number[], o: { pauseAfterFailureMs?: number } = {}) {
    this.running = via.map(async (w) => {
      for (let k = 0; !this.stopped; k++) {
        const prefix = `172.${16 + w}.${(k >> 8) & 255}.${k & 255}/32`;
        try {
          await set.replicas[w].admin.addDirectory(prefix, `writer ${w}`);
          this.acked.push(prefix);
          this.ackedAt.push(Date.now());
        } catch (e) {
          const kind = refusalKind(e);
          this.failures.set(kind, (this.failures.get(kind) ?? 0) + 1);
          if (o.pauseAfterFailureMs) await sleep(o.pauseAfterFailureMs);
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }
}

/** Rotates `vpn` through each replica in turn; each rotation must reach every gateway within 15 s. */
export async function rotateThroughEach(set: ReplicaSet, gateways: FollowingGateway[], vpn: string): Promise<void> {
  for (const r of set.replicas) {
    const rotated = await r.admin.rotateVpn(vpn);
    await until(
      () => gateways.every((g) => g.epochs(vpn).includes(rotated.epoch)),
      `epoch ${rotated.epoch} at every gateway`,
      15_000,
    );
  }
}

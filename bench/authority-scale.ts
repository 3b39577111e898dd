// Authority scale benchmark: enroll N gateways (offline bundles), put them into M VPNs (gateway i
// in VPN i mod M, one /24 each), connect every gateway to the change stream with its own mutual-TLS
// connection, rotate every VPN's key, and measure how long it takes until every gateway holds its
// VPN's new epoch, plus the authority process's memory. On SQLite and on PostgreSQL (a private
// server started for the run, when PostgreSQL is installed).
//
// The authority runs as a separate `kasane authority serve` process, so its memory (VmRSS, VmHWM
// from /proc) is its own; the gateways are clients in this process.
//
// Size by environment (defaults: the 10,000 gateways, 1,000 VPNs):
//   KASANE_BENCH_AUTHORITY_GATEWAYS, KASANE_BENCH_AUTHORITY_VPNS,
//   KASANE_BENCH_AUTHORITY_BACKENDS (comma list of sqlite, postgres), KASANE_BENCH_AUTHORITY_CONCURRENCY.
// Run alone: node --import tsx bench/authority-scale.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AuthorityClient, gatewayClient, openDelivery } from '../src/authority/client.js';
import { initAuthority } from '../src/authority/lifecycle.js';
import type { GatewayBundle, GatewayChanges } from '../src/authority/wire.js';
import { startPostgres, type PgServer } from '../scripts/temp-postgres.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** New epochs become active this long after the rotation: the latency below is measured from the rotation. */
const OVERLAP_MS = 120_000;

export type AuthorityBackend = 'sqlite' | 'postgres';

export interface AuthorityBenchOptions {
  gateways: number;
  vpns: number;
  backends: AuthorityBackend[];
  /** Administrator requests in flight during setup. */
  concurrency: number;
  /** Gateways whose new key is decrypted and compared (HPKE open costs ~3 ms each). */
  verifySample: number;
}

export interface AuthorityBenchResult {
  backend: AuthorityBackend;
  skipped?: string;
  gateways: number;
  vpns: number;
  setupSeconds: { vpns: number; enroll: number; members: number; connect: number };
  /** The administrator's rotate-all call (every VPN rotated, one transaction each). */
  rotateAllSeconds: number;
  /** From the start of rotate-all until the last gateway received its VPN's new epoch. */
  deliverAllSeconds: number;
  /** Per gateway: from its VPN's rotation until it received the new epoch. */
  latencyMs: { p50: number; p99: number; max: number };
  verified: number;
  authorityMemoryMb: { afterSetup: number; peakDuringDelivery: number; highWater: number };
}

export function authorityBenchOptions(env: NodeJS.ProcessEnv = process.env): AuthorityBenchOptions {
  const int = (name: string, dflt: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const backends = (env.KASANE_BENCH_AUTHORITY_BACKENDS ?? 'sqlite,postgres').split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of backends) if (b !== 'sqlite' && b !== 'postgres') throw new Error(`KASANE_BENCH_AUTHORITY_BACKENDS: unknown backend ${b}`);
  return {
    gateways: int('KASANE_BENCH_AUTHORITY_GATEWAYS', 10_000),
    vpns: int('KASANE_BENCH_AUTHORITY_VPNS', 1_000),
    backends: backends as AuthorityBackend[],
    concurrency: int('KASANE_BENCH_AUTHORITY_CONCURRENCY', 32),
    verifySample: int('KASANE_BENCH_AUTHORITY_VERIFY', 100),
  };
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

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

function memory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function spawnServe(dataDir: string, port: number): Promise<ChildProcess> {
  const script = `const m = await import(${JSON.stringify(join(ROOT, 'src/cli/main.ts'))}); process.exitCode = await m.main(process.argv.slice(1));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, 'authority', 'serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Never leave the authority behind, even if this process dies.
  const reap = (): void => void child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  while (!stderr.includes('listening on')) {
    if (child.exitCode !== null) throw new Error(`the authority exited: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the authority did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function runOne(backend: AuthorityBackend, o: AuthorityBenchOptions, log: (line: string) => void): Promise<AuthorityBenchResult> {
  const empty: AuthorityBenchResult = {
    backend,
    gateways: o.gateways,
    vpns: o.vpns,
    setupSeconds: { vpns: 0, enroll: 0, members: 0, connect: 0 },
    rotateAllSeconds: 0,
    deliverAllSeconds: 0,
    latencyMs: { p50: 0, p99: 0, max: 0 },
    verified: 0,
    authorityMemoryMb: { afterSetup: 0, peakDuringDelivery: 0, highWater: 0 },
  };
  let pg: PgServer | undefined;
  let database: string | undefined;
  if (backend === 'postgres') {
    const r = await startPostgres();
    if (!r.ok) return { ...empty, skipped: r.reason };
    pg = r.server;
    database = await pg.createDatabase();
  }
  const dir = mkdtempSync(join(tmpdir(), 'kasane-bench-authority-'));
  let child: ChildProcess | undefined;
  const clients: AuthorityClient[] = [];
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per waiting gateway
  try {
    const port = await freePort();
    const init = await initAuthority({ dataDir: join(dir, 'a'), name: 'bench', database, listen: { host: '127.0.0.1', port }, rotation: { periodMs: 0, overlapMs: OVERLAP_MS } });
    child = await spawnServe(join(dir, 'a'), port);
    const pid = child.pid!;
    const ca = readFileSync(join(dir, 'a', 'certs', 'root-ca.pem'), 'utf8');
    const admin = new AuthorityClient({ url: `https://127.0.0.1:${port}`, ca, adminToken: init.adminToken, timeoutMs: 600_000 });
    clients.push(admin);
    const vpnName = (v: number): string => `vpn-${v}`;
    const gwName = (i: number): string => `gw-${i}`;

    let t = performance.now();
    await pool(
      Array.from({ length: o.vpns }, (_, v) => v),
      o.concurrency,
      async (v) => void (await admin.createVpn({ name: vpnName(v), id: v + 1, rotationPeriodMs: 0 })),
    );
    const vpnsS = (performance.now() - t) / 1000;
    log(`${backend}: ${o.vpns} VPNs in ${round(vpnsS)} s`);

    t = performance.now();
    const bundles: GatewayBundle[] = new Array(o.gateways);
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      o.concurrency,
      async (i) => {
        await admin.addGateway(gwName(i), `198.18.${(i >> 8) & 255}.${i & 255}`);
        bundles[i] = await admin.makeBundle(gwName(i));
      },
    );
    const enrollS = (performance.now() - t) / 1000;
    log(`${backend}: ${o.gateways} gateways enrolled (offline bundles) in ${round(enrollS)} s`);

    t = performance.now();
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      o.concurrency,
      async (i) => void (await admin.addMember(vpnName(i % o.vpns), gwName(i), [`10.${(i >> 8) & 255}.${i & 255}.0/24`])),
    );
    const membersS = (performance.now() - t) / 1000;
    log(`${backend}: ${o.gateways} memberships in ${round(membersS)} s`);
    const afterSetup = memory(pid).rss;

    // Every gateway: a full first delivery, then a long poll waiting for the rotation.
    t = performance.now();
    const received: { at: number; change: GatewayChanges }[] = new Array(o.gateways);
    let got = 0;
    let allReceived: () => void = () => undefined;
    const done = new Promise<void>((r) => (allReceived = r));
    const gws = bundles.map((b) => {
      const c = gatewayClient(b);
      clients.push(c);
      return c;
    });
    const errors: unknown[] = [];
    const follow = async (i: number, onFirst: () => void): Promise<void> => {
      const vpn = vpnName(i % o.vpns);
      let since = 0;
      let failures = 0;
      while (!abort.signal.aborted) {
        let c: GatewayChanges;
        try {
          // The first call is the full first delivery; then long polls until the new epoch.
          c = await gws[i].changes(since, { waitSeconds: since === 0 ? 0 : 60, signal: abort.signal });
          failures = 0;
        } catch (e) {
          if (abort.signal.aborted) return;
          if (++failures > 5) {
            errors.push(e);
            onFirst();
            return;
          }
          await new Promise((r) => setTimeout(r, 200 * failures));
          continue;
        }
        const v = c.delivery?.vpns.find((x) => x.name === vpn);
        if (since !== 0 && v && v.epochs.some((e) => e.epoch === 2)) {
          received[i] = { at: Date.now(), change: c };
          if (++got === o.gateways) allReceived();
          return;
        }
        if (since === 0) onFirst();
        since = c.version;
      }
    };
    // Gateways come up gradually (TLS handshake and first delivery), then stay on the stream.
    const followers: Promise<void>[] = [];
    await pool(gws, Math.max(o.concurrency, 64), (_, i) => new Promise<void>((first) => void followers.push(follow(i, first))));
    for (;;) {
      const s = await admin.status();
      if (s.waitingGateways >= o.gateways) break;
      if (errors.length) throw errors[0];
      await new Promise((r) => setTimeout(r, 200));
    }
    const connectS = (performance.now() - t) / 1000;
    log(`${backend}: ${o.gateways} gateways on the change stream (mutual TLS) in ${round(connectS)} s`);

    let peak = memory(pid).rss;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, memory(pid).rss);
      } catch {
        // the process is gone
      }
    }, 100);
    const start = Date.now();
    const t0 = performance.now();
    const rotated = await admin.rotateAll();
    const rotateAllS = (performance.now() - t0) / 1000;
    const timeout = setTimeout(() => allReceived(), 600_000);
    await done;
    clearTimeout(timeout);
    clearInterval(sampler);
    if (got < o.gateways) throw new Error(`only ${got} of ${o.gateways} gateways received the rotation within 10 minutes`);
    await Promise.all(followers);
    const last = Math.max(...received.map((r) => r.at));
    const latencies = received
      .map((r, i) => {
        const e = r.change.delivery!.vpns.find((x) => x.name === vpnName(i % o.vpns))!.epochs.find((x) => x.epoch === 2)!;
        return r.at - (e.activeFrom - OVERLAP_MS);
      })
      .sort((a, b) => a - b);
    log(`${backend}: rotated ${rotated.rotated.length} VPNs in ${round(rotateAllS)} s; every gateway had its new epoch ${round((last - start) / 1000)} s after the start`);

    // Decrypt a sample: each opens its own sealed key, members of one VPN agree.
    let verified = 0;
    const keysByVpn = new Map<number, string>();
    for (let i = 0; i < Math.min(o.verifySample, o.gateways); i++) {
      const idx = Math.floor((i * o.gateways) / Math.min(o.verifySample, o.gateways));
      const s = await openDelivery(received[idx].change.delivery, bundles[idx].privateKey!, { gateway: gwName(idx), authority: 'bench' });
      const key = Buffer.from(s.vpns[0].epochs.find((e) => e.epoch === 2)!.key).toString('hex');
      const v = idx % o.vpns;
      if (keysByVpn.has(v) && keysByVpn.get(v) !== key) throw new Error(`members of ${vpnName(v)} disagree on the key`);
      keysByVpn.set(v, key);
      verified++;
    }
    const mem = memory(pid);
    return {
      backend,
      gateways: o.gateways,
      vpns: o.vpns,
      setupSeconds: { vpns: round(vpnsS), enroll: round(enrollS), members: round(membersS), connect: round(connectS) },
      rotateAllSeconds: round(rotateAllS),
      deliverAllSeconds: round((last - start) / 1000),
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] },
      verified,
      authorityMemoryMb: { afterSetup: round(afterSetup, 1), peakDuringDelivery: round(peak, 1), highWater: round(mem.hwm, 1) },
    };
  } finally {
    abort.abort();
    for (const c of clients) c.close();
    if (child && child.exitCode === null) {
      await new Promise<void>((r) => {
        child!.once('exit', () => r());
        child!.kill('SIGTERM');
        setTimeout(() => child!.kill('SIGKILL'), 10_000).unref();
      });
    }
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the benchmark on each backend in turn (bench/run.ts calls this). */
export async function runAuthorityBench(opts: Partial<AuthorityBenchOptions> = {}, log: (line: string) => void = () => undefined): Promise<AuthorityBenchResult[]> {
  const o = { ...authorityBenchOptions(), ...opts };
  const out: AuthorityBenchResult[] = [];
  for (const b of o.backends) out.push(await runOne(b, o, log));
  return out;
}

export function formatAuthorityBench(results: AuthorityBenchResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    if (r.skipped) {
      lines.push(`${r.backend}: skipped (${r.skipped})`);
      continue;
    }
    lines.push(
      `${r.backend}: ${r.gateways} gateways in ${r.vpns} VPNs: rotate-all ${r.rotateAllSeconds} s; delivered to every gateway ${r.deliverAllSeconds} s after it started ` +
        `(per gateway after its VPN's rotation: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms; ${r.verified} decrypted and checked)`,
      `${r.backend}: authority memory ${r.authorityMemoryMb.afterSetup} MB RSS after setup, ${r.authorityMemoryMb.peakDuringDelivery} MB peak during delivery (high water ${r.authorityMemoryMb.highWater} MB); ` +
        `setup: VPNs ${r.setupSeconds.vpns} s, enrollment ${r.setupSeconds.enroll} s, memberships ${r.setupSeconds.members} s, connecting ${r.setupSeconds.connect} s`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && existsSync(ROOT)) {
  runAuthorityBench({}, (l) => console.log(`  ${l}`))
    .then((r) => console.log(formatAuthorityBench(r)))
    .catch((e: unknown) => {
      process.stderr.write(`authority-scale: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    });
}

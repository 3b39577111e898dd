// Authority scale benchmark: enroll N gateways (offline bundles), put them into M VPNs (gateway i
// in VPN i mod M, one /24 each), connect every gateway to the change stream with its own mutual-TLS
// connection, rotate every VPN's key, and measure how long it takes until every gateway holds its
// VPN's new epoch, plus each authority process's memory. On SQLite (one process), and on
// PostgreSQL with one, two or three replicas (`kasane authority replica`; a private server started
// for the run, when PostgreSQL is installed). With several replicas, gateway i starts at replica
// i mod R and knows every replica's URL; after the rotation one replica is killed (kill -9) and the
// time its gateways take to move to another replica and hold a change made right after the kill
// is measured too.
//
// The authorities run as separate `kasane authority serve` processes, so their memory (VmRSS,
// VmHWM from /proc) is their own; the gateways are lightweight clients of the real change stream
// (the client library's failover over several URLs, no HPKE open but for a sample) in this process.
// By default they follow it as gateways do (`watch`): subscribed to the wake-up channel (one UDP
// socket each) and fetching over a new mutual-TLS connection with a resumed session when woken;
// KASANE_BENCH_AUTHORITY_MODE=longpoll holds a long poll per gateway instead, to compare.
//
// Size by environment (defaults: the issue's 10,000 gateways, 1,000 VPNs):
//   KASANE_BENCH_AUTHORITY_GATEWAYS, KASANE_BENCH_AUTHORITY_VPNS,
//   KASANE_BENCH_AUTHORITY_BACKENDS (comma list of sqlite, postgres),
//   KASANE_BENCH_AUTHORITY_REPLICAS (comma list of replica counts for postgres, default 1,2,3),
//   KASANE_BENCH_AUTHORITY_CONCURRENCY, KASANE_BENCH_AUTHORITY_MODE (push or longpoll),
//   KASANE_BENCH_AUTHORITY_PUSH_REFRESH (the authorities' push.refreshSeconds; default 25).
// KASANE_BENCH_AUTHORITY_ENV: NAME=VALUE pairs (space-separated) added to the authorities'
// environment, e.g. GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16384 (docs/authority.md, "Memory per gateway").
// KASANE_BENCH_AUTHORITY_TLS_GROUPS: the authorities' tls.groups (authority.json), e.g. X25519:P-256.
// Run alone: node --import tsx bench/authority-scale.ts
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AuthorityClient, gatewayClient, openDelivery } from '../src/authority/client.js';
import { createReplica, initAuthority } from '../src/authority/lifecycle.js';
import { packAnswer } from '../src/authority/push-datagram.js';
import type { GatewayBundle, GatewayChanges } from '../src/authority/wire.js';
import { startPostgres, type PgServer } from '../scripts/temp-postgres.js';
import { freePort } from '../test/support/ports.js';
import { spawnAuthority } from '../test/authority/helpers/authority.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** New epochs become active this long after the rotation: the latency below is measured from the rotation. */
const OVERLAP_MS = 120_000;

export type AuthorityBackend = 'sqlite' | 'postgres';
export type AuthorityBenchMode = 'push' | 'longpoll';

export interface AuthorityBenchOptions {
  gateways: number;
  vpns: number;
  backends: AuthorityBackend[];
  /** Replica counts to run on PostgreSQL. */
  replicas: number[];
  /** Administrator requests in flight during setup. */
  concurrency: number;
  /** Gateways whose new key is decrypted and compared (HPKE open costs ~3 ms each). */
  verifySample: number;
  /** How the gateways follow the change stream: the wake-up channel, or a long poll each. */
  mode: AuthorityBenchMode;
  /** The authorities' push.refreshSeconds (undefined: the default). */
  pushRefreshSeconds?: number;
}

export interface AuthorityBenchResult {
  backend: AuthorityBackend;
  replicas: number;
  mode: AuthorityBenchMode;
  skipped?: string;
  gateways: number;
  vpns: number;
  setupSeconds: { vpns: number; enroll: number; members: number; connect: number };
  /** The administrator's rotate-all call (every VPN rotated). */
  rotateAllSeconds: number;
  /** From the start of rotate-all until the last gateway received its VPN's new epoch. */
  deliverAllSeconds: number;
  /** CPU seconds (all threads) used in that time by each replica, PostgreSQL, and this process (the gateways). */
  cpuSeconds: { replicas: number[]; postgres: number; gateways: number };
  /** Per gateway: from its VPN's rotation until it received the new epoch. */
  latencyMs: { p50: number; p99: number; max: number };
  /**
   * The wake-up channel's datagrams for the rotation, all replicas: answers sent in a DELIVER, WAKEs
   * (each a fetch over TLS), answers too large for a DELIVER, resends.
   */
  push?: { delivers: number; wakes: number; tooLarge: number; resends: number };
  verified: number;
  /** Per replica: RSS after setup, with its gateways waiting (or subscribed), the high-water mark; KB per gateway. */
  memory: {
    replica: number;
    gateways: number;
    afterSetupMb: number;
    waitingMb: number;
    highWaterMb: number;
    kbPerGateway: number;
  }[];
  /** With several replicas: one killed, its gateways' time to move and hold a change made just after. */
  failover?: { gateways: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** The 1-minute load average when the run started and ended (others share the machine). */
  load: { start: number; end: number };
}

export function authorityBenchOptions(env: NodeJS.ProcessEnv = process.env): AuthorityBenchOptions {
  const int = (name: string, dflt: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || Number(v) < 1)
      throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const backends = (env.KASANE_BENCH_AUTHORITY_BACKENDS ?? 'sqlite,postgres')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const b of backends)
    if (b !== 'sqlite' && b !== 'postgres') throw new Error(`KASANE_BENCH_AUTHORITY_BACKENDS: unknown backend ${b}`);
  const replicas = (env.KASANE_BENCH_AUTHORITY_REPLICAS ?? '1,2,3').split(',').map((s) => Number(s.trim()));
  for (const r of replicas)
    if (!Number.isInteger(r) || r < 1 || r > 8)
      throw new Error('KASANE_BENCH_AUTHORITY_REPLICAS: replica counts from 1 to 8');
  const mode = env.KASANE_BENCH_AUTHORITY_MODE || 'push';
  if (mode !== 'push' && mode !== 'longpoll')
    throw new Error(`KASANE_BENCH_AUTHORITY_MODE: push or longpoll, got ${JSON.stringify(mode)}`);
  return {
    mode,
    pushRefreshSeconds: env.KASANE_BENCH_AUTHORITY_PUSH_REFRESH
      ? int('KASANE_BENCH_AUTHORITY_PUSH_REFRESH', 25)
      : undefined,
    gateways: int('KASANE_BENCH_AUTHORITY_GATEWAYS', 10_000),
    vpns: int('KASANE_BENCH_AUTHORITY_VPNS', 1_000),
    backends: backends as AuthorityBackend[],
    replicas,
    concurrency: int('KASANE_BENCH_AUTHORITY_CONCURRENCY', 32),
    verifySample: int('KASANE_BENCH_AUTHORITY_VERIFY', 100),
  };
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

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux architecture). */
const USER_HZ = 100;

/** CPU seconds (user and system, all threads) of a process so far; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return 0;
  }
}

/** KASANE_BENCH_AUTHORITY_ENV as variables. */
function benchEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.KASANE_BENCH_AUTHORITY_ENV ?? '').split(' ').filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`KASANE_BENCH_AUTHORITY_ENV: ${JSON.stringify(pair)} is not NAME=VALUE`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

function spawnServe(dataDir: string, port: number): Promise<ChildProcess> {
  // KASANE_BENCH_AUTHORITY_NODE_ARGS: extra node flags for the authorities, e.g. --cpu-prof --cpu-prof-dir=DIR.
  const nodeArgs = (process.env.KASANE_BENCH_AUTHORITY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return spawnAuthority(dataDir, port, { logLevel: 'warn', nodeArgs, startTimeoutMs: 60_000, env: benchEnv() });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runOne(
  backend: AuthorityBackend,
  replicas: number,
  o: AuthorityBenchOptions,
  log: (line: string) => void,
): Promise<AuthorityBenchResult> {
  const tag = `${backend === 'sqlite' ? 'sqlite' : `postgres x${replicas}`} ${o.mode}`;
  const empty: AuthorityBenchResult = {
    backend,
    replicas,
    mode: o.mode,
    gateways: o.gateways,
    vpns: o.vpns,
    setupSeconds: { vpns: 0, enroll: 0, members: 0, connect: 0 },
    rotateAllSeconds: 0,
    deliverAllSeconds: 0,
    cpuSeconds: { replicas: [], postgres: 0, gateways: 0 },
    latencyMs: { p50: 0, p99: 0, max: 0 },
    verified: 0,
    memory: [],
    load: { start: loadavg()[0], end: 0 },
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
  const children: ChildProcess[] = [];
  const clients: AuthorityClient[] = [];
  // One signal per gateway: thousands of requests listening on one signal would cost this process
  // time quadratic in their number (every listener added is compared with those already there).
  const stops: AbortController[] = [];
  try {
    const ports: number[] = [];
    for (let r = 0; r < replicas; r++) ports.push(await freePort());
    const urls = ports.map((p) => `https://127.0.0.1:${p}`);
    const init = await initAuthority({
      dataDir: join(dir, 'r0'),
      name: 'bench',
      database,
      listen: { host: '127.0.0.1', port: ports[0] },
      rotation: { periodMs: 0, overlapMs: OVERLAP_MS },
    });
    for (let r = 1; r < replicas; r++)
      await createReplica({
        from: join(dir, 'r0'),
        dataDir: join(dir, `r${r}`),
        listen: { host: '127.0.0.1', port: ports[r] },
      });
    const groups = process.env.KASANE_BENCH_AUTHORITY_TLS_GROUPS;
    for (let r = 0; r < replicas; r++) {
      const file = join(dir, `r${r}`, 'authority.json');
      writeFileSync(
        file,
        JSON.stringify({
          ...JSON.parse(readFileSync(file, 'utf8')),
          ...(groups && { tls: { groups } }),
          ...(o.pushRefreshSeconds && { push: { refreshSeconds: o.pushRefreshSeconds } }),
        }),
      );
    }
    for (let r = 0; r < replicas; r++) children.push(await spawnServe(join(dir, `r${r}`), ports[r]));
    const pids = children.map((c) => c.pid!);
    const ca = readFileSync(join(dir, 'r0', 'certs', 'root-ca.pem'), 'utf8');
    const admins = urls.map((url) => new AuthorityClient({ url, ca, adminToken: init.adminToken, timeoutMs: 600_000 }));
    clients.push(...admins);
    const admin = admins[0];
    const vpnName = (v: number): string => `vpn-${v}`;
    const gwName = (i: number): string => `gw-${i}`;

    let t = performance.now();
    await pool(
      Array.from({ length: o.vpns }, (_, v) => v),
      o.concurrency,
      async (v) => void (await admins[v % replicas].createVpn({ name: vpnName(v), id: v + 1, rotationPeriodMs: 0 })),
    );
    const vpnsS = (performance.now() - t) / 1000;
    log(`${tag}: ${o.vpns} VPNs in ${round(vpnsS)} s`);

    t = performance.now();
    const bundles: GatewayBundle[] = new Array(o.gateways);
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      o.concurrency,
      async (i) => {
        await admins[i % replicas].addGateway(gwName(i), `198.18.${(i >> 8) & 255}.${i & 255}`);
        bundles[i] = await admins[i % replicas].makeBundle(gwName(i));
      },
    );
    const enrollS = (performance.now() - t) / 1000;
    log(`${tag}: ${o.gateways} gateways enrolled (offline bundles) in ${round(enrollS)} s`);

    t = performance.now();
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      o.concurrency,
      async (i) =>
        void (await admins[i % replicas].addMember(vpnName(i % o.vpns), gwName(i), [
          `10.${(i >> 8) & 255}.${i & 255}.0/24`,
        ])),
    );
    const membersS = (performance.now() - t) / 1000;
    log(`${tag}: ${o.gateways} memberships in ${round(membersS)} s`);
    await sleep(2000); // let the replicas settle (garbage of the setup)
    const afterSetup = pids.map((p) => memory(p).rss);

    // Every gateway: a full first delivery, then long polls; gateway i starts at replica i mod R.
    t = performance.now();
    const received: { at: number; change: GatewayChanges }[] = new Array(o.gateways);
    let got = 0;
    let allReceived: () => void = () => undefined;
    const done = new Promise<void>((r) => (allReceived = r));
    const gws = bundles.map((b, i) => {
      const mine = [...urls.slice(i % replicas), ...urls.slice(0, i % replicas)];
      const c = gatewayClient(b, undefined, { urls: mine });
      clients.push(c);
      return c;
    });
    // After the rotation: the marker of the failover measurement, and when each gateway saw it.
    let marker: string | undefined;
    const markerSeen: number[] = new Array(o.gateways);
    let markerCount = 0;
    let markerWanted = 0;
    let markerAll: () => void = () => undefined;
    const errors: unknown[] = [];
    /** What gateway i was told: its VPN's new epoch, the failover marker. */
    const seen = (i: number, c: GatewayChanges): void => {
      if (!c.delivery) return;
      const v = c.delivery.vpns.find((x) => x.name === vpnName(i % o.vpns));
      if (!received[i] && v && v.epochs.some((e) => e.epoch === 2)) {
        received[i] = { at: Date.now(), change: c };
        if (++got === o.gateways) allReceived();
      }
      if (marker && markerSeen[i] === undefined && c.delivery.protectedPrefixes.includes(marker)) {
        markerSeen[i] = Date.now();
        if (i % replicas === replicas - 1 && ++markerCount === markerWanted) markerAll();
      }
    };
    const followLongPoll = async (i: number, onFirst: () => void): Promise<void> => {
      let since = 0;
      let failures = 0;
      const stop = new AbortController();
      stops.push(stop);
      while (!stop.signal.aborted) {
        let c: GatewayChanges;
        try {
          // The first call is the full first delivery; then long polls.
          c = await gws[i].changes(since, { waitSeconds: since === 0 ? 0 : 60, signal: stop.signal });
          failures = 0;
        } catch (e) {
          if (stop.signal.aborted) return;
          if (++failures > 20) {
            errors.push(e);
            onFirst();
            return;
          }
          await sleep(100 * failures);
          continue;
        }
        if (since === 0) onFirst();
        else seen(i, c);
        since = c.version;
      }
    };
    // As a gateway: the first delivery (on a connection of its own), then the wake-up channel.
    const followPush = async (i: number, onFirst: () => void): Promise<void> => {
      const stop = new AbortController();
      stops.push(stop);
      let first: GatewayChanges | undefined;
      for (let failures = 0; !first;) {
        try {
          first = await gws[i].changes(0, { waitSeconds: 0, signal: stop.signal, fresh: true });
        } catch (e) {
          if (stop.signal.aborted) return;
          if (++failures > 20) {
            errors.push(e);
            return onFirst();
          }
          await sleep(100 * failures);
        }
      }
      let up = false;
      await gws[i]
        .watch({
          since: first.version,
          signal: stop.signal,
          backoffMs: { min: 100, max: 2000 },
          push: {
            onState: (e) => {
              if (e.state === 'fallback') pushFallbacks++;
              if (!up) onFirst();
              up = true;
            },
          },
          onChanges: (c) => seen(i, c),
        })
        .catch((e: unknown) => errors.push(e));
    };
    let pushFallbacks = 0;
    const follow = o.mode === 'push' ? followPush : followLongPoll;
    // Gateways come up gradually (TLS handshake and first delivery), then stay on the stream.
    const followers: Promise<void>[] = [];
    await pool(
      gws,
      Math.max(o.concurrency, 64),
      (_, i) => new Promise<void>((first) => void followers.push(follow(i, first))),
    );
    // Gateways on the stream of each replica: waiting on its long poll, or subscribed to its channel.
    const waitingOn = async (): Promise<number[]> =>
      Promise.all(
        admins.map(async (a) => {
          const s = await a.status();
          return s.waitingGateways + (s.push?.subscriptions ?? 0);
        }),
      );
    for (;;) {
      const w = await waitingOn();
      if (w.reduce((a, b) => a + b, 0) >= o.gateways) break;
      if (errors.length) throw errors[0];
      await sleep(200);
    }
    const connectS = (performance.now() - t) / 1000;
    log(
      `${tag}: ${o.gateways} gateways on the change stream (${o.mode === 'push' ? 'wake-up channel' : 'mutual-TLS long poll'}) in ${round(connectS)} s` +
        (pushFallbacks ? `; ${pushFallbacks} fell back to the long poll` : ''),
    );
    await sleep(2000);
    const waiting = await waitingOn();
    const withGateways = pids.map((p) => memory(p).rss);

    let peak = pids.map((p) => memory(p).rss);
    const sampler = setInterval(() => {
      try {
        peak = pids.map((p, r) => Math.max(peak[r], memory(p).rss));
      } catch {
        // a process is gone
      }
    }, 100);
    const pushCounts = async (): Promise<NonNullable<AuthorityBenchResult['push']>> => {
      const all = await Promise.all(admins.map((a) => a.status()));
      const sum = (k: 'delivers' | 'wakes' | 'tooLarge' | 'resends'): number =>
        all.reduce((n, s) => n + (s.push?.[k] ?? 0), 0);
      return { delivers: sum('delivers'), wakes: sum('wakes'), tooLarge: sum('tooLarge'), resends: sum('resends') };
    };
    const pushBefore = o.mode === 'push' ? await pushCounts() : undefined;
    // CPU used from the rotation until the last gateway has it: where the time goes on shared cores.
    const pgPids = pg?.processes() ?? [];
    const cpuNow = (): number[] => [
      ...pids.map(cpuSeconds),
      pgPids.reduce((n, p) => n + cpuSeconds(p), 0),
      process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    ];
    const cpuBefore = cpuNow();
    const start = Date.now();
    const t0 = performance.now();
    const rotated = await admin.rotateAll();
    const rotateAllS = (performance.now() - t0) / 1000;
    const timeout = setTimeout(() => allReceived(), 600_000);
    await done;
    const cpuUsed = cpuNow().map((c, i) => round(c - cpuBefore[i]));
    clearTimeout(timeout);
    clearInterval(sampler);
    if (got < o.gateways)
      throw new Error(`only ${got} of ${o.gateways} gateways received the rotation within 10 minutes`);
    const last = Math.max(...received.map((r) => r.at));
    const latencies = received
      .map((r, i) => {
        const e = r.change
          .delivery!.vpns.find((x) => x.name === vpnName(i % o.vpns))!
          .epochs.find((x) => x.epoch === 2)!;
        return r.at - (e.activeFrom - OVERLAP_MS);
      })
      .sort((a, b) => a - b);
    log(
      `${tag}: rotated ${rotated.rotated.length} VPNs in ${round(rotateAllS)} s; every gateway had its new epoch ${round((last - start) / 1000)} s after the start`,
    );
    const cpu = {
      replicas: cpuUsed.slice(0, pids.length),
      postgres: backend === 'postgres' ? cpuUsed[pids.length] : 0,
      gateways: cpuUsed[pids.length + 1],
    };
    log(
      `${tag}: CPU seconds until then: ${cpu.replicas.map((c, r) => `replica ${r} ${c}`).join(', ')}, ` +
        `PostgreSQL ${cpu.postgres}, the gateways (this process) ${cpu.gateways}; ` +
        `${round(((last - start) / 1000) * availableParallelism(), 1)} available on ${availableParallelism()} cores`,
    );
    // What one answer weighs (a DELIVER carries it packed when that fits 1,200 bytes).
    const sizes = received.slice(0, 200).map((r) => {
      const json = Buffer.from(JSON.stringify(r.change));
      return [json.length, packAnswer(json.toString()).length];
    });
    log(
      `${tag}: an answer after the rotation: ${sizes[0][0]} bytes of JSON, ${sizes[0][1]} packed (largest of 200: ${Math.max(...sizes.map((x) => x[1]))})`,
    );
    let push: AuthorityBenchResult['push'];
    if (pushBefore) {
      const after = await pushCounts();
      push = {
        delivers: after.delivers - pushBefore.delivers,
        wakes: after.wakes - pushBefore.wakes,
        tooLarge: after.tooLarge - pushBefore.tooLarge,
        resends: after.resends - pushBefore.resends,
      };
    }
    const memoryRows = pids.map((p, r) => {
      const m = memory(p);
      return {
        replica: r,
        gateways: waiting[r],
        afterSetupMb: round(afterSetup[r], 1),
        waitingMb: round(withGateways[r], 1),
        highWaterMb: round(Math.max(m.hwm, peak[r]), 1),
        kbPerGateway: waiting[r] ? round(((withGateways[r] - afterSetup[r]) * 1024) / waiting[r], 1) : 0,
      };
    });

    // Decrypt a sample: each opens its own sealed key, members of one VPN agree.
    let verified = 0;
    const keysByVpn = new Map<number, string>();
    for (let i = 0; i < Math.min(o.verifySample, o.gateways); i++) {
      const idx = Math.floor((i * o.gateways) / Math.min(o.verifySample, o.gateways));
      const s = await openDelivery(received[idx].change.delivery, bundles[idx].privateKey!, {
        gateway: gwName(idx),
        authority: 'bench',
      });
      const key = Buffer.from(s.vpns[0].epochs.find((e) => e.epoch === 2)!.key).toString('hex');
      const v = idx % o.vpns;
      if (keysByVpn.has(v) && keysByVpn.get(v) !== key) throw new Error(`members of ${vpnName(v)} disagree on the key`);
      keysByVpn.set(v, key);
      verified++;
    }

    // Failover: kill -9 the last replica; right after, a change every gateway receives (a
    // directory entry). Its gateways must move to another replica and catch up.
    let failover: AuthorityBenchResult['failover'];
    if (replicas > 1) {
      const k = replicas - 1;
      const moving = Array.from({ length: o.gateways }, (_, i) => i).filter((i) => i % replicas === k);
      markerWanted = moving.length;
      const allMoved = new Promise<void>((r) => (markerAll = r));
      marker = '203.0.113.0/24';
      const victim = children[k];
      await new Promise<void>((r) => {
        victim.once('exit', () => r());
        victim.kill('SIGKILL');
      });
      const killedAt = Date.now();
      await admin.addDirectory(marker, 'failover marker');
      const guard = setTimeout(() => markerAll(), 300_000);
      // Only the moving gateways count; the others see it too.
      await allMoved;
      clearTimeout(guard);
      const times = moving
        .filter((i) => markerSeen[i] !== undefined)
        .map((i) => markerSeen[i] - killedAt)
        .sort((a, b) => a - b);
      if (times.length < moving.length)
        throw new Error(
          `only ${times.length} of ${moving.length} gateways of the killed replica caught up within 5 minutes`,
        );
      failover = {
        gateways: moving.length,
        p50Ms: percentile(times, 50),
        p99Ms: percentile(times, 99),
        maxMs: times[times.length - 1],
      };
      log(
        `${tag}: replica ${k} killed; its ${moving.length} gateways moved and held a change made just after in p50 ${failover.p50Ms} ms, max ${failover.maxMs} ms`,
      );
    }
    return {
      backend,
      replicas,
      mode: o.mode,
      gateways: o.gateways,
      vpns: o.vpns,
      setupSeconds: { vpns: round(vpnsS), enroll: round(enrollS), members: round(membersS), connect: round(connectS) },
      rotateAllSeconds: round(rotateAllS),
      cpuSeconds: cpu,
      deliverAllSeconds: round((last - start) / 1000),
      latencyMs: {
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: latencies[latencies.length - 1],
      },
      push,
      verified,
      memory: memoryRows,
      failover,
      load: { start: empty.load.start, end: loadavg()[0] },
    };
  } finally {
    for (const stop of stops) stop.abort();
    for (const c of clients) c.close();
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      await new Promise<void>((r) => {
        child.once('exit', () => r());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      });
    }
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the benchmark on each backend (and each replica count on PostgreSQL) in turn (bench/run.ts calls this). */
export async function runAuthorityBench(
  opts: Partial<AuthorityBenchOptions> = {},
  log: (line: string) => void = () => undefined,
): Promise<AuthorityBenchResult[]> {
  const o = { ...authorityBenchOptions(), ...opts };
  const out: AuthorityBenchResult[] = [];
  for (const b of o.backends) {
    if (b === 'sqlite') out.push(await runOne(b, 1, o, log));
    else for (const r of o.replicas) out.push(await runOne(b, r, o, log));
  }
  return out;
}

export function formatAuthorityBench(results: AuthorityBenchResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const tag = `${r.backend === 'sqlite' ? 'sqlite' : `postgres x${r.replicas}`} ${r.mode}`;
    if (r.skipped) {
      lines.push(`${tag}: skipped (${r.skipped})`);
      continue;
    }
    lines.push(
      `${tag}: ${r.gateways} gateways in ${r.vpns} VPNs: rotate-all ${r.rotateAllSeconds} s; every gateway held its new epoch ${r.deliverAllSeconds} s after the rotation started ` +
        `(per gateway after its VPN's rotation: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms; ${r.verified} decrypted and checked)`,
      ...(r.push
        ? [
            `${tag}: datagrams for the rotation: ${r.push.delivers} DELIVERs (the answer itself), ${r.push.wakes} WAKEs (a fetch over TLS each; ${r.push.tooLarge} answers too large for a datagram), ${r.push.resends} resends`,
          ]
        : []),
      ...r.memory.map(
        (m) =>
          `${tag}: replica ${m.replica}: ${m.gateways} gateways ${r.mode === 'push' ? 'subscribed' : 'waiting'}; RSS ${m.afterSetupMb} MB after setup, ${m.waitingMb} MB with them waiting (${m.kbPerGateway} KB per gateway), high water ${m.highWaterMb} MB`,
      ),
      ...(r.failover
        ? [
            `${tag}: kill -9 of one replica: its ${r.failover.gateways} gateways moved and caught up in p50 ${r.failover.p50Ms} ms, p99 ${r.failover.p99Ms} ms, max ${r.failover.maxMs} ms`,
          ]
        : []),
      `${tag}: setup: VPNs ${r.setupSeconds.vpns} s, enrollment ${r.setupSeconds.enroll} s, memberships ${r.setupSeconds.members} s, connecting ${r.setupSeconds.connect} s; load average ${round(r.load.start, 1)} at the start, ${round(r.load.end, 1)} at the end` +
        (process.env.KASANE_BENCH_AUTHORITY_ENV
          ? `; authorities run with ${process.env.KASANE_BENCH_AUTHORITY_ENV}`
          : '') +
        (process.env.KASANE_BENCH_AUTHORITY_TLS_GROUPS
          ? `; TLS groups ${process.env.KASANE_BENCH_AUTHORITY_TLS_GROUPS}`
          : ''),
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

// The administrator's rotate-all call alone (issue 15), without HTTPS and without gateways waiting:
// N gateways in M VPNs (gateway i in VPN i mod M, one /24 each) written straight into a real store,
// then `rotate --all` through the authority's own module (Epochs.rotateAll, what POST
// /v1/vpns/rotate runs), timed a few times in a row. Between two rotations the authority's clock
// moves past the previous epochs' end, so every rotation after the first also deletes the epoch
// that ended with its sealed keys and SPIs, as a rotation of a long-running authority does.
// After the runs it checks the outcome: one new epoch per VPN and rotation, a sealed key and an SPI
// per member, an audit entry per VPN and rotation.
//
// On SQLite (a file in a temporary directory) and on PostgreSQL (a private server started for the
// run, when PostgreSQL is installed). Size by environment:
//   KASANE_BENCH_ROTATE_GATEWAYS (default 10,000), KASANE_BENCH_ROTATE_VPNS (1,000),
//   KASANE_BENCH_ROTATE_RUNS (3), KASANE_BENCH_ROTATE_BACKENDS (sqlite,postgres).
// Run alone: node --import tsx bench/authority-rotate.ts (add --cpu-prof to profile).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { RotationConfig } from '../src/authority/config.js';
import { AuthorityService } from '../src/authority/service.js';
import { PostgresStore } from '../src/authority/storage/postgres.js';
import { SqliteStore } from '../src/authority/storage/sqlite.js';
import type { GatewayRow, MemberPrefixRow, Store } from '../src/authority/storage/types.js';
import { createAuthorityCa } from '../src/pki/ca.js';
import { startPostgres, type PgServer } from '../scripts/temp-postgres.js';
import { envInteger } from './env.js';

export interface RotateBenchOptions {
  gateways: number;
  vpns: number;
  runs: number;
  backends: ('sqlite' | 'postgres')[];
}

export interface RotateBenchResult {
  backend: 'sqlite' | 'postgres';
  skipped?: string;
  gateways: number;
  vpns: number;
  setupSeconds: number;
  /** Each rotate-all call, in order. */
  rotateSeconds: number[];
  /** The CPU time this process (every thread: the sealing workers too) spent in each, in seconds. */
  cpuSeconds: number[];
  /** The 1-minute load average before the first and after the last rotation. */
  load: { start: number; end: number };
}

const ROTATION: RotationConfig = { periodMs: 0, overlapMs: 120_000, graceMs: 300_000, urgentGraceMs: 10_000 };
const ACTOR = 'admin:bench';

export function rotateBenchOptions(env: NodeJS.ProcessEnv = process.env): RotateBenchOptions {
  const backends = (env.KASANE_BENCH_ROTATE_BACKENDS ?? 'sqlite,postgres').split(',').map((s) => s.trim());
  for (const b of backends)
    if (b !== 'sqlite' && b !== 'postgres') throw new Error(`KASANE_BENCH_ROTATE_BACKENDS: unknown backend ${b}`);
  return {
    gateways: envInteger(env, 'KASANE_BENCH_ROTATE_GATEWAYS', 10_000, 1, 1_000_000),
    vpns: envInteger(env, 'KASANE_BENCH_ROTATE_VPNS', 1_000, 1, 100_000),
    runs: envInteger(env, 'KASANE_BENCH_ROTATE_RUNS', 3, 1, 100),
    backends: backends as RotateBenchOptions['backends'],
  };
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/** Enrolled gateways and their memberships, written in a few transactions (their keys are real P-256 keys). */
async function populate(store: Store, o: RotateBenchOptions, now: number): Promise<void> {
  const gateways: GatewayRow[] = [];
  const members: MemberPrefixRow[] = [];
  for (let i = 0; i < o.gateways; i++) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const name = `gw-${i}`;
    gateways.push({
      name,
      address: `198.18.${(i >> 8) & 255}.${i & 255}`,
      status: 'active',
      certSerial: null,
      publicKey: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
      changedVersion: 1,
      createdAt: now,
      enrolledAt: now,
      revokedAt: null,
      revokeReason: null,
    });
    members.push({
      vpnId: (i % o.vpns) + 1,
      gateway: name,
      prefix: `10.${(i >> 8) & 255}.${i & 255}.0/24`,
      addedAt: now,
    });
  }
  for (let i = 0; i < gateways.length; i += 2000) {
    const part = gateways.slice(i, i + 2000);
    await store.write(async (tx) => {
      for (const g of part) await tx.insertGateway(g);
    });
  }
  await store.write((tx) => tx.insertMemberPrefixes(members));
}

async function runOne(
  backend: 'sqlite' | 'postgres',
  o: RotateBenchOptions,
  log: (line: string) => void,
): Promise<RotateBenchResult> {
  const result: RotateBenchResult = {
    backend,
    gateways: o.gateways,
    vpns: o.vpns,
    setupSeconds: 0,
    rotateSeconds: [],
    cpuSeconds: [],
    load: { start: 0, end: 0 },
  };
  let pg: PgServer | undefined;
  let store: Store | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kasane-bench-rotate-'));
  let service: AuthorityService | undefined;
  try {
    if (backend === 'postgres') {
      const r = await startPostgres();
      if (!r.ok) return { ...result, skipped: r.reason };
      pg = r.server;
      store = await PostgresStore.open(await pg.createDatabase());
    } else store = SqliteStore.open(join(dir, 'authority.db'));
    const clock = { now: Date.now() };
    const t = performance.now();
    const db = store;
    await db.write((tx) => tx.initState('bench', clock.now));
    const ca = await createAuthorityCa({ authority: 'bench', now: clock.now });
    service = new AuthorityService({
      store: db,
      ca,
      kek: new Uint8Array(randomBytes(32)),
      url: 'https://authority.bench:7443',
      rotation: ROTATION,
      enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
      now: () => clock.now,
    });
    await service.start();
    for (let v = 1; v <= o.vpns; v++)
      await service.vpns.create(ACTOR, { name: `vpn-${v}`, id: v, rotationPeriodMs: 0 });
    await populate(db, o, clock.now);
    result.setupSeconds = round((performance.now() - t) / 1000);
    log(`${backend}: ${o.gateways} gateways in ${o.vpns} VPNs set up in ${result.setupSeconds} s`);
    result.load.start = loadavg()[0];
    for (let run = 0; run < o.runs; run++) {
      // Past the previous epochs' end: this rotation also deletes them.
      if (run > 0) clock.now += ROTATION.overlapMs + ROTATION.graceMs + 1;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const rotated = await service.rotateAll(ACTOR, false);
      const s = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      result.cpuSeconds.push(round((cpu.user + cpu.system) / 1e6));
      if (rotated.length !== o.vpns) throw new Error(`rotated ${rotated.length} VPNs, not ${o.vpns}`);
      result.rotateSeconds.push(round(s));
      log(
        `${backend}: rotate-all ${run + 1}: ${round(s)} s, CPU ${result.cpuSeconds[run]} s (load average ${round(loadavg()[0], 1)})`,
      );
    }
    result.load.end = loadavg()[0];
    await check(db, o);
    return result;
  } finally {
    await service?.stop();
    await store?.close();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One epoch per VPN and rotation, a sealed key and an SPI per member of the newest, an audit entry per rotation. */
async function check(store: Store, o: RotateBenchOptions): Promise<void> {
  await store.read(async (tx) => {
    const vpns = await tx.listVpns();
    const want = 1 + o.runs;
    for (const v of vpns)
      if (v.lastEpoch !== want) throw new Error(`${v.name} is at epoch ${v.lastEpoch}, not ${want}`);
    const audit = await tx.listAudit({ action: 'vpn.rotate', limit: o.vpns * o.runs + 1 });
    if (audit.length !== o.vpns * o.runs)
      throw new Error(`${audit.length} rotation audit entries, not ${o.vpns * o.runs}`);
    const sample = vpns[0];
    const spis = (await tx.listSpis(sample.id)).filter((s) => s.epoch === want);
    const members = Math.ceil(o.gateways / o.vpns);
    if (spis.length !== members) throw new Error(`${sample.name} has ${spis.length} SPIs for epoch ${want}`);
  });
}

export async function runRotateBench(
  opts: Partial<RotateBenchOptions> = {},
  log: (line: string) => void = () => undefined,
): Promise<RotateBenchResult[]> {
  const o = { ...rotateBenchOptions(), ...opts };
  const out: RotateBenchResult[] = [];
  for (const b of o.backends) out.push(await runOne(b, o, log));
  return out;
}

export function formatRotateBench(results: RotateBenchResult[]): string {
  return results
    .map((r) =>
      r.skipped
        ? `${r.backend}: skipped (${r.skipped})`
        : `${r.backend}: rotate-all of ${r.vpns} VPNs (${r.gateways} gateways): ${r.rotateSeconds.join(' s, ')} s ` +
          `(CPU of this process ${r.cpuSeconds.join(' s, ')} s); ` +
          `load average ${round(r.load.start, 1)} before, ${round(r.load.end, 1)} after`,
    )
    .join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runRotateBench({}, (l) => console.log(`  ${l}`))
    .then((r) => console.log(formatRotateBench(r)))
    .catch((e: unknown) => {
      process.stderr.write(`authority-rotate: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    });
}

// Scale benchmark: 1,000 gateways and 100,000 terminals in one simulation (by default). Gateways
// hang off a few WAN routers (a full mesh); each has its terminals on one inside LAN (a /24);
// VPNs are overlapping rings of gateways (VPN v = gateways v .. v+k-1). A batch of first packets
// between random terminal pairs that share a VPN makes every one of them a key search.
//
// Reports searches per second (wall clock, the simulated network and every core included) and
// heap bytes per key-table entry (heap growth over the run, after GC, divided by the entries in
// all key tables at the end; run node with --expose-gc, as bench/run.ts does).
//
// Size by environment: KASANE_BENCH_GATEWAYS, KASANE_BENCH_TERMINALS_PER_GATEWAY,
// KASANE_BENCH_ROUTERS, KASANE_BENCH_VPN_MEMBERS, KASANE_BENCH_SEARCHES, KASANE_BENCH_SEED.
import { performance } from 'node:perf_hooks';
import { Simulation } from '../src/sim/simulation.js';
import { randomStream, uniform } from '../src/sim/random.js';
import { parseTopology } from '../src/sim/topology.js';
import { envInteger } from './env.js';

export interface SimScaleOptions {
  gateways: number;
  terminalsPerGateway: number;
  routers: number;
  /** Gateways per VPN; there are as many VPNs as gateways. */
  vpnMembers: number;
  /** First packets sent (each needs a key search). */
  searches: number;
  /** The batch is spread over this many ms of virtual time. */
  spreadMs: number;
  seed: number;
}

export interface SimScaleReport {
  options: SimScaleOptions;
  terminals: number;
  vpns: number;
  buildMs: number;
  runMs: number;
  virtualMs: number;
  searches: number;
  delivered: number;
  searchesPerSecond: number;
  keyTableEntries: number;
  heapBytesBefore: number;
  heapBytesAfter: number;
  gcAvailable: boolean;
  /** undefined without --expose-gc (a heap delta without GC would be noise) or without entries. */
  heapBytesPerEntry: number | undefined;
}

export function simScaleOptions(env: NodeJS.ProcessEnv = process.env): SimScaleOptions {
  const int = (name: string, fallback: number, min: number, max: number) => envInteger(env, name, fallback, min, max);
  const gateways = int('KASANE_BENCH_GATEWAYS', 1000, 2, 65_536);
  return {
    gateways,
    terminalsPerGateway: int('KASANE_BENCH_TERMINALS_PER_GATEWAY', 100, 1, 254),
    routers: int('KASANE_BENCH_ROUTERS', 4, 1, 64),
    vpnMembers: int('KASANE_BENCH_VPN_MEMBERS', Math.min(5, gateways), 2, gateways),
    searches: int('KASANE_BENCH_SEARCHES', 5000, 1, 1_000_000),
    spreadMs: 1000,
    seed: int('KASANE_BENCH_SEED', 1, 0, Number.MAX_SAFE_INTEGER),
  };
}

const gatewayName = (i: number) => `G${i}`;
const routerName = (i: number) => `R${i}`;
const lan = (i: number) => `10.${i >> 8}.${i & 255}`;

/** The generated topology, as the document a file would hold. */
export function scaleTopologyDocument(o: SimScaleOptions): Record<string, unknown> {
  const vpns = Array.from({ length: o.gateways }, (_, v) => ({ name: `V${v}`, id: v + 1 }));
  const membersOf = (v: number) => Array.from({ length: o.vpnMembers }, (_, k) => (v + k) % o.gateways);
  const memberships: Record<string, string[]>[] = Array.from({ length: o.gateways }, () => ({}));
  for (let v = 0; v < o.gateways; v++) for (const g of membersOf(v)) memberships[g][`V${v}`] = [`${lan(g)}.0/24`];

  const nodes: Record<string, unknown>[] = [];
  const links: unknown[] = [];
  for (let r = 0; r < o.routers; r++) {
    nodes.push({ name: routerName(r), router: true });
    for (let s = 0; s < r; s++) links.push([routerName(s), routerName(r)]);
  }
  for (let g = 0; g < o.gateways; g++) {
    const inside: string[] = [];
    for (let t = 1; t <= o.terminalsPerGateway; t++) {
      const name = `T${g}_${t}`;
      nodes.push({ name, terminal: `${lan(g)}.${t}` });
      links.push([name, gatewayName(g)]);
      inside.push(name);
    }
    nodes.push({
      name: gatewayName(g),
      gateway: `198.18.${g >> 8}.${g & 255}`,
      inside,
      lans: [`${lan(g)}.0/24`],
      members: memberships[g],
    });
    links.push([gatewayName(g), routerName(g % o.routers)]);
  }

  // Random pairs that share a VPN: a random VPN, two different members, a terminal behind each.
  const random = randomStream(o.seed, 'bench-traffic');
  const pick = (n: number) => Math.floor(uniform(random) * n);
  const traffic: Record<string, unknown>[] = [];
  for (let s = 0; s < o.searches; s++) {
    const members = membersOf(pick(o.gateways));
    const a = members[pick(members.length)];
    let b = members[pick(members.length - 1)];
    if (b === a) b = members[members.length - 1];
    traffic.push({
      from: `T${a}_${1 + pick(o.terminalsPerGateway)}`,
      to: `T${b}_${1 + pick(o.terminalsPerGateway)}`,
      at: (s * o.spreadMs) / o.searches,
      count: 1,
      size: 56,
    });
  }
  return { name: 'sim-scale', seed: o.seed, defaults: { settle: 10_000 }, vpns, nodes, links, traffic };
}

function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

export function runSimScale(
  o: SimScaleOptions = simScaleOptions(),
  log: (line: string) => void = () => {},
): SimScaleReport {
  const t0 = performance.now();
  const parsed = parseTopology(scaleTopologyDocument(o));
  if (!parsed.ok) throw new Error(`generated topology is invalid:\n${parsed.error.message}`);
  const sim = new Simulation(parsed.value, { trace: false });
  const buildMs = performance.now() - t0;
  log(`built ${o.gateways} gateways, ${o.gateways * o.terminalsPerGateway} terminals in ${buildMs.toFixed(0)} ms`);

  const heapBefore = heapUsed();
  const t1 = performance.now();
  sim.runUntil(sim.until);
  const runMs = performance.now() - t1;
  const heapAfter = heapUsed();

  const result = sim.result();
  let entries = 0;
  for (const table of Object.values(result.keyTables)) entries += table.length;
  const delivered = result.paths.filter((p) => p.delivered).length;
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === 'function';
  return {
    options: o,
    terminals: o.gateways * o.terminalsPerGateway,
    vpns: o.gateways,
    buildMs,
    runMs,
    virtualMs: sim.until,
    searches: o.searches,
    delivered,
    searchesPerSecond: o.searches / (runMs / 1000),
    keyTableEntries: entries,
    heapBytesBefore: heapBefore,
    heapBytesAfter: heapAfter,
    gcAvailable: hasGc,
    heapBytesPerEntry: hasGc && entries > 0 ? (heapAfter - heapBefore) / entries : undefined,
  };
}

export function formatSimScale(r: SimScaleReport): string {
  const o = r.options;
  const perEntry = !r.gcAvailable
    ? 'n/a (run with --expose-gc)'
    : r.heapBytesPerEntry === undefined
      ? 'n/a (no key-table entries)'
      : `${r.heapBytesPerEntry.toFixed(0)} B`;
  return [
    `sim-scale: ${o.gateways} gateways, ${r.terminals} terminals, ${r.vpns} VPNs of ${o.vpnMembers} gateways, ${o.routers} WAN routers (seed ${o.seed})`,
    `  build                 ${r.buildMs.toFixed(0)} ms`,
    `  first packets         ${r.searches} (delivered ${r.delivered}) over ${o.spreadMs} ms virtual; run ${r.runMs.toFixed(0)} ms wall, to ${r.virtualMs.toFixed(0)} ms virtual`,
    `  searches per second   ${r.searchesPerSecond.toFixed(0)}`,
    `  key-table entries     ${r.keyTableEntries}`,
    `  heap                  ${(r.heapBytesBefore / 1e6).toFixed(1)} MB before, ${(r.heapBytesAfter / 1e6).toFixed(1)} MB after`,
    `  heap per entry        ${perEntry}`,
  ].join('\n');
}

// Comparison benchmark (not a test): kasane's gateways beside plain kernel routing, wireguard-go
// and nebula on one namespace testbed (hostA – gwA – router – gwB – hostB), in turns: each round
// sets up every peer once, measures hostA → hostB, and tears it down, so that a change of load on
// the machine hits every peer alike; the report gives per-peer medians over the rounds and
// kasane's throughput ratio to the better of wireguard-go and nebula (the issue's target: ≥ 2×).
//
//   node --import tsx bench/peers/index.ts [--smoke] [--json FILE]
// Environment: KASANE_BENCH_SMOKE=1, KASANE_BENCH_SECONDS (iperf3 s, default 10), KASANE_BENCH_ROUNDS
// (default 3), KASANE_BENCH_PINGS (default 20), KASANE_BENCH_PEERS (comma list of names),
// KASANE_BENCH_INSTALL=0 (never apt-get), KASANE_BENCH_NEBULA_CIPHER (aes | chachapoly | both).
// Needs root (network namespaces); installs iperf3, wireguard-go, wireguard-tools, nebula if missing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsAvailability, Testbed } from '../../src/testbed/netns.js';
import { ensureCommands, type Requirement } from './install.js';
import {
  firstReply,
  iperf,
  machineBusy,
  median,
  pingSeries,
  withCpu,
  type CpuUse,
  type IperfResult,
} from './measure.js';
import { type NebulaCipher, nebulaPeer } from './nebula.js';
import { plainPeer } from './plain.js';
import { killPid, namespacePids, runIn } from './proc.js';
import { buildTopology, ipv6View, namespacesOf, type PeerSetup, type PeerTopology } from './topology.js';
import { wireguardGoPeer } from './wireguard-go.js';
import { kasanePeer } from './kasane.js';
import { searchLatency, type SearchLatencyResult } from './search-latency.js';
import { smallPackets, type SmallPacketResult } from './small-packets.js';
import { envInteger } from '../env.js';

export type { PeerSetup, PeerTopology, GatewaySide, Terminal } from './topology.js';
export type { Requirement } from './install.js';

export interface PeerBenchOptions {
  /** iperf3 duration per run, seconds. */
  seconds: number;
  rounds: number;
  /** Echo requests in the RTT series. */
  pings: number;
  smoke: boolean;
  /** apt-get install missing packages (as root). */
  install: boolean;
  /** Run only these peers (by name); all when undefined. */
  only?: string[];
  /** Nebula's cipher; 'both' measures two nebula peers, `nebula` (aes) and `nebula-chachapoly`. */
  nebulaCipher: NebulaCipher | 'both';
  /** Tunnel MTU (and the terminals' LAN MTU). */
  mtu: number;
  /** How long to sample the machine's CPU before starting, ms (the load others put on it). */
  baselineMs: number;
  /** kasane's gateways; its throughput is compared with the better of wireguard-go and nebula. */
  kasane?: PeerSetup;
  /** Any further peers, measured in the same turns. */
  extraPeers?: PeerSetup[];
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface PeerRun extends IperfResult {
  cpu: CpuUse;
}

export interface PeerSample {
  round: number;
  /** First echo reply after set-up (includes any handshake or key search). */
  firstReplyMs: number;
  firstLost: number;
  /** Median of the RTT series. */
  rttMs: number;
  pingLoss: number;
  stream1: PeerRun;
  stream4: PeerRun;
  /** 64-byte IP packets hostA → hostB (UDP), with the gateways' CPU. */
  small: SmallPacketResult & { cpu: CpuUse };
  /** kasane only: first packet of a new path → delivered (key search and buffering included). */
  search?: SearchLatencyResult;
}

export interface PeerMedians {
  gbps1: number;
  gbps4: number;
  rttMs: number;
  firstReplyMs: number;
  retransmits1?: number;
  retransmits4?: number;
  /** 64-byte packets per second received, and the loss. */
  pps64: number;
  pps64LossPct: number;
  /** kasane only: median first-packet delivery over the rounds, ms. */
  searchMs?: number;
  /** % of one core used by the processes in gwA's / gwB's namespace, during the 1- and 4-stream runs. */
  cpuGwA1: number;
  cpuGwB1: number;
  cpuGwA4: number;
  cpuGwB4: number;
  /** The same during the 64-byte UDP run. */
  cpuGwA64: number;
  cpuGwB64: number;
  /** % of the whole machine busy during the runs. */
  machineBusy1: number;
  machineBusy4: number;
  /** % of one core used by user processes outside the testbed during the runs (others' work). */
  others1: number;
  others4: number;
}

export interface PeerResult {
  name: string;
  description?: string;
  version?: string;
  /** Why the peer was not measured at all. */
  skipped?: string;
  samples: PeerSample[];
  /** Failed turns, one line each. */
  errors: string[];
  medians?: PeerMedians;
}

export interface KasaneRatios {
  /** The better of wireguard-go and nebula, per stream count. */
  best1?: { peer: string; gbps: number };
  best4?: { peer: string; gbps: number };
  /** kasane's median throughput divided by best1/best4, and by plain. */
  vsBest1?: number;
  vsBest4?: number;
  vsPlain1?: number;
  vsPlain4?: number;
  /** The issue's target ratio over the better of wireguard-go and nebula. */
  target: number;
  /** Both vsBest1 and vsBest4 reach the target (undefined without kasane figures). */
  met?: boolean;
}

export interface PeerBenchReport {
  options: {
    seconds: number;
    rounds: number;
    pings: number;
    smoke: boolean;
    nebulaCipher: NebulaCipher | 'both';
    mtu: number;
  };
  /** Set when nothing could run (no root, no namespaces, no iperf3). */
  unavailable?: string;
  machine: {
    cpus: number;
    cpuModel: string;
    kernel: string;
    loadAvgBefore: number[];
    loadAvgAfter: number[];
    /** % of all cores busy just before the run (others' work). */
    busyBeforePct: number;
    /** Highest 1-minute load average seen at the end of a turn. */
    loadAvgMax: number;
  };
  startedAt: string;
  elapsedS: number;
  peers: PeerResult[];
  ratios: KasaneRatios;
  /** The issue's targets (docs/benchmarks.md), per kasane peer: each with its figure and MET / NOT MET. */
  targets: TargetCheck[];
  notes: string[];
}

/** Ratios to plain routing measured in the same run (issue 12): kasane and kasane-pairwise each. */
export const TARGETS = { vsPlain1: 0.35, vsPlain4: 0.25, pps64VsPlain: 0.8, rttOverPlainMs: 0.15 } as const;

export interface TargetCheck {
  peer: string;
  what: string;
  /** The measured figure in the target's unit (a ratio to plain, or ms); undefined: not measured. */
  value?: number;
  unit: '×' | 'ms';
  target: string;
  met?: boolean;
}

/**
 * The issue's targets for every kasane peer with figures, against plain in the same run: a peer
 * measured over IPv6 (`kasane-v6`) against plain IPv6 routing (`plain-v6`).
 */
export function targetsOf(peers: PeerResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const p of peers) {
    if (!p.name.startsWith('kasane')) continue;
    const plain = peers.find((x) => x.name === (p.name.endsWith('-v6') ? 'plain-v6' : 'plain'))?.medians;
    const k = p.medians;
    const check = (
      what: string,
      target: string,
      value: number | undefined,
      ok: (v: number) => boolean,
      unit: '×' | 'ms' = '×',
    ) => out.push({ peer: p.name, what, target, value, unit, met: value === undefined ? undefined : ok(value) });
    const ratio = (a: number | undefined, b: number | undefined) =>
      a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
    check('1 stream / plain', `≥ ${TARGETS.vsPlain1}×`, ratio(k?.gbps1, plain?.gbps1), (v) => v >= TARGETS.vsPlain1);
    check('4 streams / plain', `≥ ${TARGETS.vsPlain4}×`, ratio(k?.gbps4, plain?.gbps4), (v) => v >= TARGETS.vsPlain4);
    check(
      '64 B kpps / plain',
      `≥ ${TARGETS.pps64VsPlain}×`,
      ratio(k?.pps64, plain?.pps64),
      (v) => v >= TARGETS.pps64VsPlain,
    );
    check(
      'RTT − plain RTT',
      `≤ ${TARGETS.rttOverPlainMs} ms`,
      k && plain ? k.rttMs - plain.rttMs : undefined,
      (v) => v <= TARGETS.rttOverPlainMs,
      'ms',
    );
    const searches = p.samples.flatMap((x) => (x.search ? [x.search] : []));
    if (searches.length > 0) {
      const med = median(searches.flatMap((x) => x.samplesMs))!;
      const limit = 3 * median(searches.map((x) => x.rttMs))! + 1;
      out.push({
        peer: p.name,
        what: 'search latency',
        target: `≤ 3×RTT+1 = ${limit.toFixed(2)} ms`,
        value: med,
        unit: 'ms',
        met: med <= limit,
      });
    }
  }
  return out;
}

/**
 * CPU per unit of traffic of each gateway (A sends, B receives) from the 1-stream and 64-byte runs:
 * ns per byte of TCP payload delivered and per full-size segment (the tunnel MTU less 52 bytes of
 * IP and TCP headers with timestamps), and ns per 64-byte packet delivered. The gateway namespace's
 * processes only (threads included, kernel time in their system calls included; softirq work the
 * kernel does elsewhere is not).
 */
export function costOf(
  m: PeerMedians,
  mtu: number,
): { a1: number; b1: number; segA: number; segB: number; a64?: number; b64?: number } {
  const perByte = (cpuPct: number) => ((cpuPct / 100) * 8) / m.gbps1; // ns per byte: (core s/s × 1e9) / (bytes/s)
  const mss = mtu - 52;
  const per64 = (cpuPct: number) => (m.pps64 > 0 ? ((cpuPct / 100) * 1e9) / m.pps64 : undefined);
  return {
    a1: perByte(m.cpuGwA1),
    b1: perByte(m.cpuGwB1),
    segA: perByte(m.cpuGwA1) * mss,
    segB: perByte(m.cpuGwB1) * mss,
    a64: per64(m.cpuGwA64),
    b64: per64(m.cpuGwB64),
  };
}

export class PeerBenchInterrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`peer benchmark interrupted by ${signal}; testbed torn down`);
  }
}

/** The peers kasane's target is set against (any nebula variant counts as nebula). */
const isBaseline = (name: string) => name === 'wireguard-go' || name === 'nebula' || name.startsWith('nebula-');
const TARGET = 2;

/** Options from the environment and command line (see the file's header). */
export function peerBenchOptions(
  env: NodeJS.ProcessEnv = process.env,
  argv: string[] = process.argv.slice(2),
): PeerBenchOptions {
  const int = (name: string, fallback: number, min: number, max: number) => envInteger(env, name, fallback, min, max);
  const smoke = argv.includes('--smoke') || env.KASANE_BENCH_SMOKE === '1';
  const cipher = env.KASANE_BENCH_NEBULA_CIPHER ?? 'aes';
  if (cipher !== 'aes' && cipher !== 'chachapoly' && cipher !== 'both') {
    throw new Error(`KASANE_BENCH_NEBULA_CIPHER must be aes, chachapoly or both, got ${JSON.stringify(cipher)}`);
  }
  const only = env.KASANE_BENCH_PEERS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    seconds: int('KASANE_BENCH_SECONDS', smoke ? 2 : 10, 1, 600),
    rounds: int('KASANE_BENCH_ROUNDS', smoke ? 1 : 3, 1, 50),
    pings: int('KASANE_BENCH_PINGS', smoke ? 5 : 20, 1, 1000),
    smoke,
    install: env.KASANE_BENCH_INSTALL !== '0',
    only: only && only.length > 0 ? only : undefined,
    nebulaCipher: cipher,
    mtu: 1400,
    baselineMs: smoke ? 500 : 2000,
  };
}

/** The peers of a run, in turn order. */
export function peerList(o: PeerBenchOptions): PeerSetup[] {
  const nebulas =
    o.nebulaCipher === 'both'
      ? [nebulaPeer('aes'), nebulaPeer('chachapoly', 'nebula-chachapoly')]
      : [nebulaPeer(o.nebulaCipher)];
  // plain-v6 is the ceiling of IPv6 peers (kasane-v6): measured when one of them is.
  const v6 = (o.extraPeers ?? []).some((p) => p.family === 6) || o.kasane?.family === 6;
  const all = [
    plainPeer(),
    ...(v6 ? [plainPeer({ ipv6: true })] : []),
    wireguardGoPeer(),
    ...nebulas,
    ...(o.extraPeers ?? []),
    ...(o.kasane ? [o.kasane] : []),
  ];
  const names = new Set<string>();
  for (const p of all) {
    if (names.has(p.name)) throw new Error(`two peers are named ${p.name}`);
    names.add(p.name);
  }
  if (o.only) {
    const unknown = o.only.filter((n) => !names.has(n));
    if (unknown.length > 0)
      throw new Error(`unknown peer(s) ${unknown.join(', ')}; available: ${[...names].join(', ')}`);
    return all.filter((p) => o.only!.includes(p.name));
  }
  return all;
}

const BASE_REQUIREMENTS: Requirement[] = [
  { command: 'iperf3', debianPackage: 'iperf3' },
  { command: 'ping', debianPackage: 'iputils-ping' },
  { command: 'ss', debianPackage: 'iproute2' },
];

export async function runPeerBench(partial: Partial<PeerBenchOptions> = {}): Promise<PeerBenchReport> {
  const o: PeerBenchOptions = { ...peerBenchOptions(), ...partial };
  const log = o.log ?? ((line: string) => process.stderr.write(`  ${line}\n`));
  const t0 = performance.now();
  const peers = peerList(o);
  const report: PeerBenchReport = {
    options: {
      seconds: o.seconds,
      rounds: o.rounds,
      pings: o.pings,
      smoke: o.smoke,
      nebulaCipher: o.nebulaCipher,
      mtu: o.mtu,
    },
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      kernel: release(),
      loadAvgBefore: loadavg(),
      loadAvgAfter: [],
      busyBeforePct: 0,
      loadAvgMax: loadavg()[0],
    },
    startedAt: new Date().toISOString(),
    elapsedS: 0,
    peers: peers.map((p) => ({ name: p.name, description: p.description, samples: [], errors: [] })),
    ratios: { target: TARGET },
    targets: [],
    notes: [],
  };
  const finish = () => {
    report.machine.loadAvgAfter = loadavg();
    report.elapsedS = (performance.now() - t0) / 1000;
    for (const r of report.peers) r.medians = mediansOf(r.samples);
    report.ratios = ratiosOf(report.peers, o.kasane?.name);
    report.targets = targetsOf(report.peers);
    return report;
  };

  const avail = netnsAvailability();
  if (!avail.ok) {
    report.unavailable = avail.reason;
    return finish();
  }

  const installed = await ensureCommands([...BASE_REQUIREMENTS, ...peers.flatMap((p) => p.requires ?? [])], {
    install: o.install,
    log,
  });
  report.notes.push(...installed.notes);
  const baseMissing = BASE_REQUIREMENTS.filter((r) => installed.missing.has(r.command));
  if (baseMissing.length > 0) {
    report.unavailable = baseMissing.map((r) => installed.missing.get(r.command)).join('; ');
    return finish();
  }
  const runnable: { peer: PeerSetup; result: PeerResult }[] = [];
  for (const [i, peer] of peers.entries()) {
    const result = report.peers[i];
    const missing = (peer.requires ?? []).filter((r) => installed.missing.has(r.command));
    if (missing.length > 0) {
      result.skipped = missing.map((r) => installed.missing.get(r.command)).join('; ');
      log(`skipping ${peer.name}: ${result.skipped}`);
      continue;
    }
    try {
      result.version = await peer.version?.();
    } catch {
      /* the version is only informative */
    }
    runnable.push({ peer, result });
  }

  report.machine.busyBeforePct = await machineBusy(o.baselineMs);
  const perTurnS = 2 * o.seconds + o.pings * 0.1 + 4;
  log(
    `${runnable.length} peers × ${o.rounds} rounds, ~${Math.round((perTurnS * runnable.length * o.rounds) / 10) * 10} s; ` +
      `load average ${fmtLoad(report.machine.loadAvgBefore)}, machine ${report.machine.busyBeforePct.toFixed(0)}% busy before the run`,
  );

  const tmpDir = mkdtempSync(join(tmpdir(), 'kasane-peers-'));
  const tb = new Testbed();
  const ac = new AbortController();
  let topo: PeerTopology | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let cleaned = false;
  const hardCleanup = () => {
    if (cleaned) return;
    cleaned = true;
    tb.teardown();
    rmSync(tmpDir, { recursive: true, force: true });
  };
  const killAllInTestbed = () => {
    for (const ns of topo ? namespacesOf(topo) : []) for (const pid of namespacePids(ns)) killPid(pid, 'SIGKILL');
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      // A second signal: do not wait for the peers' own tear-down.
      hardCleanup();
      process.exit(130);
    }
    interrupted = sig;
    log(`${sig}: stopping and tearing the testbed down`);
    ac.abort();
    killAllInTestbed();
  };
  const onExit = () => hardCleanup();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', onExit);
  const aborted = new Promise<never>((_, reject) =>
    ac.signal.addEventListener('abort', () => reject(new Error('interrupted')), { once: true }),
  );
  aborted.catch(() => undefined);
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted]);

  try {
    topo = buildTopology(tb, tmpDir, o.mtu);
    log(`testbed ${tb.prefix}: ${namespacesOf(topo).join(' ')}`);
    for (let round = 1; round <= o.rounds && !interrupted; round++) {
      // Rotate the starting peer so that no peer always runs first or last in a round.
      const order = runnable.map((_, i) => runnable[(i + round - 1) % runnable.length]);
      for (const { peer, result } of order) {
        if (interrupted) break;
        await assertIsolated(tb, topo, ac.signal);
        try {
          const s = await guard(turn(tb, topo, peer, round, o, ac.signal));
          result.samples.push(s);
          log(
            `round ${round}/${o.rounds} ${peer.name}: ${s.stream1.gbps.toFixed(2)} Gbit/s 1 stream, ${s.stream4.gbps.toFixed(2)} Gbit/s 4 streams, ` +
              `RTT ${s.rttMs.toFixed(3)} ms, first reply ${s.firstReplyMs.toFixed(1)} ms, gw CPU ${s.stream1.cpu.gwA.toFixed(0)}%/${s.stream1.cpu.gwB.toFixed(0)}%`,
          );
        } catch (e) {
          if (interrupted) break;
          const msg = e instanceof Error ? e.message : String(e);
          result.errors.push(`round ${round}: ${msg}`);
          log(`round ${round}/${o.rounds} ${peer.name} FAILED: ${msg}`);
        } finally {
          report.machine.loadAvgMax = Math.max(report.machine.loadAvgMax, loadavg()[0]);
          if (!interrupted) await tidyAfterTurn(peer, topo, report, log);
          else await Promise.race([peer.tearDown().catch(() => undefined), sleep(5000)]);
        }
      }
    }
  } catch (e) {
    if (!interrupted) throw e;
  } finally {
    hardCleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('exit', onExit);
  }
  if (interrupted) throw new PeerBenchInterrupted(interrupted);
  for (const r of report.peers) {
    if (!r.skipped && r.samples.length === 0) report.notes.push(`${r.name}: no successful round (see its errors)`);
  }
  return finish();
}

async function turn(
  tb: Testbed,
  topology: PeerTopology,
  peer: PeerSetup,
  round: number,
  o: PeerBenchOptions,
  signal: AbortSignal,
): Promise<PeerSample> {
  await peer.setUp(tb, topology);
  // A peer measured over IPv6 sees the terminals' IPv6 addresses (the 64-byte UDP test then sends
  // 84-byte IPv6 packets).
  const topo = peer.family === 6 ? ipv6View(topology) : topology;
  const first = await firstReply(tb, topo, 15, signal);
  const series = await pingSeries(tb, topo, o.pings, signal);
  const one = await withCpu(topo, () => iperf(tb, topo, o.seconds, 1, signal));
  const four = await withCpu(topo, () => iperf(tb, topo, o.seconds, 4, signal));
  const small = await withCpu(topo, () => smallPackets(tb, topo, Math.max(2, Math.min(o.seconds, 5)), signal));
  // Search latency: only kasane finds its peers from the first packet (the others have a tunnel up).
  const search =
    peer === o.kasane ? await searchLatency(tb, topo, median(series.rttsMs)!, o.smoke ? 5 : 20, signal) : undefined;
  return {
    round,
    firstReplyMs: first.ms,
    firstLost: first.lost,
    rttMs: median(series.rttsMs)!,
    pingLoss: series.sent - series.rttsMs.length,
    stream1: { ...one.value, cpu: one.cpu },
    stream4: { ...four.value, cpu: four.cpu },
    small: { ...small.value, cpu: small.cpu },
    search,
  };
}

/** Tears the peer down and kills (by PID) anything it left in the namespaces, with a note. */
async function tidyAfterTurn(
  peer: PeerSetup,
  topo: PeerTopology,
  report: PeerBenchReport,
  log: (l: string) => void,
): Promise<void> {
  try {
    const done = await Promise.race([peer.tearDown().then(() => true), sleep(20_000).then(() => false)]);
    if (!done) report.notes.push(`${peer.name}: tearDown did not finish within 20 s`);
  } catch (e) {
    report.notes.push(`${peer.name}: tearDown failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  for (const ns of namespacesOf(topo)) {
    const left = namespacePids(ns);
    if (left.length === 0) continue;
    const note = `${peer.name}: left process(es) ${left.join(', ')} in ${ns}; killed`;
    if (!report.notes.includes(note)) report.notes.push(note);
    log(note);
    for (const pid of left) killPid(pid, 'SIGKILL');
  }
}

/** Before each turn, hostA must not reach hostB: otherwise a previous peer left its path behind. */
async function assertIsolated(tb: Testbed, topo: PeerTopology, signal: AbortSignal): Promise<void> {
  for (const [from, to] of [
    [topo.hostA.addr, topo.hostB.addr],
    [topo.hostA.addr6, topo.hostB.addr6],
  ]) {
    const r = await runIn(tb, topo.hostA.ns, 'ping', ['-n', '-c', '1', '-W', '1', '-I', from, to], {
      timeoutMs: 5000,
      signal,
    });
    if (r.status === 0)
      throw new Error(
        `testbed not clean: hostA reaches hostB (${to}) with no peer set up (a previous tearDown left a path)`,
      );
  }
}

function mediansOf(samples: PeerSample[]): PeerMedians | undefined {
  if (samples.length === 0) return undefined;
  const m = (f: (s: PeerSample) => number | undefined): number | undefined => {
    const xs = samples.map(f).filter((x): x is number => x !== undefined);
    return median(xs);
  };
  return {
    gbps1: m((s) => s.stream1.gbps)!,
    gbps4: m((s) => s.stream4.gbps)!,
    rttMs: m((s) => s.rttMs)!,
    firstReplyMs: m((s) => s.firstReplyMs)!,
    retransmits1: m((s) => s.stream1.retransmits),
    retransmits4: m((s) => s.stream4.retransmits),
    pps64: m((s) => s.small.pps)!,
    pps64LossPct: m((s) => s.small.lossPct)!,
    searchMs: m((s) => s.search?.medianMs),
    cpuGwA1: m((s) => s.stream1.cpu.gwA)!,
    cpuGwB1: m((s) => s.stream1.cpu.gwB)!,
    cpuGwA4: m((s) => s.stream4.cpu.gwA)!,
    cpuGwB4: m((s) => s.stream4.cpu.gwB)!,
    cpuGwA64: m((s) => s.small.cpu.gwA)!,
    cpuGwB64: m((s) => s.small.cpu.gwB)!,
    machineBusy1: m((s) => s.stream1.cpu.machine)!,
    machineBusy4: m((s) => s.stream4.cpu.machine)!,
    others1: m((s) => s.stream1.cpu.others)!,
    others4: m((s) => s.stream4.cpu.others)!,
  };
}

/** kasane against the better of wireguard-go and nebula (per stream count) and against plain. */
export function ratiosOf(peers: PeerResult[], kasaneName: string | undefined): KasaneRatios {
  const out: KasaneRatios = { target: TARGET };
  const withFigures = peers.filter((p) => p.medians);
  const best = (key: 'gbps1' | 'gbps4') => {
    let b: { peer: string; gbps: number } | undefined;
    for (const p of withFigures)
      if (isBaseline(p.name) && (!b || p.medians![key] > b.gbps)) b = { peer: p.name, gbps: p.medians![key] };
    return b;
  };
  out.best1 = best('gbps1');
  out.best4 = best('gbps4');
  const k = withFigures.find((p) => p.name === kasaneName)?.medians;
  const plain = withFigures.find((p) => p.name === 'plain')?.medians;
  if (k) {
    if (out.best1) out.vsBest1 = k.gbps1 / out.best1.gbps;
    if (out.best4) out.vsBest4 = k.gbps4 / out.best4.gbps;
    if (plain) {
      out.vsPlain1 = k.gbps1 / plain.gbps1;
      out.vsPlain4 = k.gbps4 / plain.gbps4;
    }
    if (out.vsBest1 !== undefined && out.vsBest4 !== undefined)
      out.met = out.vsBest1 >= TARGET && out.vsBest4 >= TARGET;
  }
  return out;
}

const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');

function spread(xs: number[], digits: number): string {
  const med = median(xs);
  if (med === undefined) return '-';
  if (xs.length < 2) return med.toFixed(digits);
  return `${med.toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

export function formatPeerBench(r: PeerBenchReport): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(
    `peers, hostA → gwA → router → gwB → hostB in namespaces: iperf3 TCP ${o.seconds} s (1 and 4 streams), ${o.pings} pings, ` +
      `tunnel MTU ${o.mtu}; ${o.rounds} round${o.rounds === 1 ? '' : 's'} in turns, medians${o.rounds > 1 ? ' (min–max)' : ''}${o.smoke ? ' [smoke]' : ''}`,
  );
  const m = r.machine;
  lines.push(
    `machine: ${m.cpus} × ${m.cpuModel}, kernel ${m.kernel}; load average ${fmtLoad(m.loadAvgBefore)} before, ` +
      `${m.loadAvgAfter.length ? fmtLoad(m.loadAvgAfter) : '-'} after, 1-min up to ${m.loadAvgMax.toFixed(2)}; ` +
      `${m.busyBeforePct.toFixed(0)}% busy before the run; ${r.elapsedS.toFixed(0)} s`,
  );
  if (r.unavailable) {
    lines.push(`NOT RUN: ${r.unavailable}`);
    return lines.join('\n');
  }
  const rows: string[][] = [
    [
      'peer',
      'version',
      '1 stream Gbit/s',
      '4 streams Gbit/s',
      '64 B kpps (loss %)',
      'RTT ms',
      '1st reply ms',
      'retr 1/4',
      'gw CPU % A/B 1|4',
      'others % 1|4',
      'busy % 1|4',
    ],
  ];
  for (const p of r.peers) {
    if (p.skipped) {
      rows.push([p.name, p.version ?? '-', 'skipped', '', '', '', '', '', '', '', '']);
      continue;
    }
    const s = p.samples;
    const md = p.medians;
    if (!md) {
      rows.push([p.name, p.version ?? '-', 'failed', '', '', '', '', '', '', '', '']);
      continue;
    }
    const int = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
    rows.push([
      p.name,
      p.version ?? '-',
      spread(
        s.map((x) => x.stream1.gbps),
        2,
      ),
      spread(
        s.map((x) => x.stream4.gbps),
        2,
      ),
      `${spread(
        s.map((x) => x.small.pps / 1000),
        0,
      )} (${md.pps64LossPct.toFixed(0)})`,
      md.rttMs.toFixed(3),
      md.firstReplyMs.toFixed(2),
      `${int(md.retransmits1)}/${int(md.retransmits4)}`,
      `${int(md.cpuGwA1)}/${int(md.cpuGwB1)}|${int(md.cpuGwA4)}/${int(md.cpuGwB4)}`,
      `${int(md.others1)}|${int(md.others4)}`,
      `${int(md.machineBusy1)}|${int(md.machineBusy4)}`,
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows)
    lines.push(
      row
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    );
  const ra = r.ratios;
  if (ra.best1 && ra.best4) {
    lines.push(
      `better of wireguard-go and nebula: ${ra.best1.peer} ${ra.best1.gbps.toFixed(2)} Gbit/s (1 stream), ${ra.best4.peer} ${ra.best4.gbps.toFixed(2)} Gbit/s (4 streams)`,
    );
  }
  if (ra.vsBest1 !== undefined || ra.vsBest4 !== undefined) {
    const x = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(2)}×`);
    lines.push(
      `kasane / better baseline: ${x(ra.vsBest1)} (1 stream), ${x(ra.vsBest4)} (4 streams); target ≥ ${ra.target}×: ${ra.met === undefined ? 'undecided' : ra.met ? 'MET' : 'NOT MET'}` +
        (ra.vsPlain1 !== undefined ? `; kasane / plain: ${x(ra.vsPlain1)}, ${x(ra.vsPlain4)}` : ''),
    );
  }
  for (const p of r.peers) {
    const rounds = p.samples.flatMap((x) => (x.search ? [x.search] : []));
    if (rounds.length > 1) {
      const all = rounds.flatMap((x) => x.samplesMs);
      const med = median(all)!;
      const target = 3 * median(rounds.map((x) => x.rttMs))! + 1;
      lines.push(
        `${p.name} search latency, all ${rounds.length} rounds: ${med.toFixed(2)} ms median of ${all.length} first packets; target 3×RTT+1 = ${target.toFixed(2)} ms (median RTT): ${med <= target ? 'MET' : 'NOT MET'}`,
      );
    }
    for (const x of p.samples) {
      const sl = x.search;
      if (!sl) continue;
      lines.push(
        `${p.name} search latency, round ${x.round}: first packet delivered in ${sl.medianMs.toFixed(2)} ms median, ${sl.p90Ms.toFixed(2)} p90, ${sl.maxMs.toFixed(2)} max ` +
          `(${sl.samplesMs.length} fresh pairs${sl.lost ? `, ${sl.lost} not seen` : ''}); RTT ${sl.rttMs.toFixed(3)} ms, target 3×RTT+1 = ${sl.targetMs.toFixed(2)} ms: ${sl.met ? 'MET' : 'NOT MET'}`,
      );
    }
  }
  for (const p of r.peers) {
    if (!p.medians || p.name === 'plain') continue;
    const c = costOf(p.medians, o.mtu);
    const f = (v: number | undefined, d: number) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
    lines.push(
      `cost ${p.name}: sender gwA ${f(c.a1, 2)} ns/byte (${f(c.segA, 0)} ns per ${o.mtu - 52}-byte segment), receiver gwB ${f(c.b1, 2)} ns/byte (${f(c.segB, 0)} ns per segment); ` +
        `64 B: gwA ${f(c.a64, 0)} ns/packet, gwB ${f(c.b64, 0)} ns/packet (CPU of the gateway namespace's processes per unit delivered)`,
    );
  }
  if (r.targets.length > 0) {
    lines.push('targets (issue 12, ratios to plain in this run):');
    for (const t of r.targets) {
      const v =
        t.value === undefined
          ? 'not measured'
          : t.unit === 'ms'
            ? `${t.value.toFixed(3)} ms`
            : `${t.value.toFixed(2)}×`;
      lines.push(
        `  ${t.peer.padEnd(16)} ${t.what.padEnd(22)} ${v.padEnd(10)} target ${t.target}: ${t.met === undefined ? 'undecided' : t.met ? 'MET' : 'NOT MET'}`,
      );
    }
  }
  for (const p of r.peers) {
    if (p.description) lines.push(`  ${p.name}: ${p.description}`);
    if (p.skipped) lines.push(`  ${p.name} SKIPPED: ${p.skipped}`);
    for (const e of p.errors) lines.push(`  ${p.name} ERROR ${e}`);
  }
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms).unref());
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const jsonAt = argv.indexOf('--json');
  const jsonFile = jsonAt >= 0 ? argv[jsonAt + 1] : undefined;
  if (jsonAt >= 0 && !jsonFile) throw new Error('--json needs a file name');
  // kasane is always measured from the command line (the library call leaves it to the caller).
  const report = await runPeerBench({
    ...peerBenchOptions(process.env, argv),
    kasane: kasanePeer(),
    extraPeers: [kasanePeer({ ipv6: true })],
  });
  console.log(formatPeerBench(report));
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify(report, null, 2));
  if (report.unavailable) process.exitCode = 2;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`peer bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = e instanceof PeerBenchInterrupted ? 130 : 1;
  });
}

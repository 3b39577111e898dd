// The measurements, hostA → hostB: ping (first reply after set-up, then an RTT series) and iperf3
// TCP; plus the CPU the gateway namespaces' processes use and how busy the whole machine is,
// because the peers compete with each other's and other people's work for 2 cores.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { Testbed } from '../../test/native/netns.js';
import { Daemon, namespacePids, runIn, waitFor, type CommandResult } from './proc.js';
import { namespacesOf, type PeerTopology } from './topology.js';

const IPERF_PORT = 5201;

export interface FirstReply {
  /** Wall time from the first echo request to its reply (or to the first reply, if some were lost). */
  ms: number;
  /** Echo requests sent before the first that got a reply. */
  lost: number;
}

/** Runs ping from hostA's address to hostB's with `options` (count, interval, deadline). */
function pingHostB(
  tb: Testbed,
  topo: PeerTopology,
  options: string[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<CommandResult> {
  return runIn(tb, topo.hostA.ns, 'ping', ['-n', ...options, '-I', topo.hostA.addr, topo.hostB.addr], {
    timeoutMs,
    signal,
  });
}

/** The last two lines of a command's output, for an error message. */
function tail(output: string): string {
  return output.trim().split('\n').slice(-2).join(' | ');
}

/** Pings until the first reply (interval 200 ms, up to `deadlineS`): the first packet after set-up. */
export async function firstReply(
  tb: Testbed,
  topo: PeerTopology,
  deadlineS: number,
  signal?: AbortSignal,
): Promise<FirstReply> {
  const intervalS = 0.2;
  const options = ['-c', '1', '-i', String(intervalS), '-w', String(deadlineS)];
  const r = await pingHostB(tb, topo, options, (deadlineS + 5) * 1000, signal);
  const m = /icmp_seq=(\d+).*?time=([\d.]+) ms/.exec(r.stdout);
  if (r.status !== 0 || !m)
    throw new Error(`hostA cannot reach hostB within ${deadlineS} s (ping exited ${r.status}): ${tail(r.stdout)}`);
  const lost = Number(m[1]) - 1;
  return { ms: lost * intervalS * 1000 + Number(m[2]), lost };
}

export interface PingSeries {
  rttsMs: number[];
  sent: number;
}

export async function pingSeries(
  tb: Testbed,
  topo: PeerTopology,
  count: number,
  signal?: AbortSignal,
): Promise<PingSeries> {
  const intervalS = 0.1;
  const r = await pingHostB(
    tb,
    topo,
    ['-c', String(count), '-i', String(intervalS), '-W', '2'],
    (count * intervalS + 10) * 1000,
    signal,
  );
  const rttsMs = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rttsMs.length === 0) throw new Error(`ping series: no reply: ${tail(r.stdout)}`);
  return { rttsMs, sent: count };
}

export interface IperfResult {
  gbps: number;
  /** TCP retransmits the sender counted (undefined if iperf3 did not report them). */
  retransmits?: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number };
    sum_sent?: { bits_per_second?: number; retransmits?: number };
  };
}

/** iperf3's `-J` output, or an error saying what iperf3 printed or reported instead. */
export function iperfJson<T extends { error?: string }>(text: string): T {
  let j: T;
  try {
    j = JSON.parse(text) as T;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.slice(-300)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return j;
}

/** Parses `iperf3 -c … -J` output: the receiver's rate and the sender's retransmits. */
export function parseIperfJson(text: string): IperfResult {
  const j = iperfJson<IperfJson>(text);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error('iperf3 JSON has no end.sum_received.bits_per_second');
  const rt = j.end?.sum_sent?.retransmits;
  return { gbps: bps / 1e9, retransmits: typeof rt === 'number' ? rt : undefined };
}

/** Runs `fn` while a one-client iperf3 server listens on hostB's address and `port`. */
export async function withIperfServer<T>(
  tb: Testbed,
  topo: PeerTopology,
  port: number,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const server = Daemon.start(tb, topo.hostB.ns, 'iperf3 server', 'iperf3', [
    '-s',
    '-1',
    '-B',
    topo.hostB.addr,
    '-p',
    String(port),
  ]);
  try {
    await waitFor(
      'the iperf3 server to listen',
      async () => {
        server.assertRunning();
        const r = await runIn(tb, topo.hostB.ns, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 5000, signal });
        return r.stdout.includes(`:${port}`);
      },
      { timeoutMs: 10_000, signal, lastError: () => server.output() },
    );
    return await fn();
  } finally {
    await server.stop(1000);
  }
}

/** One iperf3 TCP run hostA → hostB; the server is bound to hostB's address and serves one client. */
export async function iperf(
  tb: Testbed,
  topo: PeerTopology,
  seconds: number,
  streams: number,
  signal?: AbortSignal,
): Promise<IperfResult> {
  return withIperfServer(tb, topo, IPERF_PORT, signal, async () =>
    parseIperfJson(await iperfClient(tb, topo, IPERF_PORT, ['-P', String(streams)], seconds, signal)),
  );
}

/** Runs the iperf3 client hostA → hostB for `seconds` with `extra` options; returns its JSON report. */
export async function iperfClient(
  tb: Testbed,
  topo: PeerTopology,
  port: number,
  extra: string[],
  seconds: number,
  signal?: AbortSignal,
): Promise<string> {
  const args = ['-c', topo.hostB.addr, '-B', topo.hostA.addr, '-p', String(port), ...extra];
  args.push('-t', String(seconds), '-J', '--connect-timeout', '5000');
  const r = await runIn(tb, topo.hostA.ns, 'iperf3', args, { timeoutMs: (seconds + 30) * 1000, signal });
  return r.stdout;
}

/** utime+stime (clock ticks) of the processes now in the namespace, by PID. */
function namespaceTicks(ns: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of namespacePids(ns)) {
    const t = processTicks(pid);
    if (t !== undefined) out.set(pid, t);
  }
  return out;
}

function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + v[4];
  return { busy: total - idle, total };
}

/** utime+stime of the user processes outside the testbed (others' work), by PID. */
function outsideTicks(testbed: Set<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const ino = Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`))?.[1]);
      if (testbed.has(ino)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Kernel threads (PF_KTHREAD) may be doing the testbed's packet work: not counted as others'.
      if ((Number(rest[6]) & 0x200000) !== 0) continue;
      out.set(pid, Number(rest[11]) + Number(rest[12]));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function namespaceInodes(names: string[]): Set<number> {
  const out = new Set<number>();
  for (const n of names) {
    try {
      out.add(statSync(`/run/netns/${n}`).ino);
    } catch {
      /* deleted */
    }
  }
  return out;
}

const TICKS_PER_S = 100;

export interface CpuUse {
  /** % of one core used by the processes in gwA's / gwB's namespace. */
  gwA: number;
  gwB: number;
  /** % of one core used by user processes outside the testbed (others' work; short-lived ones are missed). */
  others: number;
  /** % of all cores busy (anything on the machine, including the kernel). */
  machine: number;
}

/** Measures CPU while `f` runs. Processes are the ones present at the start (the gateway daemons). */
export async function withCpu<T>(topo: PeerTopology, f: () => Promise<T>): Promise<{ value: T; cpu: CpuUse }> {
  const a0 = namespaceTicks(topo.gwA.ns);
  const b0 = namespaceTicks(topo.gwB.ns);
  const o0 = outsideTicks(namespaceInodes(namespacesOf(topo)));
  const m0 = machineTicks();
  const t0 = performance.now();
  const value = await f();
  const elapsedS = (performance.now() - t0) / 1000;
  const m1 = machineTicks();
  const pct = (before: Map<number, number>) => {
    let d = 0;
    for (const [pid, t] of before) {
      const now = processTicks(pid);
      if (now !== undefined) d += now - t;
    }
    return (100 * d) / TICKS_PER_S / elapsedS;
  };
  const total = m1.total - m0.total;
  return {
    value,
    cpu: { gwA: pct(a0), gwB: pct(b0), others: pct(o0), machine: total > 0 ? (100 * (m1.busy - m0.busy)) / total : 0 },
  };
}

/** % of all cores busy over `ms` (the load others put on the machine before the run). */
export async function machineBusy(ms: number): Promise<number> {
  const m0 = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const m1 = machineTicks();
  const total = m1.total - m0.total;
  return total > 0 ? (100 * (m1.busy - m0.busy)) / total : 0;
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

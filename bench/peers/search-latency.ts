// kasane's search latency: the time from a terminal's first packet to its delivery at the far
// terminal, while the key search runs and the packet waits in the gateway's buffer. Every sample
// uses a new pair of terminal addresses (extra addresses on hostA and hostB inside their LANs), so
// each one is a first packet. Send and delivery times come from captures on hostA's and hostB's
// LAN links: all namespaces share one kernel clock.
//
// Target (issue 4): delivered within 3 round trips + 1 ms, the round trip being the RTT between
// the terminals on an established path, measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from '../../src/testbed/netns.js';
import { readPcap, startCapture, stopCapture } from '../../test/support/capture.js';
import { median } from './measure.js';
import { runIn } from './proc.js';
import type { PeerTopology } from './topology.js';

export interface SearchLatencyResult {
  /** Established-path RTT between the terminals (median of the series), ms. */
  rttMs: number;
  /** First packet sent → delivered, one per fresh pair, ms. */
  samplesMs: number[];
  medianMs: number;
  p90Ms: number;
  maxMs: number;
  /** 3 × RTT + 1 ms. */
  targetMs: number;
  /** The median within the target. */
  met: boolean;
  /** Pairs whose first packet was not seen delivered. */
  lost: number;
}

const KSRC = Buffer.from('KSRC');

export async function searchLatency(
  tb: Testbed,
  topo: PeerTopology,
  rttMs: number,
  samples: number,
  signal?: AbortSignal,
): Promise<SearchLatencyResult> {
  const pairs: [string, string][] = [];
  const aNet = topo.hostA.addr.split('.').slice(0, 3).join('.');
  const bNet = topo.hostB.addr.split('.').slice(0, 3).join('.');
  for (let i = 0; i < samples; i++) {
    const a = `${aNet}.${100 + i}`;
    const b = `${bNet}.${100 + i}`;
    tb.ip(topo.hostA.ns, 'addr', 'add', `${a}/${topo.hostA.prefixLen}`, 'dev', topo.hostA.ifname);
    tb.ip(topo.hostB.ns, 'addr', 'add', `${b}/${topo.hostB.prefixLen}`, 'dev', topo.hostB.ifname);
    pairs.push([a, b]);
  }
  const dir = mkdtempSync(join(topo.tmpDir, 'search-latency-'));
  const sent = join(dir, 'a.pcap');
  const arrived = join(dir, 'b.pcap');
  const capA = await startCapture(tb, topo.hostA.ns, topo.hostA.ifname, sent, ['icmp'], ['-s', '128']);
  const capB = await startCapture(tb, topo.hostB.ns, topo.hostB.ifname, arrived, ['icmp'], ['-s', '128']);
  try {
    for (const [a, b] of pairs) {
      if (signal?.aborted) throw new Error('interrupted');
      await runIn(tb, topo.hostA.ns, 'ping', ['-n', '-c', '1', '-W', '2', '-I', a, b], { timeoutMs: 10_000, signal });
      // Let the path settle before the next pair, so searches do not overlap.
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await stopCapture(capA);
    await stopCapture(capB);
  }
  const atA = readPcap(sent);
  const atB = readPcap(arrived);
  const out: number[] = [];
  let lost = 0;
  for (const [a, b] of pairs) {
    // The terminal's own echo request (ICMP type 8) as it left hostA, and the same packet arriving at
    // hostB — not the gateway's search probe, which also travels from a to b but carries KSRC.
    const isData = (p: { src: string; dst: string; proto: number; payload: Buffer }) =>
      p.src === a && p.dst === b && p.proto === 1 && p.payload[0] === 8 && !p.payload.includes(KSRC);
    const t0 = atA.find(isData)?.time;
    const t1 = atB.find(isData)?.time;
    if (t0 === undefined || t1 === undefined) lost++;
    else out.push(t1 - t0);
  }
  for (const [a] of pairs)
    tryIp(tb, topo.hostA.ns, 'addr', 'del', `${a}/${topo.hostA.prefixLen}`, 'dev', topo.hostA.ifname);
  for (const [, b] of pairs)
    tryIp(tb, topo.hostB.ns, 'addr', 'del', `${b}/${topo.hostB.prefixLen}`, 'dev', topo.hostB.ifname);
  rmSync(dir, { recursive: true, force: true });
  const sorted = [...out].sort((x, y) => x - y);
  const med = median(out) ?? NaN;
  const targetMs = 3 * rttMs + 1;
  return {
    rttMs,
    samplesMs: out,
    medianMs: med,
    p90Ms: sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)] : NaN,
    maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
    targetMs,
    met: med <= targetMs,
    lost,
  };
}

function tryIp(tb: Testbed, ns: string, ...args: string[]): void {
  try {
    tb.ip(ns, ...args);
  } catch {
    /* already gone with the namespace */
  }
}

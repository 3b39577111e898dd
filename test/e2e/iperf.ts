// TCP between Figure 2's terminals in the end-to-end tests: iperf3 with a one-off server, its JSON
// summary read back.
import type { Figure2 } from '../../src/demo/figure2.js';

export interface IperfSummary {
  bytes: number;
  seconds: number;
  retransmits: number;
  /** Bytes received in each one-second interval. */
  intervals: number[];
  error?: string;
}

/**
 * Runs an iperf3 client from `from` against a one-off server on `to` (their IPv4 addresses, or IPv6
 * with `family` 6), `during` meanwhile, `extra` client arguments; resolves with its summary.
 */
export async function iperf(
  f: Figure2,
  from: 'A' | 'B' | 'C',
  to: 'A' | 'B' | 'C',
  seconds: number,
  o: { family?: 4 | 6; during?: () => Promise<void>; extra?: string[] } = {},
): Promise<IperfSummary> {
  const v6 = o.family === 6 ? ['-6'] : [];
  const address = o.family === 6 ? f.terminals6[to] : f.terminals[to];
  const server = f.tb.spawn(f.ns[to], 'iperf3', ['-s', '-1', ...v6, '-B', address]);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const client = f.tb.spawn(f.ns[from], 'iperf3', [
      ...v6,
      '-c',
      address,
      '-t',
      String(seconds),
      '-J',
      '--connect-timeout',
      '5000',
      ...(o.extra ?? []),
    ]);
    let out = '';
    client.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => client.once('exit', (code) => r(code)));
    if (o.during) await o.during();
    const code = await exited;
    const j = JSON.parse(out) as {
      error?: string;
      intervals?: { sum: { bytes: number } }[];
      end?: { sum_received?: { bytes: number; seconds: number }; sum_sent?: { retransmits?: number } };
    };
    return {
      intervals: (j.intervals ?? []).map((i) => i.sum.bytes),
      bytes: j.end?.sum_received?.bytes ?? 0,
      seconds: j.end?.sum_received?.seconds ?? 0,
      retransmits: j.end?.sum_sent?.retransmits ?? 0,
      error: j.error ?? (code === 0 ? undefined : `iperf3 exited with ${code}`),
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGTERM');
  }
}

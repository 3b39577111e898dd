// A gateway's drop counters in the end-to-end tests: every packet it did not forward, counted where
// it was decided (core, executor, datapath, kernel TUN queues; docs/gateway.md "Watching it").
import type { Figure2 } from '../../src/demo/figure2.js';

export const DROP_COUNTER =
  /^(drop\.|executor\.drop\.|datapath\.punt\.dropped$|datapath\.rx\.bad$|kernel\.tun-\w+\.queue-dropped$)/;

/** Every drop gateway Gn counted, by counter name. */
export function drops(f: Figure2, n: 1 | 2 | 3): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(f.status(n).stats)) if (DROP_COUNTER.test(k)) out[k] = v;
  return out;
}

/** The counters that changed between two readings, by how much. */
export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) d[k] = v - (before[k] ?? 0);
  return d;
}

export const total = (d: Record<string, number>) => Object.values(d).reduce((a, b) => a + b, 0);

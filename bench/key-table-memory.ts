// Bytes of heap per key-table entry, measured on the two structures that hold a path: the core's
// KeyTable (the truth) and the TypeScript executor's rule (what executes it). The simulator's
// figure (sim-scale) also counts its own bookkeeping; this one isolates the table.
import { KeyTable } from '../src/core/key-table.js';
import { TsExecutor } from '../src/core/ts-executor.js';
import { intToIpv4 } from '../src/base/addr.js';

export function runKeyTableMemory(entries = Number(process.env.KASANE_BENCH_ENTRIES ?? 1_000_000)): string {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return 'key-table-memory: needs --expose-gc (npm run bench does this)';
  gc();
  const before = process.memoryUsage().heapUsed;
  const table = new KeyTable(entries);
  const exec = new TsExecutor();
  const t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    const local = intToIpv4(0x0a000000 + (i >>> 8));
    const remote = intToIpv4(0x0b000000 + i);
    const layers = [{ vpnId: 1 + (i % 50), gateways: ['G-local', 'G-remote'] as [string, string] }];
    table.set({ local, remote, action: 'encrypt', vpnId: 1 + (i % 50), peer: 'G-remote', mtu: 1500, layers, reason: 'search', installedAt: i, lastUsed: i, expiresAt: i + 3_600_000 });
    exec.installPath({ local, remote, action: 'encrypt', vpnId: 1 + (i % 50), peer: 'G-remote', mtu: 1500 });
  }
  const ms = performance.now() - t0;
  gc();
  const after = process.memoryUsage().heapUsed;
  const t1 = performance.now();
  let hits = 0;
  for (let i = 0; i < entries; i++) if (table.get(intToIpv4(0x0a000000 + (i >>> 8)), intToIpv4(0x0b000000 + i))) hits++;
  const lookupMs = performance.now() - t1;
  return [
    `  entries                     ${entries.toLocaleString('en-US')}`,
    `  heap per entry (table+rule) ${Math.round((after - before) / entries)} bytes`,
    `  install                     ${((ms * 1000) / entries).toFixed(2)} µs/entry`,
    `  lookup (incl. key strings)  ${((lookupMs * 1000) / entries).toFixed(2)} µs/lookup, ${hits === entries ? 'all hit' : `${hits} hit`}`,
  ].join('\n');
}

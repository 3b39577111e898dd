// Memory per installed path in a gateway: the core's KeyTable (the truth, JavaScript) and the
// executor's rule (native when the addon is built, else the TypeScript reference), measured as the
// growth of the whole process's resident memory (RSS: V8 heap, malloc'd native memory, everything)
// after a garbage collection, plus the lookup cost of both. Target (issue 12): 1,000,000 paths at
// most 256 bytes each, with O(1) lookups.
import { KeyTable } from '../src/core/key-table.js';
import { TsExecutor } from '../src/core/ts-executor.js';
import { intToIpv4 } from '../src/base/addr.js';
import type { Executor } from '../src/core/executor.js';
import { NativeExecutor } from '../src/native/native-executor.js';

export const KEY_TABLE_TARGET_BYTES = 256;

export interface KeyTableMemoryReport {
  entries: number;
  executor: 'native' | 'typescript';
  rssBytesPerPath: number;
  heapBytesPerPath: number;
  nativeBytesPerPath: number;
  installUs: number;
  lookupUs: number;
  /** Lookups at a quarter and at all of the entries: O(1) keeps them equal within noise. */
  lookupUsQuarter: number;
  met: boolean;
}

export function runKeyTableMemory(entries = Number(process.env.KASANE_BENCH_ENTRIES ?? 1_000_000)): KeyTableMemoryReport | string {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return 'key-table-memory: needs --expose-gc (npm run bench does this)';
  const native = process.env.KASANE_NATIVE === '0' ? undefined : NativeExecutor.create();
  const exec: Executor = native?.ok ? native.value : new TsExecutor();
  const table = new KeyTable(entries);
  const layersByVpn = new Map<number, { vpnId: number; gateways: [string, string] }[]>();
  gc();
  gc();
  const before = process.memoryUsage();
  const local = (i: number) => intToIpv4(0x0a000000 + (i >>> 8));
  const remote = (i: number) => intToIpv4(0x0b000000 + i);
  let lookupUsQuarter = 0;
  const t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    const vpnId = 1 + (i % 50);
    // The layers of a search result are the same for every path between two gateways of a VPN.
    let layers = layersByVpn.get(vpnId);
    if (!layers) layersByVpn.set(vpnId, (layers = [{ vpnId, gateways: ['G-local', 'G-remote'] }]));
    const l = local(i);
    const r = remote(i);
    const now = 1_765_000_000_000 + i;
    table.set({ local: l, remote: r, action: 'encrypt', vpnId, peer: 'G-remote', mtu: 1455, mtuReserve: 0, layers, reason: 'search', installedAt: now, lastUsed: now, expiresAt: now + 3_600_000 });
    exec.installPath({ local: l, remote: r, action: 'encrypt', vpnId, peer: 'G-remote', mtu: 1455 });
    if (i + 1 === entries >>> 2) lookupUsQuarter = lookups(table, i + 1, local, remote);
  }
  const installMs = performance.now() - t0;
  gc();
  gc();
  const after = process.memoryUsage();
  const lookupUs = lookups(table, entries, local, remote);
  const heap = after.heapUsed - before.heapUsed;
  const rss = after.rss - before.rss;
  const report: KeyTableMemoryReport = {
    entries,
    executor: native?.ok ? 'native' : 'typescript',
    rssBytesPerPath: Math.round(rss / entries),
    heapBytesPerPath: Math.round(heap / entries),
    nativeBytesPerPath: Math.round(Math.max(0, rss - heap) / entries),
    installUs: (installMs * 1000) / entries,
    lookupUs,
    lookupUsQuarter,
    met: rss / entries <= KEY_TABLE_TARGET_BYTES,
  };
  return report;
}

function lookups(table: KeyTable, n: number, local: (i: number) => string, remote: (i: number) => string): number {
  const count = Math.min(n, 200_000);
  const t = performance.now();
  let hits = 0;
  for (let k = 0; k < count; k++) {
    const i = Math.floor((k * 7919) % n);
    if (table.get(local(i), remote(i))) hits++;
  }
  if (hits !== count) throw new Error(`key-table-memory: ${count - hits} lookups missed`);
  return ((performance.now() - t) * 1000) / count;
}

export function formatKeyTableMemory(r: KeyTableMemoryReport | string): string {
  if (typeof r === 'string') return r;
  return [
    `  paths installed             ${r.entries.toLocaleString('en-US')} (core key table + ${r.executor} executor rule)`,
    `  process memory growth (RSS) ${r.rssBytesPerPath} bytes/path: V8 heap ${r.heapBytesPerPath}, native and the rest ${r.nativeBytesPerPath}`,
    `  install                     ${r.installUs.toFixed(2)} µs/path`,
    `  lookup (core, key strings)  ${r.lookupUs.toFixed(2)} µs at ${r.entries.toLocaleString('en-US')} paths, ${r.lookupUsQuarter.toFixed(2)} µs at a quarter (O(1): equal within noise)`,
    `  target ≤ ${KEY_TABLE_TARGET_BYTES} bytes/path (issue 12): ${r.met ? 'MET' : 'NOT MET'}`,
  ].join('\n');
}

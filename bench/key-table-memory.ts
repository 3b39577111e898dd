// Memory per installed path in a gateway: the core's KeyTable (the truth, JavaScript) and the
// executor's rule (native when the addon is built, else the TypeScript reference), measured as the
// growth of the whole process's resident memory (RSS: V8 heap, malloc'd native memory, everything)
// after a garbage collection, plus the lookup cost of both. Target (issue 12): 1,000,000 paths at
// most 256 bytes each, with O(1) lookups.
import { KeyTable } from '../src/core/key-table.js';
import { TsExecutor } from '../src/core/ts-executor.js';
import { loadavg } from 'node:os';
import { intToIpv4, ipFromBytes } from '../src/base/addr.js';
import type { Executor } from '../src/core/executor.js';
import { NativeExecutor } from '../src/native/native-executor.js';

export const KEY_TABLE_TARGET_BYTES = 256;

export interface MemoryPart {
  /** Growth of the process's resident memory per path. */
  rss: number;
  /** Of which the V8 heap (objects, strings) and the typed arrays' backing stores. */
  heap: number;
  typedArrays: number;
}

export interface KeyTableMemoryReport {
  entries: number;
  family: 4 | 6;
  executor: 'native' | 'typescript';
  rssBytesPerPath: number;
  /** The core's KeyTable alone, then the executor's rules alone (installed after it). */
  core: MemoryPart;
  rules: MemoryPart;
  coreInstallUs: number;
  ruleInstallUs: number;
  lookupUs: number;
  /** Lookups at a quarter and at all of the entries: O(1) keeps them equal within noise. */
  lookupUsQuarter: number;
  /** Walking every entry (what aging and the status view do), per path. */
  walkUs: number;
  loadAverage: number;
  met: boolean;
}

export function runKeyTableMemory(
  entries = Number(process.env.KASANE_BENCH_ENTRIES ?? 1_000_000),
  family: 4 | 6 = process.env.KASANE_BENCH_FAMILY === '6' ? 6 : 4,
): KeyTableMemoryReport | string {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return 'key-table-memory: needs --expose-gc (npm run bench does this)';
  const native = process.env.KASANE_NATIVE === '0' ? undefined : NativeExecutor.create();
  const exec: Executor = native?.ok ? native.value : new TsExecutor();
  const table = new KeyTable(entries);
  const layersByVpn = new Map<number, { vpnId: number; gateways: [string, string] }[]>();
  const { local, remote } = addresses(family);
  const settled = () => {
    gc();
    gc();
    return process.memoryUsage();
  };
  const m0 = settled();
  let lookupUsQuarter = 0;
  const t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    const vpnId = 1 + (i % 50);
    // The layers of a search result are the same for every path between two gateways of a VPN.
    let layers = layersByVpn.get(vpnId);
    if (!layers) layersByVpn.set(vpnId, (layers = [{ vpnId, gateways: ['G-local', 'G-remote'] }]));
    const now = 1_765_000_000_000 + i;
    table.set({
      local: local(i),
      remote: remote(i),
      action: 'encrypt',
      vpnId,
      peer: 'G-remote',
      mtu: 1455,
      mtuReserve: 0,
      layers,
      reason: 'search',
      txid: (0x1000_0000 + i).toString(16).padStart(16, '0'),
      installedAt: now,
      lastUsed: now,
      expiresAt: now + 3_600_000,
    });
    if (i + 1 === entries >>> 2) lookupUsQuarter = lookups(table, i + 1, local, remote);
  }
  const t1 = performance.now();
  const m1 = settled();
  const t2 = performance.now();
  for (let i = 0; i < entries; i++) {
    exec.installPath({
      local: local(i),
      remote: remote(i),
      action: 'encrypt',
      vpnId: 1 + (i % 50),
      peer: 'G-remote',
      mtu: 1455,
    });
  }
  const t3 = performance.now();
  const m2 = settled();
  // Used after the measurement, so that neither is collected before it (V8 frees what is dead).
  if (!exec.pathStats(local(entries - 1), remote(entries - 1))) throw new Error('key-table-memory: a rule is missing');
  const lookupUs = lookups(table, entries, local, remote);
  const t4 = performance.now();
  let walked = 0;
  for (const e of table.values()) if (e.expiresAt > 0) walked++;
  const walkUs = ((performance.now() - t4) * 1000) / walked;
  const part = (a: NodeJS.MemoryUsage, b: NodeJS.MemoryUsage): MemoryPart => ({
    rss: Math.round((b.rss - a.rss) / entries),
    heap: Math.round((b.heapUsed - a.heapUsed) / entries),
    typedArrays: Math.round((b.arrayBuffers - a.arrayBuffers) / entries),
  });
  const rss = (m2.rss - m0.rss) / entries;
  return {
    entries,
    family,
    executor: native?.ok ? 'native' : 'typescript',
    rssBytesPerPath: Math.round(rss),
    core: part(m0, m1),
    rules: part(m1, m2),
    coreInstallUs: ((t1 - t0) * 1000) / entries,
    ruleInstallUs: ((t3 - t2) * 1000) / entries,
    lookupUs,
    lookupUsQuarter,
    walkUs,
    loadAverage: loadavg()[0],
    met: rss <= KEY_TABLE_TARGET_BYTES,
  };
}

/** Paths from 2^16 local terminals (256 remote ones each), IPv4 or IPv6, in canonical text. */
function addresses(family: 4 | 6): { local: (i: number) => string; remote: (i: number) => string } {
  if (family === 4)
    return { local: (i) => intToIpv4(0x0a000000 + (i >>> 8)), remote: (i) => intToIpv4(0x0b000000 + i) };
  const v6 = (prefix: number, n: number) => {
    const b = new Uint8Array(16);
    b.set([0x20, 0x01, 0x0d, 0xb8, 0, prefix]);
    b[12] = n >>> 24;
    b[13] = (n >>> 16) & 255;
    b[14] = (n >>> 8) & 255;
    b[15] = n & 255;
    return ipFromBytes(b, 0, 6);
  };
  return { local: (i) => v6(0xa, i >>> 8), remote: (i) => v6(0xb, i) };
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
  const part = (p: MemoryPart) => `${p.rss} (V8 heap ${p.heap}, typed arrays ${p.typedArrays})`;
  return [
    `  paths installed             ${r.entries.toLocaleString('en-US')} IPv${r.family} (core key table + ${r.executor} executor rule), load average ${r.loadAverage.toFixed(1)}`,
    `  process memory growth (RSS) ${r.rssBytesPerPath} bytes/path: core key table ${part(r.core)}, executor rules ${part(r.rules)}`,
    `  install                     ${r.coreInstallUs.toFixed(2)} µs/path into the key table, ${r.ruleInstallUs.toFixed(2)} µs/path into the executor`,
    `  lookup (core, from address text) ${r.lookupUs.toFixed(2)} µs at ${r.entries.toLocaleString('en-US')} paths, ${r.lookupUsQuarter.toFixed(2)} µs at a quarter (O(1): no probe chains; the difference is cache misses)`,
    `  walk (aging, status)        ${r.walkUs.toFixed(2)} µs/path`,
    `  target ≤ ${KEY_TABLE_TARGET_BYTES} bytes/path for 1,000,000 IPv4 paths (issue 12): ${r.met ? 'MET' : 'NOT MET'}${r.family === 6 || r.entries !== 1_000_000 ? " (this run is not the target's configuration)" : ''}`,
  ].join('\n');
}

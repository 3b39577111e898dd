// Benchmarks of the native fast path (not a test):
//  1. ESP AES-256-GCM seal/open per packet, 64 B and 1400 B, native (one reused EVP context, a
//     batch per call) against node:crypto (a Cipheriv per packet, as the only way in Node);
//  2. executor.process() called from JavaScript once per packet (the non-fast path, for scale);
//  2b. the executor sealing and opening one SA's packets from 1, 2 and 4 threads at once (what a
//     gateway with several TUN queues does), wall time per packet: how crypto scales with threads;
//  3. TUN forwarding between namespaces with iperf3 (1 and 4 streams): kernel routing without any
//     TUN, one gateway with a plain rule, and two gateways encrypting and decrypting.
// Usage: node --import tsx bench/native-bench.ts [--quick] [--no-tun]
// From bench/run.ts: `const r = await runNativeBench({ quick: false }); console.log(formatNativeBench(r));`
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../src/native/binding.js';
import { NativeExecutor } from '../src/native/native-executor.js';
import type { HelperConfig } from '../test/native/gateway-helper.js';
import { hasCommand, JsonLines, netnsAvailability, Testbed, waitExit } from '../test/native/netns.js';
import { twoSites } from '../test/native/netns-gateway.js';

export interface CryptoFigure {
  size: number;
  nativeSealNs: number;
  nativeOpenNs: number;
  nodeSealNs: number;
  nodeOpenNs: number;
}

export interface TunFigure {
  setup: 'kernel' | 'plain' | 'encrypt';
  streams: number;
  gbps: number;
  retransmits: number;
}

export interface ThreadsFigure {
  size: number;
  threads: number;
  /** Wall time per packet, all threads together (median of 3). */
  sealNs: number;
  openNs: number;
}

export interface NativeBenchResult {
  crypto: CryptoFigure[];
  threads: ThreadsFigure[];
  /** ns per executor.process() call from JavaScript (encrypt, 1400 B). */
  processCallNs?: number;
  tun: TunFigure[];
  /** Why the TUN part did not run, if it did not. */
  tunSkipped?: string;
}

export interface NativeBenchOptions {
  quick?: boolean;
  tun?: boolean;
  /** iperf3 seconds per run (default 5, quick 2). */
  seconds?: number;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const helper = fileURLToPath(new URL('../test/native/gateway-helper.ts', import.meta.url));

function nodeCrypto(size: number, count: number): { seal: number; open: number } {
  const key = Buffer.alloc(32, 7);
  const salt = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.alloc(size + 2, 9);
  const sealed: { nonce: Buffer; aad: Buffer; ct: Buffer; tag: Buffer }[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const iv = Buffer.alloc(8);
    iv.writeBigUInt64BE(BigInt(i + 1));
    const nonce = Buffer.concat([salt, iv]);
    const aad = Buffer.concat([Buffer.from([0, 0, 0x10, 0]), iv]);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(payload), c.final()]);
    if (i < 64) sealed.push({ nonce, aad, ct, tag: c.getAuthTag() });
  }
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const s = sealed[i % sealed.length];
    const d = createDecipheriv('aes-256-gcm', key, s.nonce);
    d.setAAD(s.aad);
    d.setAuthTag(s.tag);
    d.update(s.ct);
    d.final();
  }
  const t2 = process.hrtime.bigint();
  return { seal: Number(t1 - t0) / count, open: Number(t2 - t1) / count };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function cryptoBench(quick = false): CryptoFigure[] {
  const n = loadNative();
  if (!n.ok) throw new Error(n.error.message);
  const count = quick ? 20_000 : 200_000;
  const out: CryptoFigure[] = [];
  for (const size of [64, 1400]) {
    n.value.espBench(size, 5000); // warm up
    nodeCrypto(size, 2000);
    const nat = [0, 1, 2].map(() => n.value.espBench(size, count));
    const js = [0, 1, 2].map(() => nodeCrypto(size, Math.floor(count / 4)));
    out.push({
      size,
      nativeSealNs: median(nat.map((r) => r[0])),
      nativeOpenNs: median(nat.map((r) => r[1])),
      nodeSealNs: median(js.map((r) => r.seal)),
      nodeOpenNs: median(js.map((r) => r.open)),
    });
  }
  return out;
}

export function processCallBench(quick = false): number {
  const e = NativeExecutor.create();
  if (!e.ok) throw new Error(e.error.message);
  const ex = e.value;
  ex.installTxSa({
    spi: 0x100,
    vpnId: 1,
    epoch: 1,
    key: new Uint8Array(32).fill(3),
    salt: new Uint8Array(4),
    nextSeq: 1n,
  });
  ex.installPath({ local: '10.1.0.2', remote: '10.2.0.2', action: 'encrypt', vpnId: 1, peer: 'G' });
  const p = new Uint8Array(1400);
  p.set([0x45, 0, 1400 >> 8, 1400 & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2]);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (p[i] << 8) | p[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  p[10] = (~s >> 8) & 0xff;
  p[11] = ~s & 0xff;
  const count = quick ? 20_000 : 200_000;
  for (let i = 0; i < 2000; i++) ex.process('inside', p, 0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) ex.process('inside', p, 0);
  return Number(process.hrtime.bigint() - t0) / count;
}

/** executorThreads (native/src/addon.c): one VPN's SA sealed, then opened, by 1, 2 and 4 threads. */
export function threadsBench(quick = false): ThreadsFigure[] {
  const e = NativeExecutor.create();
  if (!e.ok) throw new Error(e.error.message);
  const ex = e.value;
  const key = new Uint8Array(32).fill(5);
  const salt = new Uint8Array(4).fill(1);
  ex.installTxSa({ spi: 0x7700, vpnId: 7, epoch: 1, key, salt, nextSeq: 1n });
  ex.installRxSa({ spi: 0x7700, vpnId: 7, epoch: 1, sender: 'P', key, salt });
  ex.installPath({ local: '10.77.0.1', remote: '10.77.0.2', action: 'encrypt', vpnId: 7, peer: 'P' });
  ex.installPath({ local: '10.77.0.2', remote: '10.77.0.1', action: 'encrypt', vpnId: 7, peer: 'P' });
  const total = quick ? 8_000 : 40_000;
  const out: ThreadsFigure[] = [];
  for (const size of [64, 1400])
    for (const threads of [1, 2, 4]) {
      const runs = [0, 1, 2].map(() => {
        const count = Math.floor(total / threads);
        const r = ex.binding.executorThreads(ex.handle, threads, size, count);
        if (r.duplicateSeqs || r.other || r.mismatches || r.openNs < 0)
          throw new Error(`executorThreads: ${JSON.stringify(r)}`);
        return { seal: r.sealNs / (threads * count), open: r.openNs / (threads * count) };
      });
      out.push({ size, threads, sealNs: median(runs.map((r) => r.seal)), openNs: median(runs.map((r) => r.open)) });
    }
  return out;
}

interface Gw {
  close(): Promise<void>;
}

async function gateway(tb: Testbed, ns: string, cfg: HelperConfig): Promise<Gw> {
  const child = tb.spawn(ns, process.execPath, ['--import', 'tsx', helper, JSON.stringify(cfg)], {
    stdin: true,
    cwd: root,
  });
  const lines = new JsonLines(child);
  const first = await lines.wait((e) => e.event === 'ready' || e.event === 'error', 30_000, `gateway in ${ns}`);
  if (first.event === 'error') throw new Error(String(first.message));
  return {
    async close() {
      child.stdin!.write('close\n');
      await lines.wait((e) => e.event === 'closed', 10_000, 'closed');
      await waitExit(child, 10_000);
    },
  };
}

function iperf(
  tb: Testbed,
  client: string,
  server: string,
  dst: string,
  seconds: number,
  streams: number,
): { gbps: number; retransmits: number } {
  const srv = tb.spawn(server, 'iperf3', ['-s', '-1']);
  spawnSync('sleep', ['0.3']);
  const r = spawnSync(
    'ip',
    ['netns', 'exec', client, 'iperf3', '-c', dst, '-t', String(seconds), '-P', String(streams), '-J'],
    { encoding: 'utf8' },
  );
  if (srv.exitCode === null && srv.pid) spawnSync('sleep', ['0.2']);
  if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(-500)} ${r.stderr}`);
  const j = JSON.parse(r.stdout) as {
    end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } };
  };
  return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0 };
}

const ROUTING = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };

/** h1 -- gwa == gwb -- h2, with or without gateways on gwa/gwb (kernel routing). */
async function tunBench(seconds: number, quick: boolean): Promise<TunFigure[]> {
  const out: TunFigure[] = [];
  const streamsList = quick ? [1] : [1, 4];
  for (const setup of ['kernel', 'plain', 'encrypt'] as const) {
    const tb = new Testbed();
    try {
      const { ga, gb, h1, h2 } = twoSites(tb);
      tb.ip(ga, 'route', 'add', '10.2.0.0/24', 'via', '192.168.0.2');
      tb.ip(gb, 'route', 'add', '10.1.0.0/24', 'via', '192.168.0.1');
      // Tunnel MTU 1400 on the terminals, as in dataplane.md's comparison.
      tb.ip(h1, 'link', 'set', 'e0', 'mtu', '1400');
      tb.ip(h2, 'link', 'set', 'e0', 'mtu', '1400');
      const gws: Gw[] = [];
      if (setup === 'kernel') {
        tb.sysctl(ga, 'net.ipv4.ip_forward', '1');
        tb.sysctl(gb, 'net.ipv4.ip_forward', '1');
      } else if (setup === 'plain') {
        const rules = (l: string, r: string) => [{ local: l, remote: r, action: 'plain' as const }];
        gws.push(await gateway(tb, ga, { routing: ROUTING, rules: rules('10.1.0.2', '10.2.0.2') }));
        gws.push(await gateway(tb, gb, { routing: ROUTING, rules: rules('10.2.0.2', '10.1.0.2') }));
      } else {
        const ka = { spi: 0x100, key: 'aa'.repeat(32), salt: '01020304' };
        const kb = { spi: 0x200, key: 'bb'.repeat(32), salt: '05060708' };
        // Each gateway sends under its own SA and receives under the other's.
        const encrypting = (local: string, remote: string, peer: string, own: typeof ka, theirs: typeof ka) => ({
          routing: ROUTING,
          rules: [{ local, remote, action: 'encrypt' as const, vpnId: 1, peer, mtu: 1500 }],
          tx: [{ vpnId: 1, epoch: 1, ...own }],
          rx: [{ vpnId: 1, epoch: 1, sender: peer, ...theirs }],
        });
        gws.push(await gateway(tb, ga, encrypting('10.1.0.2', '10.2.0.2', 'GB', ka, kb)));
        gws.push(await gateway(tb, gb, encrypting('10.2.0.2', '10.1.0.2', 'GA', kb, ka)));
      }
      for (const streams of streamsList) {
        const r = iperf(tb, h1, h2, '10.2.0.2', seconds, streams);
        out.push({ setup, streams, ...r });
      }
      for (const g of gws) await g.close();
    } finally {
      tb.teardown();
    }
  }
  return out;
}

export async function runNativeBench(opts: NativeBenchOptions = {}): Promise<NativeBenchResult> {
  const quick = opts.quick ?? false;
  const result: NativeBenchResult = {
    crypto: cryptoBench(quick),
    processCallNs: processCallBench(quick),
    threads: threadsBench(quick),
    tun: [],
  };
  if (opts.tun === false) {
    result.tunSkipped = 'disabled';
    return result;
  }
  const a = netnsAvailability();
  if (!a.ok) result.tunSkipped = a.reason;
  else if (!hasCommand('iperf3')) result.tunSkipped = 'iperf3 not installed (apt-get install iperf3)';
  else result.tun = await tunBench(opts.seconds ?? (quick ? 2 : 5), quick);
  return result;
}

export function formatNativeBench(r: NativeBenchResult): string {
  const lines: string[] = ['ESP AES-256-GCM per packet (ns; native: reused EVP context, batch of packets per call)'];
  lines.push('  size   native seal  native open  node:crypto seal  node:crypto open');
  for (const c of r.crypto) {
    const f = (x: number) => x.toFixed(0).padStart(11);
    lines.push(
      `  ${String(c.size).padStart(4)} ${f(c.nativeSealNs)}  ${f(c.nativeOpenNs)}  ${f(c.nodeSealNs).padStart(16)}  ${f(c.nodeOpenNs).padStart(16)}`,
    );
  }
  if (r.processCallNs !== undefined)
    lines.push(`executor.process() from JS, encrypt 1400 B: ${r.processCallNs.toFixed(0)} ns/packet`);
  if (r.threads.length) {
    lines.push('the executor from several threads at once, one SA (wall ns per packet, all threads together)');
    for (const t of r.threads)
      lines.push(
        `  ${String(t.size).padStart(4)} B, ${t.threads} thread(s): seal ${t.sealNs.toFixed(0).padStart(5)}, open ${t.openNs.toFixed(0).padStart(5)}`,
      );
  }
  if (r.tunSkipped) lines.push(`TUN forwarding: skipped (${r.tunSkipped})`);
  else {
    lines.push('TUN forwarding, iperf3 TCP h1 -> h2 through two gateway namespaces (tunnel MTU 1400)');
    for (const t of r.tun)
      lines.push(
        `  ${t.setup.padEnd(8)} ${t.streams} stream(s): ${t.gbps.toFixed(2)} Gbit/s, ${t.retransmits} retransmits`,
      );
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  runNativeBench({ quick: args.includes('--quick'), tun: !args.includes('--no-tun') })
    .then((r) => console.log(formatNativeBench(r)))
    .catch((e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    });
}

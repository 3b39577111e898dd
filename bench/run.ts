// `npm run bench [-- NAME...]`: runs the benchmarks (all, or those named). Heap figures need
// --expose-gc, so without it this re-runs itself under `node --expose-gc --import tsx`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatSimScale, runSimScale, simScaleOptions } from './sim-scale.js';
import { formatKeyTableMemory, runKeyTableMemory } from './key-table-memory.js';
import { formatPeerBench, peerBenchOptions, runPeerBench } from './peers/index.js';
import { kasanePeer } from './peers/kasane.js';
import { formatNativeBench, runNativeBench } from './native-bench.js';
import { authorityBenchOptions, formatAuthorityBench, runAuthorityBench } from './authority-scale.js';
import { formatRotateBench, runRotateBench } from './authority-rotate.js';
import { formatIkeHostile, runIkeHostile } from './ike-hostile.js';

interface Benchmark {
  description: string;
  run(log: (line: string) => void): void | Promise<void>;
}

const benchmarks: Record<string, Benchmark> = {
  'sim-scale': {
    description: 'key searches in a simulated network (by default 1,000 gateways, 100,000 terminals)',
    run(log) {
      log(formatSimScale(runSimScale(simScaleOptions(), (line) => log(`  ${line}`))));
    },
  },
  native: {
    description:
      'native AES-GCM per packet vs node:crypto, and TUN forwarding throughput between namespaces (root, iperf3)',
    async run(log) {
      log(formatNativeBench(await runNativeBench({ quick: process.env.KASANE_BENCH_QUICK === '1' })));
    },
  },
  authority: {
    description:
      'enroll gateways, put them into VPNs, rotate every key: delivery time and memory, on SQLite and PostgreSQL',
    async run(log) {
      log(formatAuthorityBench(await runAuthorityBench(authorityBenchOptions(), (line) => log(`  ${line}`))));
    },
  },
  'authority-rotate': {
    description:
      "the administrator's rotate-all call alone, against the store without HTTPS (by default 10,000 gateways in 1,000 VPNs), on SQLite and PostgreSQL",
    async run(log) {
      log(formatRotateBench(await runRotateBench({}, (line) => log(`  ${line}`))));
    },
  },
  peers: {
    description:
      'iperf3 and ping hostA->hostB through plain routing, wireguard-go, nebula and kasane in namespaces, and over IPv6 (plain-v6, kasane-v6) (root; KASANE_BENCH_SMOKE=1 for a quick run)',
    async run(log) {
      log(
        formatPeerBench(
          await runPeerBench({
            ...peerBenchOptions(),
            kasane: kasanePeer(),
            extraPeers: [
              kasanePeer({ pairwise: true }),
              kasanePeer({ ipv6: true }),
              ...(process.env.KASANE_BENCH_PEERS?.includes('kasane-raw-esp') ? [kasanePeer({ rawEsp: true })] : []),
            ],
            log: (line) => log(`  ${line}`),
          }),
        ),
      );
    },
  },
  'ike-hostile': {
    description:
      'responder CPU per hostile IKE message (target: 5 ms for any unauthenticated one) and fragment bytes one half-open SA can make it hold',
    async run(log) {
      log(formatIkeHostile(await runIkeHostile({ rounds: Number(process.env.KASANE_BENCH_ROUNDS ?? 20) })));
    },
  },
  'key-table-memory': {
    description:
      'process memory per installed path (core key table + native executor rule), install and lookup cost; target ≤ 256 bytes (KASANE_BENCH_FAMILY=6: IPv6 paths)',
    run(log) {
      log(formatKeyTableMemory(runKeyTableMemory()));
    },
  },
};

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = names.filter((n) => !(n in benchmarks));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown benchmark(s): ${unknown.join(', ')}; available: ${Object.keys(benchmarks).join(', ')}\n`,
  );
  process.exit(2);
}

if (typeof (globalThis as { gc?: unknown }).gc !== 'function' && process.env.KASANE_BENCH_CHILD === undefined) {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, KASANE_BENCH_CHILD: '1' },
    },
  );
  process.exit(child.status ?? 1);
}

async function main(): Promise<void> {
  for (const name of names.length > 0 ? names : Object.keys(benchmarks)) {
    const b = benchmarks[name];
    console.log(`# ${name}: ${b.description}`);
    await b.run((line) => console.log(line));
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});

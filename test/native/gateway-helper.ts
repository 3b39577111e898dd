// A minimal gateway for the datapath tests and benchmarks, run inside a namespace:
//   ip netns exec NS node --import tsx test/native/gateway-helper.ts '<json config>'
// It opens the two TUN devices, sets up policy routing, installs the configured rules and SAs, and
// reports on stdout as JSON lines. On a punted 'miss' for a path listed in `learn`, it installs a
// plain rule for that path (both directions) and re-injects the packet, as the core does after a
// search. stdin: "stats" prints statistics, "close" closes the datapath and prints them; the
// process must then exit by itself (no process.exit: the reader threads must be gone).
import { createInterface } from 'node:readline';
import type { PathRule } from '../../src/core/executor.js';
import { NativeDatapath } from '../../src/native/datapath.js';
import { NativeExecutor } from '../../src/native/native-executor.js';
import { routingSetup, runRouting, type TunRouting } from '../../src/native/routing.js';

export interface HelperConfig {
  routing: TunRouting;
  queues?: number;
  gro?: boolean;
  rawEgress?: boolean;
  rules?: PathRule[];
  tx?: { spi: number; vpnId: number; epoch: number; key: string; salt: string }[];
  rx?: { spi: number; vpnId: number; epoch: number; sender: string; key: string; salt: string }[];
  learn?: { local: string; remote: string }[];
}

const cfg = JSON.parse(process.argv[2]) as HelperConfig;
const emit = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + '\n');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

const made = NativeExecutor.create();
if (!made.ok) {
  emit({ event: 'error', message: made.error.message });
  process.exitCode = 2;
} else {
  const ex = made.value;
  for (const r of cfg.rules ?? []) ex.installPath(r);
  for (const s of cfg.tx ?? []) ex.installTxSa({ ...s, key: unhex(s.key), salt: unhex(s.salt), nextSeq: 1n });
  for (const s of cfg.rx ?? []) ex.installRxSa({ ...s, key: unhex(s.key), salt: unhex(s.salt) });
  const learn = new Set((cfg.learn ?? []).map((p) => `${p.local}>${p.remote}`));
  const punts: Record<string, number> = {};
  let dp: NativeDatapath | undefined;
  const opened = NativeDatapath.open(ex, {
    inside: cfg.routing.insideTun,
    outside: cfg.routing.outsideTun,
    queues: cfg.queues ?? 1,
    gro: cfg.gro,
    rawEgress: cfg.rawEgress,
    onPunt: (b) => {
      for (let i = 0; i < b.count; i++) {
        const side = b.side(i);
        const reason = b.reason(i);
        const p = b.packet(i);
        const src = `${p[12]}.${p[13]}.${p[14]}.${p[15]}`;
        const dst = `${p[16]}.${p[17]}.${p[18]}.${p[19]}`;
        punts[`${side}.${reason}`] = (punts[`${side}.${reason}`] ?? 0) + 1;
        const [local, remote] = side === 'inside' ? [src, dst] : [dst, src];
        if (reason === 'miss' && learn.has(`${local}>${remote}`)) {
          ex.installPath({ local, remote, action: 'plain' });
          // Inject a copy: the batch memory is reused after this callback.
          const w = dp!.write(side, p.slice());
          emit({ event: 'learned', local, remote, side, injected: w.ok });
        } else {
          emit({ event: 'punt', side, reason, src, dst, length: p.length });
        }
      }
    },
  });
  if (!opened.ok) {
    emit({ event: 'error', message: opened.error.message });
    process.exitCode = 2;
  } else {
    dp = opened.value;
    const routed = runRouting(routingSetup(cfg.routing));
    if (!routed.ok) throw new Error(routed.error.message);
    emit({ event: 'ready' });
    const report = (event: string) =>
      emit({ event, stats: dp!.stats(), counters: ex.counters(), paths: ex.allPathStats(), punts });
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      if (line.trim() === 'stats') report('stats');
      if (line.trim() === 'close') {
        dp!.close();
        report('closed');
        rl.close();
        process.stdin.destroy();
      }
    });
  }
}

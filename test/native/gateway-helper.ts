// A minimal gateway for the datapath tests and benchmarks, run inside a namespace:
//   ip netns exec NS node --import tsx test/native/gateway-helper.ts '<json config>'
// It opens the two TUN devices, sets up policy routing, installs the configured rules and SAs, and
// reports on stdout as JSON lines. On a punted 'miss' for a path listed in `learn`, it installs a
// plain rule for that path (both directions) and re-injects the packet, as the core does after a
// search. With `udp`, it also opens the tunnel port and installs the configured tunnel SAs; IKE
// and unknown-SPI datagrams are reported as "udp" events. stdin: "local HEX" sends a packet of the
// gateway's own (sendLocal), "stats" prints statistics, a "failure" event reports a reader thread
// that stopped on its own,
// "send <addr> <port> <hex>" sends a datagram from the tunnel port, "flush <hex>" runs an inside
// packet through the executor from JavaScript and sends the result as the core's flush would
// (tunnel packets through the tunnel port), "close" closes the datapath
// and prints statistics; the process must then exit by itself (no process.exit: the reader
// threads must be gone).
import { createInterface } from 'node:readline';
import type { PathRule, TunnelRxSa, TunnelTxSa } from '../../src/core/executor.js';
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
  udp?: { address: string | string[]; port?: number };
  tunnelTx?: (Omit<TunnelTxSa, 'key' | 'salt'> & { key: string; salt: string })[];
  tunnelRx?: (Omit<TunnelRxSa, 'key' | 'salt'> & { key: string; salt: string })[];
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
  for (const s of cfg.tunnelTx ?? []) ex.installTunnelTx({ ...s, key: unhex(s.key), salt: unhex(s.salt) });
  for (const s of cfg.tunnelRx ?? []) ex.installTunnelRx({ ...s, key: unhex(s.key), salt: unhex(s.salt) });
  const tunnelStats = () => ({
    tx: (cfg.tunnelTx ?? []).map((s) => ex.tunnelTxStats(s.spi)),
    rx: (cfg.tunnelRx ?? []).map((s) => ex.tunnelRxStats(s.spi)),
  });
  const learn = new Set((cfg.learn ?? []).map((p) => `${p.local}>${p.remote}`));
  const punts: Record<string, number> = {};
  let dp: NativeDatapath | undefined;
  const opened = NativeDatapath.open(ex, {
    inside: cfg.routing.insideTun,
    outside: cfg.routing.outsideTun,
    queues: cfg.queues ?? 1,
    gro: cfg.gro,
    rawEgress: cfg.rawEgress,
    udp: cfg.udp,
    // A reader thread that stopped on its own (a TUN device deleted under it).
    onFailure: (message) => emit({ event: 'failure', message, failure: dp?.failure }),
    onUdp: (b) => {
      for (let i = 0; i < b.count; i++) {
        const p = b.payload(i);
        emit({
          event: 'udp',
          reason: b.reason(i),
          src: b.srcAddr(i),
          port: b.srcPort(i),
          length: p.length,
          payload: Buffer.from(p.subarray(0, 64)).toString('hex'),
        });
      }
    },
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
      emit({
        event,
        stats: dp!.stats(),
        counters: ex.counters(),
        paths: ex.allPathStats(),
        punts,
        tunnel: tunnelStats(),
      });
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      if (line.trim() === 'stats') report('stats');
      const send = /^send (\S+) (\d+) ([0-9a-f]*)$/.exec(line.trim());
      if (send) {
        const r = dp!.sendUdp(send[1], Number(send[2]), unhex(send[3]));
        emit({ event: 'sent', ok: r.ok, error: r.ok ? undefined : r.error.message });
      }
      const local = /^local ([0-9a-f]+)$/.exec(line.trim());
      if (local) {
        const r = dp!.sendLocal(unhex(local[1]));
        emit({ event: 'local', ok: r.ok, error: r.ok ? undefined : r.error.message });
      }
      const flush = /^flush ([0-9a-f]+)$/.exec(line.trim());
      if (flush) {
        const v = ex.process('inside', unhex(flush[1]), Date.now());
        const r =
          v.kind !== 'forward'
            ? undefined
            : v.note.op === 'tunnel-encrypt'
              ? dp!.sendTunnelPacket(v.bytes)
              : dp!.write('inside', v.bytes);
        emit({
          event: 'flushed',
          verdict: v.kind === 'forward' ? v.note.op : `${v.kind}.${v.reason}`,
          ok: r?.ok ?? false,
        });
      }
      if (line.trim() === 'close') {
        dp!.close();
        report('closed');
        rl.close();
        process.stdin.destroy();
      }
    });
  }
}

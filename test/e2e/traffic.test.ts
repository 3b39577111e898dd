// TCP between unmodified terminals on real Linux networking (seed 000 Figure 2 in namespaces):
// iperf3 through the gateways, key rotations (scheduled and urgent) under a running transfer
// without losing the connection, and key-table aging (paths expire when idle and come back on
// the next packet).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { stopProcess } from '../../src/testbed/sites.js';
import { espOf, ESP_FILTER, isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { iperf } from './iperf.js';
import { inFigure2 } from './sites.js';

/** Short aging so the test sees it; everything else at the gateway's defaults. */
const IDLE_MS = 3000;
const GATEWAY_TIMERS = `timers:\n  idleTimeout: ${IDLE_MS}\n  sweepInterval: 250\n`;

const epochOf = (f: Figure2, n: 1 | 2 | 3, vpn: string) => f.status(n).vpns.find((v) => v.name === vpn)?.epoch;
const pathTo = (f: Figure2, n: 1 | 2 | 3, remote: string) => f.status(n).paths.find((p) => p.remote === remote);

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

netnsTest(
  'TCP through the gateways: iperf3, key rotations under a running transfer, aging',
  { timeout: 300_000, needs: ['iperf3'] },
  async () => {
    // A 3 s overlap: a scheduled rotation's epoch is delivered at once and active 3 s later.
    await inFigure2(
      { gatewayConfig: GATEWAY_TIMERS, authorityInit: ['--overlap', '3s', '--grace', '20s'] },
      async (f, dir) => {
        // A TCP transfer over each VPN; none between A and C.
        const ba = await iperf(f, 'B', 'A', 3);
        assert.equal(ba.error, undefined, `B -> A: ${ba.error}`);
        assert.ok(ba.bytes > 1_000_000, `B -> A moved ${ba.bytes} bytes`);
        const bc = await iperf(f, 'B', 'C', 3);
        assert.equal(bc.error, undefined, `B -> C: ${bc.error}`);
        assert.ok(bc.bytes > 1_000_000, `B -> C moved ${bc.bytes} bytes`);
        const ac = await iperf(f, 'A', 'C', 2);
        assert.ok(ac.error !== undefined && ac.bytes === 0, 'A -> C must not connect');

        // Key rotations while one TCP connection runs: a scheduled one (overlap, then switch) and an
        // urgent one (--now: active at once, as after a member's removal). iperf3 fails on a lost
        // connection; its JSON summary covers the whole run.
        const before = epochOf(f, 2, 'VPN1');
        assert.ok(before !== undefined, 'G2 knows VPN1');
        // Which SA (SPI) carries B's packets, sampled on the WAN at each step (short captures: one
        // long capture can lose packets on a loaded machine and blur the order).
        let n = 0;
        const spisOnWan = async (): Promise<string[]> => {
          const file = join(dir, `spi-${++n}.pcap`);
          const cap = await startCapture(
            f.tb,
            f.ns.R,
            'g1',
            file,
            [`${ESP_FILTER} and src 10.2.0.10`],
            ['-s', '64', '-c', '20'],
          );
          await Promise.race([new Promise((r) => cap.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
          await stopCapture(cap);
          return [
            ...new Set(
              readPcap(file)
                .filter(isEsp)
                .map((p) => espOf(p).subarray(0, 4).toString('hex')),
            ),
          ];
        };
        const seen: string[][] = [];
        const SECONDS = 30;
        const started = Date.now();
        let lastSample = 0;
        const rotated = await iperf(f, 'B', 'A', SECONDS, {
          during: async () => {
            // A scheduled rotation, then an urgent one; the SPIs on the WAN sampled before and after each.
            for (const [step, urgent] of [
              [1, []],
              [2, ['--now']],
            ] as const) {
              await new Promise((r) => setTimeout(r, 1000));
              seen.push(await spisOnWan());
              f.admin('vpn', 'rotate', 'VPN1', ...urgent);
              await until(
                () => epochOf(f, 1, 'VPN1') === before + step && epochOf(f, 2, 'VPN1') === before + step,
                8000,
                `the ${urgent.length ? 'urgent' : 'scheduled'} epoch on G1 and G2`,
              );
            }
            await new Promise((r) => setTimeout(r, 1000));
            seen.push(await spisOnWan());
            lastSample = Date.now();
          },
          extra: ['-b', '100M'],
        });
        assert.equal(rotated.error, undefined, `the transfer across two rotations: ${rotated.error}`);
        assert.ok(
          lastSample - started < (SECONDS - 2) * 1000,
          `both rotations happened while the transfer ran (${lastSample - started} ms)`,
        );
        assert.ok(rotated.seconds >= SECONDS - 1, `the connection lasted the whole run (${rotated.seconds} s)`);
        assert.ok(
          rotated.intervals.length >= SECONDS - 1 && rotated.intervals.every((b) => b > 0),
          `data moved in every second, no stall: ${rotated.intervals.join(' ')}`,
        );
        assert.ok(rotated.bytes > 5_000_000, `bytes moved across the rotations: ${rotated.bytes}`);
        assert.equal(f.ping('A', 'B'), true, 'A -> B on the newest epoch');
        // One SA at each step, a new one after each rotation.
        assert.ok(
          seen.every((s) => s.length === 1),
          `one SPI per sample: ${JSON.stringify(seen)}`,
        );
        assert.equal(new Set(seen.map((s) => s[0])).size, 3, `three epochs, three SAs: ${JSON.stringify(seen)}`);

        // Aging: idle paths leave both key tables and come back with the next packet (a new search).
        assert.ok(pathTo(f, 2, '10.1.0.10'), 'G2 has the B <-> A path');
        await until(
          () => !pathTo(f, 2, '10.1.0.10') && !pathTo(f, 1, '10.2.0.10'),
          IDLE_MS + 5000,
          'the idle B <-> A path to age out on G1 and G2',
        );
        const searches = f.status(2).stats['search.completed'] ?? 0;
        assert.equal(f.ping('B', 'A', { count: 2 }), true, 'B -> A after aging');
        // The path in use while its status is read: reading it (a CLI process) may take longer than
        // the idle timeout on a loaded machine, and the path would age out again meanwhile.
        const keepUsing = f.tb.spawn(f.ns.B, 'ping', ['-i', '0.5', '-W', '1', '10.1.0.10']);
        let back: ReturnType<typeof pathTo>;
        try {
          back = pathTo(f, 2, '10.1.0.10');
        } finally {
          await stopProcess(keepUsing);
        }
        assert.ok(back && back.action === 'encrypt' && back.packets > 0, `the path is back: ${JSON.stringify(back)}`);
        assert.equal(f.status(2).stats['search.completed'], searches + 1, 'by one new key search');
      },
    );
  },
);

// A TUN device deleted under a running gateway (an operator's `ip link del`, a tool that cleans up
// interfaces): the datapath thread that read it stops, and with it both directions it served. The
// gateway must not go on silently forwarding nothing: it says which device failed and exits 1, for
// its supervisor to start it again, and its forwarding guard refuses traffic in between, as after a
// crash (test/e2e/fail-closed.test.ts). Seed 000 Figure 2 in namespaces, under a ping load with a
// marker, a capture on G1's WAN link.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { waitExit } from '../../src/testbed/netns.js';
import { isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

const A = '10.1.0.10';
const B = '10.2.0.10';
/** "kasane-lost-tun" as ping's fill pattern. */
const MARKER = '6b6173616e652d6c6f73742d74756e';
const MARKER_BYTES = Buffer.from('kasane-lost-tun');
const SEARCH = Buffer.from('KSRC');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

netnsTest(
  'a TUN device deleted under a running gateway: it exits 1 naming the device, nothing crosses in the clear, a restart forwards again',
  { timeout: 240_000, needs: ['tcpdump', 'nft'] },
  async () => {
    await inFigure2({}, async (f, dir) => {
      assert.equal(f.ping('A', 'B'), true, 'A -> B before');
      const g1 = f.gateways.get('G1');
      assert.ok(g1, 'G1 runs');
      let log = '';
      g1.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      const wanFile = join(dir, 'wan-lost.pcap');
      const wan = await startCapture(f.tb, f.ns.R, 'g1', wanFile, [`host ${A}`], ['-s', '128']);
      const load = f.tb.spawn(f.ns.A, 'ping', ['-q', '-i', '0.01', '-p', MARKER, B]);
      try {
        await sleep(1000);
        f.tb.ip(f.ns.G1, 'link', 'del', 'kasane-in');
        const code = await waitExit(g1, 20_000);
        f.gateways.delete('G1');
        assert.equal(code, 1, `G1's exit status; its log: ${log.slice(-1500)}`);
        assert.match(log, /TUN device kasane-in failed/, 'it names the device');
        assert.match(log, /the datapath stopped/, 'a fatal log line');
        assert.match(log, /kasane: the gateway stopped/, 'and the reason on exit');
        await sleep(1000); // down, under load
        assert.equal(f.ping('A', 'B', { count: 1 }), false, 'nothing passes while G1 is down');
      } finally {
        load.kill('SIGINT');
        await waitExit(load, 5000);
        await stopCapture(wan);
      }
      const w = readPcap(wanFile);
      assert.ok(w.filter(isEsp).length > 50, `the load ran encrypted before the device went (${w.length} packets)`);
      const plain = w.filter((p) => p.src === A && !isEsp(p) && !p.payload.includes(SEARCH));
      assert.equal(
        plain.length,
        0,
        `plaintext from A on the WAN: ${plain.length} (${plain.filter((p) => p.payload.includes(MARKER_BYTES)).length} with the marker)`,
      );
      // What a supervisor does: start it again. It makes its devices anew and forwards.
      await f.startGateway(1);
      assert.equal(f.ping('A', 'B'), true, 'A -> B after the restart');
    });
  },
);

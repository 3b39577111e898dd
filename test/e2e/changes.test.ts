// Changes while running, on real Linux networking (seed 000 Figure 2 in namespaces): removing a
// member stops its path within seconds; an authority outage and restart change nothing for
// established traffic; a restarted gateway recovers its paths.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readPcap, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

netnsTest(
  'changes while running: member removal, authority restart, gateway restart',
  { timeout: 300_000 },
  async () => {
    await inFigure2({}, async (f, dir) => {
      assert.equal(f.ping('B', 'A'), true);
      assert.equal(f.ping('B', 'C'), true);

      // The authority goes away: established paths keep working on cached keys.
      await f.stopAuthority();
      assert.equal(f.ping('B', 'A'), true, 'B -> A with the authority down');
      await f.startAuthority();
      assert.equal(f.ping('B', 'A'), true, 'B -> A after the authority restarted');

      // A restarted gateway recovers its paths (from the authority, by a new key search).
      await f.stopGateway(1);
      assert.equal(f.ping('B', 'A', { count: 1 }), false, 'G1 is down');
      await f.startGateway(1);
      assert.equal(f.ping('B', 'A'), true, 'B -> A after G1 restarted');

      // Removing G3 from VPN2 stops B <-> C within a few seconds, without restarting anything, and
      // from then on no packet of C reaches B decrypted: captured on B's LAN while C keeps sending.
      const lanB = join(dir, 'lan-b.pcap');
      const lanCapture = await startCapture(f.tb, f.ns.G2, 'lan0', lanB, [`icmp and host ${f.terminals.C}`]);
      const cPing = f.tb.spawn(f.ns.C, 'ping', ['-i', '0.1', '-w', '30', f.terminals.B]);
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      f.admin('member', 'remove', 'VPN2', 'G3');
      let stopped = 0;
      while (Date.now() - t0 < 10_000) {
        const attempt = Date.now();
        if (!f.ping('B', 'C', { count: 1 })) {
          stopped = attempt;
          break;
        }
      }
      assert.ok(stopped, 'B -> C still passes 10 s after G3 left VPN2');
      assert.equal(f.ping('B', 'C', { count: 2 }), false, 'and stays stopped');
      assert.equal(f.ping('B', 'A'), true, 'VPN1 is unaffected');
      await new Promise((r) => setTimeout(r, 2000)); // C still sending
      cPing.kill('SIGINT');
      await stopCapture(lanCapture);
      // G2's own key-search probes to B carry C's address as their source (seed 000 §3.3 step 2): not C's packets.
      const fromC = readPcap(lanB).filter((p) => p.src === f.terminals.C && !p.payload.includes(Buffer.from('KSRC')));
      assert.ok(
        fromC.some((p) => p.time < t0),
        "the capture saw C's packets before the removal",
      );
      const late = fromC.filter((p) => p.time > stopped);
      assert.deepEqual(
        late.map((p) => Math.round(p.time - t0)),
        [],
        "no packet of C decrypted onto B's LAN after the path stopped (ms after the removal)",
      );
    });
  },
);

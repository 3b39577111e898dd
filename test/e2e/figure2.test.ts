// End to end on real Linux networking: seed 000 Figure 2 in network namespaces (src/demo/figure2.ts)
// with a real authority process, three real gateway daemons (TUN + native datapath + policy
// routing) and the kernel's own ping between unmodified terminals.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { assertPath, inFigure2, type PathRow } from './sites.js';

netnsTest(
  'Figure 2 in namespaces: B reaches A and C, A never reaches C; the WAN carries only ESP and search messages',
  { timeout: 240_000 },
  async () => {
    await inFigure2({}, async (f, dir) => {
      // Capture the WAN between R and G1 while the terminals talk.
      const pcap = join(dir, 'wan-g1.pcap');
      const capture = await startCapture(f.tb, f.ns.R, 'g1', pcap);
      const MARKER = '6b6173616e652d7365637265742121'; // "kasane-secret!!" as ping's fill pattern
      assert.equal(f.ping('B', 'A', { pattern: MARKER }), true, 'B -> A over VPN1');
      assert.equal(f.ping('B', 'C', { pattern: MARKER }), true, 'B -> C over VPN2');
      assert.equal(f.ping('A', 'C', { pattern: MARKER }), false, 'A -> C must not pass');
      assert.equal(f.ping('A', 'B', { pattern: MARKER }), true, 'A -> B (the path is already in the key tables)');
      await new Promise((r) => setTimeout(r, 500));
      await stopCapture(capture);

      const packets = readPcap(pcap);
      const between = packets.filter(
        (p) => (p.src === '10.2.0.10' && p.dst === '10.1.0.10') || (p.src === '10.1.0.10' && p.dst === '10.2.0.10'),
      );
      assert.ok(between.filter(isEsp).length >= 6, `ESP between A and B on the WAN: ${between.length} packets`);
      // Apart from ESP, only the key search (ICMP echo carrying the KSRC payload) crosses in the clear.
      for (const p of between)
        assert.ok(
          isEsp(p) || (p.proto === 1 && p.payload.includes(Buffer.from('KSRC'))),
          `plaintext packet ${p.proto} on the WAN`,
        );
      for (const p of packets)
        assert.ok(
          !p.payload.includes(Buffer.from(MARKER, 'hex').subarray(0, 12)),
          'the marker never appears on the WAN',
        );

      const status = (n: 1 | 2 | 3) =>
        (
          JSON.parse(f.kasane(f.ns[`G${n}`], 'gateway', 'status', '--data', f.gatewayData(n), '--json')) as {
            paths: PathRow[];
          }
        ).paths;
      const g2 = status(2);
      assertPath(g2, { remote: '10.1.0.10', action: 'encrypt', vpnName: 'VPN1', peer: 'G1', moving: true });
      assertPath(g2, { remote: '10.3.0.10', action: 'encrypt', vpnName: 'VPN2', peer: 'G3' });
      assertPath(status(1), { remote: '10.3.0.10', action: 'discard' });
    });
  },
);

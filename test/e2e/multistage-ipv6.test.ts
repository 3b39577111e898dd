// Multi-stage (seed 000 Figure 1(2)) over IPv6: the sites are dual stack and B pings A's IPv6
// address through both layers; one key search (over ICMPv6) sets up dept inside company and the
// WAN carries ESP inside ESP in IPv6 between the terminals' addresses.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isEsp, isSearch6, readPcap6, startCapture, stopCapture } from '../support/capture.js';
import { buildMultistage, MULTISTAGE_TERMINALS6 } from '../../src/demo/multistage.js';
import { netnsTest } from '../support/netns-gate.js';
import { CLI, inWorld } from './sites.js';

const { A, B } = MULTISTAGE_TERMINALS6;

netnsTest(
  'multi-stage over IPv6: nested VPNs, one search, ESP inside ESP between IPv6 terminals on the WAN',
  { timeout: 240_000 },
  async () => {
    await inWorld(
      'kasane-e2e-ms6-',
      (dir) => buildMultistage({ dir, cli: CLI, ipv6: true }),
      async (s, dir) => {
        const { tb, ns } = s;
        const pcap = join(dir, 'wan.pcap');
        const capture = await startCapture(tb, ns.R, 'g1', pcap, ['ip6']);
        assert.equal(
          s.ping('B', A, ['-c', '5', '-i', '0.3', '-W', '3']) > 0,
          true,
          'ping -6 B -> A through both layers',
        );
        await new Promise((r) => setTimeout(r, 500));
        await stopCapture(capture);

        const wan = readPcap6(pcap);
        const esp = wan.filter((p) => isEsp(p) && p.src === B && p.dst === A);
        assert.ok(esp.length >= 3, `ESP packets B -> A on the WAN: ${esp.length}`);
        // ping -6's 64-byte ICMPv6 message grows by two layers (ESP in UDP, 42..45 bytes each).
        assert.ok(
          esp.every((p) => p.payloadLength >= 64 + 2 * 42 && p.payloadLength <= 64 + 2 * 45),
          esp.map((p) => p.payloadLength).join(','),
        );
        for (const p of wan.filter((x) => (x.src === B && x.dst === A) || (x.src === A && x.dst === B)))
          assert.ok(isEsp(p) || isSearch6(p), `plaintext between A and B on the WAN (next header ${p.proto})`);

        const paths = (g: string) => s.status(g).paths;
        assert.ok(
          paths('Go2').some(
            (p) => p.remote === A && p.action === 'encrypt' && p.vpnName === 'company' && p.peer === 'Go1',
          ),
          JSON.stringify(paths('Go2')),
        );
        const inner = paths('Gi2').find((p) => p.remote === A && p.action === 'encrypt');
        assert.ok(
          inner && inner.vpnName === 'dept' && inner.peer === 'Gi1' && inner.reason === 'search',
          JSON.stringify(inner),
        );
        assert.deepEqual(
          inner.layers?.map((l) => l.vpnId),
          [10, 20],
          'both layers from the one search',
        );
        assert.ok(paths('Gi1').some((p) => p.remote === B && p.action === 'encrypt' && p.vpnName === 'dept'));
        // IPv4 through the same nested VPNs at the same time (dual stack).
        assert.ok(s.ping('B', '10.1.1.10') > 0, 'B -> A over IPv4 too');
      },
    );
  },
);

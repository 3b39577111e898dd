// Multi-stage (seed 000 Figure 1(2)) on real Linux networking: terminals behind an inner and an
// outer gateway on each side; one key search sets up both layers and the WAN carries ESP in ESP.
//
//   A 10.1.1.10 - Gi1 (dept) - Go1 (company) - R - Go2 (company) - Gi2 (dept) - B 10.2.1.10
//                                              |
//                                             AUTH
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { buildMultistage } from '../../src/demo/multistage.js';
import { netnsTest } from '../support/netns-gate.js';
import { CLI, inWorld } from './sites.js';

netnsTest(
  'multi-stage in namespaces: nested VPNs, one search, ESP inside ESP on the WAN',
  { timeout: 240_000 },
  async () => {
    await inWorld(
      'kasane-e2e-ms-',
      (dir) => buildMultistage({ dir, cli: CLI }),
      async (s, dir) => {
        const { tb, ns } = s;
        const pcap = join(dir, 'wan.pcap');
        const capture = await startCapture(tb, ns.R, 'g1', pcap);
        let ok = false;
        try {
          tb.exec(ns.B, 'ping', '-c', '5', '-i', '0.3', '-W', '2', '10.1.1.10');
          ok = true;
        } catch {
          ok = false;
        }
        await new Promise((r) => setTimeout(r, 500));
        await stopCapture(capture);
        assert.ok(ok, 'B -> A through both layers');

        // On the WAN: ESP between the terminals, and the inner payload after the outer ESP header is
        // itself ESP (its next header is only visible decrypted; its size shows two layers of overhead).
        const esp = readPcap(pcap).filter((p) => isEsp(p) && p.src === '10.2.1.10' && p.dst === '10.1.1.10');
        assert.ok(esp.length >= 3, `ESP packets B->A on the WAN: ${esp.length}`);
        // ping's 84-byte IP packet grows by two layers (ESP in UDP, 42..45 bytes each).
        assert.ok(
          esp.every((p) => p.totalLength >= 84 + 2 * 42 && p.totalLength <= 84 + 2 * 45),
          esp.map((p) => p.totalLength).join(','),
        );

        const paths = (g: string) => s.status(g).paths;
        assert.ok(
          paths('Go2').some(
            (p) => p.remote === '10.1.1.10' && p.action === 'encrypt' && p.vpnName === 'company' && p.peer === 'Go1',
          ),
        );
        assert.ok(
          paths('Gi2').some(
            (p) =>
              p.remote === '10.1.1.10' &&
              p.action === 'encrypt' &&
              p.vpnName === 'dept' &&
              p.peer === 'Gi1' &&
              p.reason === 'search',
          ),
        );
        assert.ok(paths('Gi1').some((p) => p.remote === '10.2.1.10' && p.action === 'encrypt' && p.vpnName === 'dept'));
      },
    );
  },
);

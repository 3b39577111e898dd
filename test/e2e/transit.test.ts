// A transit member on real Linux networking: three sites of one VPN, the head office H on the
// routed path between the branches GA and GB. H is a bump in the wire for their traffic (ESP and
// search messages pass it untouched) and still the gateway of its own terminal C.
//
//   A 10.1.0.10 - GA ---- R ---- H (wan0)  H (wan1) ---- GB - B 10.2.0.10
//                         |      |
//                        AUTH    C 10.3.0.10
//   V = { GA + 10.1.0.0/24, GB + 10.2.0.0/24, H + 10.3.0.0/24 }
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { tcpTransfer } from '../native/netns-gateway.js';
import { netnsTest } from '../support/netns-gate.js';
import { buildSites, inWorld } from './sites.js';

const A = '10.1.0.10';
const B = '10.2.0.10';
const C = '10.3.0.10';

netnsTest(
  "transit member in namespaces: the head office relays its branches' VPN traffic and serves its own terminal",
  { timeout: 300_000, needs: ['tcpdump'] },
  async () => {
    await inWorld(
      'kasane-e2e-transit-',
      (dir) =>
        buildSites({
          dir,
          hosts: ['A', 'B', 'C', 'GA', 'GB', 'H', 'R', 'AUTH'],
          links: [
            { a: ['A', 'eth0', `${A}/24`], b: ['GA', 'lan0', '10.1.0.1/24'] },
            { a: ['GA', 'wan0', '10.200.1.2/24'], b: ['R', 'g1', '10.200.1.1/24'] },
            { a: ['H', 'wan0', '10.200.3.2/24'], b: ['R', 'hub', '10.200.3.1/24'] },
            { a: ['C', 'eth0', `${C}/24`], b: ['H', 'lan0', '10.3.0.1/24'] },
            { a: ['H', 'wan1', '10.200.4.1/24'], b: ['GB', 'wan0', '10.200.4.2/24'] },
            { a: ['B', 'eth0', `${B}/24`], b: ['GB', 'lan0', '10.2.0.1/24'] },
            { a: ['AUTH', 'eth0', '10.200.9.2/24'], b: ['R', 'auth', '10.200.9.1/24'] },
          ],
          routes: {
            A: [['default', 'via', '10.1.0.1']],
            B: [['default', 'via', '10.2.0.1']],
            C: [['default', 'via', '10.3.0.1']],
            GA: [['default', 'via', '10.200.1.1']],
            GB: [['default', 'via', '10.200.4.1']],
            H: [
              ['default', 'via', '10.200.3.1'],
              ['10.2.0.0/24', 'via', '10.200.4.2'],
            ],
            R: [
              ['10.1.0.0/24', 'via', '10.200.1.2'],
              ['10.3.0.0/24', 'via', '10.200.3.2'],
              ['10.2.0.0/24', 'via', '10.200.3.2'],
              ['10.200.4.0/24', 'via', '10.200.3.2'],
            ],
            AUTH: [['default', 'via', '10.200.9.1']],
          },
          routers: ['R'],
          authority: { host: 'AUTH', address: '10.200.9.2' },
          vpns: [{ name: 'V', id: 1 }],
          gateways: [
            { name: 'GA', address: '10.200.1.2', inside: ['lan0'], outside: ['wan0'], members: { V: ['10.1.0.0/24'] } },
            {
              name: 'H',
              address: '10.200.3.2',
              inside: ['lan0'],
              outside: ['wan0', 'wan1'],
              members: { V: ['10.3.0.0/24'] },
            },
            { name: 'GB', address: '10.200.4.2', inside: ['lan0'], outside: ['wan0'], members: { V: ['10.2.0.0/24'] } },
          ],
        }),
      async (s, dir) => {
        const pcap = join(dir, 'h-gb.pcap');
        const capture = await startCapture(s.tb, s.ns.H, 'wan1', pcap);
        const MARKER = '6b6173616e652d7472616e73697421'; // "kasane-transit!" as ping's fill pattern
        // The first A -> B packet is the first packet GA ever punts: its punt is counted once.
        assert.equal(
          s.ping('A', B, ['-c', '3', '-i', '0.2', '-W', '2', '-p', MARKER]),
          3,
          'A -> B across the head office',
        );
        assert.equal(s.status('GA').stats['executor.punt.miss'], 1, 'one punted packet, one count');
        assert.equal(s.ping('B', A, ['-c', '3', '-i', '0.2', '-W', '2', '-p', MARKER]), 3, 'B -> A');
        assert.equal(s.ping('A', C), 3, "A -> C (the head office's own terminal)");
        assert.equal(s.ping('C', B), 3, 'C -> B');
        await tcpTransfer(s.tb, s.ns.B, s.ns.A, B, 4 * 1024 * 1024);
        await new Promise((r) => setTimeout(r, 500));
        await stopCapture(capture);

        // Between H and GB, A <-> B traffic is ESP (and key-search messages), never the marker.
        const packets = readPcap(pcap);
        const ab = packets.filter((p) => (p.src === A && p.dst === B) || (p.src === B && p.dst === A));
        assert.ok(ab.filter(isEsp).length >= 6, `ESP between A and B behind the head office: ${ab.length} packets`);
        for (const p of ab)
          assert.ok(
            isEsp(p) || (p.proto === 1 && p.payload.includes(Buffer.from('KSRC'))),
            `plaintext packet (protocol ${p.proto}) between A and B`,
          );
        for (const p of packets)
          assert.ok(
            !p.payload.includes(Buffer.from(MARKER, 'hex').subarray(0, 12)),
            'the marker never crosses in the clear',
          );

        // GA and GB are paired with each other; H only relays (it never decrypts their traffic).
        const ga = s.status('GA').paths;
        assert.ok(
          ga.some((p) => p.remote === B && p.action === 'encrypt' && p.peer === 'GB'),
          JSON.stringify(ga),
        );
        assert.ok(
          ga.some((p) => p.remote === C && p.action === 'encrypt' && p.peer === 'H'),
          JSON.stringify(ga),
        );
        const h = s.status('H');
        assert.equal(h.stats['drop.membership'] ?? 0, 0, 'the head office drops nothing of its branches');
        assert.ok(
          !h.paths.some((p) => (p.local === A || p.local === B) && p.action !== 'plain'),
          JSON.stringify(h.paths),
        );
      },
    );
  },
);

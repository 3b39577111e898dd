// Pairwise VPNs across two authorities on an IPv6 WAN (issue 14, seed 001): the federation of
// src/demo/federation.ts with `ipv6` (dual-stack links and terminals, the gateways' outside
// addresses IPv6), the real daemons in namespaces. The first `ping -6` from A to B runs the key
// search, then IKEv2 between the gateways over IPv6 (certificates and permits from their
// authorities); the Child SA carries v6 in v6 and v4 in v6 as ESP in UDP 4500 between the gateways'
// v6 addresses, never the payload; a withdrawn share deletes the SAs and traffic stops.
//
//   A (fd00:1::10, 10.1.0.10) - GA (fd00:200:1::2) --+-- R --+-- GB (fd00:200:2::2) - B (fd00:2::10, 10.2.0.10)
//                                    AUTHA 10.200.9.2 (authority-a), AUTHB 10.200.8.2 (authority-b) behind R
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  buildFederation,
  FEDERATION_GATEWAYS6,
  FEDERATION_TERMINALS,
  FEDERATION_TERMINALS6,
  SHARED_VPN,
} from '../../src/demo/federation.js';
import { waitFor } from '../../src/testbed/sites.js';
import { ikeThenEsp, isSearch6, readPcap, readPcap6, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { CLI, inWorld } from './sites.js';

/** "kasane-fed6!!" as ping's fill pattern. */
const MARKER = '6b6173616e652d66656436212121';
const MARKER_BYTES = Buffer.from(MARKER, 'hex').subarray(0, 12);
const GA6 = FEDERATION_GATEWAYS6.GA;
const GB6 = FEDERATION_GATEWAYS6.GB;

netnsTest(
  'pairwise VPN across two authorities on an IPv6 WAN: ping -6 runs the search and IKE over IPv6, ESP in UDP only, withdrawal stops it',
  { timeout: 300_000, needs: ['tcpdump'] },
  async (t) => {
    await inWorld(
      'kasane-fed6-',
      (dir) => buildFederation({ dir, cli: CLI, ipv6: true, ikeIdleTimeoutMs: 60_000 }),
      async (s, dir) => {
        const ikeOf = (gw: 'GA' | 'GB') => s.status(gw).ike ?? [];
        const dump = () =>
          (['GA', 'GB'] as const)
            .map((g) => {
              let view: string;
              try {
                const st = s.status(g);
                const stats = Object.fromEntries(Object.entries(st.stats).filter(([n]) => /ike|search|drop/.test(n)));
                view = JSON.stringify({ paths: st.paths, ike: st.ike, stats });
              } catch (e) {
                view = (e as Error).message;
              }
              return `--- ${g}: ${view}\n${s.gatewayLog(g).slice(-3000)}`;
            })
            .join('\n');
        /** Echo replies A got from `to`. */
        const ping = (to: string, count = 1, wait = 5) =>
          s.ping('A', to, ['-c', String(count), '-i', '0.2', '-W', String(wait), '-p', MARKER]);

        await t.test(
          'the first ping -6: key search, then IKE over IPv6; the WAN carries only IKE and ESP in UDP between the gateways',
          async () => {
            const pcap = join(dir, 'wan6.pcap');
            const cap = await startCapture(s.tb, s.ns.R, 'ga', pcap);
            assert.equal(ping(FEDERATION_TERMINALS6.B, 1, 8), 1, `the first ping -6 A -> B passes\n${dump()}`);
            const replies6 = ping(FEDERATION_TERMINALS6.B, 5, 2);
            assert.ok(replies6 >= 4, `and the next ones: ${replies6} of 5`);
            // v4 in v6: the IPv4 terminals of the same LANs, through the same gateways' IPv6 addresses.
            const replies4 = ping(FEDERATION_TERMINALS.B, 5, 5);
            assert.ok(replies4 >= 4, `ping A -> B over IPv4 passes (v4 in v6): ${replies4} of 5\n${dump()}`);
            await new Promise((r) => setTimeout(r, 500));
            await stopCapture(cap);

            // The IKE SA's endpoints are the gateways' IPv6 outside addresses.
            const ga = ikeOf('GA');
            const up = ga.find((i) => i.peer === 'GB@authority-b' && i.state === 'established');
            assert.ok(up && up.children.length >= 1, `GA has an IKE SA with a Child SA: ${JSON.stringify(ga)}`);
            assert.ok(up.remote.includes(GB6), `GA's IKE SA runs to GB's IPv6 address: ${up.remote}`);
            const gb = ikeOf('GB').find((i) => i.peer === 'GA@authority-a' && i.state === 'established');
            assert.ok(
              gb?.remote.includes(GA6),
              `GB's IKE SA runs to GA's IPv6 address: ${JSON.stringify(ikeOf('GB'))}`,
            );
            const paths = s.status('GA').paths;
            for (const remote of [FEDERATION_TERMINALS6.B, FEDERATION_TERMINALS.B])
              assert.ok(
                paths.some((p) => p.remote === remote && p.action === 'encrypt' && p.peer === 'GB' && p.packets > 0),
                `GA encrypts to ${remote} for GB: ${JSON.stringify(paths)}`,
              );

            const v6 = readPcap6(pcap);
            const between = v6.filter((p) => [p.src, p.dst].includes(GA6) && [p.src, p.dst].includes(GB6));
            const udp = between.filter((p) => p.proto === 17);
            const esp = ikeThenEsp(udp, ' over IPv6');
            // Each echo that was answered crossed twice: request and reply.
            const answered = 1 + replies6 + replies4;
            assert.ok(
              esp.length >= 2 * answered,
              `ESP in UDP 4500 carries the ${answered} pings (v6, v4): ${esp.length}`,
            );
            assert.deepEqual(
              between.filter((p) => p.proto !== 17).map((p) => p.proto),
              [],
              'nothing but UDP between the gateways',
            );
            for (const p of v6) assert.ok(!p.payload.includes(MARKER_BYTES), 'the marker never crosses the WAN (IPv6)');
            const A6 = FEDERATION_TERMINALS6.A;
            assert.ok(
              !v6.some((p) => (p.src === A6 || p.dst === A6) && !isSearch6(p)),
              "A's own IPv6 packets cross the WAN only as key-search messages",
            );
            assert.ok(
              v6.some((p) => p.src === A6 && isSearch6(p)),
              'the first ping -6 ran the key search (ICMPv6, KSRC)',
            );
            const v4 = readPcap(pcap);
            for (const p of v4) assert.ok(!p.payload.includes(MARKER_BYTES), 'the marker never crosses the WAN (IPv4)');
            assert.ok(
              !v4.some(
                (p) => p.proto === 1 && p.src === FEDERATION_TERMINALS.A && !p.payload.includes(Buffer.from('KSRC')),
              ),
              'no plain IPv4 ping from A on the WAN',
            );
          },
        );

        await t.test('the share withdrawn: both gateways delete their SAs and ping -6 stops', async () => {
          s.adminOf('authority-a', 'vpn', 'unshare', SHARED_VPN, '--peer', 'authority-b');
          await waitFor(
            () => ikeOf('GA').length === 0 && ikeOf('GB').length === 0,
            30_000,
            'both gateways to delete their IKE SAs',
          ).catch((e: Error) => {
            throw new Error(`${e.message}\n${dump()}`);
          });
          assert.equal(ping(FEDERATION_TERMINALS6.B, 2, 2), 0, 'no IPv6 traffic without the share');
          assert.equal(ping(FEDERATION_TERMINALS.B, 1, 2), 0, 'nor IPv4');
          assert.ok(
            !s.status('GA').paths.some((p) => p.action === 'encrypt'),
            `GA has no encrypting path left: ${JSON.stringify(s.status('GA').paths)}`,
          );
        });
      },
    );
  },
);

// IPv6 end to end (issue 14), on seed 000 Figure 2 in namespaces with every link dual stack:
// Figure 2's matrix over `ping -6`; a WAN capture that shows only ESP and key-search messages
// between the IPv6 terminals of a VPN and never the payload marker; IPv4 and IPv6 terminals of the
// same LANs at once; TCP over IPv6 (iperf3 -6); and neighbour discovery through a gateway under
// that load (ND is never intercepted: the link's own business, answered by the kernels).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { FIGURE2_PAIRS } from '../../src/demo/scenarios.js';
import { isEsp, isNd, isSearch6, readPcap6, startCapture, stopCapture } from '../support/capture.js';
import { netnsTest } from '../support/netns-gate.js';
import { iperf } from './iperf.js';
import { assertPath, inFigure2 } from './sites.js';

/** "kasane-secret6!" as ping's fill pattern. */
const MARKER = '6b6173616e652d73656372657436';
const MARKER_BYTES = Buffer.from(MARKER, 'hex').subarray(0, 12);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A neighbour entry's state (REACHABLE, STALE, DELAY, PROBE, FAILED, ...) or undefined when there is none. */
function neighbour(f: Figure2, ns: string, dev: string, addr: string): string | undefined {
  const j = JSON.parse(f.tb.ip(ns, '-6', '-j', 'neigh', 'show', 'dev', dev, 'to', addr)) as { state?: string[] }[];
  return j[0]?.state?.join(',');
}

netnsTest(
  'IPv6 end to end: Figure 2 over ping -6, only ESP on the WAN, dual stack, iperf3 -6, ND under load',
  { timeout: 300_000, needs: ['tcpdump', 'iperf3'] },
  async (t) => {
    await inFigure2({ ipv6: true }, async (f, dir) => {
      const [A6, B6, C6] = [f.terminals6.A, f.terminals6.B, f.terminals6.C];
      // 1. Figure 2's matrix over IPv6, with the WAN between R and G1 captured.
      const pcap = join(dir, 'wan-g1.pcap');
      const capture = await startCapture(f.tb, f.ns.R, 'g1', pcap, ['ip6']);
      for (const [from, to, expected] of FIGURE2_PAIRS)
        assert.equal(f.ping(from, to, { family: 6, pattern: MARKER }), expected, `ping -6 ${from} -> ${to}`);
      await sleep(500);
      await stopCapture(capture);
      const packets = readPcap6(pcap);
      const between = packets.filter((p) => (p.src === A6 && p.dst === B6) || (p.src === B6 && p.dst === A6));
      assert.ok(
        between.filter(isEsp).length >= 12,
        `ESP between A and B on the WAN, in IPv6 between the terminals: ${between.length} packets`,
      );
      // Apart from ESP, only the key search (ICMPv6 echo carrying the KSRC payload) crosses in the clear.
      for (const p of between)
        assert.ok(isEsp(p) || isSearch6(p), `plaintext packet (next header ${p.proto}) on the WAN between A and B`);
      for (const p of packets) assert.ok(!p.payload.includes(MARKER_BYTES), 'the marker never appears on the WAN');
      assert.ok(
        !packets.some((p) => p.src === A6 && p.dst === C6 && !isSearch6(p)),
        'nothing of A -> C crossed the WAN but search messages',
      );

      const paths = (n: 1 | 2 | 3) => f.status(n).paths;
      const g2 = paths(2);
      assertPath(g2, { local: B6, remote: A6, action: 'encrypt', vpnName: 'VPN1', peer: 'G1', moving: true });
      assertPath(g2, { local: B6, remote: C6, action: 'encrypt', vpnName: 'VPN2', peer: 'G3' });
      assertPath(paths(1), { remote: C6, action: 'discard' });

      // 2. Dual stack: the IPv4 and IPv6 terminals of the same LANs at once, each its own path.
      const both = [
        f.tb.spawn(f.ns.B, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', f.terminals.A]),
        f.tb.spawn(f.ns.B, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', A6]),
        f.tb.spawn(f.ns.C, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', f.terminals.B]),
        f.tb.spawn(f.ns.C, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', B6]),
      ];
      const codes = await Promise.all(
        both.map((p) => new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', r)))),
      );
      assert.deepEqual(codes, [0, 0, 0, 0], 'B -> A and C -> B over IPv4 and IPv6 at the same time');
      const g2again = paths(2);
      for (const remote of [f.terminals.A, A6, f.terminals.C, C6])
        assertPath(g2again, { remote, action: 'encrypt' }, `G2 encrypts to ${remote}`);

      // 3. TCP over IPv6, with neighbour discovery through G1 under that load: A's and G1's
      //    neighbour caches are flushed while the transfer runs; they resolve each other again (the
      //    NS/NA pass on A's LAN) and the transfer goes on.
      const lanFile = join(dir, 'lan-a.pcap');
      const lan = await startCapture(f.tb, f.ns.A, 'eth0', lanFile, ['icmp6'], ['-s', '128']);
      const flushes: string[] = [];
      const tcp = await iperf(f, 'B', 'A', 8, {
        family: 6,
        during: async () => {
          for (let i = 0; i < 3; i++) {
            await sleep(1500);
            f.tb.ip(f.ns.A, '-6', 'neigh', 'flush', 'dev', 'eth0');
            f.tb.ip(f.ns.G1, '-6', 'neigh', 'flush', 'dev', 'lan0');
            flushes.push(`${Date.now()}`);
          }
        },
      });
      await sleep(300);
      await stopCapture(lan);
      t.diagnostic(`iperf3 -6 B -> A: ${tcp.bytes} bytes, per second ${tcp.intervals.join(' ')}`);
      assert.equal(tcp.error, undefined, `iperf3 -6 B -> A: ${tcp.error}`);
      assert.ok(tcp.bytes > 1_000_000, `B -> A over IPv6 moved ${tcp.bytes} bytes`);
      assert.ok(
        tcp.intervals.length >= 7 && tcp.intervals.every((b) => b > 0),
        `data moved in every second despite the flushes: ${tcp.intervals.join(' ')}`,
      );
      const nd = readPcap6(lanFile).filter(isNd);
      const ns = nd.filter((p) => p.payload[0] === 135);
      const na = nd.filter((p) => p.payload[0] === 136);
      assert.ok(
        ns.length >= 3 && na.length >= 3,
        `neighbour solicitations and advertisements on A's LAN under load: ${ns.length} NS, ${na.length} NA`,
      );
      assert.ok(
        na.some((p) => p.src === 'fd00:1::1' || p.src.startsWith('fe80:')),
        'G1 answered A',
      );
      assert.ok(neighbour(f, f.ns.A, 'eth0', 'fd00:1::1') !== undefined, 'A knows G1 again');
      assert.ok(neighbour(f, f.ns.G1, 'lan0', A6) !== undefined, 'G1 knows A again');
      // ND never reaches the executor: no IPv6 drop was counted for it on G1.
      const g1drops = Object.entries(f.status(1).stats).filter(
        ([k, v]) => v > 0 && /^(drop\.|executor\.drop\.)/.test(k),
      );
      t.diagnostic(`G1 drops: ${JSON.stringify(g1drops)}`);
      assert.ok(
        !g1drops.some(([k]) => /malformed|bad-ipv6/.test(k)),
        `G1 dropped nothing as malformed: ${JSON.stringify(g1drops)}`,
      );
    });
  },
);

netnsTest(
  'IPv6 WAN: gateways whose outside addresses are IPv6 serve Figure 2 to IPv6 and IPv4 terminals',
  { timeout: 300_000, needs: ['tcpdump', 'iperf3'] },
  async () => {
    await inFigure2({ ipv6: true, gatewayFamily: 6 }, async (f) => {
      // The search carries the gateways' IPv6 outside addresses; group ESP keeps the terminals'
      // addresses, so both families of terminals are served by gateways known by IPv6 addresses.
      for (const family of [6, 4] as const)
        for (const [from, to, expected] of FIGURE2_PAIRS)
          assert.equal(f.ping(from, to, { family }), expected, `ping -${family} ${from} -> ${to}`);
      const g2 = f.status(2).paths;
      for (const remote of [f.terminals6.A, f.terminals.A])
        assertPath(g2, { remote, action: 'encrypt', peer: 'G1', moving: true }, `G2 encrypts to ${remote} for G1`);
    });
  },
);

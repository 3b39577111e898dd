// Path MTU on real Linux networking, with the gateways' default configuration (no pathMtu set):
// GA's own WAN link is 1280 bytes (learned from its interface), GB's WAN link is 1500 but a router
// behind it forwards only 1280 (learned from that router's ICMP about GB's ESP). TCP must flow,
// UDP with DF must hear "fragmentation needed" at the sender, UDP without DF must arrive.
// Every link is dual stack, and the same holds over IPv6 as far as IPv6 allows: its hosts take no
// path MTU below 1280, so TCP flows because the gateways clamp the MSS of SYNs both ways (GA lowers
// B's SYN-ACK as it decrypts it: A could not learn GA's path otherwise), UDP that fits after
// encryption arrives, and a datagram too big hears Packet Too Big.
//
//   A 10.1.0.10 - GA ==1280== R ==1280== R2 --1500-- GB - B 10.2.0.10
//     fd00:1::10              |                             fd00:2::10
//                            AUTH
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand, JsonLines, netnsAvailability } from '../../src/testbed/netns.js';
import { tcpTransfer } from '../native/netns-gateway.js';
import { buildSites, type Sites } from './sites.js';

const avail = netnsAvailability();
const missing = avail.ok && !hasCommand('python3') ? 'python3 is not installed' : undefined;
const skip =
  (!avail.ok || missing) && !process.env.CI
    ? `skipped: ${avail.ok ? missing : avail.reason} (runs as root, and always in CI)`
    : false;
const PROBE = join(new URL('../..', import.meta.url).pathname, 'test/support/udp-probe.py');
const A = '10.1.0.10';
const B = '10.2.0.10';
const A6 = 'fd00:1::10';
const B6 = 'fd00:2::10';

/**
 * UDP datagrams of `size` bytes from one terminal to another; what the sender and the receiver saw. The
 * receiver waits up to `seconds` (the sender takes 0.3 s a datagram).
 */
async function udp(
  s: Sites,
  from: string,
  to: string,
  toAddr: string,
  size: number,
  count: number,
  df: boolean,
  seconds = 8,
) {
  const bind = toAddr.includes(':') ? '::' : '0.0.0.0';
  const rx = new JsonLines(
    s.tb.spawn(s.ns[to], 'python3', [PROBE, 'recv', '7001', String(size), String(count), String(seconds), bind]),
  );
  await rx.wait((e) => e.event === 'listening', 10_000, 'UDP receiver');
  const tx = new JsonLines(
    s.tb.spawn(s.ns[from], 'python3', [PROBE, 'send', toAddr, '7001', String(size), String(count), df ? 'df' : 'nodf']),
  );
  const sent = await tx.wait((e) => 'sent' in e, 30_000, 'UDP sender');
  const got = await rx.wait((e) => 'received' in e, 30_000, 'UDP receiver result');
  return {
    sent: sent as { sent: number; emsgsize: number; mtu: number },
    got: got as { received: number; good: number },
  };
}

test(
  'path MTU in namespaces: WAN at 1280, default configuration, IPv4 and IPv6: TCP flows both ways, DF hears "too big"',
  { skip, timeout: 300_000 },
  async (t) => {
    assert.ok(avail.ok, `network namespaces are required in CI: ${avail.ok ? '' : avail.reason}`);
    assert.ok(!missing, missing);
    const dir = mkdtempSync(join(tmpdir(), 'kasane-e2e-pmtu-'));
    const s = await buildSites({
      dir,
      hosts: ['A', 'B', 'GA', 'GB', 'R', 'R2', 'AUTH'],
      links: [
        { a: ['A', 'eth0', `${A}/24`, `${A6}/64`], b: ['GA', 'lan0', '10.1.0.1/24', 'fd00:1::1/64'] },
        {
          a: ['GA', 'wan0', '10.200.1.2/24', 'fd00:200:1::2/64'],
          b: ['R', 'g1', '10.200.1.1/24', 'fd00:200:1::1/64'],
          mtu: 1280,
        },
        {
          a: ['R2', 'north', '10.200.5.2/24', 'fd00:200:5::2/64'],
          b: ['R', 'g2', '10.200.5.1/24', 'fd00:200:5::1/64'],
          mtu: 1280,
        },
        {
          a: ['GB', 'wan0', '10.200.2.2/24', 'fd00:200:2::2/64'],
          b: ['R2', 'south', '10.200.2.1/24', 'fd00:200:2::1/64'],
        },
        { a: ['B', 'eth0', `${B}/24`, `${B6}/64`], b: ['GB', 'lan0', '10.2.0.1/24', 'fd00:2::1/64'] },
        { a: ['AUTH', 'eth0', '10.200.9.2/24'], b: ['R', 'auth', '10.200.9.1/24'] },
      ],
      routes: {
        A: [
          ['default', 'via', '10.1.0.1'],
          ['default', 'via', 'fd00:1::1'],
        ],
        B: [
          ['default', 'via', '10.2.0.1'],
          ['default', 'via', 'fd00:2::1'],
        ],
        GA: [
          ['default', 'via', '10.200.1.1'],
          ['default', 'via', 'fd00:200:1::1'],
        ],
        GB: [
          ['default', 'via', '10.200.2.1'],
          ['default', 'via', 'fd00:200:2::1'],
        ],
        R2: [
          ['default', 'via', '10.200.5.1'],
          ['10.2.0.0/24', 'via', '10.200.2.2'],
          ['default', 'via', 'fd00:200:5::1'],
          ['fd00:2::/64', 'via', 'fd00:200:2::2'],
        ],
        R: [
          ['10.1.0.0/24', 'via', '10.200.1.2'],
          ['10.2.0.0/24', 'via', '10.200.5.2'],
          ['10.200.2.0/24', 'via', '10.200.5.2'],
          ['fd00:1::/64', 'via', 'fd00:200:1::2'],
          ['fd00:2::/64', 'via', 'fd00:200:5::2'],
          ['fd00:200:2::/64', 'via', 'fd00:200:5::2'],
        ],
        AUTH: [['default', 'via', '10.200.9.1']],
      },
      routers: ['R', 'R2'],
      authority: { host: 'AUTH', address: '10.200.9.2' },
      vpns: [{ name: 'V', id: 1 }],
      gateways: [
        {
          name: 'GA',
          address: '10.200.1.2',
          inside: ['lan0'],
          outside: ['wan0'],
          members: { V: ['10.1.0.0/24', 'fd00:1::/64'] },
        },
        {
          name: 'GB',
          address: '10.200.2.2',
          inside: ['lan0'],
          outside: ['wan0'],
          members: { V: ['10.2.0.0/24', 'fd00:2::/64'] },
        },
      ],
    });
    try {
      assert.equal(s.status('GA').stats['pmtu.path'], 1280, "GA took its WAN interface's MTU");
      assert.equal(s.status('GB').stats['pmtu.path'], 1500);

      await t.test('IPv4', async () => {
        assert.equal(s.ping('A', B), 3, 'A -> B');

        // TCP both ways, 10 MB each, content checked.
        await tcpTransfer(s.tb, s.ns.B, s.ns.A, B, 10 * 1024 * 1024);
        await tcpTransfer(s.tb, s.ns.A, s.ns.B, A, 10 * 1024 * 1024);

        // UDP with DF, 1400 bytes: the sender hears "fragmentation needed" and learns 1280 - 45 (ESP in
        // UDP). From A, GA knows its own link; from B, GB learns it from R2's ICMP about its first ESP
        // (Linux quotes up to 576 bytes: the SPI and sequence number behind the UDP header are in it).
        for (const [from, to, addr] of [
          ['A', 'B', B],
          ['B', 'A', A],
        ] as const) {
          const r = await udp(s, from, to, addr, 1400, 6, true, 3);
          assert.ok(r.sent.emsgsize >= 1, `${from} -> ${to}: the sender was told (${JSON.stringify(r)})`);
          assert.equal(r.sent.mtu, 1235, `${from} -> ${to}: the sender's path MTU`);
          assert.equal(r.got.good, 0, `${from} -> ${to}: nothing too big arrived`);
        }
        assert.ok((s.status('GB').stats['pmtu.learned'] ?? 0) >= 1, 'GB learned the path MTU from ICMP');
        assert.equal(s.status('GB').paths.find((p) => p.remote === A)?.mtu, 1280);

        // UDP without DF, 1400 bytes: every datagram arrives whole (fragmented before encryption).
        for (const [from, to, addr] of [
          ['A', 'B', B],
          ['B', 'A', A],
        ] as const) {
          const r = await udp(s, from, to, addr, 1400, 20, false);
          assert.equal(r.sent.sent, 20);
          assert.equal(r.got.good, 20, `${from} -> ${to} without DF: ${JSON.stringify(r)}`);
        }
        for (const g of ['GA', 'GB']) {
          const st = s.status(g).stats;
          assert.ok(
            (st['executor.encrypt.fragments'] ?? 0) >= 40,
            `${g} fragmented before encryption: ${st['executor.encrypt.fragments']}`,
          );
          assert.equal(st['executor.drop.fragment'] ?? 0, 0, `${g} never received an ESP fragment`);
          assert.equal(st['executor.drop.auth-failed'] ?? 0, 0);
          assert.ok((st['datapath.tx.local'] ?? 0) >= 1, `${g} sent its ICMP as its own packet`);
        }
      });

      await t.test('IPv6: hosts take no path MTU below 1280, the MSS clamp both ways makes TCP fit', async () => {
        assert.ok(s.ping('A', B6) >= 1, 'ping -6 A -> B');
        // TCP both ways, content checked. A's segments fit GA's 1280 only because GA clamps the MSS
        // of B's SYN (or SYN-ACK) as it decrypts it: 1280 - 45 - 60 = 1175.
        await tcpTransfer(s.tb, s.ns.B, s.ns.A, B6, 4 * 1024 * 1024);
        await tcpTransfer(s.tb, s.ns.A, s.ns.B, A6, 4 * 1024 * 1024);

        // UDP that fits after encryption (1180 + 48 + 45 <= 1280) arrives, both ways.
        for (const [from, to, addr] of [
          ['A', 'B', B6],
          ['B', 'A', A6],
        ] as const) {
          const r = await udp(s, from, to, addr, 1180, 10, true);
          assert.equal(r.got.good, 10, `${from} -> ${to}: ${JSON.stringify(r)}`);
        }
        // UDP too big (1400 bytes, IPV6_PMTUDISC_DO): the sender hears Packet Too Big and holds 1280,
        // the least IPv6 allows (GA's own link; R2's Packet Too Big about GB's ESP for GB).
        for (const [from, to, addr] of [
          ['A', 'B', B6],
          ['B', 'A', A6],
        ] as const) {
          const r = await udp(s, from, to, addr, 1400, 6, true, 3);
          assert.ok(r.sent.emsgsize >= 1, `${from} -> ${to}: the sender was told (${JSON.stringify(r)})`);
          assert.equal(r.sent.mtu, 1280, `${from} -> ${to}: the sender's path MTU`);
          assert.equal(r.got.good, 0, `${from} -> ${to}: nothing too big arrived`);
        }
        assert.equal(s.status('GB').paths.find((p) => p.remote === A6)?.mtu, 1280, 'GB learned from R2');
        for (const g of ['GA', 'GB']) {
          const st = s.status(g).stats;
          assert.equal(st['executor.drop.auth-failed'] ?? 0, 0);
          assert.equal(st['executor.drop.bad-ipv6'] ?? 0, 0);
        }
      });
    } finally {
      await s.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// Path MTU on real Linux networking, with the gateways' default configuration (no pathMtu set):
// GA's own WAN link is 1280 bytes (learned from its interface), GB's WAN link is 1500 but a router
// behind it forwards only 1280 (learned from that router's ICMP about GB's ESP). TCP must flow,
// UDP with DF must hear "fragmentation needed" at the sender, UDP without DF must arrive.
//
//   A 10.1.0.10 - GA ==1280== R ==1280== R2 --1500-- GB - B 10.2.0.10
//                             |
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

/** UDP datagrams of `size` bytes from one terminal to another; what the sender and the receiver saw. */
async function udp(s: Sites, from: string, to: string, toAddr: string, size: number, count: number, df: boolean) {
  const rx = new JsonLines(s.tb.spawn(s.ns[to], 'python3', [PROBE, 'recv', '7001', String(size), String(count), '8']));
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
  'path MTU in namespaces: WAN at 1280, default configuration: TCP flows, DF gets "fragmentation needed", no DF arrives',
  { skip, timeout: 300_000 },
  async () => {
    assert.ok(avail.ok, `network namespaces are required in CI: ${avail.ok ? '' : avail.reason}`);
    assert.ok(!missing, missing);
    const dir = mkdtempSync(join(tmpdir(), 'kasane-e2e-pmtu-'));
    const s = await buildSites({
      dir,
      hosts: ['A', 'B', 'GA', 'GB', 'R', 'R2', 'AUTH'],
      links: [
        { a: ['A', 'eth0', `${A}/24`], b: ['GA', 'lan0', '10.1.0.1/24'] },
        { a: ['GA', 'wan0', '10.200.1.2/24'], b: ['R', 'g1', '10.200.1.1/24'], mtu: 1280 },
        { a: ['R2', 'north', '10.200.5.2/24'], b: ['R', 'g2', '10.200.5.1/24'], mtu: 1280 },
        { a: ['GB', 'wan0', '10.200.2.2/24'], b: ['R2', 'south', '10.200.2.1/24'] },
        { a: ['B', 'eth0', `${B}/24`], b: ['GB', 'lan0', '10.2.0.1/24'] },
        { a: ['AUTH', 'eth0', '10.200.9.2/24'], b: ['R', 'auth', '10.200.9.1/24'] },
      ],
      routes: {
        A: [['default', 'via', '10.1.0.1']],
        B: [['default', 'via', '10.2.0.1']],
        GA: [['default', 'via', '10.200.1.1']],
        GB: [['default', 'via', '10.200.2.1']],
        R2: [
          ['default', 'via', '10.200.5.1'],
          ['10.2.0.0/24', 'via', '10.200.2.2'],
        ],
        R: [
          ['10.1.0.0/24', 'via', '10.200.1.2'],
          ['10.2.0.0/24', 'via', '10.200.5.2'],
          ['10.200.2.0/24', 'via', '10.200.5.2'],
        ],
        AUTH: [['default', 'via', '10.200.9.1']],
      },
      routers: ['R', 'R2'],
      authority: { host: 'AUTH', address: '10.200.9.2' },
      vpns: [{ name: 'V', id: 1 }],
      gateways: [
        { name: 'GA', address: '10.200.1.2', inside: ['lan0'], outside: ['wan0'], members: { V: ['10.1.0.0/24'] } },
        { name: 'GB', address: '10.200.2.2', inside: ['lan0'], outside: ['wan0'], members: { V: ['10.2.0.0/24'] } },
      ],
    });
    try {
      assert.equal(s.status('GA').stats['pmtu.path'], 1280, "GA took its WAN interface's MTU");
      assert.equal(s.status('GB').stats['pmtu.path'], 1500);
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
        const r = await udp(s, from, to, addr, 1400, 6, true);
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
    } finally {
      await s.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

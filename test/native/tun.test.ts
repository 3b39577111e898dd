// The native TUN datapath for real, in network namespaces made for the run (root only):
//   h1 (10.1.0.2) -- gw -- h2 (10.2.0.2)                       one gateway, plain rules
//   h1 (10.1.0.2) -- gwA == 192.168.0.0/24 == gwB -- h2 (10.2.0.2)   ESP between two gateways
// The kernel's own ping and a TCP transfer whose content is verified go through the gateways'
// TUN devices; the gateway processes must exit by themselves after closing the datapath.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hasCommand, JsonLines, Testbed } from './netns.js';
import { canRunNetns, startHelperGateway as startGateway, tcpTransfer } from './netns-gateway.js';
import { hex, inCi, randomKey } from './support.js';

const PROBE = join(new URL('../..', import.meta.url).pathname, 'test/support/udp-probe.py');

function ping(tb: Testbed, ns: string, dst: string, count = 3): void {
  if (!hasCommand('ping')) {
    if (inCi) throw new Error('CI=true but ping (iputils-ping) is not installed');
    return;
  }
  const out = tb.exec(ns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', dst);
  assert.match(out, new RegExp(`${count} packets transmitted, ${count} received`));
}

function hostsAround(tb: Testbed, left: string, right: string): { h1: string; h2: string } {
  const h1 = tb.ns('h1');
  const h2 = tb.ns('h2');
  tb.link(h1, 'e0', '10.1.0.2/24', left, 'gi', '10.1.0.1/24');
  tb.link(right, 'gi', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
  tb.ip(h1, 'route', 'add', 'default', 'via', '10.1.0.1');
  tb.ip(h2, 'route', 'add', 'default', 'via', '10.2.0.1');
  return { h1, h2 };
}

const ROUTING_ONE = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };

describe('native TUN datapath in network namespaces', { timeout: 180_000 }, () => {
  for (const queues of [1, 2]) {
    it(`plain rules, ${queues} queue(s): punt, learn and inject; ping; verified TCP; clean exit`, async (t) => {
      if (!canRunNetns(t)) return;
      const tb = new Testbed();
      try {
        const gw = tb.ns('gw');
        // One gateway: inside gi faces h1, outside go faces h2.
        const h1 = tb.ns('h1');
        const h2 = tb.ns('h2');
        tb.link(h1, 'e0', '10.1.0.2/24', gw, 'gi', '10.1.0.1/24');
        tb.link(gw, 'go', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
        tb.ip(h1, 'route', 'add', 'default', 'via', '10.1.0.1');
        tb.ip(h2, 'route', 'add', 'default', 'via', '10.2.0.1');
        const g = await startGateway(tb, gw, {
          routing: ROUTING_ONE,
          queues,
          learn: [{ local: '10.1.0.2', remote: '10.2.0.2' }],
        });
        // The first packet is a miss: the helper installs a plain rule and re-injects it, so no
        // echo is lost.
        ping(tb, h1, '10.2.0.2');
        const learned = await g.lines.wait((e) => e.event === 'learned', 5_000, 'learned path');
        assert.equal(learned.side, 'inside');
        assert.equal(learned.injected, true);
        // From outside toward an address without a rule: punted with side 'outside'.
        try {
          tb.exec(h2, 'ping', '-c', '1', '-W', '1', '10.1.0.99');
        } catch {
          /* no answer expected */
        }
        const punt = await g.lines.wait((e) => e.event === 'punt' && e.dst === '10.1.0.99', 5_000, 'outside punt');
        assert.deepEqual([punt.side, punt.reason, punt.src], ['outside', 'miss', '10.2.0.2']);
        await tcpTransfer(tb, h2, h1, '10.2.0.2', 40 << 20);
        const rep = await g.close();
        const stats = rep.stats as Record<string, number>;
        const counters = rep.counters as Record<string, number>;
        assert.ok(stats['rx.gso'] > 0, `TCP arrived as GSO super-packets: ${JSON.stringify(stats)}`);
        assert.equal(stats['tx.errors'], 0);
        assert.ok(counters['plain.packets'] > (40 << 20) / 1500);
        const path = (rep.paths as { local: string; remote: string; packets: number; lastUsed: number }[]).find(
          (p) => p.local === '10.1.0.2',
        );
        assert.ok(path && path.packets > 1000 && Math.abs(path.lastUsed - Date.now()) < 60_000, JSON.stringify(path));
      } finally {
        tb.teardown();
      }
    });
  }

  it('encrypt -> decrypt between two gateways: ping, verified TCP with MSS clamping, ESP in UDP GSO super-packets both ways, decrypted UDP as UDP GSO super-packets', async (t) => {
    if (!canRunNetns(t, ['python3'])) return;
    const tb = new Testbed();
    try {
      const ga = tb.ns('gwa');
      const gb = tb.ns('gwb');
      const { h1, h2 } = hostsAround(tb, ga, gb);
      tb.link(ga, 'go', '192.168.0.1/24', gb, 'go', '192.168.0.2/24');
      tb.ip(ga, 'route', 'add', '10.2.0.0/24', 'via', '192.168.0.2');
      tb.ip(gb, 'route', 'add', '10.1.0.0/24', 'via', '192.168.0.1');
      const ka = randomKey(11);
      const kb = randomKey(22);
      const sa = (spi: number, k: { key: Uint8Array; salt: Uint8Array }) => ({
        spi,
        vpnId: 1,
        epoch: 1,
        key: hex(k.key),
        salt: hex(k.salt),
      });
      const A = await startGateway(tb, ga, {
        routing: ROUTING_ONE,
        rules: [{ local: '10.1.0.2', remote: '10.2.0.2', action: 'encrypt', vpnId: 1, peer: 'GB', mtu: 1500 }],
        tx: [sa(0x100, ka)],
        rx: [{ ...sa(0x200, kb), sender: 'GB' }],
      });
      const B = await startGateway(tb, gb, {
        routing: ROUTING_ONE,
        rules: [{ local: '10.2.0.2', remote: '10.1.0.2', action: 'encrypt', vpnId: 1, peer: 'GA', mtu: 1500 }],
        tx: [sa(0x200, kb)],
        rx: [{ ...sa(0x100, ka), sender: 'GA' }],
      });
      ping(tb, h1, '10.2.0.2');
      await tcpTransfer(tb, h2, h1, '10.2.0.2', 20 << 20);
      await tcpTransfer(tb, h1, h2, '10.1.0.2', 5 << 20);
      // A burst of small UDP datagrams h1 -> h2: B writes the decrypted ones as UDP GSO
      // super-packets, and h2's kernel hands every datagram intact to the socket.
      B.send('stats');
      const before = (await B.lines.wait((e) => e.event === 'stats', 5_000, 'stats')).stats as Record<string, number>;
      const rx = new JsonLines(tb.spawn(h2, 'python3', [PROBE, 'recv', '7001', '100', '5000', '8']));
      await rx.wait((e) => e.event === 'listening', 10_000, 'UDP receiver');
      const tx = new JsonLines(tb.spawn(h1, 'python3', [PROBE, 'send', '10.2.0.2', '7001', '100', '5000', 'df', '0']));
      await tx.wait((e) => 'sent' in e, 30_000, 'UDP sender');
      const got = (await rx.wait((e) => 'received' in e, 30_000, 'UDP receiver result')) as {
        received: number;
        good: number;
      };
      assert.equal(got.good, got.received, `every datagram that arrived is intact: ${JSON.stringify(got)}`);
      assert.ok(got.good > 500, `datagrams arrived: ${JSON.stringify(got)}`);
      const ra = await A.close();
      const rb = await B.close();
      for (const [name, rep] of [
        ['A', ra],
        ['B', rb],
      ] as const) {
        const c = rep.counters as Record<string, number>;
        const s = rep.stats as Record<string, number>;
        assert.ok(c['encrypt.packets'] > 1000 && c['decrypt.packets'] > 1000, `${name}: ${JSON.stringify(c)}`);
        assert.equal(c['plain.packets'], undefined, `${name}: nothing relayed in the clear`);
        assert.equal(c['punt.too-big'], undefined, `${name}: MSS clamping keeps segments within the MTU`);
        assert.equal(c['drop.auth-failed'], undefined);
        assert.equal(s['tx.errors'], 0);
        // Both ways carried data: each gateway wrote runs of ESP in UDP as UDP GSO super-packets and
        // read the other's whole from its outside TUN (USO on both, veth and forwarding keep them).
        assert.ok(s['tx.gso'] > 10, `${name}: UDP GSO super-packets written: ${JSON.stringify(s)}`);
        assert.ok(s['rx.gso-esp'] > 10, `${name}: UDP GSO super-packets of ESP read: ${JSON.stringify(s)}`);
        assert.ok(c['decrypt.packets'] > 2 * s['rx.gso-esp'], `${name}: several ESP packets per super-packet`);
      }
      const after = rb.stats as Record<string, number>;
      assert.ok(after['tx.gso'] > before['tx.gso'], `B wrote decrypted datagrams as UDP GSO super-packets`);
      assert.ok(
        (ra.stats as Record<string, number>)['rx.segments'] > 0,
        'GSO super-packets were segmented before encryption',
      );
    } finally {
      tb.teardown();
    }
  });
});

// Group mode between IPv6 terminals through the native TUN datapath, for real (root only):
//   h1 (fd00:1::2) -- gwA == fd00:ff::/64 == gwB -- h2 (fd00:2::2)
// The kernel hands TCP over IPv6 to the inside TUN as GSO_TCPV6 super-packets (TSO6), the
// datapath segments them, encrypts each segment into ESP in UDP over IPv6 and writes runs of them
// as GSO_UDP_L4 super-packets (USO6); the other gateway reads them whole, splits them in place,
// decrypts and coalesces the TCP/IPv6 segments again (GRO). The kernel's ping -6 and a TCP transfer
// whose content is verified cross; nothing is relayed in the clear and nothing is too big (the MSS
// of v6 SYNs is clamped to 1500 - 45 - 60). A Packet Too Big sent with sendLocal() (an IPv6 raw
// socket) reaches the terminal, whose kernel lowers its path MTU.
// The policy routing of IPv6 into the TUN devices is src/native/routing.ts's business (issue-14e);
// until this branch has it, the test adds the two IPv6 rules and routes itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Testbed as TestbedType } from './netns.js';
import { hasCommand, Testbed } from './netns.js';
import { canRunNetns, startHelperGateway as startGateway, tcpTransfer } from './netns-gateway.js';
import { hex, inCi, randomKey } from './support.js';
import { icmp6 } from './support6.js';

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !ok();) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ROUTING = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };

function addr6(tb: TestbedType, ns: string, dev: string, a: string): void {
  tb.ip(ns, '-6', 'addr', 'add', a, 'dev', dev, 'nodad');
}

describe('native TUN datapath over IPv6 in network namespaces', { timeout: 180_000 }, () => {
  it('encrypt -> decrypt between IPv6 terminals: ping -6, verified TCP, TSO6 in, USO6 between the gateways, GRO out', async (t) => {
    if (!canRunNetns(t)) return;
    const tb = new Testbed();
    try {
      const ga = tb.ns('gwa');
      const gb = tb.ns('gwb');
      const h1 = tb.ns('h1');
      const h2 = tb.ns('h2');
      tb.link(h1, 'e0', '10.1.0.2/24', ga, 'gi', '10.1.0.1/24');
      tb.link(gb, 'gi', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
      tb.link(ga, 'go', '192.168.0.1/24', gb, 'go', '192.168.0.2/24');
      addr6(tb, h1, 'e0', 'fd00:1::2/64');
      addr6(tb, ga, 'gi', 'fd00:1::1/64');
      addr6(tb, gb, 'gi', 'fd00:2::1/64');
      addr6(tb, h2, 'e0', 'fd00:2::2/64');
      addr6(tb, ga, 'go', 'fd00:ff::1/64');
      addr6(tb, gb, 'go', 'fd00:ff::2/64');
      tb.ip(h1, '-6', 'route', 'add', 'default', 'via', 'fd00:1::1');
      tb.ip(h2, '-6', 'route', 'add', 'default', 'via', 'fd00:2::1');
      tb.ip(ga, '-6', 'route', 'add', 'fd00:2::/64', 'via', 'fd00:ff::2');
      tb.ip(gb, '-6', 'route', 'add', 'fd00:1::/64', 'via', 'fd00:ff::1');
      const ka = randomKey(61);
      const kb = randomKey(62);
      const sa = (spi: number, k: { key: Uint8Array; salt: Uint8Array }) => ({
        spi,
        vpnId: 1,
        epoch: 1,
        key: hex(k.key),
        salt: hex(k.salt),
      });
      const A = await startGateway(tb, ga, {
        routing: ROUTING,
        rules: [{ local: 'fd00:1::2', remote: 'fd00:2::2', action: 'encrypt', vpnId: 1, peer: 'GB', mtu: 1500 }],
        tx: [sa(0x600, ka)],
        rx: [{ ...sa(0x700, kb), sender: 'GB' }],
      });
      const B = await startGateway(tb, gb, {
        routing: ROUTING,
        rules: [{ local: 'fd00:2::2', remote: 'fd00:1::2', action: 'encrypt', vpnId: 1, peer: 'GA', mtu: 1500 }],
        tx: [sa(0x700, kb)],
        rx: [{ ...sa(0x600, ka), sender: 'GA' }],
      });
      if (hasCommand('ping')) {
        const out = tb.exec(h1, 'ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:2::2');
        assert.match(out, /3 packets transmitted, 3 received/);
      } else if (inCi) throw new Error('CI=true but ping (iputils-ping) is not installed');
      await tcpTransfer(tb, h2, h1, 'fd00:2::2', 16 << 20);
      await tcpTransfer(tb, h1, h2, 'fd00:1::2', 4 << 20);
      // A Packet Too Big of the gateway's own (what the core answers a too-big punt with) leaves
      // through the IPv6 raw socket of sendLocal() and h1's kernel takes its MTU for the path.
      const quoted = icmp6('fd00:1::2', 'fd00:2::2', 128, new Uint8Array(1400));
      const ptb = icmp6('fd00:1::1', 'fd00:1::2', 2, Uint8Array.from([0, 0, 0x05, 0x14, ...quoted.subarray(0, 1232)]));
      A.send(`local ${hex(ptb)}`);
      const sent = await A.lines.wait((e) => e.event === 'local', 5_000, 'sendLocal at A');
      assert.equal(sent.ok, true, String(sent.error));
      await waitFor(
        () => /mtu 1300/.test(tb.ip(h1, '-6', 'route', 'get', 'fd00:2::2')),
        5_000,
        'h1 learned the path MTU',
      );
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
        assert.equal(c['drop.bad-ipv6'], undefined);
        assert.equal(s['tx.errors'], 0);
        assert.ok(
          s['rx.gso'] > 0 && s['rx.segments'] > 0,
          `${name}: TCP/IPv6 arrived as GSO super-packets: ${JSON.stringify(s)}`,
        );
        assert.ok(s['tx.gso'] > 10, `${name}: UDP GSO super-packets of ESP over IPv6 written: ${JSON.stringify(s)}`);
        assert.ok(s['rx.gso-esp'] > 10, `${name}: UDP GSO super-packets of ESP over IPv6 read: ${JSON.stringify(s)}`);
        assert.ok(c['decrypt.packets'] > 2 * s['rx.gso-esp'], `${name}: several ESP packets per super-packet`);
        // GRO: the decrypted segments went to the TUN in fewer writes than there were segments.
        assert.ok(s['tx.packets'] < c['decrypt.packets'] + c['encrypt.packets'], `${name}: ${JSON.stringify(s)}`);
      }
    } finally {
      tb.teardown();
    }
  });
});

// Tunnel mode over an IPv6 WAN for real (root only), in network namespaces made for the run:
//   h1 (10.1.0.2) -- gwA (fd00:ff::1, 192.168.0.1) == WAN == gwB (fd00:ff::2, 192.168.0.2) -- h2 (10.2.0.2)
// Both gateways are dual stack: their tunnel ports are an IPv4 and an IPv6 socket on port 4500 (one
// reader thread), and the Child SA's outer addresses are the IPv6 ones (IPv4 inside IPv6). The
// kernel's ping and a checked TCP transfer pass; the WAN capture holds UDP 4500 over IPv6 that
// tcpdump decodes as ESP, and never the ping's payload; IKE reaches the other side's JavaScript
// over either family with its source; the receiving SA records the IPv6 source.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCapture, stopCapture } from '../support/capture.js';
import type { HelperConfig } from './gateway-helper.js';
import { Testbed } from './netns.js';
import { canRunNetns, startHelperGateway as startGateway, tcpTransfer } from './netns-gateway.js';
import { hex } from './support.js';

function keymat(seed: number): { key: string; salt: string } {
  const b = Buffer.alloc(36).map((_, i) => (i * 29 + seed * 13 + 7) & 0xff);
  return { key: hex(b.subarray(0, 32)), salt: hex(b.subarray(32)) };
}

const ROUTING = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };
const MARKER = Buffer.from('kasane-v6wan');
const SPI_TO_B = 0xd100;
const SPI_TO_A = 0xd200;
const WAN6 = ['fd00:ff::1', 'fd00:ff::2'];
const WAN4 = ['192.168.0.1', '192.168.0.2'];

function gatewayConfig(me: 'A' | 'B'): HelperConfig {
  const i = me === 'A' ? 0 : 1;
  const [local, remote] = [WAN6[i], WAN6[1 - i]];
  const [lan, peerLan] = me === 'A' ? ['10.1.0', '10.2.0'] : ['10.2.0', '10.1.0'];
  const [outSpi, inSpi] = me === 'A' ? [SPI_TO_B, SPI_TO_A] : [SPI_TO_A, SPI_TO_B];
  const peer = me === 'A' ? 'GB' : 'GA';
  return {
    routing: ROUTING,
    udp: { address: [WAN4[i], local] },
    rules: [
      {
        local: `${lan}.2`,
        remote: `${peerLan}.2`,
        action: 'encrypt',
        vpnId: 9,
        peer,
        mtu: 1500,
        tunnel: { spi: outSpi },
      },
    ],
    tunnelTx: [
      {
        spi: outSpi,
        vpnId: 9,
        peer,
        ...keymat(me === 'A' ? 1 : 2),
        localAddr: local,
        localPort: 4500,
        remoteAddr: remote,
        remotePort: 4500,
      },
    ],
    tunnelRx: [
      {
        spi: inSpi,
        vpnId: 9,
        peer,
        ...keymat(me === 'A' ? 2 : 1),
        localAddr: local,
        localPort: 4500,
        remoteAddr: remote,
        remotePort: 4500,
        localSelectors: [{ start: `${lan}.0`, end: `${lan}.255` }],
        remoteSelectors: [{ start: `${peerLan}.0`, end: `${peerLan}.255` }],
      },
    ],
  };
}

describe('native tunnel mode over an IPv6 WAN in network namespaces', { timeout: 180_000 }, () => {
  it('IPv4 terminals through ESP in UDP over IPv6; dual-stack tunnel ports; IKE over either family', async (t) => {
    if (!canRunNetns(t, ['ping', 'tcpdump'])) return;
    const tb = new Testbed();
    const dir = mkdtempSync(join(tmpdir(), 'kasane-tunnel6-'));
    try {
      const ga = tb.ns('gwa');
      const gb = tb.ns('gwb');
      const h1 = tb.ns('h1');
      const h2 = tb.ns('h2');
      tb.link(h1, 'e0', '10.1.0.2/24', ga, 'gi', '10.1.0.1/24');
      tb.link(gb, 'gi', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
      tb.link(ga, 'go', `${WAN4[0]}/24`, gb, 'go', `${WAN4[1]}/24`);
      // No duplicate address detection: the tunnel ports bind at once.
      tb.ip(ga, 'addr', 'add', `${WAN6[0]}/64`, 'dev', 'go', 'nodad');
      tb.ip(gb, 'addr', 'add', `${WAN6[1]}/64`, 'dev', 'go', 'nodad');
      tb.ip(h1, 'route', 'add', 'default', 'via', '10.1.0.1');
      tb.ip(h2, 'route', 'add', 'default', 'via', '10.2.0.1');
      const pcap = join(dir, 'wan.pcap');
      const cap = await startCapture(tb, ga, 'go', pcap);
      const A = await startGateway(tb, ga, gatewayConfig('A'));
      const B = await startGateway(tb, gb, gatewayConfig('B'));

      const out = tb.exec(h1, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-p', MARKER.toString('hex'), '10.2.0.2');
      assert.match(out, /3 packets transmitted, 3 received/);
      await tcpTransfer(tb, h2, h1, '10.2.0.2', 4 << 20);
      await tcpTransfer(tb, h1, h2, '10.1.0.2', 1 << 20);

      // IKE over IPv6 and over IPv4, out of the same port number, each with its source.
      const ike = '00000000' + 'a1b2c3d4e5f60718' + '0000000000000000' + '21202208' + '00000000' + '0000001c';
      B.send(`send ${WAN6[0]} 4500 ${ike}`);
      const got6 = await A.lines.wait((e) => e.event === 'udp' && e.src === WAN6[1], 5_000, 'IKE over IPv6 at A');
      assert.deepEqual([got6.reason, got6.port, got6.payload], ['ike', 4500, ike]);
      B.send(`send ${WAN4[0]} 4500 ${ike}`);
      const got4 = await A.lines.wait((e) => e.event === 'udp' && e.src === WAN4[1], 5_000, 'IKE over IPv4 at A');
      assert.deepEqual([got4.reason, got4.port], ['ike', 4500]);

      const ra = await A.close();
      const rb = await B.close();
      await stopCapture(cap);
      for (const [name, rep] of [
        ['A', ra],
        ['B', rb],
      ] as const) {
        const c = rep.counters as Record<string, number>;
        const s = rep.stats as Record<string, number>;
        assert.ok(
          c['tunnel-encrypt.packets'] > 500 && c['tunnel-decrypt.packets'] > 500,
          `${name}: ${JSON.stringify(c)}`,
        );
        assert.equal(c['plain.packets'], undefined, `${name}: nothing relayed in the clear`);
        assert.equal(c['drop.auth-failed'], undefined);
        assert.equal(c['punt.too-big'], undefined, `${name}: MSS clamped to 1500 - 85 - 40`);
        assert.equal(s['udp.tx-errors'], 0, `${name}: ${JSON.stringify(s)}`);
      }
      assert.equal((ra.counters as Record<string, number>)['punt.ike'], 2);
      assert.deepEqual((ra.tunnel as { rx: { lastSource: unknown }[] }).rx[0].lastSource, {
        addr: WAN6[1],
        port: 4500,
      });

      // The WAN: the ping's payload never in the clear; tunnel ESP in UDP 4500 over IPv6.
      assert.equal(readFileSync(pcap).indexOf(MARKER), -1, 'the ping payload crossed the WAN in the clear');
      const dump = spawnSync('tcpdump', ['-r', pcap, '-n', '-c', '400', 'ip6 and udp port 4500'], { encoding: 'utf8' });
      assert.match(
        dump.stdout,
        /IP6 fd00:ff::1\.4500 > fd00:ff::2\.4500: UDP-encap: ESP\(spi=0x0000d100,seq=0x1\)/,
        dump.stdout.slice(0, 2000) + dump.stderr,
      );
      assert.match(dump.stdout, /IP6 fd00:ff::2\.4500 > fd00:ff::1\.4500: UDP-encap: ESP\(spi=0x0000d200,seq=0x1\)/);
      const plain = spawnSync('tcpdump', ['-r', pcap, '-n', 'icmp or tcp'], { encoding: 'utf8' });
      assert.equal(plain.stdout.trim(), '', 'no terminal traffic on the WAN');
    } finally {
      tb.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

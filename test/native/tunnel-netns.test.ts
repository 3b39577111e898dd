// Tunnel mode for real (root only), in network namespaces made for the run:
//   h1 (10.1.0.2) -- gwA (192.168.0.1) == WAN == gwB (192.168.0.2) -- h2 (10.2.0.2)
// Each gateway runs a NativeDatapath with its tunnel port (UDP 4500) and a hand-installed pair of
// tunnel SAs (mirror keys, as IKE would install a Child SA). The kernel's ping and a TCP transfer
// whose content is checked pass between the terminals; a capture on the WAN shows only UDP 4500
// carrying ESP (tcpdump's own decoder agrees) and never the ping's payload; IKE datagrams sent
// through the tunnel port reach the other side's JavaScript with their source, NAT-keepalives are
// counted and dropped.
// Over an IPv6 WAN, the same two sites with dual-stack gateways (fd00:ff::1 and fd00:ff::2 besides
// their IPv4 addresses): their tunnel ports are an IPv4 and an IPv6 socket on port 4500 (one reader
// thread), and the Child SA's outer addresses are the IPv6 ones (IPv4 inside IPv6). The kernel's
// ping and a checked TCP transfer pass; the WAN capture holds UDP 4500 over IPv6 that tcpdump
// decodes as ESP, and never the ping's payload; IKE reaches the other side's JavaScript over
// either family with its source; the receiving SA records the IPv6 source.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readPcapFrames, startCapture, stopCapture } from '../support/capture.js';
import type { HelperConfig } from './gateway-helper.js';
import { Testbed } from './netns.js';
import { eachReport, inTestbed, startHelperGateway as startGateway, tcpTransfer, twoSites } from './netns-gateway.js';
import { checksum, hex } from './support.js';

/** An ICMP echo request with valid checksums, for injecting as the core would. */
function icmpEcho(src: string, dst: string, data: Buffer): Buffer {
  const icmp = Buffer.concat([Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 1]), data]);
  icmp.writeUInt16BE(checksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip[8] = 64;
  ip[9] = 1;
  Buffer.from(src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, icmp]);
}

function keymat(seed: number): { key: string; salt: string } {
  const b = Buffer.alloc(36).map((_, i) => (i * 53 + seed * 11 + 5) & 0xff);
  return { key: hex(b.subarray(0, 32)), salt: hex(b.subarray(32)) };
}

const ROUTING = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };
/** Per family: the gateways' WAN addresses (A's, B's); the Child SA's SPIs (toB: B's inbound, what A sends with). */
const WAN = {
  4: { gw: ['192.168.0.1', '192.168.0.2'], toB: 0xc100, toA: 0xc200 },
  6: { gw: ['fd00:ff::1', 'fd00:ff::2'], toB: 0xd100, toA: 0xd200 },
} as const;

/** One gateway's datapath: the rule h1 <-> h2 into the tunnel, whose outer addresses are of `family`. */
function gatewayConfig(me: 'A' | 'B', family: 4 | 6): HelperConfig {
  const i = me === 'A' ? 0 : 1;
  const [local, remote] = [WAN[family].gw[i], WAN[family].gw[1 - i]];
  const [lan, peerLan] = me === 'A' ? ['10.1.0', '10.2.0'] : ['10.2.0', '10.1.0'];
  const [outSpi, inSpi] = me === 'A' ? [WAN[family].toB, WAN[family].toA] : [WAN[family].toA, WAN[family].toB];
  const peer = me === 'A' ? 'GB' : 'GA';
  const at = { localAddr: local, localPort: 4500, remoteAddr: remote, remotePort: 4500 };
  return {
    routing: ROUTING,
    // Over an IPv6 WAN the gateway is dual stack: a tunnel port of each family.
    udp: { address: family === 4 ? local : [WAN[4].gw[i], local] },
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
    tunnelTx: [{ spi: outSpi, vpnId: 9, peer, ...keymat(me === 'A' ? 1 : 2), ...at }],
    tunnelRx: [
      {
        spi: inSpi,
        vpnId: 9,
        peer,
        ...keymat(me === 'A' ? 2 : 1),
        ...at,
        localSelectors: [{ start: `${lan}.0`, end: `${lan}.255` }],
        remoteSelectors: [{ start: `${peerLan}.0`, end: `${peerLan}.255` }],
      },
    ],
  };
}

/**
 * h1 - gwA == WAN == gwB - h2 (the WAN dual stack for `family` 6, without duplicate address detection:
 * the tunnel ports bind at once), a capture on gwA's WAN link, both gateways started; then the kernel's
 * ping h1 -> h2 with `marker` as its pattern and verified TCP both ways (`bytes`).
 */
async function pairAcross(tb: Testbed, dir: string, family: 4 | 6, marker: Buffer, bytes: [number, number]) {
  const { ga, gb, h1, h2 } = twoSites(tb);
  if (family === 6) {
    tb.ip(ga, 'addr', 'add', `${WAN[6].gw[0]}/64`, 'dev', 'go', 'nodad');
    tb.ip(gb, 'addr', 'add', `${WAN[6].gw[1]}/64`, 'dev', 'go', 'nodad');
  }
  const pcap = join(dir, 'wan.pcap');
  const cap = await startCapture(tb, ga, 'go', pcap);
  const A = await startGateway(tb, ga, gatewayConfig('A', family));
  const B = await startGateway(tb, gb, gatewayConfig('B', family));
  const out = tb.exec(h1, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-p', marker.toString('hex'), '10.2.0.2');
  assert.match(out, /3 packets transmitted, 3 received/);
  await tcpTransfer(tb, h2, h1, '10.2.0.2', bytes[0]);
  await tcpTransfer(tb, h1, h2, '10.1.0.2', bytes[1]);
  return { pcap, cap, A, B, ga };
}

/** IKE_SA_INIT-shaped bytes behind the non-ESP marker. */
const IKE = '00000000' + 'a1b2c3d4e5f60718' + '0000000000000000' + '21202208' + '00000000' + '0000001c';

describe('native tunnel mode (ESP in UDP 4500) in network namespaces', { timeout: 180_000 }, () => {
  it('kernel ping and verified TCP through two gateways; the WAN carries only UDP 4500 with ESP; IKE punted with its source; keepalives counted', async (t) => {
    await inTestbed(t, ['ping', 'tcpdump'], async (tb, dir) => {
      // "kasane-tun" as ping's pad pattern: it must never be seen on the WAN.
      const MARKER = Buffer.from('kasane-tun');
      const { pcap, cap, A, B, ga } = await pairAcross(tb, dir, 4, MARKER, [8 << 20, 2 << 20]);

      // The tunnel port's buffers: 8 MiB each way (the kernel shows them doubled), past
      // net.core.rmem_max / wmem_max (212 KB on a stock kernel, 4 MiB on the machine this was
      // written on), as a gateway with CAP_NET_ADMIN may.
      const mem = tb.exec(ga, 'ss', '-uanm', 'sport = :4500');
      const skmem = /skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)/.exec(mem);
      assert.ok(skmem && Number(skmem[1]) >= 16 << 20 && Number(skmem[2]) >= 16 << 20, mem);

      // IKE from B's tunnel port (behind the non-ESP marker) arrives in A's JavaScript with B's
      // address and port; a NAT-keepalive is counted and dropped.
      B.send(`send 192.168.0.1 4500 ${IKE}`);
      const got = await A.lines.wait((e) => e.event === 'udp', 5_000, 'IKE datagram at A');
      assert.deepEqual([got.reason, got.src, got.port, got.payload], ['ike', '192.168.0.2', 4500, IKE]);
      B.send('send 192.168.0.1 4500 ff');
      await B.lines.wait((e) => e.event === 'sent' && e.ok === true, 5_000, 'keepalive sent');

      // A packet the core flushes from its buffer: sealed by process() in JavaScript, sent with
      // sendTunnelPacket(); B decrypts it and h2 answers through the tunnel.
      B.send('stats');
      const before = await B.lines.wait((e) => e.event === 'stats', 5_000, 'B stats');
      A.send(`flush ${hex(icmpEcho('10.1.0.2', '10.2.0.2', MARKER))}`);
      const flushed = await A.lines.wait((e) => e.event === 'flushed', 5_000, 'flushed at A');
      assert.deepEqual([flushed.verdict, flushed.ok], ['tunnel-encrypt', true]);
      await new Promise((r) => setTimeout(r, 300));
      B.send('stats');
      const after = await B.lines.wait((e) => e.event === 'stats' && e !== before, 5_000, 'B stats');
      const count = (e: Record<string, unknown>, k: string) => (e.counters as Record<string, number>)[k] ?? 0;
      assert.equal(count(after, 'tunnel-decrypt.packets') - count(before, 'tunnel-decrypt.packets'), 1);
      assert.equal(
        count(after, 'tunnel-encrypt.packets') - count(before, 'tunnel-encrypt.packets'),
        1,
        'h2 answered through the tunnel',
      );

      const ra = await A.close();
      const rb = await B.close();
      await stopCapture(cap);

      eachReport({ A: ra, B: rb }, (name, c, s, rep) => {
        const tun = rep.tunnel as {
          tx: { packets: number; nextSeq: number }[];
          rx: { packets: number; replayDrops: number; authFailures: number; lastSource: unknown }[];
        };
        assert.ok(
          c['tunnel-encrypt.packets'] > 1000 && c['tunnel-decrypt.packets'] > 1000,
          `${name}: ${JSON.stringify(c)}`,
        );
        assert.equal(c['plain.packets'], undefined, `${name}: nothing relayed in the clear`);
        assert.equal(c['drop.auth-failed'], undefined, `${name}: ${JSON.stringify(c)}`);
        assert.equal(c['drop.selector'], undefined);
        assert.equal(c['punt.too-big'], undefined, `${name}: MSS clamping keeps segments within the MTU`);
        assert.equal(s['udp.tx-errors'], 0, `${name}: ${JSON.stringify(s)}`);
        assert.ok(s['udp.rx'] >= c['tunnel-decrypt.packets']);
        assert.equal(tun.tx[0].packets, c['tunnel-encrypt.packets']);
        assert.equal(tun.tx[0].nextSeq, tun.tx[0].packets + 1);
        assert.equal(tun.rx[0].packets, c['tunnel-decrypt.packets']);
        assert.equal(tun.rx[0].authFailures, 0);
      });
      assert.equal((ra.counters as Record<string, number>)['punt.ike'], 1);
      assert.equal((ra.counters as Record<string, number>)['drop.tunnel-keepalive'], 1);
      assert.deepEqual((ra.tunnel as { rx: { lastSource: unknown }[] }).rx[0].lastSource, {
        addr: '192.168.0.2',
        port: 4500,
      });
      assert.ok(
        (ra.stats as Record<string, number>)['rx.segments'] > 0,
        'GSO super-packets were segmented before encryption',
      );

      // The WAN: between the gateways only UDP 4500 <-> 4500, each datagram ESP (one of the two
      // SPIs), IKE (marker) or a keepalive; the ping's payload never in the clear.
      // Runs of ESP leave as UDP GSO super-packets (UDP_SEGMENT) and the capture on the veth sees
      // them whole: one frame, several datagrams, longer than the link's MTU.
      const frames = readPcapFrames(pcap);
      let esp = 0;
      let superPackets = 0;
      for (const f of frames) {
        assert.equal(f.indexOf(MARKER), -1, 'the ping payload crossed the WAN in the clear');
        const src = f.subarray(12, 16).join('.');
        const dst = f.subarray(16, 20).join('.');
        assert.ok(
          src.startsWith('192.168.0.') && dst.startsWith('192.168.0.'),
          `a terminal's packet on the WAN: ${src} -> ${dst}`,
        );
        if (f[9] === 17 && (f[6] & 0x1f) === 0 && f[7] === 0) {
          const udp = f.subarray((f[0] & 15) * 4);
          assert.deepEqual([udp.readUInt16BE(0), udp.readUInt16BE(2)], [4500, 4500]);
          const body = udp.subarray(8);
          const spi = body.length >= 4 ? body.readUInt32BE(0) : -1;
          if (spi === WAN[4].toA || spi === WAN[4].toB) {
            esp++;
            if (f.length > 1500) superPackets++;
          } else
            assert.ok(
              spi === 0 || (body.length === 1 && body[0] === 0xff),
              `unexpected datagram ${hex(body.subarray(0, 16))}`,
            );
        } else {
          assert.fail(`unexpected packet on the WAN: protocol ${f[9]} ${src} -> ${dst}`);
        }
      }
      assert.ok(esp > 200, `only ${esp} frames of ESP`);
      assert.ok(superPackets > 10, `only ${superPackets} UDP GSO super-packets of ESP on the WAN`);
      const stat = (k: string) =>
        ((ra.stats as Record<string, number>)[k] ?? 0) + ((rb.stats as Record<string, number>)[k] ?? 0);
      assert.ok(stat('udp.tx') > 2000, `only ${stat('udp.tx')} datagrams sent`);
      assert.ok(stat('udp.rx-gro') > 10, `reads of several datagrams (UDP_GRO): ${stat('udp.rx-gro')}`);

      // Linux's own view: tcpdump decodes the datagrams as UDP-encapsulated ESP with our SPIs.
      const dump = spawnSync('tcpdump', ['-r', pcap, '-n', '-c', '200', 'udp port 4500'], { encoding: 'utf8' });
      assert.match(dump.stdout, /UDP-encap: ESP\(spi=0x0000c100,seq=0x1\)/, dump.stdout.slice(0, 2000) + dump.stderr);
      assert.match(dump.stdout, /UDP-encap: ESP\(spi=0x0000c200,seq=0x1\)/);
    });
  });

  it('over an IPv6 WAN: IPv4 terminals through ESP in UDP over IPv6; dual-stack tunnel ports; IKE over either family', async (t) => {
    await inTestbed(t, ['ping', 'tcpdump'], async (tb, dir) => {
      const MARKER = Buffer.from('kasane-v6wan');
      const { pcap, cap, A, B } = await pairAcross(tb, dir, 6, MARKER, [4 << 20, 1 << 20]);

      // IKE over IPv6 and over IPv4, out of the same port number, each with its source.
      const [WAN4, WAN6] = [WAN[4].gw, WAN[6].gw];
      B.send(`send ${WAN6[0]} 4500 ${IKE}`);
      const got6 = await A.lines.wait((e) => e.event === 'udp' && e.src === WAN6[1], 5_000, 'IKE over IPv6 at A');
      assert.deepEqual([got6.reason, got6.port, got6.payload], ['ike', 4500, IKE]);
      B.send(`send ${WAN4[0]} 4500 ${IKE}`);
      const got4 = await A.lines.wait((e) => e.event === 'udp' && e.src === WAN4[1], 5_000, 'IKE over IPv4 at A');
      assert.deepEqual([got4.reason, got4.port], ['ike', 4500]);

      const ra = await A.close();
      const rb = await B.close();
      await stopCapture(cap);
      eachReport({ A: ra, B: rb }, (name, c, s) => {
        assert.ok(
          c['tunnel-encrypt.packets'] > 500 && c['tunnel-decrypt.packets'] > 500,
          `${name}: ${JSON.stringify(c)}`,
        );
        assert.equal(c['plain.packets'], undefined, `${name}: nothing relayed in the clear`);
        assert.equal(c['drop.auth-failed'], undefined);
        assert.equal(c['punt.too-big'], undefined, `${name}: MSS clamped to 1500 - 85 - 40`);
        assert.equal(s['udp.tx-errors'], 0, `${name}: ${JSON.stringify(s)}`);
      });
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
    });
  });
});

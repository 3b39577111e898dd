// The native TUN datapath for real, in network namespaces made for the run (root only):
//   h1 (10.1.0.2) -- gw -- h2 (10.2.0.2)                       one gateway, plain rules
//   h1 (10.1.0.2) -- gwA == 192.168.0.0/24 == gwB -- h2 (10.2.0.2)   ESP between two gateways
//   h1 (fd00:1::2) -- gwA == fd00:ff::/64 == gwB -- h2 (fd00:2::2)   the same between IPv6 terminals
// The kernel's own ping and a TCP transfer whose content is verified go through the gateways'
// TUN devices; the gateway processes must exit by themselves after closing the datapath.
// Between two gateways, either family: the kernel hands TCP to the inside TUN as GSO super-packets
// (TSO, TSO6), the datapath segments them, encrypts each segment into ESP in UDP and writes runs of
// them as GSO_UDP_L4 super-packets (USO, USO6); the other gateway reads them whole, splits them in
// place, decrypts (and over IPv6 coalesces the TCP segments again: GRO). Nothing is relayed in the
// clear and nothing is too big (the MSS is clamped). Over IPv6, a Packet Too Big sent with
// sendLocal() (an IPv6 raw socket) reaches the terminal, whose kernel lowers its path MTU.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hasCommand, JsonLines, Testbed } from './netns.js';
import {
  inTestbed,
  eachReport,
  startHelperGateway as startGateway,
  tcpTransfer,
  twoSites,
  type HelperGateway,
} from './netns-gateway.js';
import { hex, inCi, randomKey } from './support.js';
import { icmp6 } from './support6.js';

const PROBE = join(new URL('../..', import.meta.url).pathname, 'test/support/udp-probe.py');

function ping(tb: Testbed, ns: string, dst: string, count = 3, family: 4 | 6 = 4): void {
  if (!hasCommand('ping')) {
    if (inCi) throw new Error('CI=true but ping (iputils-ping) is not installed');
    return;
  }
  const out = tb.exec(ns, 'ping', ...(family === 6 ? ['-6'] : []), '-c', String(count), '-i', '0.2', '-W', '2', dst);
  assert.match(out, new RegExp(`${count} packets transmitted, ${count} received`));
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !ok();) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ROUTING_ONE = { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['gi'], outsideIfaces: ['go'] };

/** The two-gateway test per family: the terminals' addresses, the SPIs and key seeds (A's, B's). */
const PAIR = {
  4: { h1: '10.1.0.2', h2: '10.2.0.2', spis: [0x100, 0x200], keys: [11, 22], tcp: [20 << 20, 5 << 20] },
  6: { h1: 'fd00:1::2', h2: 'fd00:2::2', spis: [0x600, 0x700], keys: [61, 62], tcp: [16 << 20, 4 << 20] },
} as const;

/**
 * h1 - gwA == WAN == gwB - h2, dual stack (IPv6 without duplicate address detection), each gateway
 * running the datapath with one encrypt rule h1 <-> h2 of `family` and mirror SAs.
 */
async function gatewayPair(tb: Testbed, family: 4 | 6, queues = 1) {
  const f = PAIR[family];
  const { ga, gb, h1, h2 } = twoSites(tb);
  for (const [ns, dev, a] of [
    [h1, 'e0', 'fd00:1::2/64'],
    [ga, 'gi', 'fd00:1::1/64'],
    [gb, 'gi', 'fd00:2::1/64'],
    [h2, 'e0', 'fd00:2::2/64'],
    [ga, 'go', 'fd00:ff::1/64'],
    [gb, 'go', 'fd00:ff::2/64'],
  ])
    tb.ip(ns, '-6', 'addr', 'add', a, 'dev', dev, 'nodad');
  tb.ip(h1, '-6', 'route', 'add', 'default', 'via', 'fd00:1::1');
  tb.ip(h2, '-6', 'route', 'add', 'default', 'via', 'fd00:2::1');
  for (const [ns, v4, v6] of [
    [ga, ['10.2.0.0/24', 'via', '192.168.0.2'], ['fd00:2::/64', 'via', 'fd00:ff::2']],
    [gb, ['10.1.0.0/24', 'via', '192.168.0.1'], ['fd00:1::/64', 'via', 'fd00:ff::1']],
  ] as const) {
    tb.ip(ns, 'route', 'add', ...v4);
    tb.ip(ns, '-6', 'route', 'add', ...v6);
  }
  const [ka, kb] = f.keys.map((seed) => randomKey(seed));
  const [spiA, spiB] = f.spis;
  const sa = (spi: number, k: { key: Uint8Array; salt: Uint8Array }) => ({
    spi,
    vpnId: 1,
    epoch: 1,
    key: hex(k.key),
    salt: hex(k.salt),
  });
  const A = await startGateway(tb, ga, {
    routing: ROUTING_ONE,
    queues,
    rules: [{ local: f.h1, remote: f.h2, action: 'encrypt', vpnId: 1, peer: 'GB', mtu: 1500 }],
    tx: [sa(spiA, ka)],
    rx: [{ ...sa(spiB, kb), sender: 'GB' }],
  });
  const B = await startGateway(tb, gb, {
    routing: ROUTING_ONE,
    queues,
    rules: [{ local: f.h2, remote: f.h1, action: 'encrypt', vpnId: 1, peer: 'GA', mtu: 1500 }],
    tx: [sa(spiB, kb)],
    rx: [{ ...sa(spiA, ka), sender: 'GA' }],
  });
  return { ga, gb, h1, h2, A, B };
}

/** Pings h1 -> h2, verified TCP both ways, then closes both gateways: what they reported. */
async function acrossPair(
  tb: Testbed,
  family: 4 | 6,
  p: { h1: string; h2: string; A: HelperGateway; B: HelperGateway },
  before?: () => Promise<void>,
) {
  const f = PAIR[family];
  ping(tb, p.h1, f.h2, 3, family);
  await tcpTransfer(tb, p.h2, p.h1, f.h2, f.tcp[0]);
  await tcpTransfer(tb, p.h1, p.h2, f.h1, f.tcp[1]);
  await before?.();
  const ra = await p.A.close();
  const rb = await p.B.close();
  eachReport({ A: ra, B: rb }, (name, c, s) => {
    assert.ok(c['encrypt.packets'] > 1000 && c['decrypt.packets'] > 1000, `${name}: ${JSON.stringify(c)}`);
    assert.equal(c['plain.packets'], undefined, `${name}: nothing relayed in the clear`);
    assert.equal(c['punt.too-big'], undefined, `${name}: MSS clamping keeps segments within the MTU`);
    assert.equal(c['drop.auth-failed'], undefined);
    assert.equal(s['tx.errors'], 0);
    // Both ways carried data: each gateway wrote runs of ESP in UDP as UDP GSO super-packets and
    // read the other's whole from its outside TUN (USO on both, veth and forwarding keep them).
    assert.ok(
      s['tx.gso'] > 10,
      `${name}: UDP GSO super-packets of ESP over IPv${family} written: ${JSON.stringify(s)}`,
    );
    assert.ok(
      s['rx.gso-esp'] > 10,
      `${name}: UDP GSO super-packets of ESP over IPv${family} read: ${JSON.stringify(s)}`,
    );
    assert.ok(c['decrypt.packets'] > 2 * s['rx.gso-esp'], `${name}: several ESP packets per super-packet`);
  });
  return { ra, rb };
}

/** One gateway: inside gi faces h1 (10.1.0.2), outside go faces h2 (10.2.0.2). */
function oneSite(tb: Testbed): { gw: string; h1: string; h2: string } {
  const gw = tb.ns('gw');
  const h1 = tb.ns('h1');
  const h2 = tb.ns('h2');
  tb.link(h1, 'e0', '10.1.0.2/24', gw, 'gi', '10.1.0.1/24');
  tb.link(gw, 'go', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
  tb.ip(h1, 'route', 'add', 'default', 'via', '10.1.0.1');
  tb.ip(h2, 'route', 'add', 'default', 'via', '10.2.0.1');
  return { gw, h1, h2 };
}

describe('native TUN datapath in network namespaces', { timeout: 180_000 }, () => {
  for (const queues of [1, 2]) {
    it(`plain rules, ${queues} queue(s): punt, learn and inject; ping; verified TCP; clean exit`, async (t) => {
      await inTestbed(t, [], async (tb) => {
        const { gw, h1, h2 } = oneSite(tb);
        const g = await startGateway(tb, gw, {
          routing: ROUTING_ONE,
          queues,
          learn: [{ local: '10.1.0.2', remote: '10.2.0.2' }],
        });
        // One reader thread per queue of the inside device and one of the outside device.
        const readers = g.threadNames().filter((n) => n.startsWith('kasane-tun'));
        assert.equal(readers.length, queues, `reader threads: ${JSON.stringify(g.threadNames())}`);
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
      });
    });
  }

  it('a TUN device deleted under a running datapath: the reader stops and says which device, close still joins and exits', async (t) => {
    await inTestbed(t, [], async (tb) => {
      const { gw, h1 } = oneSite(tb);
      const g = await startGateway(tb, gw, {
        routing: ROUTING_ONE,
        learn: [{ local: '10.1.0.2', remote: '10.2.0.2' }],
      });
      ping(tb, h1, '10.2.0.2');
      assert.equal(g.lines.events.filter((e) => e.event === 'failure').length, 0, 'no failure while it runs');
      // One reader thread serves both devices: deleting the inside one stops it, and it says so.
      tb.ip(gw, 'link', 'del', ROUTING_ONE.insideTun);
      const f = await g.lines.wait((e) => e.event === 'failure', 5_000, 'failure event');
      assert.match(String(f.message), new RegExp(`TUN device ${ROUTING_ONE.insideTun} failed`), JSON.stringify(f));
      assert.equal(f.failure, f.message, 'the datapath keeps the reason');
      const rep = await g.close();
      assert.ok((rep.stats as Record<string, number>)['rx.errors'] >= 1, JSON.stringify(rep.stats));
    });
  });

  it('encrypt -> decrypt between two gateways: ping, verified TCP with MSS clamping, ESP in UDP GSO super-packets both ways, decrypted UDP as UDP GSO super-packets', async (t) => {
    await inTestbed(t, ['python3'], async (tb) => {
      const pair = await gatewayPair(tb, 4);
      // The raw egress socket's send buffer: 8 MiB (the kernel reports it doubled) past
      // net.core.wmem_max, as the tunnel port's; a full one sends the rest through the TUN.
      const sockets = pair.A.sockets();
      const egress = sockets.filter((s) => s.type === 3 /* SOCK_RAW */ && s.protocol === 255 /* IPPROTO_RAW */);
      assert.ok(egress.length >= 1, JSON.stringify(sockets));
      assert.ok(
        egress.every((s) => s.sndbuf >= 16 << 20),
        JSON.stringify(egress),
      );
      let before: Record<string, number> = {};
      let beforeA: Record<string, number> = {};
      const { ra, rb } = await acrossPair(tb, 4, pair, async () => {
        // A burst of small UDP datagrams h1 -> h2: A holds its runs of ESP open while they keep
        // coming, B writes the decrypted ones as UDP GSO super-packets, and h2's kernel hands
        // every datagram intact to the socket.
        pair.A.send('stats');
        beforeA = (await pair.A.lines.wait((e) => e.event === 'stats', 5_000, 'stats')).stats as Record<string, number>;
        pair.B.send('stats');
        before = (await pair.B.lines.wait((e) => e.event === 'stats', 5_000, 'stats')).stats as Record<string, number>;
        const rx = new JsonLines(tb.spawn(pair.h2, 'python3', [PROBE, 'recv', '7001', '100', '5000', '8']));
        await rx.wait((e) => e.event === 'listening', 10_000, 'UDP receiver');
        const tx = new JsonLines(
          tb.spawn(pair.h1, 'python3', [PROBE, 'send', '10.2.0.2', '7001', '100', '5000', 'df', '0']),
        );
        await tx.wait((e) => 'sent' in e, 30_000, 'UDP sender');
        const got = (await rx.wait((e) => 'received' in e, 30_000, 'UDP receiver result')) as {
          received: number;
          good: number;
        };
        assert.equal(got.good, got.received, `every datagram that arrived is intact: ${JSON.stringify(got)}`);
        assert.ok(got.good > 500, `datagrams arrived: ${JSON.stringify(got)}`);
      });
      const after = rb.stats as Record<string, number>;
      assert.ok(after['tx.gso'] > before['tx.gso'], `B wrote decrypted datagrams as UDP GSO super-packets`);
      // Pings (lone packets) and TCP (ACKs clock the sender) are never held; the stream of small
      // datagrams is.
      assert.equal(beforeA['tx.holds'], 0, `A held nothing for pings and TCP: ${JSON.stringify(beforeA)}`);
      const afterA = ra.stats as Record<string, number>;
      assert.ok(afterA['tx.holds'] > 0, `A held runs of small datagrams: ${JSON.stringify(afterA)}`);
      // During a hold A does not poll its inside queue: the datagrams that arrive meanwhile wait
      // there and are read when it ends, all at once, instead of waking A's reader one by one.
      assert.ok(afterA['rx.held'] > 0, `A read datagrams that waited out its holds: ${JSON.stringify(afterA)}`);
      assert.ok(
        (ra.stats as Record<string, number>)['rx.segments'] > 0,
        'GSO super-packets were segmented before encryption',
      );
    });
  });

  it('encrypt -> decrypt with 2 queues on each device: 16 TCP flows and 2 verified ones at once, both reader threads seal, no packet refused as a replay', async (t) => {
    await inTestbed(t, ['iperf3'], async (tb) => {
      const pair = await gatewayPair(tb, 4, 2);
      const before = pair.A.threadCpu();
      // The kernel spreads flows over a TUN device's queues by their hash: 16 flows h1 -> h2 all on
      // one of A's 2 inside queues would be a 2^-15 chance. Two of them carry content that is checked.
      const server = tb.spawn(pair.h2, 'iperf3', ['-s', '-1', '-B', PAIR[4].h2]);
      await new Promise((r) => setTimeout(r, 500));
      const client = tb.spawn(pair.h1, 'iperf3', ['-c', PAIR[4].h2, '-P', '16', '-t', '3', '-J']);
      let out = '';
      client.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((r) => client.once('exit', (code) => r(code)));
      await Promise.all([
        tcpTransfer(tb, pair.h2, pair.h1, PAIR[4].h2, 8 << 20, 5202),
        tcpTransfer(tb, pair.h2, pair.h1, PAIR[4].h2, 8 << 20, 5203),
      ]);
      assert.equal(await exited, 0, out.slice(-500));
      if (server.exitCode === null) server.kill('SIGTERM');
      const j = JSON.parse(out) as { end: { sum_received: { bytes: number } } };
      assert.ok(j.end.sum_received.bytes > 10 << 20, `iperf3 moved ${j.end.sum_received.bytes} bytes`);
      const after = pair.A.threadCpu();
      for (const name of ['kasane-tun0', 'kasane-tun1'])
        assert.ok(
          (after[name] ?? 0) - (before[name] ?? 0) > 0,
          `A's reader ${name} sealed its share: ${JSON.stringify({ before, after })}`,
        );
      // A's two threads seal with one SA, each taking its sequence numbers as it goes, and B's
      // queues open it each at its own pace: B's window (docs/executor.md, "Receiving SAs") must
      // take the packets of the queue that fell behind (a 1024-packet window refused over a
      // thousand here), and so must A's for B's.
      const { ra, rb } = await acrossPair(tb, 4, pair);
      eachReport({ A: ra, B: rb }, (name, c) =>
        assert.equal(c['drop.replay'], undefined, `${name}: ${JSON.stringify(c)}`),
      );
    });
  });

  it('encrypt -> decrypt between IPv6 terminals: ping -6, verified TCP, TSO6 in, USO6 between the gateways, GRO out', async (t) => {
    await inTestbed(t, [], async (tb) => {
      const pair = await gatewayPair(tb, 6);
      const { ra, rb } = await acrossPair(tb, 6, pair, async () => {
        // A Packet Too Big of the gateway's own (what the core answers a too-big punt with) leaves
        // through the IPv6 raw socket of sendLocal() and h1's kernel takes its MTU for the path.
        const quoted = icmp6('fd00:1::2', 'fd00:2::2', 128, new Uint8Array(1400));
        const ptb = icmp6(
          'fd00:1::1',
          'fd00:1::2',
          2,
          Uint8Array.from([0, 0, 0x05, 0x14, ...quoted.subarray(0, 1232)]),
        );
        pair.A.send(`local ${hex(ptb)}`);
        const sent = await pair.A.lines.wait((e) => e.event === 'local', 5_000, 'sendLocal at A');
        assert.equal(sent.ok, true, String(sent.error));
        await waitFor(
          () => /mtu 1300/.test(tb.ip(pair.h1, '-6', 'route', 'get', 'fd00:2::2')),
          5_000,
          'h1 learned the path MTU',
        );
      });
      eachReport({ A: ra, B: rb }, (name, c, s) => {
        assert.equal(c['drop.bad-ipv6'], undefined);
        assert.ok(
          s['rx.gso'] > 0 && s['rx.segments'] > 0,
          `${name}: TCP/IPv6 arrived as GSO super-packets: ${JSON.stringify(s)}`,
        );
        // GRO: the decrypted segments went to the TUN in fewer writes than there were segments.
        assert.ok(s['tx.packets'] < c['decrypt.packets'] + c['encrypt.packets'], `${name}: ${JSON.stringify(s)}`);
      });
    });
  });
});

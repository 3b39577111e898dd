// Hostile IPv6 traffic from a namespace on the WAN against dual-stack seed 000 Figure 2: forged
// key-search replies over ICMPv6 raced against a genuine search, then garbage extension-header
// chains, fragments, forged ESP and plaintext posing as a protected terminal, as fast as the
// attacker can send. G2 must not crash, must count every drop, and B <-> A over IPv6 keeps working.
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { buildIcmpv6Echo } from '../../src/core/packet/icmpv6.js';
import {
  decodeSearchMessage,
  encodeSearchMessage,
  SEARCH_MAGIC,
  type SearchMessage,
} from '../../src/core/packet/search-message.js';
import { echoIds } from '../../src/core/search/search-packet.js';
import { isEsp, readPcap6, startCapture, stopCapture } from '../support/capture.js';
import { inject, wanAttacker } from '../support/inject.js';
import { delta, drops, total } from '../support/drops.js';
import { v6Packet, type Ext } from '../core/packet/v6-chain.js';
import { espLike, forgedReplies, inUdp, until } from './hostile-tools.js';
import { netnsGate } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

const gate = netnsGate('python3', 'tcpdump');
const A = 'fd00:1::10';
const B = 'fd00:2::10';
const UDP = 17;
const ESP = 50;
const ICMPV6 = 58;

/** The attacker X on the WAN router, with IPv6 too (R forwards whatever source X uses). */
function wanAttacker6(f: Figure2): string {
  const X = wanAttacker(f);
  f.tb.address(X, 'eth0', 'fd00:200:8::2/64');
  f.tb.address(f.ns.R, 'x', 'fd00:200:8::1/64');
  f.tb.ip(X, '-6', 'route', 'add', 'default', 'via', 'fd00:200:8::1');
  return X;
}

/** A key-search message carried in an ICMPv6 echo (request or reply) of a captured IPv6 packet. */
function searchOf(payload: Buffer): { type: number; msg: SearchMessage } | undefined {
  if (payload.length < 12 || (payload[0] !== 128 && payload[0] !== 129)) return undefined;
  const data = payload.subarray(8);
  if (!data.subarray(0, 4).equals(Buffer.from(SEARCH_MAGIC))) return undefined;
  const m = decodeSearchMessage(data);
  return m.ok ? { type: payload[0], msg: m.value } : undefined;
}

test(
  'hostile IPv6 on the WAN: forged search replies, garbage extension headers, fragments — counted and dropped, B <-> A unaffected',
  { skip: gate.skip, timeout: 300_000 },
  async (t) => {
    gate.require();
    await inFigure2({ ipv6: true, gatewayConfig: 'timers:\n  searchTimeout: 3000\n' }, async (f, dir) => {
      const X = wanAttacker6(f);

      // 1. Forged key-search replies over ICMPv6, raced against a genuine search (G1 frozen).
      const g1 = f.gateways.get('G1');
      assert.ok(g1?.pid, 'G1 runs');
      const wan = join(dir, 'wan-g2.pcap');
      const capture = await startCapture(f.tb, f.ns.R, 'g2', wan, ['icmp6']);
      const before1 = drops(f, 2);
      process.kill(g1.pid, 'SIGSTOP');
      let firstPing: ReturnType<typeof f.tb.spawn> | undefined;
      try {
        firstPing = f.tb.spawn(f.ns.B, 'ping', ['-c', '1', '-W', '20', A]);
        const request = await until(
          () =>
            readPcap6(wan)
              .filter((p) => p.proto === ICMPV6 && p.src === B && p.dst === A)
              .map((p) => searchOf(p.payload))
              .find((s) => s?.type === 128 && s.msg.phase === 'destination' && s.msg.pathDst === A),
          5000,
          "G2's destination search toward A over ICMPv6 on the WAN",
        );
        const m = request.msg;
        assert.equal(m.entries.at(-1)?.gateway, 'G2');
        const reply = (msg: SearchMessage) =>
          buildIcmpv6Echo({ src: A, dst: B, type: 129, ...echoIds(msg.txid), data: encodeSearchMessage(msg) });
        const forged = forgedReplies(m, '10.200.1.2').map(reply);
        const sent = await inject(f.tb, X, join(dir, 'forged.bin'), forged);
        assert.equal(sent.sent, forged.length);
        const d1 = await until(
          () => {
            const d = delta(drops(f, 2), before1);
            return total(d) >= forged.length ? d : undefined;
          },
          5000,
          'G2 to count the forged replies',
        );
        assert.equal(total(d1), forged.length, `one counted drop per forged reply: ${JSON.stringify(d1)}`);
        for (const k of Object.keys(d1))
          assert.match(k, /^drop\.search-(forged|tampered|late-reply)$/, JSON.stringify(d1));
        assert.ok(
          !f.status(2).paths.some((p) => p.remote === A && p.action === 'encrypt'),
          'no path installed from a forged reply',
        );
      } finally {
        process.kill(g1.pid, 'SIGCONT');
      }
      const pinged = await new Promise<number | null>((r) =>
        firstPing?.exitCode !== null ? r(firstPing?.exitCode ?? null) : firstPing.once('exit', r),
      );
      assert.equal(pinged, 0, 'the first ping -6 B -> A, held during the search, is answered');
      await stopCapture(capture);
      const path = f.status(2).paths.find((p) => p.remote === A);
      assert.ok(
        path && path.action === 'encrypt' && path.peer === 'G1',
        `G2's path to A after the genuine reply: ${JSON.stringify(path)}`,
      );

      // The live SA's SPI, from A's ESP on the WAN.
      const espFile = join(dir, 'esp.pcap');
      const espCapture = await startCapture(f.tb, f.ns.R, 'g2', espFile, ['ip6', 'and', 'src', A]);
      assert.equal(f.ping('A', 'B', { count: 5, family: 6 }), true);
      await stopCapture(espCapture);
      const esp = readPcap6(espFile).filter(isEsp);
      assert.ok(esp.length >= 4, `captured ${esp.length} IPv6 ESP packets from A`);
      const spi = esp[0].proto === UDP ? esp[0].payload.readUInt32BE(8) : esp[0].payload.readUInt32BE(0);

      // 2. Garbage as fast as the attacker can send, while B and A keep talking over IPv6.
      const garbage: Uint8Array[] = [];
      for (let i = 0; i < 3000; i++) {
        const body = randomBytes(16 + (i % 200));
        const seq = (BigInt(i + 1) << 32n) | BigInt(i + 1);
        const forgedEsp = () => espLike(spi, seq, 4 * (1 + (i % 50)));
        const tooMany: Ext[] = Array.from({ length: 17 }, () => ({ type: 60 }));
        const kinds = [
          () => v6Packet(A, B, [], UDP, inUdp(forgedEsp())), // the live SA, forged content
          () => v6Packet(A, B, [], ESP, forgedEsp()), // the same, raw ESP
          () => v6Packet(A, B, [], UDP, inUdp(espLike(0x01000000 + i, seq, 64))), // SPIs nobody made
          () => v6Packet(A, B, [{ type: 60, extra: 8 }], UDP, inUdp(forgedEsp())), // ESP behind destination options
          () => v6Packet(A, B, tooMany, UDP, body), // more extension headers than anyone may send
          () => truncatedChain(A, B, body), // a header that runs past the end of the packet
          () => v6Packet(A, B, [{ type: 60 }, { type: 0 }], UDP, body), // hop-by-hop after another header
          () => v6Packet(A, B, [{ type: 44, fragmentOffset: 1480, more: true }], UDP, body), // a non-first fragment
          () => v6Packet(A, B, [{ type: 44, fragmentOffset: 0, more: true }], UDP, inUdp(forgedEsp())), // a first fragment of "ESP"
          () =>
            buildIcmpv6Echo({ src: A, dst: B, type: 129, id: i, seq: i, data: Buffer.concat([SEARCH_MAGIC, body]) }), // search-shaped
          () => v6Packet(A, B, [], UDP, body), // plaintext posing as A
          () => v6Packet(`fd00:${(i >> 8) & 255}:${i & 255}::7`, B, [], 253, body), // plaintext from anywhere
        ];
        garbage.push(kinds[i % kinds.length]());
      }
      const wanRx = () => Number(f.tb.exec(f.ns.G2, 'cat', '/sys/class/net/wan0/statistics/rx_packets').trim());
      const wanRx0 = wanRx();
      const before2 = drops(f, 2);
      const flood = inject(f.tb, X, join(dir, 'garbage.bin'), garbage, 4);
      await new Promise((r) => setTimeout(r, 500));
      let received = 0;
      try {
        received = Number(
          /(\d+) received/.exec(f.tb.exec(f.ns.B, 'ping', '-c', '10', '-i', '0.2', '-W', '2', A))?.[1] ?? 0,
        );
      } catch (e) {
        received = Number(/(\d+) received/.exec(String((e as { stdout?: unknown }).stdout ?? e))?.[1] ?? 0);
      }
      const sent2 = await flood;
      assert.ok(sent2.sent > 10_000, `the attacker sent ${sent2.sent} packets`);
      assert.ok(received >= 9, `ping -6 B -> A during the flood: ${received}/10 echoes answered`);
      assert.equal(f.gateways.get('G2')?.exitCode, null, 'G2 still runs');
      const arrived = wanRx() - wanRx0;
      const d2 = await until(
        () => {
          const d = delta(drops(f, 2), before2);
          return total(d) >= Math.min(sent2.sent, arrived - 100) ? d : undefined;
        },
        10_000,
        `G2 to count the ${arrived} packets that arrived (${sent2.sent} sent)`,
      );
      t.diagnostic(
        `${sent2.sent} hostile packets sent, ${arrived} arrived at G2, ${total(d2)} drops counted: ${JSON.stringify(d2)}`,
      );
      assert.ok(
        total(d2) <= sent2.sent + 20,
        `no more drops than hostile packets (+ a few of B's under load): ${total(d2)} for ${sent2.sent}: ${JSON.stringify(d2)}`,
      );
      for (const reason of [
        'executor.drop.auth-failed',
        'executor.drop.bad-ipv6',
        'executor.drop.unsolicited-plain',
        'drop.unknown-spi',
        'drop.search-malformed',
      ])
        assert.ok((d2[reason] ?? 0) > 0, `${reason} counted: ${JSON.stringify(d2)}`);
      assert.equal(f.ping('B', 'A', { family: 6 }), true, 'B -> A over IPv6 after the flood');
      assert.equal(
        f.ping('B', 'C', { family: 6 }),
        true,
        'B -> C over IPv6 after the flood (a new search through the flooded gateway)',
      );
      assert.equal(f.ping('B', 'A'), true, 'B -> A over IPv4 after the flood');
    });
  },
);

/** A destination-options header whose length says 64 bytes, in a packet that ends 8 bytes into it. */
function truncatedChain(src: string, dst: string, body: Uint8Array): Uint8Array {
  const p = v6Packet(src, dst, [{ type: 60 }], UDP, body.subarray(0, 0));
  const out = Buffer.from(p);
  out[40 + 1] = 7; // (7 + 1) * 8 = 64 bytes
  return out;
}

// Hostile IPv6 traffic from a namespace on the WAN against dual-stack seed 000 Figure 2: forged
// key-search replies over ICMPv6 raced against a genuine search, then garbage extension-header
// chains, fragments, forged ESP and plaintext posing as a protected terminal, as fast as the
// attacker can send. G2 must not crash, must count every drop, and B <-> A over IPv6 keeps working.
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
import { wanAttacker } from '../support/inject.js';
import { total } from '../support/drops.js';
import { v6Packet, type Ext } from '../core/packet/v6-chain.js';
import { espLike, floodG2, inUdp, raceForgedReplies, type SearchOnWan } from './hostile-tools.js';
import { netnsTest } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

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

netnsTest(
  'hostile IPv6 on the WAN: forged search replies, garbage extension headers, fragments — counted and dropped, B <-> A unaffected',
  { timeout: 300_000, needs: ['python3', 'tcpdump'] },
  async (t) => {
    await inFigure2({ ipv6: true, gatewayConfig: 'timers:\n  searchTimeout: 3000\n' }, async (f, dir) => {
      const X = wanAttacker6(f);

      // 1. Forged key-search replies over ICMPv6, raced against a genuine search (hostile-tools.ts).
      const search: SearchOnWan = {
        filter: ['icmp6'],
        find: (pcap) =>
          readPcap6(pcap)
            .filter((p) => p.proto === ICMPV6 && p.src === B && p.dst === A)
            .map((p) => searchOf(p.payload))
            .find((s) => s?.type === 128 && s.msg.phase === 'destination' && s.msg.pathDst === A)?.msg,
        reply: (msg) =>
          buildIcmpv6Echo({ src: A, dst: B, type: 129, ...echoIds(msg.txid), data: encodeSearchMessage(msg) }),
      };
      await raceForgedReplies(f, dir, X, A, search, 'ping -6');

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
      const flood = await floodG2(f, dir, X, A, garbage, 'ping -6');
      const d2 = flood.drops;
      t.diagnostic(
        `${flood.sent} hostile packets sent, ${flood.arrived} arrived at G2, ${total(d2)} drops counted: ${JSON.stringify(d2)}`,
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

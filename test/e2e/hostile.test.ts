// Hostile traffic from a namespace on the WAN against seed 000 Figure 2 in namespaces: forged
// key-search replies raced against a genuine search, replayed ESP, and garbage as fast as the
// attacker can send it. The gateways must not crash, must count every drop, and B <-> A must
// keep working.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { buildIpv4, PROTO_ESP, PROTO_ICMP, PROTO_UDP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { SEARCH_MAGIC } from '../../src/core/packet/search-message.js';
import { buildSearchPacket, echoIds, parseSearchPacket } from '../../src/core/search/search-packet.js';
import { ESP_FILTER, readPcapFrames, startCapture, stopCapture } from '../support/capture.js';
import { inject as injectPackets, wanAttacker } from '../support/inject.js';
import { drops } from '../support/drops.js';
import { espLike, floodG2, g2Drops, inUdp, raceForgedReplies, type SearchOnWan } from './hostile-tools.js';
import { netnsTest } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

const A = '10.1.0.10';
const B = '10.2.0.10';

/** Packets from the attacker's namespace. */
const inject = (f: Figure2, ns: string, file: string, packets: Uint8Array[], seconds?: number) =>
  injectPackets(f.tb, ns, file, packets, seconds);

netnsTest(
  'hostile WAN: forged search replies, replayed ESP, garbage at line rate — no crash, every drop counted, B <-> A unaffected',
  { timeout: 300_000, needs: ['python3', 'tcpdump'] },
  async () => {
    // A 3 s search timeout leaves room to answer a search before the gateway retries it.
    await inFigure2({ gatewayConfig: 'timers:\n  searchTimeout: 3000\n' }, async (f, dir) => {
      // The attacker X hangs off the WAN router, which forwards whatever source address X uses.
      const X = wanAttacker(f);

      // 1. Forged key-search replies, raced against a genuine search (hostile-tools.ts).
      const search: SearchOnWan = {
        filter: ['icmp'],
        find: (pcap) =>
          readPcapFrames(pcap)
            .map((p) => parseSearchPacket(p))
            .flatMap((r) => (r.ok ? [r.value] : []))
            .find((v) => v.icmpType === 8 && v.msg.phase === 'destination' && v.msg.pathDst === A)?.msg,
        reply: (msg) => buildSearchPacket({ src: A, dst: B, icmpType: 0, ...echoIds(msg.txid), msg }),
      };
      await raceForgedReplies(f, dir, X, A, search, 'ping');

      // 2. Replayed ESP: G1's packets to B, captured on the WAN and sent again by the attacker.
      const espFile = join(dir, 'esp.pcap');
      const espCapture = await startCapture(f.tb, f.ns.R, 'g2', espFile, [`${ESP_FILTER} and src ${A}`]);
      assert.equal(f.ping('A', 'B', { count: 10 }), true);
      await stopCapture(espCapture);
      const esp = readPcapFrames(espFile);
      assert.ok(esp.length >= 8, `captured ${esp.length} ESP packets from A's side`);
      const before2 = drops(f, 2);
      await inject(f, X, join(dir, 'replay.bin'), esp);
      const d2 = await g2Drops(f, before2, esp.length, 5000, 'G2 to count the replays');
      assert.deepEqual(d2, { 'executor.drop.replay': esp.length }, 'every replayed packet is dropped as a replay');
      assert.equal(f.ping('B', 'A'), true, 'B -> A after the replays');

      // 3. Garbage as fast as the attacker can send, while B and A keep talking.
      // The captured ESP is in UDP 4500 (the default encapsulation): the SPI follows the UDP header.
      const spi = esp[0].readUInt32BE(esp[0][9] === PROTO_UDP ? 28 : 20);
      const garbage: Uint8Array[] = [];
      for (let i = 0; i < 3000; i++) {
        const body = randomBytes(16 + (i % 200));
        const seq = (BigInt(i + 1) << 32n) | BigInt(i + 1); // far ahead of the window: only the ICV can refuse it
        const kinds = [
          () => buildIpv4({ src: A, dst: B, protocol: PROTO_ESP, payload: espLike(spi, seq, 4 * (1 + (i % 50))) }), // the live SA, forged content
          () =>
            buildIpv4({ src: A, dst: B, protocol: PROTO_UDP, payload: inUdp(espLike(spi, seq, 4 * (1 + (i % 50)))) }), // the same in UDP 4500
          () =>
            buildIpv4({
              src: A,
              dst: B,
              protocol: PROTO_ESP,
              payload: espLike(0x01000000 + i, seq, 4 * (1 + (i % 50))),
            }), // SPIs nobody made
          () => buildIpv4({ src: A, dst: B, protocol: PROTO_ESP, payload: body }), // not ESP at all
          () =>
            buildIpv4({
              src: A,
              dst: B,
              protocol: PROTO_ICMP,
              payload: buildIcmpEcho({ type: 0, id: i, seq: i, data: Buffer.concat([SEARCH_MAGIC, body]) }),
            }), // search-shaped
          () => buildIpv4({ src: A, dst: B, protocol: PROTO_UDP, payload: body }), // plaintext posing as A
          () => buildIpv4({ src: `10.${(i >> 8) & 255}.${i & 255}.7`, dst: B, protocol: 253, payload: body }), // plaintext from anywhere
        ];
        garbage.push(kinds[i % kinds.length]());
      }
      const { drops: d3 } = await floodG2(f, dir, X, A, garbage, 'ping');
      for (const reason of [
        'executor.drop.auth-failed',
        'executor.drop.malformed',
        'executor.drop.unsolicited-plain',
        'drop.unknown-spi',
        'drop.search-malformed',
        'drop.unsolicited-plain',
      ])
        assert.ok((d3[reason] ?? 0) > 0, `${reason} counted: ${JSON.stringify(d3)}`);
      assert.equal(f.ping('B', 'A'), true, 'B -> A after the flood');
      assert.equal(f.ping('B', 'C'), true, 'B -> C after the flood (a new search through the flooded gateway)');
    });
  },
);

// Hostile traffic from a namespace on the WAN against seed 000 Figure 2 in namespaces: forged
// key-search replies raced against a genuine search, replayed ESP, and garbage as fast as the
// attacker can send it. The gateways must not crash, must count every drop, and B <-> A must
// keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { buildIpv4, PROTO_ESP, PROTO_ICMP, PROTO_UDP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { SEARCH_MAGIC, type SearchMessage } from '../../src/core/packet/search-message.js';
import { buildSearchPacket, echoIds, parseSearchPacket } from '../../src/core/search/search-packet.js';
import { ESP_FILTER, readPcapFrames, startCapture, stopCapture } from '../support/capture.js';
import { inject as injectPackets, wanAttacker } from '../support/inject.js';
import { delta, drops, total } from '../support/drops.js';
import { espLike, forgedReplies, inUdp, until } from './hostile-tools.js';
import { netnsGate } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

const gate = netnsGate('python3', 'tcpdump');
const A = '10.1.0.10';
const B = '10.2.0.10';

/** Packets from the attacker's namespace. */
const inject = (f: Figure2, ns: string, file: string, packets: Uint8Array[], seconds?: number) =>
  injectPackets(f.tb, ns, file, packets, seconds);

test(
  'hostile WAN: forged search replies, replayed ESP, garbage at line rate — no crash, every drop counted, B <-> A unaffected',
  { skip: gate.skip, timeout: 300_000 },
  async () => {
    gate.require();
    // A 3 s search timeout leaves room to answer a search before the gateway retries it.
    await inFigure2({ gatewayConfig: 'timers:\n  searchTimeout: 3000\n' }, async (f, dir) => {
      // The attacker X hangs off the WAN router, which forwards whatever source address X uses.
      const X = wanAttacker(f);

      // 1. Forged key-search replies, raced against a genuine search. G1 is frozen (SIGSTOP) so the
      //    genuine reply waits; the attacker reads the transaction id off the WAN and answers first.
      const g1 = f.gateways.get('G1')!;
      const wan = join(dir, 'wan-g2.pcap');
      const capture = await startCapture(f.tb, f.ns.R, 'g2', wan, ['icmp']);
      const before1 = drops(f, 2);
      process.kill(g1.pid!, 'SIGSTOP');
      let firstPing: ReturnType<typeof f.tb.spawn> | undefined;
      try {
        firstPing = f.tb.spawn(f.ns.B, 'ping', ['-c', '1', '-W', '20', A]);
        const request = await until(
          () =>
            readPcapFrames(wan)
              .map((p) => parseSearchPacket(p))
              .flatMap((r) => (r.ok ? [r.value] : []))
              .find((v) => v.icmpType === 8 && v.msg.phase === 'destination' && v.msg.pathDst === A),
          5000,
          "G2's destination search toward A on the WAN",
        );
        const m = request.msg;
        assert.equal(m.entries.at(-1)?.gateway, 'G2');
        const reply = (msg: SearchMessage) =>
          buildSearchPacket({ src: A, dst: B, icmpType: 0, ...echoIds(msg.txid), msg });
        const forged = forgedReplies(m, '10.200.1.2').map(reply);
        const sent = await inject(f, X, join(dir, 'forged.bin'), forged);
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
        process.kill(g1.pid!, 'SIGCONT');
      }
      // The genuine reply, released, completes the search: the buffered first packet gets through.
      const pinged = await new Promise<number | null>((r) =>
        firstPing!.exitCode !== null ? r(firstPing!.exitCode) : firstPing!.once('exit', r),
      );
      assert.equal(pinged, 0, 'the first ping B -> A, held during the search, is answered');
      await stopCapture(capture);
      const path = f.status(2).paths.find((p) => p.remote === A);
      assert.ok(
        path && path.action === 'encrypt' && path.peer === 'G1',
        `G2's path to A after the genuine reply: ${JSON.stringify(path)}`,
      );

      // 2. Replayed ESP: G1's packets to B, captured on the WAN and sent again by the attacker.
      const espFile = join(dir, 'esp.pcap');
      const espCapture = await startCapture(f.tb, f.ns.R, 'g2', espFile, [`${ESP_FILTER} and src ${A}`]);
      assert.equal(f.ping('A', 'B', { count: 10 }), true);
      await stopCapture(espCapture);
      const esp = readPcapFrames(espFile);
      assert.ok(esp.length >= 8, `captured ${esp.length} ESP packets from A's side`);
      const before2 = drops(f, 2);
      await inject(f, X, join(dir, 'replay.bin'), esp);
      const d2 = await until(
        () => {
          const d = delta(drops(f, 2), before2);
          return total(d) >= esp.length ? d : undefined;
        },
        5000,
        'G2 to count the replays',
      );
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
      const wanRx = () => Number(f.tb.exec(f.ns.G2, 'cat', '/sys/class/net/wan0/statistics/rx_packets').trim());
      const wanRx0 = wanRx();
      const before3 = drops(f, 2);
      const flood = inject(f, X, join(dir, 'garbage.bin'), garbage, 4);
      await new Promise((r) => setTimeout(r, 500));
      // B and A keep talking during the flood (the kernel's ping, 10 echoes in 2 s).
      let received = 0;
      try {
        received = Number(
          /(\d+) received/.exec(f.tb.exec(f.ns.B, 'ping', '-c', '10', '-i', '0.2', '-W', '2', A))?.[1] ?? 0,
        );
      } catch (e) {
        received = Number(/(\d+) received/.exec(String((e as { stdout?: unknown }).stdout ?? e))?.[1] ?? 0);
      }
      const sent3 = await flood;
      assert.ok(sent3.sent > 10_000, `the attacker sent ${sent3.sent} packets`);
      assert.ok(received >= 9, `B -> A during the flood: ${received}/10 echoes answered`);
      assert.equal(f.gateways.get('G2')!.exitCode, null, 'G2 still runs');
      // Every hostile packet that reached G2's WAN link (all of them, unless the router fell behind)
      // is counted by G2 as one drop, by its reason. The few legitimate packets on the link (B's
      // echoes, the authority's change stream) are not drops.
      const arrived = wanRx() - wanRx0;
      const d3 = await until(
        () => {
          const d = delta(drops(f, 2), before3);
          return total(d) >= Math.min(sent3.sent, arrived - 100) ? d : undefined;
        },
        10_000,
        `G2 to count the ${arrived} packets that arrived (${sent3.sent} sent)`,
      );
      assert.ok(
        total(d3) <= sent3.sent + 20,
        `no more drops than hostile packets (+ a few of B's under load): ${total(d3)} for ${sent3.sent}: ${JSON.stringify(d3)}`,
      );
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

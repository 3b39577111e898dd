// Path MTU in the core (src/core/pmtu.ts, docs/protocol.md §3.1): ICMP "fragmentation needed"
// about our own ESP, which routers send to the terminal the ESP came from, teaches the gateway the
// MTU toward that peer; the terminal then gets ICMP it can use, quoting its own packet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import { buildIpv4, parseIpv4 } from '../../src/core/packet/ipv4.js';
import { buildIcmpFragNeeded, isIcmpUnreachable, parseIcmp } from '../../src/core/packet/icmp.js';
import { seededRandom } from '../../src/base/random.js';
import { dropped, emitted, espFrom, snapshotOf, vpnView } from '../support/core.js';

const KEY = new Uint8Array(32).fill(9);
const A = '10.1.0.10';
const B = '10.2.0.10';
const C = '10.3.0.10';
const ROUTER = '198.51.100.1';

/** G1 (serving A) with encrypting paths A <-> B (peer G2) and A <-> C (peer G3), learned from their ESP. */
function g1(pathMtu?: number, rawEspVpns?: number[]): GatewayCore {
  const sites = [
    { gw: 'G1', prefix: '10.1.0.0/24', spi: 0x101 },
    { gw: 'G2', prefix: '10.2.0.0/24', spi: 0x102 },
    { gw: 'G3', prefix: '10.3.0.0/24', spi: 0x103 },
  ];
  const core = new GatewayCore({
    // Paths used now and then over the test's long virtual time: no aging in the way.
    config: {
      id: 'G1',
      address: '192.0.2.1',
      attached: [Prefix.from('10.1.0.0/24')],
      pathMtu,
      rawEspVpns,
      timers: { idleTimeout: 3_600_000 },
    },
    snapshot: snapshotOf([vpnView(1, 'group', sites, KEY)]),
    now: 0,
    random: seededRandom('pmtu'),
  });
  for (const [peer, spi, from] of [
    ['G2', 0x102, B],
    ['G3', 0x103, C],
  ] as const)
    core.onPacket('outside', espFrom(KEY, peer, spi, 1, from, A, 1n), 1);
  return core;
}

function udp(src: string, dst: string, size: number, df: boolean): Uint8Array {
  return buildIpv4({ src, dst, protocol: 17, payload: new Uint8Array(size - 20).fill(7), df, ttl: 64 });
}

const emits = emitted;
const drops = dropped;
const mtuOf = (core: GatewayCore, remote: string) =>
  core.paths().find((p) => p.local === A && p.remote === remote)?.mtu;

/** A router's ICMP about one of G1's ESP packets, sent to the terminal the ESP came from. */
function routerIcmp(esp: Uint8Array, mtu: number): Uint8Array {
  return buildIcmpFragNeeded(esp, mtu, ROUTER);
}

test("ICMP about our ESP teaches the peer's path MTU; the terminal then gets ICMP quoting its own packet", () => {
  const core = g1();
  assert.equal(mtuOf(core, B), 1500);
  // A's 1400-byte DF datagram leaves as ESP in UDP of 1445 bytes; a router on a 1280 link refuses it.
  const esp = emits(core.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  assert.ok(esp.length > 1280 && esp.length <= 1445);
  const learnt = core.onPacket('outside', routerIcmp(esp, 1280), 11);
  assert.deepEqual(drops(learnt), [], 'consumed, not dropped');
  assert.deepEqual(emits(learnt), [], 'not relayed to the terminal (it quotes ESP)');
  assert.equal(core.stats()['pmtu.learned'], 1);
  assert.equal(mtuOf(core, B), 1280);
  assert.equal(mtuOf(core, C), 1500, 'another peer keeps its own estimate');
  // The next one gets "fragmentation needed" with 1280 - 45, from G1, quoting A's datagram.
  const again = udp(A, B, 1400, true);
  const out = core.onPacket('inside', again, 12);
  assert.deepEqual(drops(out), ['too-big']);
  const icmp = emits(out)[0];
  assert.equal(icmp.note.op, 'icmp-error');
  const ip = parseIpv4(icmp.bytes);
  assert.ok(ip.ok && ip.value.header.src === '192.0.2.1' && ip.value.header.dst === A);
  const m = parseIcmp(ip.value.payload);
  assert.ok(m.ok && isIcmpUnreachable(m.value) && m.value.code === 4 && m.value.nextHopMtu === 1235);
  assert.deepEqual([...m.value.original.subarray(0, 28)], [...again.subarray(0, 28)]);
  // Without DF: fragmented so that every ESP packet fits.
  const frags = emits(core.onPacket('inside', udp(A, B, 1400, false), 13));
  assert.equal(frags.length, 2);
  assert.ok(frags.every((f) => f.bytes.length <= 1280 && (f.bytes[6] & 0x40) !== 0));
  assert.equal(core.executor.counters()['encrypt.fragments'], 2);
});

test('ICMP about ESP we did not send, or long ago, is not believed; reports only ever lower the estimate, to 552 at least', () => {
  const core = g1();
  const esp = emits(core.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  const forged = (mutate: (q: Uint8Array) => void) => {
    const q = esp.slice();
    mutate(q);
    return routerIcmp(q, 600);
  };
  assert.deepEqual(
    drops(
      core.onPacket(
        'outside',
        forged((q) => (q[28] ^= 0xff)),
        11,
      ),
    ),
    ['pmtu-unverified'],
    'another SPI',
  );
  assert.deepEqual(
    drops(
      core.onPacket(
        'outside',
        forged((q) => (q[35] += 5)),
        11,
      ),
    ),
    ['pmtu-unverified'],
    'a sequence number not sent yet',
  );
  assert.deepEqual(
    drops(
      core.onPacket(
        'outside',
        forged((q) => q.set([10, 2, 0, 99], 16)),
        11,
      ),
    ),
    ['pmtu-unverified'],
    'a path we do not have',
  );
  assert.equal(mtuOf(core, B), 1500);
  // Larger than what we use: nothing to learn.
  core.onPacket('outside', routerIcmp(esp, 9000), 12);
  assert.equal(mtuOf(core, B), 1500);
  // Absurdly small: taken as 552.
  core.onPacket('outside', routerIcmp(esp, 300), 13);
  assert.equal(mtuOf(core, B), 552);
  // An old router that reports no MTU: the RFC 1191 plateau below the quoted packet's length (1006).
  const core2 = g1();
  const esp2 = emits(core2.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  core2.onPacket('outside', routerIcmp(esp2, 0), 11);
  assert.equal(mtuOf(core2, B), 1006);
});

test('a learned path MTU ages out (RFC 1191) and the path uses the full MTU again', () => {
  const core = g1();
  const esp = emits(core.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  core.onPacket('outside', routerIcmp(esp, 1280), 11);
  assert.equal(mtuOf(core, B), 1280);
  core.onTick(11 + 600_000 - 1);
  assert.equal(mtuOf(core, B), 1280);
  core.onTick(11 + 600_000);
  assert.equal(mtuOf(core, B), 1500);
  assert.equal(core.stats()['pmtu.expired'], 1);
});

test('the path MTU from the outside interfaces applies to every path at once (and to new ones)', () => {
  const core = g1(1500);
  core.setPathMtu(1280);
  assert.equal(mtuOf(core, B), 1280);
  assert.equal(mtuOf(core, C), 1280);
  const out = core.onPacket('inside', udp(A, C, 1300, true), 21);
  assert.deepEqual(drops(out), ['too-big']);
  assert.equal(core.stats()['pmtu.path'], 1280);
  // Learned values below the interfaces' stay; the interfaces' value caps them.
  const esp = emits(core.onPacket('inside', udp(A, B, 1200, true), 22))[0].bytes;
  core.onPacket('outside', routerIcmp(esp, 1100), 23);
  assert.equal(mtuOf(core, B), 1100);
  core.setPathMtu(1500);
  assert.equal(mtuOf(core, B), 1100);
  assert.equal(mtuOf(core, C), 1500);
});

test('a VPN in rawEspVpns sends raw ESP (protocol 50) and learns from an ICMP quote of 8 bytes; ESP in UDP needs 16', () => {
  const raw = g1(undefined, [1]);
  const esp = emits(raw.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  assert.equal(esp[9], 50, 'raw ESP');
  assert.equal(esp.length, 1400 + 36, 'no UDP header: 8 bytes less than in UDP');
  // An RFC 792 router quotes the header and 8 bytes: enough for raw ESP's SPI and sequence number.
  assert.deepEqual(drops(raw.onPacket('outside', routerIcmp(esp.subarray(0, 28), 1280), 11)), []);
  assert.equal(mtuOf(raw, B), 1280);
  const inUdp = g1();
  const e2 = emits(inUdp.onPacket('inside', udp(A, B, 1400, true), 10))[0].bytes;
  assert.equal(e2[9], 17, 'ESP in UDP by default');
  // Behind the UDP header the SPI is not in 8 bytes: not recognised as about our ESP, nothing learned.
  assert.deepEqual(drops(inUdp.onPacket('outside', routerIcmp(e2.subarray(0, 28), 1280), 11)), ['unsolicited-plain']);
  assert.equal(mtuOf(inUdp, B), 1500);
  assert.deepEqual(drops(inUdp.onPacket('outside', routerIcmp(e2.subarray(0, 36), 1280), 11)), []);
  assert.equal(mtuOf(inUdp, B), 1280);
});

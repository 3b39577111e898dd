// Receive windows across a restart (docs/protocol.md §3.2), on two cores driven by hand: G1 has
// restarted (every receiving SA needs a floor), G2 has not. ESP on a waiting SA is refused and
// starts a search of G1's own; the sequence number G2 claims there becomes the floor; replays
// below it are refused, G2's new packets pass. A search G1 only relays teaches it nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import { buildIpv4, parseIpv4, PROTO_ESP, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho, isIcmpEcho, parseIcmp } from '../../src/core/packet/icmp.js';
import { parseSearchPacket, buildSearchPacket } from '../../src/core/search/search-packet.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';
import { espSeal } from '../../src/crypto/esp.js';
import { seededRandom } from '../../src/base/random.js';
import { snapshotOf, vpnView } from '../support/core.js';

const KEY = new Uint8Array(32).fill(7);
const A = '10.1.0.10';
const B = '10.2.0.10';
const SPI_G2 = 0x102;

/** VPN1 (group): G1 serves 10.1.0.0/24 and G2 10.2.0.0/24. */
const snapshot = snapshotOf([
  {
    ...vpnView(
      1,
      'group',
      [
        { gw: 'G1', prefix: '10.1.0.0/24', spi: 0x101 },
        { gw: 'G2', prefix: '10.2.0.0/24', spi: SPI_G2 },
      ],
      KEY,
    ),
    name: 'VPN1',
  },
]);

/** G1 after a restart (every receiving SA waits for a floor), or fresh. */
function g1(restarted: boolean, maxSearchesInFlight?: number): GatewayCore {
  return new GatewayCore({
    config: {
      id: 'G1',
      address: '192.0.2.1',
      attached: [Prefix.from('10.1.0.0/24')],
      ...(maxSearchesInFlight ? { limits: { maxSearchesInFlight } } : {}),
    },
    snapshot,
    now: 0,
    random: seededRandom('rx-floors-g1'),
    rxNeedsFloor: () => restarted,
  });
}

/** G2 has sent 99 packets under its key already (its sending SA resumes at 100). */
function g2(): GatewayCore {
  return new GatewayCore({
    config: { id: 'G2', address: '192.0.2.2', attached: [Prefix.from('10.2.0.0/24')] },
    snapshot,
    now: 0,
    random: seededRandom('rx-floors-g2'),
    txSeqStart: () => 100n,
  });
}

/** ESP as G2's earlier packets looked (captured on the WAN): B -> A with G2's key. */
function oldEsp(seq: bigint): Uint8Array {
  const { key, salt } = deriveSenderKey(KEY, 1, 1, 'G2');
  const inner = buildIcmpEcho({ type: 8, id: 9, seq: Number(seq), data: new Uint8Array(32) });
  return buildIpv4({
    src: B,
    dst: A,
    protocol: PROTO_ESP,
    payload: espSeal({ spi: SPI_G2, key, salt }, seq, PROTO_ICMP, inner),
  });
}

const ping = (src: string, dst: string) =>
  buildIpv4({
    src,
    dst,
    protocol: PROTO_ICMP,
    payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data: new Uint8Array(16) }),
  });
const emits = (actions: CoreAction[]) => actions.flatMap((a) => (a.type === 'emit' ? [a] : []));
const drops = (actions: CoreAction[]) => actions.flatMap((a) => (a.type === 'drop' ? [a.reason] : []));
const searchRequests = (actions: CoreAction[]) =>
  emits(actions).filter((a) => a.note.op === 'search-request' && a.note.phase === 'destination');

/** The terminal's IP stack: an echo reply to an echo request, data unchanged. */
function echo(request: Uint8Array): Uint8Array {
  const ip = parseIpv4(request);
  assert.ok(ip.ok);
  const icmp = parseIcmp(ip.value.payload);
  assert.ok(icmp.ok && isIcmpEcho(icmp.value) && icmp.value.type === 8);
  return buildIpv4({
    src: ip.value.header.dst,
    dst: ip.value.header.src,
    protocol: PROTO_ICMP,
    payload: buildIcmpEcho({ type: 0, id: icmp.value.id, seq: icmp.value.seq, data: icmp.value.data }),
  });
}

/**
 * A destination search `request` (emitted by `origin` toward the far terminal) crosses `far`,
 * whose terminal echoes it; returns what `origin` does with the reply.
 */
function runSearch(request: Uint8Array, origin: GatewayCore, far: GatewayCore, now: number): CoreAction[] {
  const relayed = emits(far.onPacket('outside', request, now)).find((a) => a.note.op === 'search-relay');
  assert.ok(relayed, 'the far gateway relays the request to its terminal');
  const back = emits(far.onPacket('inside', echo(relayed.bytes), now + 1)).find((a) => a.note.op === 'search-relay');
  assert.ok(back, "the far gateway relays the terminal's echo back");
  return origin.onPacket('outside', back.bytes, now + 2);
}

test('restarted receiver: ESP on a waiting SA is refused and asks for a floor; replays below it stay refused, new packets pass', () => {
  const r = g1(true);
  const s = g2();
  assert.equal(r.stats()['rx-floor.waiting'], 1, "G2's SA waits");

  // A captured packet, re-injected: refused, and G1 searches for the path itself.
  const first = r.onPacket('outside', oldEsp(42n), 10);
  assert.deepEqual(drops(first), ['unverified-sa']);
  assert.ok(!emits(first).some((a) => a.note.op === 'decrypt'));
  const requests = searchRequests(first);
  assert.equal(requests.length, 1, 'one search toward B');
  // More of them while the search runs: refused, no second search.
  const more = r.onPacket('outside', oldEsp(43n), 11);
  assert.deepEqual(drops(more), ['unverified-sa']);
  assert.equal(searchRequests(more).length, 0);

  // The search completes through G2, which claims its next sequence number (100).
  const done = runSearch(requests[0].bytes, r, s, 20);
  assert.ok(
    done.some((a) => a.type === 'trace' && a.event.event === 'floor-learned' && a.event.detail?.floor === '100'),
    JSON.stringify(done.filter((a) => a.type === 'trace').map((a) => a.type === 'trace' && a.event)),
  );
  assert.equal(r.stats()['rx-floor.waiting'], 0);
  assert.equal(r.stats()['rx-floor.learned'], 1);
  assert.equal(r.paths().find((p) => p.local === A && p.remote === B)?.action, 'encrypt');

  // Everything G2 sent before the floor is a replay now; what G2 sends next is delivered.
  for (const seq of [1n, 42n, 43n, 99n])
    assert.deepEqual(drops(r.onPacket('outside', oldEsp(seq), 30)), ['replay'], `seq ${seq}`);
  const fresh = emits(s.onPacket('inside', ping(B, A), 31)).find((a) => a.note.op === 'encrypt');
  assert.ok(fresh && fresh.note.op === 'encrypt' && fresh.note.seq === 100n, 'G2 sends seq 100');
  const delivered = emits(r.onPacket('outside', fresh.bytes, 32));
  assert.ok(
    delivered.some((a) => a.note.op === 'decrypt'),
    "G2's new packet is delivered",
  );
  assert.deepEqual(drops(r.onPacket('outside', fresh.bytes, 33)), ['replay']);
});

test('a search the restarted receiver only relays teaches it nothing; the ESP that follows asks for the floor, then flows', () => {
  const r = g1(true);
  const s = g2();
  // B -> A: G2 searches, G1 relays and installs the path from the reply in transit.
  const req = searchRequests(s.onPacket('inside', ping(B, A), 10));
  assert.equal(req.length, 1);
  const flushed = emits(runSearch(req[0].bytes, s, r, 11)).filter((a) => a.note.op === 'encrypt');
  assert.equal(flushed.length, 1, 'G2 flushes its buffered packet');
  assert.equal(
    r.paths().find((p) => p.local === A && p.remote === B)?.action,
    'encrypt',
    'G1 installed the path as a relay',
  );
  assert.equal(r.stats()['rx-floor.waiting'], 1, 'but learned no floor: the claims it relayed were not made for it');

  // The flushed packet meets the waiting SA (the path exists, the SPI is not installed).
  const refused = r.onPacket('outside', flushed[0].bytes, 13);
  assert.deepEqual(drops(refused), ['unverified-sa']);
  const learning = searchRequests(refused);
  assert.equal(learning.length, 1, 'G1 searches to learn the floor');
  runSearch(learning[0].bytes, r, s, 14);
  assert.equal(r.stats()['rx-floor.waiting'], 0);
  const next = emits(s.onPacket('inside', ping(B, A), 20)).find((a) => a.note.op === 'encrypt')!;
  assert.ok(
    emits(r.onPacket('outside', next.bytes, 21)).some((a) => a.note.op === 'decrypt'),
    'B -> A flows',
  );
  assert.deepEqual(
    drops(r.onPacket('outside', flushed[0].bytes, 22)),
    ['replay'],
    'the refused packet, replayed, is below the floor',
  );
});

test('a claim whose sequence number was changed in transit fails its proof (search-forged): no floor from it', () => {
  const r = g1(true);
  const s = g2();
  const request = searchRequests(r.onPacket('outside', oldEsp(5n), 10))[0];
  const relayed = emits(s.onPacket('outside', request.bytes, 11)).find((a) => a.note.op === 'search-relay')!;
  const reply = emits(s.onPacket('inside', echo(relayed.bytes), 12)).find((a) => a.note.op === 'search-relay')!;
  const p = parseSearchPacket(reply.bytes);
  assert.ok(p.ok);
  // An attacker lowers G2's claimed sequence number to reopen old packets.
  const msg = {
    ...p.value.msg,
    entries: p.value.msg.entries.map((e) =>
      e.gateway === 'G2' ? { ...e, vpns: e.vpns.map((c) => ({ ...c, seq: 1n })) } : e,
    ),
  };
  const forged = buildSearchPacket({
    src: p.value.ip.src,
    dst: p.value.ip.dst,
    icmpType: 0,
    id: p.value.id,
    seq: p.value.seq,
    msg,
  });
  assert.deepEqual(drops(r.onPacket('outside', forged, 13)), ['search-forged']);
  assert.equal(r.stats()['rx-floor.waiting'], 1);
  // The genuine reply still completes the search.
  r.onPacket('outside', reply.bytes, 14);
  assert.equal(r.stats()['rx-floor.waiting'], 0);
  assert.deepEqual(drops(r.onPacket('outside', oldEsp(5n), 15)), ['replay']);
});

test('a gateway whose receiving SAs no earlier run used (a first start) takes ESP at once, as before', () => {
  const r = g1(false);
  assert.equal(r.stats()['rx-floor.waiting'], 0);
  assert.ok(emits(r.onPacket('outside', oldEsp(42n), 10)).some((a) => a.note.op === 'decrypt'));
  assert.deepEqual(drops(r.onPacket('outside', oldEsp(42n), 11)), ['replay']);
});

test('a learning search that finds nobody leaves the path alone and asks again after the search time', () => {
  const r = g1(true);
  const first = r.onPacket('outside', oldEsp(42n), 0);
  assert.equal(searchRequests(first).length, 1);
  // No answer: the search retries and gives up without a negative entry (nobody waits on the path).
  let now = 0;
  while (r.stats()['search.originating'] > 0 && now < 15_000) r.onTick((now += 250));
  assert.equal(r.stats()['search.failed'], 1);
  assert.equal(
    r.paths().find((p) => p.local === A && p.remote === B),
    undefined,
    'no discard entry for the path',
  );
  // One learning search per SA per search time (250 ms source wait + 1+2+4+8 s): replayed ESP cannot make a storm.
  assert.equal(
    searchRequests(r.onPacket('outside', oldEsp(43n), 15_249)).length,
    0,
    'not before the search time is over',
  );
  assert.equal(searchRequests(r.onPacket('outside', oldEsp(44n), 15_250)).length, 1, 'then the next ESP asks again');
});

test('at the search limit the ESP is refused without a search, and the next one asks once there is room', () => {
  const r = g1(true, 1);
  // A terminal's own search takes the only slot.
  assert.equal(searchRequests(r.onPacket('inside', ping(A, '10.2.0.99'), 0)).length, 1);
  const refused = r.onPacket('outside', oldEsp(42n), 1);
  assert.deepEqual(drops(refused), ['unverified-sa']);
  assert.equal(searchRequests(refused).length, 0);
  assert.equal(r.stats()['rx-floor.search-limit'], 1);
  // That search ends (no answer); the next ESP starts the learning search at once.
  let now = 1;
  while (r.stats()['search.originating'] > 0 && now < 15_000) r.onTick((now += 250));
  assert.equal(searchRequests(r.onPacket('outside', oldEsp(43n), now + 1)).length, 1);
});

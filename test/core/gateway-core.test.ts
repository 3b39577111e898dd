// The gateway core driven directly (no simulator): bad input, ICMP "fragmentation needed",
// the receive-side membership check, and revocation when the authority's snapshot changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import type { AuthoritySnapshot, VpnView } from '../../src/core/types.js';
import { buildIpv4, parseIpv4, PROTO_ESP, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho, isIcmpUnreachable, parseIcmp } from '../../src/core/packet/icmp.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';
import { espSeal } from '../../src/crypto/esp.js';
import { seededRandom } from '../../src/base/random.js';
import { buildSearchPacket } from '../../src/core/search/search-packet.js';

const KEY = new Uint8Array(32).fill(7);
const NEVER = Number.MAX_SAFE_INTEGER;

function vpn1(members: { gw: string; prefix: string; spi: number }[]): VpnView {
  return {
    id: 1,
    name: 'VPN1',
    mode: 'group',
    epochs: [{ epoch: 1, key: KEY, activeFrom: 0, expiresAt: NEVER }],
    members: members.map((m) => ({
      gateway: m.gw,
      address: `192.0.2.${m.spi & 0xff}`,
      prefixes: [Prefix.from(m.prefix)],
      spis: [{ epoch: 1, spi: m.spi }],
    })),
  };
}

function snapshot(
  version: number,
  members = [
    { gw: 'G1', prefix: '10.1.0.0/24', spi: 0x101 },
    { gw: 'G2', prefix: '10.2.0.0/24', spi: 0x102 },
  ],
): AuthoritySnapshot {
  return { version, protectedPrefixes: members.map((m) => Prefix.from(m.prefix)), vpns: [vpn1(members)] };
}

function g1(): GatewayCore {
  return new GatewayCore({
    config: { id: 'G1', address: '192.0.2.1', attached: [Prefix.from('10.1.0.0/24')] },
    snapshot: snapshot(1),
    now: 0,
    random: seededRandom('gateway-core-test'),
  });
}

function ping(src: string, dst: string, size = 56, df = false): Uint8Array {
  return buildIpv4({
    src,
    dst,
    protocol: PROTO_ICMP,
    payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data: new Uint8Array(size) }),
    df,
  });
}

/** ESP as G2 would send it for B -> A, with an arbitrary inner source. */
function espFromG2(src: string, dst: string, seq: bigint): Uint8Array {
  const { key, salt } = deriveSenderKey(KEY, 1, 1, 'G2');
  const inner = buildIcmpEcho({ type: 8, id: 9, seq: 9, data: new Uint8Array(32) });
  return buildIpv4({
    src,
    dst,
    protocol: PROTO_ESP,
    payload: espSeal({ spi: 0x102, key, salt }, seq, PROTO_ICMP, inner),
  });
}

test('arbitrary bytes from either side never throw; each is forwarded, dropped with a reason, or searched (property)', () => {
  const core = g1();
  let now = 0;
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), (inside, bytes) => {
      now += 1;
      const actions = core.onPacket(inside ? 'inside' : 'outside', bytes, now);
      for (const a of actions) assert.ok(['emit', 'drop', 'trace'].includes(a.type));
      core.onTick(now);
    }),
    { numRuns: 2000 },
  );
  assert.ok(core.stats()['drop.malformed'] > 0);
});

test('mutated valid packets never throw (property)', () => {
  const core = g1();
  const msg = {
    phase: 'destination' as const,
    proxied: false,
    txid: new Uint8Array(8).fill(3),
    pathSrc: '10.2.0.10',
    pathDst: '10.1.0.10',
    originator: 'G2',
    proxiedBy: '',
    entries: [
      {
        side: 'src' as const,
        gateway: 'G2',
        address: '192.0.2.2',
        vpns: [{ vpnId: 1, epoch: 1, seq: 1n, proof: new Uint8Array(16) }],
      },
    ],
  };
  const base = [
    ping('10.1.0.10', '10.2.0.10'),
    espFromG2('10.2.0.10', '10.1.0.10', 1n),
    buildSearchPacket({ src: '10.2.0.10', dst: '10.1.0.10', icmpType: 8, id: 3, seq: 3, msg }),
    buildSearchPacket({ src: '10.1.0.10', dst: '10.2.0.10', icmpType: 0, id: 3, seq: 3, msg }),
  ];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.boolean(),
      (which, muts, inside) => {
        const p = base[which].slice();
        for (const [i, v] of muts) p[i % p.length] = v;
        core.onPacket(inside ? 'inside' : 'outside', p, 1);
      },
    ),
    { numRuns: 1000 },
  );
});

test('ESP for a path without an entry is accepted only if the sender puts the source in that VPN', () => {
  const core = g1();
  // G2 puts 10.2.0.0/24 into VPN1: accepted, entry learned.
  const ok = core.onPacket('outside', espFromG2('10.2.0.10', '10.1.0.10', 1n), 10);
  const emitted = ok.find((a) => a.type === 'emit');
  assert.ok(emitted && emitted.type === 'emit' && emitted.note.op === 'decrypt');
  assert.ok(
    core.paths().some((p) => p.remote === '10.2.0.10' && p.action === 'encrypt' && p.reason === 'learned-from-esp'),
  );
  // A source outside G2's prefixes, under G2's valid key: spoofed inner source, dropped.
  const bad = core.onPacket('outside', espFromG2('10.9.0.10', '10.1.0.10', 2n), 11);
  assert.deepEqual(
    bad.filter((a) => a.type === 'drop').map((a) => a.type === 'drop' && a.reason),
    ['membership'],
  );
  assert.ok(!bad.some((a) => a.type === 'emit'));
});

test('a DF packet too big for the path after encryption gets ICMP "fragmentation needed" with the usable MTU', () => {
  const core = g1();
  core.onPacket('outside', espFromG2('10.2.0.10', '10.1.0.10', 1n), 1); // learn A<->B
  const big = ping('10.1.0.10', '10.2.0.10', 1500 - 28, true); // exactly 1500 bytes before ESP
  const actions = core.onPacket('inside', big, 2);
  const icmp = actions.find((a) => a.type === 'emit');
  assert.ok(icmp && icmp.type === 'emit' && icmp.note.op === 'icmp-error');
  const ip = parseIpv4(icmp.bytes);
  assert.ok(ip.ok);
  assert.equal(ip.value.header.dst, '10.1.0.10');
  const m = parseIcmp(ip.value.payload);
  assert.ok(m.ok && isIcmpUnreachable(m.value) && m.value.code === 4);
  assert.equal(m.ok && isIcmpUnreachable(m.value) && m.value.nextHopMtu, 1500 - 45);
  // A packet that fits goes out encrypted.
  const fits = core.onPacket('inside', ping('10.1.0.10', '10.2.0.10', 1500 - 28 - 45, true), 3);
  assert.ok(fits.some((a) => a.type === 'emit' && a.note.op === 'encrypt'));
});

test('a snapshot that removes the peer from the VPN removes the path at once', () => {
  const core = g1();
  core.onPacket('outside', espFromG2('10.2.0.10', '10.1.0.10', 1n), 1);
  assert.ok(core.paths().some((p) => p.action === 'encrypt'));
  const actions = core.applySnapshot(snapshot(2, [{ gw: 'G1', prefix: '10.1.0.0/24', spi: 0x101 }]), 2);
  assert.ok(actions.some((a) => a.type === 'trace' && a.event.event === 'path-revoked'));
  assert.equal(core.paths().filter((p) => p.action === 'encrypt').length, 0);
  // The removed member's ESP is no longer accepted (its SA is gone).
  const after = core.onPacket('outside', espFromG2('10.2.0.10', '10.1.0.10', 2n), 3);
  assert.ok(!after.some((a) => a.type === 'emit'));
});

test('unprotected local terminals are relayed plain without a search', () => {
  const core = g1();
  const actions = core.onPacket('inside', ping('10.5.0.10', '203.0.113.9'), 1);
  assert.ok(actions.some((a) => a.type === 'emit' && a.note.op === 'plain'));
  assert.equal(core.stats()['search.started'] ?? 0, 0);
});

test('a punted packet is counted once: the datapath punts it, the core runs it again without counting the punt twice', () => {
  const core = g1();
  // As the gateway's datapath does: its executor (the same one) punts, then hands the packet over.
  const first = ping('10.1.0.10', '10.2.0.10');
  assert.equal(core.executor.process('inside', first, 0).kind, 'punt');
  core.onPacket('inside', first, 0, true);
  const second = ping('10.1.0.10', '10.2.0.10');
  assert.deepEqual(core.executor.process('inside', second, 1), { kind: 'punt', reason: 'pending' });
  core.onPacket('inside', second, 1, true);
  // An ESP packet for a path without an entry: punted (miss), learned, run again, decrypted.
  const esp = espFromG2('10.2.0.10', '10.1.0.11', 1n);
  assert.equal(core.executor.process('outside', esp, 2).kind, 'punt');
  core.onPacket('outside', esp, 2, true);
  const s = core.stats();
  assert.equal(s['executor.punt.miss'], 2, 'one count per punted packet');
  assert.equal(s['executor.punt.pending'], 1);
  assert.equal(s['executor.decrypt.packets'], 1);
  // Without a datapath in front (the simulator), the core's own run is the only one: still one count.
  const sim = g1();
  sim.onPacket('inside', ping('10.1.0.10', '10.2.0.10'), 0);
  sim.onPacket('outside', espFromG2('10.2.0.10', '10.1.0.11', 1n), 1);
  assert.equal(sim.stats()['executor.punt.miss'], 2);
});

test('maxSearchesInFlight bounds the searches a gateway originates and those it relays; every refusal is counted', () => {
  const core = new GatewayCore({
    config: {
      id: 'G1',
      address: '192.0.2.1',
      attached: [Prefix.from('10.1.0.0/24')],
      limits: { maxSearchesInFlight: 10 },
      timers: { searchRetries: 0 },
    },
    snapshot: snapshot(1),
    now: 0,
    random: seededRandom('search-bound'),
  });
  // Originated: first packets from A to 100 protected destinations.
  for (let i = 0; i < 100; i++) core.onPacket('inside', ping('10.1.0.10', `10.2.0.${i + 1}`), 0);
  let s = core.stats();
  assert.equal(s['search.originating'], 10);
  assert.equal(s['search.started'], 10);
  assert.equal(s['drop.search-limit'], 90);
  assert.equal(core.paths().filter((p) => p.action === 'pending').length, 10, 'no entry for a refused search');
  // Relayed: requests from the WAN toward A from 100 transactions.
  for (let i = 0; i < 100; i++) {
    const txid = new Uint8Array(8).fill(i + 1);
    const msg = {
      phase: 'destination' as const,
      proxied: false,
      txid,
      pathSrc: `10.2.1.${i + 1}`,
      pathDst: '10.1.0.10',
      originator: 'G2',
      proxiedBy: '',
      entries: [],
    };
    core.onPacket(
      'outside',
      buildSearchPacket({ src: msg.pathSrc, dst: msg.pathDst, icmpType: 8, id: i, seq: 1, msg }),
      0,
    );
  }
  s = core.stats();
  assert.equal(s['search.relaying'], 10);
  assert.equal(s['search.relayed'], 100);
  assert.equal(s['search.evicted'], 90);
  // Once the searches end (no answer: negative entries), there is room again.
  core.onTick(60_000);
  assert.equal(core.stats()['search.originating'], 0);
  core.onPacket('inside', ping('10.1.0.10', '10.2.0.200'), 60_001);
  assert.equal(core.stats()['search.originating'], 1);
});

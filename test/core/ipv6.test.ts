// IPv6 through the core end to end (docs/protocol.md §2.8): two GatewayCores with the reference
// executor, a WAN between them and echoing terminals behind them. A v6 pair searches over ICMPv6,
// installs, encrypts and decrypts exactly as a v4 pair; dual-stack LANs carry v4 and v6 pairs at
// once; what the link needs passes untouched; Packet Too Big replaces fragmentation and teaches
// the path MTU; hostile v6 input (forged search replies, garbage extension headers, fragments,
// plaintext, forged Packet Too Big) is counted and dropped while legitimate traffic goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prefix } from '../../src/base/addr.js';
import { seededRandom } from '../../src/base/random.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import type { TsExecutor } from '../../src/core/ts-executor.js';
import type { VpnView } from '../../src/core/types.js';
import { echoReplyFor } from '../../src/core/packet/icmp.js';
import { buildIcmpv6PacketTooBig, parseIcmpv6 } from '../../src/core/packet/icmpv6.js';
import { buildIpv6, parseIpv6 } from '../../src/core/packet/ipv6.js';
import { buildIpv4, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { packetDst, packetSrc } from '../../src/core/packet/ip.js';
import { buildSearchPacket, parseSearchPacket } from '../../src/core/search/search-packet.js';
import { snapshotOf } from '../support/core.js';
import { A6, B6, icmp6, ping6 } from './executor-v6-vectors.js';
import { v6Packet } from './packet/v6-chain.js';

const KEY = new Uint8Array(32).fill(7);
const A4 = '10.1.0.10';
const B4 = '10.2.0.10';
const G1_V6 = '2001:db8::1';
const G2_V6 = '2001:db8::2';
const NEVER = Number.MAX_SAFE_INTEGER;

function vpn(): VpnView {
  const member = (gw: string, v4: string, v6: string, spi: number, address: string) => ({
    gateway: gw,
    address,
    prefixes: [Prefix.from(v4), Prefix.from(v6)],
    spis: [{ epoch: 1, spi }],
  });
  return {
    id: 1,
    name: 'V1',
    mode: 'group',
    epochs: [{ epoch: 1, key: KEY, activeFrom: 0, expiresAt: NEVER }],
    members: [
      member('G1', '10.1.0.0/24', 'fd00:1::/64', 0x201, '192.0.2.1'),
      member('G2', '10.2.0.0/24', 'fd00:2::/64', 0x202, '192.0.2.2'),
    ],
  };
}

/** Two gateways on a WAN, each with a dual-stack LAN of echoing terminals. */
class World {
  readonly g: Record<'G1' | 'G2', GatewayCore>;
  /** Everything that crossed the WAN. */
  readonly wan: Uint8Array[] = [];
  /** Packets that reached a terminal, by terminal address. */
  readonly delivered = new Map<string, Uint8Array[]>();
  readonly drops: string[] = [];
  readonly emits: CoreAction[] = [];
  now = 0;
  /** Largest packet the WAN carries; larger ones are answered by a router's Packet Too Big (IPv6). */
  wanMtu = 1500;
  /** Terminals that answer echo requests. */
  echo = true;

  /** IKE requests of the cores (pairwise VPNs), and packets addressed to a gateway itself. */
  readonly ike: { by: string; peer: string; address: string }[] = [];
  readonly toGateway: Uint8Array[] = [];

  constructor(opts: { pathMtu?: number; vpns?: VpnView[] } = {}) {
    const make = (id: 'G1' | 'G2', v4: string, v6: string, address6: string) =>
      new GatewayCore({
        config: {
          id,
          address: id === 'G1' ? '192.0.2.1' : '192.0.2.2',
          address6,
          attached: [Prefix.from(v4), Prefix.from(v6)],
          pathMtu: opts.pathMtu,
        },
        snapshot: snapshotOf(opts.vpns ?? [vpn()]),
        now: 0,
        random: seededRandom(`v6-${id}`),
      });
    this.g = {
      G1: make('G1', '10.1.0.0/24', 'fd00:1::/64', G1_V6),
      G2: make('G2', '10.2.0.0/24', 'fd00:2::/64', G2_V6),
    };
  }

  private home(ip: string): 'G1' | 'G2' {
    return ip.startsWith('10.1.') || ip.startsWith('fd00:1:') ? 'G1' : 'G2';
  }

  /** A terminal sends a packet to its gateway. */
  send(packet: Uint8Array): void {
    this.run(this.home(packetSrc(packet)), 'inside', packet);
  }

  /** Something on the WAN sends a packet to a gateway's outside. */
  inject(gw: 'G1' | 'G2', packet: Uint8Array): CoreAction[] {
    return this.run(gw, 'outside', packet);
  }

  run(gw: 'G1' | 'G2', from: 'inside' | 'outside', packet: Uint8Array): CoreAction[] {
    const actions = this.g[gw].onPacket(from, packet, this.now);
    this.carry(gw, actions);
    return actions;
  }

  /** Advances the clock; what the gateways emit on their timers goes its way. */
  tick(ms: number): void {
    this.now += ms;
    for (const gw of ['G1', 'G2'] as const) this.carry(gw, this.g[gw].onTick(this.now));
  }

  /** Carries out a gateway's actions, and whatever they cause, to the end. */
  private carry(gw: 'G1' | 'G2', actions: CoreAction[]): void {
    const queue: ['G1' | 'G2', 'inside' | 'outside', Uint8Array][] = [];
    const handle = (at: 'G1' | 'G2', list: CoreAction[]) => {
      for (const a of list) {
        if (a.type === 'drop') this.drops.push(`${at}:${a.reason}`);
        if (a.type === 'ike-request') this.ike.push({ by: at, peer: a.peer, address: a.address });
        if (a.type !== 'emit') continue;
        this.emits.push(a);
        const dst = packetDst(a.bytes);
        if (this.home(dst) === at) {
          const got = this.delivered.get(dst) ?? [];
          got.push(a.bytes);
          this.delivered.set(dst, got);
          const reply = this.echo ? echoReplyFor(a.bytes) : undefined;
          if (reply?.ok) queue.push([at, 'inside', reply.value]);
        } else if (dst === G1_V6 || dst === G2_V6) this.toGateway.push(a.bytes);
        else {
          this.wan.push(a.bytes);
          if (a.bytes.length > this.wanMtu && a.bytes[0] >> 4 === 6) {
            // A router on the way answers the sender: the terminal's address (bump-in-the-wire ESP).
            queue.push([at, 'outside', buildIcmpv6PacketTooBig(a.bytes, this.wanMtu, '2001:db8:ffff::1')]);
          } else queue.push([at === 'G1' ? 'G2' : 'G1', 'outside', a.bytes]);
        }
      }
    };
    handle(gw, actions);
    for (let n = 0; n < 1000; n++) {
      const next = queue.shift();
      if (!next) return;
      handle(next[0], this.g[next[0]].onPacket(next[1], next[2], this.now));
    }
  }

  count(gw: 'G1' | 'G2', name: string): number {
    return this.g[gw].stats()[name] ?? 0;
  }
}

const isEsp = (p: Uint8Array) => (p[0] >> 4 === 6 ? p[6] === 17 || p[6] === 50 : p[9] === 17 || p[9] === 50);
const payloadOf = (p: Uint8Array) => new TextDecoder().decode(p);

test('a v6 pair searches over ICMPv6, installs on both gateways, encrypts and decrypts', () => {
  const w = new World();
  w.send(ping6(B6, A6, 'secret-v6-marker'));
  // The ping reached A (after the search) and A's reply reached B.
  assert.equal(w.delivered.get(A6)?.filter((p) => payloadOf(p).includes('secret-v6-marker')).length, 1);
  assert.equal(w.delivered.get(B6)?.filter((p) => payloadOf(p).includes('secret-v6-marker')).length, 1);
  for (const [gw, local, remote] of [
    ['G2', B6, A6],
    ['G1', A6, B6],
  ] as const) {
    const p = w.g[gw].paths().find((x) => x.local === local && x.remote === remote);
    assert.equal(p?.action, 'encrypt', `${gw} ${local}>${remote}`);
    assert.equal(p?.peer, gw === 'G1' ? 'G2' : 'G1');
  }
  // On the WAN: ICMPv6 search messages and ESP in UDP, never the marker in the clear.
  const searches = w.wan.filter((p) => parseSearchPacket(p).ok);
  assert.ok(searches.length >= 2, 'a search request and its reply crossed the WAN');
  for (const s of searches) {
    const ip = parseIpv6(s);
    assert.ok(ip.ok);
    assert.equal(ip.value.header.nextHeader, 58, 'ICMPv6, no extension headers');
  }
  const data = w.wan.filter((p) => !parseSearchPacket(p).ok);
  assert.ok(data.length >= 2);
  for (const p of data) {
    assert.ok(isEsp(p), 'only ESP between the gateways');
    assert.ok(!payloadOf(p).includes('secret-v6-marker'));
  }
  assert.equal(w.count('G2', 'search.completed'), 1);
  // The next packet goes straight through: no second search.
  w.send(ping6(B6, A6, 'second'));
  assert.equal(w.count('G2', 'search.started'), 1);
  assert.equal(w.delivered.get(A6)?.filter((p) => payloadOf(p).includes('second')).length, 1);
});

test('dual stack: v4 and v6 pairs of the same LANs at once, each searched and protected', () => {
  const w = new World();
  w.send(ping6(B6, A6, 'six-forth'));
  w.send(
    buildIpv4({
      src: B4,
      dst: A4,
      protocol: PROTO_ICMP,
      payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data: new TextEncoder().encode('four') }),
      ttl: 64,
      df: true,
    }),
  );
  w.send(ping6(A6, B6, 'six-back'));
  assert.equal(w.delivered.get(A6)?.filter((p) => payloadOf(p).includes('six-forth')).length, 1);
  assert.equal(w.delivered.get(A4)?.filter((p) => payloadOf(p).includes('four')).length, 1);
  assert.equal(w.delivered.get(B6)?.filter((p) => payloadOf(p).includes('six-back')).length, 1);
  const g2 = w.g.G2.paths()
    .map((p) => `${p.local}>${p.remote}:${p.action}`)
    .sort();
  assert.deepEqual(g2, ['10.2.0.10>10.1.0.10:encrypt', 'fd00:2::10>fd00:1::10:encrypt']);
  for (const p of w.wan.filter((x) => !parseSearchPacket(x).ok)) assert.ok(isEsp(p));
  assert.equal(w.count('G2', 'search.started'), 2);
});

test('what the link needs passes untouched both ways: ND, RA, MLD, link-local, multicast; never searched', () => {
  const w = new World();
  const link = [
    icmp6(B6, 'ff02::1:ff00:10', 135, new Uint8Array(20), [], 255),
    icmp6('::', 'ff02::1:ff00:10', 135, new Uint8Array(20), [], 255),
    icmp6('fe80::1', 'ff02::1', 134, new Uint8Array(8), [], 255),
    icmp6('fe80::2', 'ff02::16', 143, new Uint8Array(4), [{ type: 0 }], 1),
    ping6('fe80::2', 'fe80::1'),
    icmp6(B6, A6, 136, new Uint8Array(20), [], 255),
  ];
  for (const p of link) {
    for (const side of ['inside', 'outside'] as const) {
      const out = w.g.G2.onPacket(side, p, 0);
      assert.deepEqual(
        out.map((a) => a.type),
        ['emit'],
      );
      assert.deepEqual((out[0] as { bytes: Uint8Array }).bytes, p);
    }
  }
  assert.equal(w.count('G2', 'search.started'), 0);
  assert.equal(w.g.G2.paths().length, 0);
  assert.equal(w.count('G2', 'executor.pass.packets'), link.length * 2);
});

test('too big for the path: ICMPv6 Packet Too Big from the outside v6 address, MTU less our overhead', () => {
  const w = new World({ pathMtu: 1400 });
  w.send(ping6(B6, A6, 'hello'));
  const big = ping6(B6, A6, 'x'.repeat(1400));
  const actions = w.g.G2.onPacket('inside', big, 1);
  const ptb = actions.find((a) => a.type === 'emit');
  assert.ok(ptb && ptb.type === 'emit');
  assert.deepEqual(ptb.note, { op: 'icmp-error', type: 2, code: 0 });
  const ip = parseIpv6(ptb.bytes);
  assert.ok(ip.ok);
  assert.equal(ip.value.header.src, G2_V6);
  assert.equal(ip.value.header.dst, B6);
  const m = parseIcmpv6(ptb.bytes, 40, ptb.bytes.length);
  assert.ok(m.ok);
  assert.equal(m.value.mtu, 1400 - 45);
  assert.ok(ptb.bytes.length <= 1280);
  assert.ok(actions.some((a) => a.type === 'drop' && a.reason === 'too-big'));
  // A packet of exactly the advertised size goes through.
  w.send(ping6(B6, A6, 'y'.repeat(1400 - 45 - 48)));
  assert.equal(w.delivered.get(A6)?.filter((p) => payloadOf(p).includes('yyyy')).length, 1);
  // The carried form (v6 in v6) adds 85: the advertised MTU says so.
  const carried = buildIpv6({
    src: B6,
    dst: A6,
    nextHeader: 41,
    payload: ping6('fd00:2::99', 'fd00:1::99', 'z'.repeat(1340)),
  });
  const c = w.g.G2.onPacket('inside', carried, 2).find((a) => a.type === 'emit');
  assert.ok(c && c.type === 'emit');
  const cm = parseIcmpv6(c.bytes, 40, c.bytes.length);
  assert.ok(cm.ok);
  assert.equal(cm.value.mtu, 1400 - 85);
});

test('Packet Too Big from a router about our ESP teaches the path MTU; a forged one does not', () => {
  const w = new World();
  w.send(ping6(B6, A6, 'warm-up'));
  w.wanMtu = 1400;
  // B sends 1450 bytes: the ESP is refused by a router, G2 learns 1400; the terminal's next try gets our PTB.
  w.send(ping6(B6, A6, 'q'.repeat(1400)));
  assert.equal(w.count('G2', 'pmtu.learned'), 1);
  assert.equal(w.g.G2.paths().find((p) => p.local === B6)?.mtu, 1400);
  const again = w.g.G2.onPacket('inside', ping6(B6, A6, 'q'.repeat(1400)), 5);
  const ptb = again.find((a) => a.type === 'emit');
  assert.ok(ptb && ptb.type === 'emit');
  const m = parseIcmpv6(ptb.bytes, 40, ptb.bytes.length);
  assert.ok(m.ok);
  assert.equal(m.value.mtu, 1400 - 45);
  // Forged: a quote of ESP B -> A in UDP 4500 with an SPI that is not G2's sending SPI.
  const fake = v6Packet(
    B6,
    A6,
    [],
    17,
    new Uint8Array([0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0, 0, 0, 0x99, 0x99, 0, 0, 0, 1, ...new Uint8Array(24)]),
  );
  w.inject('G2', buildIcmpv6PacketTooBig(fake, 1280, '2001:db8:ffff::1'));
  assert.ok(w.drops.includes('G2:pmtu-unverified'));
  assert.equal(w.count('G2', 'pmtu.learned'), 1);
  assert.equal(w.g.G2.paths().find((p) => p.local === B6)?.mtu, 1400);
});

test('hostile v6: forged search replies, garbage extension headers, fragments and plaintext are counted and dropped; traffic goes on', () => {
  const w = new World();
  w.echo = false;
  // A forged destination-phase reply to a search G2 has under way: a claim whose proof is wrong.
  w.send(ping6(B6, A6, 'first'));
  const request = w.emits.find((a) => a.type === 'emit' && (a.note as { op: string }).op === 'search-request');
  assert.ok(request && request.type === 'emit');
  const p = parseSearchPacket(request.bytes);
  assert.ok(p.ok);
  const msg = {
    ...p.value.msg,
    entries: [
      ...p.value.msg.entries,
      {
        side: 'dst' as const,
        gateway: 'G1',
        address: '192.0.2.1',
        vpns: [{ vpnId: 1, epoch: 1, seq: 1n, proof: new Uint8Array(16).fill(0xaa) }],
      },
    ],
  };
  const forged = buildSearchPacket({ src: A6, dst: B6, icmpType: 0, id: p.value.id, seq: p.value.seq, msg });
  w.inject('G2', forged);
  assert.ok(w.drops.includes('G2:search-forged'));
  assert.equal(
    w.g.G2.paths().find((x) => x.local === B6)?.action,
    'pending',
    'the forged reply did not end the search',
  );
  // Garbage extension headers, from either side.
  const garbage = v6Packet(A6, B6, [{ type: 60 }, { type: 43 }], 17, new Uint8Array(0));
  garbage[49] = 9;
  w.inject('G2', garbage);
  w.run('G2', 'inside', garbage);
  assert.equal(w.count('G2', 'executor.drop.bad-ipv6'), 2);
  // Now let the genuine search finish, then send hostile packets on an established path.
  w.echo = true;
  w.tick(400);
  w.send(ping6(B6, A6, 'go'));
  assert.equal(w.g.G2.paths().find((x) => x.local === B6)?.action, 'encrypt');
  const esp = w.wan.filter((x) => isEsp(x) && packetSrc(x) === B6).at(-1);
  assert.ok(esp);
  const fragment = v6Packet(B6, A6, [{ type: 44, more: true }], 17, esp.subarray(40));
  w.inject('G1', fragment);
  w.inject('G1', ping6(B6, A6, 'plaintext'));
  w.inject('G1', v6Packet(B6, A6, [{ type: 0 }], 17, esp.subarray(40)));
  assert.ok(w.drops.includes('G1:fragment'));
  assert.ok(w.drops.includes('G1:unsolicited-plain'));
  assert.ok(!w.delivered.get(A6)?.some((x) => payloadOf(x).includes('plaintext')));
  // Legitimate traffic is unaffected.
  w.send(ping6(B6, A6, 'after'));
  assert.equal(w.delivered.get(A6)?.filter((x) => payloadOf(x).includes('after')).length, 1);
});

test('a pairwise VPN between v6 LANs over an IPv6 WAN: search, IKE to the v6 address, then v6 in v6 tunnel mode', () => {
  const member = (gw: string, v6: string, address: string) => ({
    gateway: gw,
    address,
    prefixes: [Prefix.from(v6)],
    spis: [],
  });
  const pairwise: VpnView = {
    id: 7,
    name: 'P7',
    mode: 'pairwise',
    epochs: [],
    members: [member('G1', 'fd00:1::/64', G1_V6), member('G2', 'fd00:2::/64', G2_V6)],
  };
  const w = new World({ vpns: [pairwise] });
  w.send(ping6(B6, A6, 'tunnel-marker'));
  // Both gateways installed the path and ask their edge for IKE, each at the other's v6 address.
  assert.deepEqual(w.ike.map((i) => `${i.by}>${i.peer}@${i.address}`).sort(), [`G1>G2@${G2_V6}`, `G2>G1@${G1_V6}`]);
  assert.equal(w.g.G2.paths().find((p) => p.local === B6)?.reason, 'ike');
  // The edge's IKE made the Child SA: G2 sends with SPI 0x51, G1 receives with it.
  const keys = { key: new Uint8Array(32).fill(3), salt: new Uint8Array([1, 2, 3, 4]) };
  const common = { vpnId: 7, ...keys, localPort: 4500, remotePort: 4500 };
  (w.g.G2.executor as TsExecutor).installTunnelTx({
    ...common,
    spi: 0x51,
    peer: 'G1',
    localAddr: G2_V6,
    remoteAddr: G1_V6,
  });
  const g1 = w.g.G1.executor as TsExecutor;
  const sel = (p: string) => [{ start: p, end: p.replace(/::$/, '::ffff') }];
  g1.installTunnelRx({
    ...common,
    spi: 0x51,
    peer: 'G2',
    localAddr: G1_V6,
    remoteAddr: G2_V6,
    localSelectors: sel('fd00:1::'),
    remoteSelectors: sel('fd00:2::'),
  });
  const flushed = w.g.G2.onChildSaUp('G1', 7, 0x51, 10).find((a) => a.type === 'emit');
  assert.ok(flushed && flushed.type === 'emit');
  assert.equal((flushed.note as { op: string }).op, 'tunnel-encrypt');
  const outer = parseIpv6(flushed.bytes);
  assert.ok(outer.ok);
  assert.deepEqual([outer.value.header.src, outer.value.header.dst, outer.value.header.nextHeader], [G2_V6, G1_V6, 17]);
  assert.ok(!payloadOf(flushed.bytes).includes('tunnel-marker'));
  const v = g1.processUdp(G2_V6, 4500, flushed.bytes.subarray(48), 11);
  assert.equal(v.kind, 'forward');
  assert.ok(v.kind === 'forward' && payloadOf(v.bytes).includes('tunnel-marker'));
  assert.equal(v.kind === 'forward' && packetDst(v.bytes), A6);
});

test('search packets over ICMPv6: built without extension headers, parsed behind them, header fields kept by relays', () => {
  const msg = {
    phase: 'destination' as const,
    proxied: false,
    txid: new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]),
    pathSrc: B6,
    pathDst: A6,
    originator: 'G2',
    proxiedBy: '',
    entries: [],
  };
  const p = buildSearchPacket({
    src: B6,
    dst: A6,
    icmpType: 8,
    id: 0x0908,
    seq: 0x0706,
    msg,
    ttl: 17,
    tos: 0x28,
    ipId: 0xabcde,
  });
  const ip = parseIpv6(p);
  assert.ok(ip.ok);
  assert.deepEqual(
    [ip.value.header.nextHeader, ip.value.header.hopLimit, ip.value.header.trafficClass, ip.value.header.flowLabel],
    [58, 17, 0x28, 0xabcde],
  );
  assert.equal(p[40], 128);
  const parsed = parseSearchPacket(p);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.ip, { src: B6, dst: A6, ttl: 17, tos: 0x28, id: 0xabcde });
  assert.equal(parsed.value.icmpType, 8);
  assert.deepEqual(parsed.value.msg.txid, msg.txid);
  const reply = echoReplyFor(p);
  assert.ok(reply.ok);
  const r = parseSearchPacket(reply.value);
  assert.ok(r.ok && r.value.icmpType === 0 && r.value.ip.src === A6);
  // Behind a destination-options header (a terminal's stack may add one), still a search.
  const behind = v6Packet(B6, A6, [{ type: 60 }], 58, p.subarray(40));
  assert.ok(parseSearchPacket(behind).ok);
  // A corrupted ICMPv6 checksum, or KSRC data that does not decode: not a search message.
  const bad = p.slice();
  bad[50] ^= 1;
  assert.ok(!parseSearchPacket(bad).ok);
  const junk = icmp6(B6, A6, 128, new TextEncoder().encode('KSRC but not a message'));
  assert.ok(!parseSearchPacket(junk).ok);
  const w = new World();
  w.run('G2', 'inside', junk);
  assert.ok(w.drops.includes('G2:search-malformed'), 'reserved KSRC echo data is punted and dropped, counted');
});

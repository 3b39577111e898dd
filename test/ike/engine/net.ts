// A two-gateway IKE world for the engine tests: two engines under two authorities, a clock, and
// a wire between them that tests can watch, drop, reorder or tamper with. The engines' randomness
// (SPIs, nonces, DH keys, cookie secrets) is seeded, so a failing run repeats exactly:
// KASANE_TEST_SEED=<seed> node --import tsx --test test/ike/engine/<file>. (Certificates and ECDSA
// signatures come from WebCrypto and differ between runs; no engine decision depends on their bytes.)
import assert from 'node:assert/strict';
import { ipFamily } from '../../../src/base/addr.js';
import { seededRandom, type RandomSource } from '../../../src/base/random.js';
import { IkeEngine } from '../../../src/ike/engine/engine.js';
import {
  emptyOutput,
  type ChildSaInstall,
  type ChildSaRemove,
  type Endpoint,
  type IkeEvent,
  type IkeOutput,
  type IkePeer,
  type IkeTimers,
} from '../../../src/ike/engine/types.js';
import { HOUR, makeAuthority, makeGateway, peerEntry, permitFor, type Authority, type Gateway } from './peers.js';

export const T0 = Date.UTC(2026, 11, 5, 12);
export const IP_A = '192.0.2.1';
export const IP_B = '198.51.100.2';
/** The two gateways' IPv6 outside addresses (documentation prefix, two sites). */
export const IP6_A = '2001:db8:a::1';
export const IP6_B = '2001:db8:b::2';

/** Where the world's gateways are and what they protect; the defaults are the IPv4 world. */
export interface Layout {
  /** Each side's outside addresses: the first is its engine's endpoint, a second the other family's. */
  a: string[];
  b: string[];
  /** The address each side's authority delivers for the other gateway. */
  aSeesB: string;
  bSeesA: string;
  prefixesA: string[];
  prefixesB: string[];
}

export const V4_LAYOUT: Layout = {
  a: [IP_A],
  b: [IP_B],
  aSeesB: IP_B,
  bSeesA: IP_A,
  prefixesA: ['10.1.0.0/24'],
  prefixesB: ['10.2.0.0/24'],
};
/** IPv6 outside addresses, IPv6 terminals' prefixes (v6 in v6). */
export const V6_LAYOUT: Layout = {
  a: [IP6_A],
  b: [IP6_B],
  aSeesB: IP6_B,
  bSeesA: IP6_A,
  prefixesA: ['2001:db8:1::/64'],
  prefixesB: ['2001:db8:2::/64'],
};
/** The seed of this run's engine randomness; set KASANE_TEST_SEED to repeat a run. */
export const SEED = process.env.KASANE_TEST_SEED ?? 'ike-engine-tests';
/** Randomness for engines a test builds beside the world's two. */
export const random: RandomSource = seededRandom(`${SEED}/extra`);

export interface Datagram {
  from: Endpoint;
  to: Endpoint;
  bytes: Buffer;
}

export type Side = 'a' | 'b';

/** What one side's gateway would have done with the engine's output. */
export interface SideLog {
  sent: Datagram[];
  installs: ChildSaInstall[];
  removes: ChildSaRemove[];
  events: IkeEvent[];
}

export class World {
  now = T0;
  a!: IkeEngine;
  b!: IkeEngine;
  peersOfA: IkePeer[] = [];
  peersOfB: IkePeer[] = [];
  readonly log: Record<Side, SideLog> = {
    a: { sent: [], installs: [], removes: [], events: [] },
    b: { sent: [], installs: [], removes: [], events: [] },
  };
  /** Datagrams on the wire, not yet delivered. */
  wire: Datagram[] = [];
  /**
   * An address translator on the way (NAT44, NPTv6): a side's datagrams from a key address leave
   * from the value address, and datagrams to the value address arrive at the key address.
   */
  readonly translate = new Map<string, string>();
  /** Decides per datagram: deliver it (true), drop it (false), or deliver these bytes instead. */
  filter: (d: Datagram) => boolean | Buffer = () => true;

  constructor(
    readonly A: Authority,
    readonly B: Authority,
    readonly ga: Gateway,
    readonly gb: Gateway,
  ) {}

  layout: Layout = V4_LAYOUT;

  static async make(
    o: { timers?: Partial<IkeTimers>; permitHours?: number; seed?: string; layout?: Layout } = {},
  ): Promise<World> {
    const seed = o.seed ?? SEED;
    const A = await makeAuthority('authority-a', T0 - HOUR);
    const B = await makeAuthority('authority-b', T0 - HOUR);
    const w = new World(A, B, await makeGateway(A, 'ga', T0 - HOUR), await makeGateway(B, 'gb', T0 - HOUR));
    const L = (w.layout = o.layout ?? V4_LAYOUT);
    const until = T0 + (o.permitHours ?? 1) * HOUR;
    w.peersOfA = [w.entry('a', await permitFor(B, w.ga, 'shared', T0 - HOUR, until))];
    w.peersOfB = [w.entry('b', await permitFor(A, w.gb, 'shared', T0 - HOUR, until))];
    const engine = (side: Side, mine: string[]) =>
      new IkeEngine({
        local: (side === 'a' ? w.ga : w.gb).identity,
        endpoint: { address: mine[0], port: 500 },
        addresses: mine.slice(1),
        peers: () => (side === 'a' ? w.peersOfA : w.peersOfB),
        random: seededRandom(`${seed}/${side}`),
        timers: o.timers,
      });
    w.a = engine('a', L.a);
    w.b = engine('b', L.b);
    return w;
  }

  /** What `side`'s authority delivers about the other gateway, with the permit `side` presents. */
  entry(side: Side, permit: Uint8Array, over: Partial<IkePeer> = {}): IkePeer {
    const vpn = { vpnId: 7, vpnName: 'shared' };
    return side === 'a'
      ? {
          ...peerEntry({
            other: this.gb,
            permit,
            ...vpn,
            address: this.layout.aSeesB,
            local: this.layout.prefixesA,
            remote: this.layout.prefixesB,
          }),
          ...over,
        }
      : {
          ...peerEntry({
            other: this.ga,
            permit,
            ...vpn,
            address: this.layout.bSeesA,
            local: this.layout.prefixesB,
            remote: this.layout.prefixesA,
          }),
          ...over,
        };
  }

  engine(side: Side): IkeEngine {
    return side === 'a' ? this.a : this.b;
  }

  /** Records an engine's output and puts its datagrams on the wire. */
  take(side: Side, o: IkeOutput): IkeOutput {
    const l = this.log[side];
    const mine = side === 'a' ? this.layout.a : this.layout.b;
    for (const s of o.send) {
      // A gateway sends from its socket of the destination's family.
      const own = mine.find((x) => ipFamily(x) === ipFamily(s.to.address)) ?? mine[0];
      const from = this.translate.get(own) ?? own;
      const d = { from: { address: from, port: s.localPort }, to: s.to, bytes: s.bytes };
      l.sent.push(d);
      this.wire.push(d);
    }
    l.installs.push(...o.install);
    l.removes.push(...o.remove);
    l.events.push(...o.events);
    return o;
  }

  /** Delivers what is on the wire (and what that makes) until it is quiet. */
  settle(maxHops = 50): void {
    for (let hops = 0; this.wire.length > 0; hops++) {
      assert.ok(hops < maxHops, 'the exchange does not converge');
      const batch = this.wire;
      this.wire = [];
      for (const d of batch) {
        const f = this.filter(d);
        if (f === false) continue;
        const to = [...this.translate].find(([, outside]) => outside === d.to.address)?.[0] ?? d.to.address;
        const side: Side = this.layout.a.includes(to) ? 'a' : 'b';
        this.take(side, this.engine(side).receive(d.from, f === true ? d.bytes : f, this.now, d.to.port));
      }
    }
  }

  /** Moves the clock to `t`, running both engines' timers on the way (at each deadline). */
  advance(to: number): void {
    for (let guard = 0; guard < 10_000; guard++) {
      const next = Math.min(this.a.nextDeadline(), this.b.nextDeadline());
      if (next > to) break;
      this.now = Math.max(this.now, next);
      this.take('a', this.a.tick(this.now));
      this.take('b', this.b.tick(this.now));
      this.settle();
    }
    this.now = to;
  }

  connect(from: Side = 'a'): void {
    const o = this.take(from, this.engine(from).initiate(from === 'a' ? 'gb' : 'ga', 7, this.now));
    this.settle();
    // The side with the higher address holds its start back for the peer's (collisionDelay).
    if (o.send.length === 0 && o.events.length === 0) this.advance(this.now + 1000);
  }

  events(side: Side, kind?: IkeEvent['event']): IkeEvent[] {
    return this.log[side].events.filter((e) => !kind || e.event === kind);
  }

  /** The Child SA each side currently sends with, as its gateway would track installs and removes. */
  current(side: Side): ChildSaInstall | undefined {
    const removed = new Set(this.log[side].removes.map((r) => r.inboundSpi));
    return [...this.log[side].installs].reverse().find((i) => !removed.has(i.inbound.spi));
  }

  /** Inbound SPIs installed and not removed. */
  installed(side: Side): number[] {
    const removed = new Set(this.log[side].removes.map((r) => r.inboundSpi));
    return [...new Set(this.log[side].installs.map((i) => i.inbound.spi))].filter((s) => !removed.has(s));
  }

  reset(): void {
    for (const s of ['a', 'b'] as Side[]) this.log[s] = { sent: [], installs: [], removes: [], events: [] };
  }
}

/** Both sides send with keys the other receives with. */
export function assertPaired(w: World): void {
  const a = w.current('a');
  const b = w.current('b');
  assert.ok(a && b, 'both sides have a Child SA');
  assert.equal(a.outbound.spi, b.inbound.spi);
  assert.equal(b.outbound.spi, a.inbound.spi);
  assert.ok(a.outbound.key.key.equals(b.inbound.key.key));
  assert.ok(b.outbound.key.key.equals(a.inbound.key.key));
  assert.ok(a.outbound.key.salt.equals(b.inbound.key.salt));
}

export { emptyOutput, HOUR };

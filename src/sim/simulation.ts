// The simulated network: nodes from a topology, links between them, routing by destination,
// the authority's timed events and the traffic to try, all on one virtual clock. Same topology
// and seed give the same run, event for event.
import { ipFamily } from '../base/addr.js';
import { hostPrefix } from './topology.js';
import type { GatewayConfig, PathView } from '../core/gateway-api.js';
import { GatewayCore } from '../core/gateway-core.js';
import type { VpnId } from '../core/types.js';
import { SimAuthority } from './authority-sim.js';
import type { InFlight, SimContext, SimNode, TraceRecord } from './context.js';
import { Engine } from './engine.js';
import { GatewayNode, type CoreFactory } from './gateway-node.js';
import { Link } from './link.js';
import { describePacket, ipDestination, isSearchPacket, type PacketDescription } from './packets.js';
import { randomStream } from './random.js';
import { RouterNode } from './router.js';
import { Routing } from './routing.js';
import { TerminalNode } from './terminal.js';
import type { GatewaySpec, NodeSpec, Topology } from './topology.js';
import { TrafficTracker, type PathOutcome } from './traffic.js';

export interface SimOptions {
  /** Overrides the file's seed. */
  seed?: number;
  /** Virtual time (ms) to stop at; overrides the file's `until`. */
  until?: number;
  /** Keep trace records (default true; large runs turn it off). */
  trace?: boolean;
  /** Makes each gateway's core (default: the real GatewayCore). */
  createCore?: CoreFactory;
}

/** A tap sees every packet about to cross a link; it may drop it or replace its bytes. */
export type LinkTap = (crossing: {
  time: number;
  link: string;
  from: string;
  to: string;
  packet: InFlight;
}) => void | 'drop' | Uint8Array;

export interface LinkReport {
  link: string;
  a: string;
  b: string;
  wan: boolean;
  packets: number;
  bytes: number;
  drops: Record<string, number>;
  maxLayers: number;
}

export interface SimResult {
  name: string;
  seed: number;
  vpns: { name: string; id: VpnId }[];
  /** The virtual time the run ended at (ms). */
  until: number;
  paths: PathOutcome[];
  trace: TraceRecord[];
  keyTables: Record<string, PathView[]>;
  stats: Record<string, Record<string, number>>;
  links: LinkReport[];
  /** Drops at nodes (not links), by reason; core drops are "core:<reason>". */
  drops: Record<string, number>;
  /** The deepest VPN nesting (ESP layers) seen on any WAN link. */
  maxWanLayers: number;
  /** Decrypts whose VPN was not the outermost recorded layer (should stay 0). */
  layerMismatches: number;
  eventsRun: number;
}

export class Simulation implements SimContext {
  readonly topology: Topology;
  readonly seed: number;
  /** The time `run()` stops at. */
  readonly until: number;
  readonly tracing: boolean;
  readonly engine = new Engine();
  readonly routing: Routing;
  readonly authority: SimAuthority;
  readonly terminals = new Map<string, TerminalNode>();
  readonly gateways = new Map<string, GatewayNode>();
  readonly routers = new Map<string, RouterNode>();
  /** By "a-b" as written in the file. */
  readonly links = new Map<string, Link>();
  readonly traceRecords: TraceRecord[] = [];
  readonly drops: Record<string, number> = {};
  private readonly nodes = new Map<string, SimNode>();
  /** Per node, its links by neighbour name (no string building per packet). */
  private readonly linksOf = new Map<string, Map<string, Link>>();
  private readonly traffic: TrafficTracker;
  private readonly taps: LinkTap[] = [];
  private nextPacketId = 1;
  private maxWanLayers = 0;
  private started = false;

  constructor(topology: Topology, options: SimOptions = {}) {
    this.topology = topology;
    this.seed = options.seed ?? topology.seed;
    this.tracing = options.trace ?? true;
    const createCore = options.createCore ?? ((opts) => new GatewayCore(opts));

    this.routing = new Routing(
      topology.nodes.map((n) => ({ name: n.name, terminal: n.kind === 'terminal', addresses: addressesOf(n) })),
      topology.links,
    );
    for (const spec of topology.links) {
      const link = new Link(spec, randomStream(this.seed, `link:${spec.a}-${spec.b}`));
      this.links.set(link.name, link);
      this.linkTable(spec.a).set(spec.b, link);
      this.linkTable(spec.b).set(spec.a, link);
    }

    this.authority = new SimAuthority(topology, randomStream(this.seed, 'authority'));
    const snapshots = this.authority.initialSnapshots();
    const terminalByName = new Map<string, NodeSpec>();
    for (const n of topology.nodes) if (n.kind === 'terminal') terminalByName.set(n.name, n);
    for (const spec of topology.nodes) {
      let node: SimNode;
      if (spec.kind === 'terminal') {
        const t = new TerminalNode(spec, this);
        this.terminals.set(spec.name, t);
        node = t;
      } else if (spec.kind === 'router') {
        const r = new RouterNode(spec, this);
        this.routers.set(spec.name, r);
        node = r;
      } else {
        const config = gatewayConfig(spec, topology, terminalByName);
        const snapshot = snapshots.get(spec.name) ?? { version: 1, protectedPrefixes: [], vpns: [] };
        const g = new GatewayNode(
          spec,
          config,
          snapshot,
          createCore,
          randomStream(this.seed, `core:${spec.name}`),
          this,
        );
        this.gateways.set(spec.name, g);
        node = g;
      }
      this.nodes.set(spec.name, node);
    }
    this.traffic = new TrafficTracker(topology.traffic, this.terminals, this);

    const lastEvent = topology.events.reduce((t, e) => Math.max(t, e.at), 0);
    this.until =
      options.until ??
      topology.until ??
      Math.max(TrafficTracker.lastSendTime(topology.traffic), lastEvent) + topology.defaults.settle;
  }

  // ---- running --------------------------------------------------------------------------------

  /** Runs to `until` (default: the run's end) and returns the result at that time. */
  run(until = this.until): SimResult {
    this.runUntil(until);
    return this.result();
  }

  /** Advances the virtual clock to `time`, running every event due by then. */
  runUntil(time: number): void {
    this.start();
    this.engine.runUntil(time);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    for (const event of this.topology.events) this.at(event.at, () => this.authorityEvent(event));
    this.traffic.start();
  }

  private authorityEvent(event: Topology['events'][number]): void {
    const deliveries = this.authority.apply(event);
    if (this.tracing) {
      const epoch = this.authority.epochsOf(event.vpn).at(-1)?.epoch;
      const detail =
        event.kind === 'rotate' ? { vpn: event.vpn, epoch } : { vpn: event.vpn, gateway: event.gateway, epoch };
      this.trace({
        node: 'authority',
        event: event.kind,
        kind: 'authority',
        detail: { ...detail, version: this.authority.currentVersion },
      });
    }
    for (const d of deliveries) {
      if (this.tracing)
        this.trace({ node: d.gateway, event: 'snapshot', kind: 'authority', detail: { version: d.snapshot.version } });
      this.gateways.get(d.gateway)?.applySnapshot(d.snapshot);
    }
  }

  // ---- SimContext -----------------------------------------------------------------------------

  get now(): number {
    return this.engine.now;
  }

  at(time: number, handler: () => void): void {
    this.engine.at(time, handler);
  }

  packet(bytes: Uint8Array): InFlight {
    return { id: this.nextPacketId++, bytes, layers: [] };
  }

  trace(record: Omit<TraceRecord, 'time'>): void {
    const out: TraceRecord = { time: this.engine.now, node: record.node, event: record.event, kind: record.kind };
    if (record.step !== undefined) out.step = record.step;
    if (record.detail !== undefined) out.detail = record.detail;
    this.traceRecords.push(out);
  }

  drop(node: string, packet: InFlight, reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    if (this.tracing) this.trace({ node, event: 'drop', kind: describePacket(packet.bytes).kind, detail: { reason } });
  }

  arrived(_terminal: string, packet: InFlight, description: PacketDescription): void {
    this.traffic.arrived(packet, description);
  }

  nodeName(address: string): string {
    return this.routing.ownerOf(address) ?? address;
  }

  vpnName(id: VpnId): string {
    return this.authority.vpnName(id) ?? `vpn#${id}`;
  }

  /** Sends a packet from node `from` toward its destination address. */
  send(from: string, packet: InFlight): void {
    const dst = ipDestination(packet.bytes);
    if (dst === undefined) return this.drop(from, packet, 'malformed');
    const hop = this.routing.route(from, dst);
    switch (hop.kind) {
      case 'forward':
        return this.transmit(from, hop.node, packet);
      case 'local':
        return this.drop(from, packet, 'addressed-to-sender');
      case 'no-owner':
        return this.drop(from, packet, 'no-route');
      case 'unreachable':
        return this.drop(from, packet, 'unreachable');
    }
  }

  // ---- links ----------------------------------------------------------------------------------

  /** Watches (and may drop or rewrite) every packet about to cross a link. */
  tap(fn: LinkTap): void {
    this.taps.push(fn);
  }

  /** Puts bytes on the link from `from` to its neighbour `to` at `time` (default now), as if `from` sent them. */
  inject(from: string, to: string, bytes: Uint8Array, time = this.now): InFlight {
    const packet = this.packet(bytes);
    this.at(time, () => this.transmit(from, to, packet));
    return packet;
  }

  private transmit(from: string, to: string, packet: InFlight): void {
    const link = this.linksOf.get(from)?.get(to);
    if (link === undefined) throw new Error(`simulation: ${from} and ${to} are not linked`);
    for (const tap of this.taps) {
      const verdict = tap({ time: this.now, link: link.name, from, to, packet });
      if (verdict === 'drop') {
        link.countDrop('tap');
        return this.linkDrop(link, from, to, packet, 'tap');
      }
      if (verdict instanceof Uint8Array) packet.bytes = verdict;
    }
    const verdict = link.admit(packet.bytes.length, from, () => isSearchPacket(packet.bytes));
    if (verdict !== 'pass') return this.linkDrop(link, from, to, packet, verdict);
    const depth = packet.layers.length;
    if (depth > link.counters.maxLayers) link.counters.maxLayers = depth;
    if (link.wan) {
      if (depth > this.maxWanLayers) this.maxWanLayers = depth;
      if (packet.wanLayers === undefined || depth > packet.wanLayers.length) packet.wanLayers = packet.layers.slice();
    }
    const receiver = this.nodes.get(to) as SimNode;
    this.at(this.now + link.spec.latency, () => receiver.receive(packet, from));
  }

  private linkTable(node: string): Map<string, Link> {
    let table = this.linksOf.get(node);
    if (table === undefined) this.linksOf.set(node, (table = new Map()));
    return table;
  }

  private linkDrop(link: Link, from: string, to: string, packet: InFlight, reason: string): void {
    this.drops[`link:${reason}`] = (this.drops[`link:${reason}`] ?? 0) + 1;
    if (this.tracing) {
      const detail: Record<string, unknown> = { link: link.name, to, reason };
      if (reason === 'mtu') {
        detail.size = packet.bytes.length;
        detail.mtu = link.spec.mtu;
      }
      this.trace({ node: from, event: 'link-drop', kind: describePacket(packet.bytes).kind, detail });
    }
  }

  // ---- results --------------------------------------------------------------------------------

  result(): SimResult {
    const now = this.now;
    const keyTables: Record<string, PathView[]> = {};
    const stats: Record<string, Record<string, number>> = {};
    let layerMismatches = 0;
    for (const [name, g] of this.gateways) {
      keyTables[name] = g.core.paths();
      stats[name] = g.core.stats();
      layerMismatches += g.layerMismatches;
    }
    const links: LinkReport[] = [...this.links.values()].map((l) => ({
      link: l.name,
      a: l.spec.a,
      b: l.spec.b,
      wan: l.wan,
      packets: l.counters.packets,
      bytes: l.counters.bytes,
      drops: { ...l.counters.drops },
      maxLayers: l.counters.maxLayers,
    }));
    return {
      name: this.topology.name,
      seed: this.seed,
      vpns: this.topology.vpns.map((v) => ({ name: v.name, id: v.id })),
      until: now,
      paths: this.traffic.outcomes(),
      trace: this.traceRecords,
      keyTables,
      stats,
      links,
      drops: { ...this.drops },
      maxWanLayers: this.maxWanLayers,
      layerMismatches,
      eventsRun: this.engine.eventsRun,
    };
  }
}

function addressesOf(n: NodeSpec): string[] {
  return n.addresses;
}

/** A gateway's configuration from its node: attached LANs, policy, timers and limits. */
export function gatewayConfig(
  spec: GatewaySpec,
  topology: Topology,
  terminals: ReadonlyMap<string, NodeSpec>,
): GatewayConfig {
  const attached =
    spec.lans ??
    spec.inside.flatMap((name) => {
      const t = terminals.get(name);
      return t !== undefined && t.kind === 'terminal' ? t.addresses.map(hostPrefix) : [];
    });
  const config: GatewayConfig = {
    id: spec.name,
    address: spec.address,
    attached,
    timers: { ...topology.defaults.timers, ...spec.timers },
    limits: { ...topology.defaults.limits, ...spec.limits },
  };
  // A dual-stack gateway answers IPv6 terminals (Packet Too Big) from its IPv6 address.
  const address6 = spec.addresses.find((a) => ipFamily(a) === 6);
  if (address6 !== undefined && address6 !== spec.address) config.address6 = address6;
  if (spec.allowPlain !== undefined) config.allowPlain = spec.allowPlain;
  // As the gateway daemon does: the smallest MTU of its outside links, or the configured value below it.
  const outside = topology.links.filter(
    (l) => (l.a === spec.name && !spec.inside.includes(l.b)) || (l.b === spec.name && !spec.inside.includes(l.a)),
  );
  const linkMtu = Math.min(...outside.map((l) => l.mtu));
  const pathMtu = Math.min(spec.pathMtu ?? Infinity, linkMtu);
  if (Number.isFinite(pathMtu)) config.pathMtu = pathMtu;
  return config;
}

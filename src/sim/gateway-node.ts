// A gateway: a GatewayCore between its inside links (the terminals' LANs, or inner gateways) and
// its outside links. Packets in are handed to the core with the side they came from; what the
// core emits is routed by its destination address, as the kernel routes what a gateway writes
// to its TUN device. The core's timers become wake-up events at its next deadline.
//
// Observation (simulator-only, never seen by the core): an emitted packet carries on the
// metadata of the packet it came from, so the trace and the VPN layers follow one packet across
// gateways. The core names that packet (the `origin` of an emit: the bytes it received, now or
// before it buffered them), so the match is exact, whatever else the same event emits (a search
// reply and the flushed data packet of the same terminal pair, for one).
import type { Side } from '../core/executor.js';
import type { CoreAction, GatewayConfig, PathView } from '../core/gateway-api.js';
import type { GatewayCoreOptions } from '../core/gateway-core.js';
import type { AuthoritySnapshot, VpnId } from '../core/types.js';
import type { InFlight, SimContext, SimNode } from './context.js';
import { decrementTtl, ipEndpoints, isSearchPacket } from './packets.js';
import type { GatewaySpec } from './topology.js';
import { pushTo } from '../base/maps.js';
import type { RandomSource } from '../base/random.js';

/** What the simulator needs of a gateway core (GatewayCore, or a stand-in in tests). */
export interface SimCore {
  onPacket(from: Side, bytes: Uint8Array, now: number): CoreAction[];
  onTick(now: number): CoreAction[];
  nextDeadline(): number | undefined;
  applySnapshot(snapshot: AuthoritySnapshot, now: number): CoreAction[];
  paths(): PathView[];
  stats(): Record<string, number>;
}

export type CoreFactory = (opts: GatewayCoreOptions) => SimCore;

/** Packets remembered per (source, destination) while the core holds them (beyond: oldest forgotten). */
const HELD_PER_FLOW = 256;
/** A core asking to be woken at the same instant this many times in a row is looping. */
const MAX_TICKS_AT_ONE_INSTANT = 10_000;

export class GatewayNode implements SimNode {
  readonly kind = 'gateway' as const;
  readonly name: string;
  readonly core: SimCore;
  readonly config: GatewayConfig;
  /** Inside neighbours; every other neighbour is outside. */
  private readonly insideNeighbours: Set<string>;
  /** Metadata of packets the core took in without emitting them yet, by "src>dst". */
  private readonly held = new Map<string, InFlight[]>();
  /** Layer bookkeeping anomalies: a decrypt whose VPN was not the outermost layer recorded. */
  layerMismatches = 0;
  private wakeAt: number | undefined;
  private wakeToken = 0;
  private ticksAtInstant = 0;
  private lastTickAt = -1;

  constructor(
    readonly spec: GatewaySpec,
    config: GatewayConfig,
    snapshot: AuthoritySnapshot,
    createCore: CoreFactory,
    random: RandomSource,
    private readonly ctx: SimContext,
  ) {
    this.name = spec.name;
    this.config = config;
    this.insideNeighbours = new Set(spec.inside);
    this.core = createCore({ config, snapshot, now: ctx.now, random });
    this.scheduleWake();
  }

  sideOf(neighbour: string): Side {
    return this.insideNeighbours.has(neighbour) ? 'inside' : 'outside';
  }

  receive(packet: InFlight, from: string): void {
    const ends = ipEndpoints(packet.bytes);
    // Forwarded through the gateway (not addressed to it): the kernel decrements the TTL first.
    if (ends !== undefined && !this.spec.addresses.includes(ends.dst)) {
      const forwarded = decrementTtl(packet.bytes);
      if (forwarded === undefined) return this.ctx.drop(this.name, packet, 'ttl-expired');
      packet.bytes = forwarded;
    }
    const actions = this.core.onPacket(this.sideOf(from), packet.bytes, this.ctx.now);
    this.handle(actions, packet);
  }

  /** Delivers a new authority snapshot to the core. */
  applySnapshot(snapshot: AuthoritySnapshot): void {
    this.handle(this.core.applySnapshot(snapshot, this.ctx.now));
  }

  paths(): PathView[] {
    return this.core.paths();
  }

  private handle(actions: CoreAction[], input?: InFlight): void {
    const ctx = this.ctx;
    let inputTaken = input === undefined;
    /** Packets already sent on in this batch by origin, with their layers before that: more emits
     *  from one origin (fragments) are new packets that carried the same layers. */
    const sent = new Map<Uint8Array, VpnId[]>();
    /** The metadata of the packet the core received as `bytes` (the event's packet, or one it held). */
    const claim = (bytes: Uint8Array): InFlight | undefined => {
      if (!inputTaken && input !== undefined && bytes === input.bytes) {
        inputTaken = true;
        return input;
      }
      return this.takeHeld(bytes);
    };
    for (const action of actions) {
      if (action.type === 'trace') {
        if (ctx.tracing) {
          const { event, kind, step, detail } = action.event;
          ctx.trace({ node: this.name, event, kind, step, detail });
        }
      } else if (action.type === 'ike-request') {
        // The simulator has no IKE (pairwise VPNs are refused when a topology is loaded).
        continue;
      } else if (action.type === 'drop') {
        const packet = claim(action.bytes) ?? ctx.packet(action.bytes);
        packet.bytes = action.bytes;
        ctx.drop(this.name, packet, `core:${action.reason}`);
      } else {
        const { note, origin } = action;
        let packet: InFlight | undefined;
        if (origin !== undefined) {
          const layersBefore = sent.get(origin);
          if (layersBefore !== undefined) {
            packet = ctx.packet(action.bytes);
            packet.layers = layersBefore.slice();
          } else {
            packet = claim(origin);
            if (packet !== undefined) sent.set(origin, packet.layers.slice());
          }
        }
        packet ??= ctx.packet(action.bytes);
        packet.bytes = action.bytes;
        if (note.op === 'encrypt') packet.layers.push(note.vpnId);
        else if (note.op === 'decrypt') {
          const top = packet.layers.pop();
          if (top !== note.vpnId) this.layerMismatches++;
        }
        ctx.send(this.name, packet);
      }
    }
    // Taken in and neither emitted nor dropped: the core buffers it (a data packet waiting for
    // its search) or consumed it (a search message). Only data comes back later.
    if (!inputTaken && input !== undefined && !isSearchPacket(input.bytes)) this.hold(input);
    this.scheduleWake();
  }

  private hold(packet: InFlight): void {
    const ends = ipEndpoints(packet.bytes);
    if (ends === undefined) return;
    const key = `${ends.src}>${ends.dst}`;
    const queue = pushTo(this.held, key, packet);
    if (queue.length > HELD_PER_FLOW) queue.shift();
  }

  /** The held packet whose bytes are exactly these (the core flushes or drops what it buffered). */
  private takeHeld(bytes: Uint8Array): InFlight | undefined {
    const ends = ipEndpoints(bytes);
    if (ends === undefined) return undefined;
    const key = `${ends.src}>${ends.dst}`;
    const queue = this.held.get(key);
    const i = queue?.findIndex((p) => p.bytes === bytes) ?? -1;
    if (queue === undefined || i < 0) return undefined;
    const [packet] = queue.splice(i, 1);
    if (queue.length === 0) this.held.delete(key);
    return packet;
  }

  /** Schedules a wake-up at the core's next deadline whenever that deadline changes. */
  private scheduleWake(): void {
    const deadline = this.core.nextDeadline();
    if (deadline === this.wakeAt) return;
    const token = ++this.wakeToken;
    this.wakeAt = deadline;
    if (deadline === undefined) return;
    this.ctx.at(deadline, () => {
      if (token !== this.wakeToken) return;
      this.wakeAt = undefined;
      this.guardAgainstTickLoop();
      this.handle(this.core.onTick(this.ctx.now));
    });
  }

  private guardAgainstTickLoop(): void {
    const now = this.ctx.now;
    this.ticksAtInstant = now === this.lastTickAt ? this.ticksAtInstant + 1 : 0;
    this.lastTickAt = now;
    if (this.ticksAtInstant > MAX_TICKS_AT_ONE_INSTANT) {
      throw new Error(
        `gateway ${this.name}: its core asks to be woken at ${now} ms again and again (deadline never advances)`,
      );
    }
  }
}

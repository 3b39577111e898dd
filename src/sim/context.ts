// What the nodes of a simulation (terminals, routers, gateways) share with the network that
// carries their packets. Kept separate so nodes do not depend on the Simulation class itself.
import type { VpnId } from '../core/types.js';
import type { PacketDescription } from './packets.js';

/**
 * A packet on its way, with simulator-only metadata the core never sees: an id that survives
 * routers and on-path gateways, and the VPN layers (ESP) applied to it so far.
 */
export interface InFlight {
  readonly id: number;
  bytes: Uint8Array;
  /** VPN ids of the layers applied so far, innermost first (a stack: encrypt pushes, decrypt pops). */
  layers: VpnId[];
  /** The layers it carried when it crossed the WAN most deeply nested (innermost first). */
  wanLayers?: VpnId[];
}

/** One notable event, in the order it happened. `step` numbers seed 000 Figure 4. */
export interface TraceRecord {
  /** Virtual time, ms. */
  time: number;
  node: string;
  event: string;
  kind: string;
  step?: number;
  detail?: Record<string, unknown>;
}

export interface SimNode {
  readonly name: string;
  readonly kind: 'terminal' | 'router' | 'gateway';
  /** A packet arrives over the link from neighbour `from`. */
  receive(packet: InFlight, from: string): void;
}

export interface SimContext {
  /** Virtual time, ms. */
  readonly now: number;
  /** Whether trace records are kept (off for large runs). */
  readonly tracing: boolean;
  /** Sends a packet from a node toward its destination address. */
  send(from: string, packet: InFlight): void;
  /** A new packet (fresh id, no layers). */
  packet(bytes: Uint8Array): InFlight;
  trace(record: Omit<TraceRecord, 'time'>): void;
  /** A packet dropped at a node (not by a link): counted by reason, traced. */
  drop(node: string, packet: InFlight, reason: string): void;
  /** A terminal received a packet addressed to it (the traffic tracker learns deliveries). */
  arrived(terminal: string, packet: InFlight, description: PacketDescription): void;
  vpnName(id: VpnId): string;
  /** The node owning an address, for readable traces (the address itself when nobody owns it). */
  nodeName(address: string): string;
  at(time: number, handler: () => void): void;
}

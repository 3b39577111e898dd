// A router: forwards IPv4 and IPv6 by destination address, decrementing the TTL (and fixing the
// header checksum) or the hop limit; a packet whose TTL runs out is dropped. Packets addressed to the router itself are
// absorbed (routers run no services in the simulation).
import type { InFlight, SimContext, SimNode } from './context.js';
import { decrementTtl, ipDestination } from './packets.js';
import type { RouterSpec } from './topology.js';

export class RouterNode implements SimNode {
  readonly kind = 'router' as const;
  readonly name: string;
  forwarded = 0;

  constructor(
    readonly spec: RouterSpec,
    private readonly ctx: SimContext,
  ) {
    this.name = spec.name;
  }

  receive(packet: InFlight): void {
    const dst = ipDestination(packet.bytes);
    if (dst === undefined) return this.ctx.drop(this.name, packet, 'malformed');
    if (this.spec.addresses.includes(dst)) return this.ctx.drop(this.name, packet, 'addressed-to-router');
    const forwarded = decrementTtl(packet.bytes);
    if (forwarded === undefined) return this.ctx.drop(this.name, packet, 'ttl-expired');
    packet.bytes = forwarded;
    this.forwarded++;
    this.ctx.send(this.name, packet);
  }
}

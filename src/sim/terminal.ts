// A terminal: an unmodified IP stack. It answers ICMP echo requests addressed to it (unless it
// is silent, as behind a host firewall), records what it receives, and sends the traffic the
// topology file asks for. Key-search requests are echoed like any other echo request: that is
// what lets the gateways find each other (seed 000 Figure 4, steps 4 and 8).
import type { InFlight, SimContext, SimNode } from './context.js';
import { buildEchoReply, describePacket } from './packets.js';
import type { TerminalSpec } from './topology.js';

/** Figure 4 step of a terminal echoing a key-search request, by the request's phase. */
const ECHO_STEP: Record<string, number> = {
  'search-request(source)': 4,
  'search-request(destination)': 8,
};

export class TerminalNode implements SimNode {
  readonly kind = 'terminal' as const;
  readonly name: string;
  /** Packets addressed to this terminal that reached it, by kind. */
  readonly received: Record<string, number> = {};
  echoed = 0;
  private ipId = 0;

  constructor(
    readonly spec: TerminalSpec,
    private readonly ctx: SimContext,
  ) {
    this.name = spec.name;
  }

  get address(): string {
    return this.spec.address;
  }

  /** The next IP identification value this terminal uses. */
  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  /** Sends a packet this terminal made. */
  transmit(packet: InFlight): void {
    this.ctx.send(this.name, packet);
  }

  receive(packet: InFlight, from: string): void {
    const ctx = this.ctx;
    const d = describePacket(packet.bytes);
    if (!this.spec.addresses.includes(d.dst)) {
      ctx.drop(this.name, packet, 'not-for-this-terminal');
      return;
    }
    this.received[d.kind] = (this.received[d.kind] ?? 0) + 1;
    ctx.arrived(this.name, packet, d);
    if (d.icmp?.type !== 8) {
      if (ctx.tracing)
        ctx.trace({
          node: this.name,
          event: 'receive',
          kind: d.kind,
          detail: { from: ctx.nodeName(d.src), via: from },
        });
      return;
    }
    if (this.spec.silent) {
      if (ctx.tracing)
        ctx.trace({
          node: this.name,
          event: 'no-echo',
          kind: d.kind,
          detail: { from: ctx.nodeName(d.src), reason: 'silent terminal' },
        });
      return;
    }
    const reply = buildEchoReply(packet.bytes);
    if (reply === undefined) {
      ctx.drop(this.name, packet, 'malformed-echo');
      return;
    }
    this.echoed++;
    if (ctx.tracing)
      ctx.trace({
        node: this.name,
        event: 'echo',
        kind: d.kind,
        step: ECHO_STEP[d.kind],
        detail: { to: ctx.nodeName(d.src) },
      });
    ctx.send(this.name, ctx.packet(reply));
  }
}

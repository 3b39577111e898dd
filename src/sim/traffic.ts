// The traffic a topology asks for, and what became of it. Each item sends `count` packets from
// one terminal to another; a packet counts as delivered when it reaches the destination terminal,
// and an echo request as replied when its echo reply gets back to the sender. Packets are
// recognised by their own headers (addresses, ICMP id/sequence, TCP port/sequence), so the
// outcome never depends on the simulator's bookkeeping inside gateways; the VPN layers come from
// that bookkeeping (the layers the packet carried on the WAN).
import { ipFamily, type Ip } from '../base/addr.js';
import type { InFlight, SimContext } from './context.js';
import { buildTcpSyn } from '../core/packet/tcp.js';
import { buildEchoRequest, echoData, type PacketDescription } from './packets.js';
import type { TerminalNode } from './terminal.js';
import type { TrafficSpec } from './topology.js';

export interface PacketOutcome {
  seq: number;
  sentAt: number;
  deliveredAt?: number;
  repliedAt?: number;
  /** VPN layers (names, outermost first) the packet carried between the gateways. */
  vpnLayers?: string[];
  /** The same for its echo reply. */
  replyVpnLayers?: string[];
  /** tcp-syn: the MSS option as it reached the destination (gateways may clamp it). */
  mss?: number;
}

export interface PathOutcome {
  from: string;
  to: string;
  kind: TrafficSpec['kind'];
  /** The addresses the packets were sent between (the family chosen on dual-stack terminals). */
  src: Ip;
  dst: Ip;
  /** At least one packet reached the destination terminal. */
  delivered: boolean;
  /** At least one echo reply reached the sender (never for tcp-syn: terminals run no TCP). */
  replied: boolean;
  /** Layers of the first delivered packet, outermost first ([] = plain). */
  vpnLayers: string[];
  /** ms from sending the first packet to its arrival; null if it never arrived. */
  firstPacketDelay: number | null;
  sent: number;
  deliveredCount: number;
  repliedCount: number;
  packets: PacketOutcome[];
}

interface TrafficItem {
  index: number;
  spec: TrafficSpec;
  from: TerminalNode;
  to: TerminalNode;
  /** The addresses the packets are sent between (of the item's family, on dual-stack terminals). */
  src: Ip;
  dst: Ip;
  packets: PacketOutcome[];
  firstDelivered?: PacketOutcome;
}

/** The MSS option terminals put in their SYNs (an Ethernet host's). */
export const SYN_MSS = 1460;

export class TrafficTracker {
  private readonly items: TrafficItem[];
  /** Packet key (see keyOf) -> the item and packet it belongs to. */
  private readonly byKey = new Map<string, { item: TrafficItem; packet: PacketOutcome }>();
  duplicates = 0;

  constructor(
    specs: readonly TrafficSpec[],
    terminals: ReadonlyMap<string, TerminalNode>,
    private readonly ctx: SimContext,
  ) {
    this.items = specs.map((spec, index) => {
      const from = terminals.get(spec.from) as TerminalNode;
      const to = terminals.get(spec.to) as TerminalNode;
      const src = from.spec.addresses.find((a) => ipFamily(a) === spec.family) ?? from.address;
      const dst = to.spec.addresses.find((a) => ipFamily(a) === spec.family) ?? to.address;
      return { index, spec, from, to, src, dst, packets: [] };
    });
  }

  /** Schedules every item's first packet; each send schedules the next. */
  start(): void {
    for (const item of this.items) this.ctx.at(item.spec.at, () => this.sendNext(item));
  }

  /** The time the last packet of any item is sent. */
  static lastSendTime(specs: readonly TrafficSpec[]): number {
    let last = 0;
    for (const s of specs) last = Math.max(last, s.at + (s.count - 1) * s.interval);
    return last;
  }

  private sendNext(item: TrafficItem): void {
    const seq = item.packets.length + 1;
    const { spec, from, to, src, dst } = item;
    const bytes =
      spec.kind === 'tcp-syn'
        ? buildTcpSyn({
            src,
            dst,
            srcPort: sourcePort(item.index),
            dstPort: spec.port,
            seq: tcpSeq(item.index, seq),
            mss: SYN_MSS,
          })
        : buildEchoRequest({
            src,
            dst,
            id: echoId(item.index),
            seq,
            data: echoData(spec.size, spec.marker),
            ipId: from.nextIpId(),
          });
    const outcome: PacketOutcome = { seq, sentAt: this.ctx.now };
    item.packets.push(outcome);
    const key =
      spec.kind === 'tcp-syn'
        ? tcpKey(src, dst, sourcePort(item.index), tcpSeq(item.index, seq))
        : echoKey(src, dst, echoId(item.index), seq);
    this.byKey.set(key, { item, packet: outcome });
    if (this.ctx.tracing) {
      this.ctx.trace({
        node: from.name,
        event: 'send',
        kind: spec.kind === 'tcp-syn' ? 'tcp-syn' : 'data',
        step: seq === 1 ? 1 : undefined,
        detail: { to: to.name, seq },
      });
    }
    from.transmit(this.ctx.packet(bytes));
    if (seq < spec.count) this.ctx.at(this.ctx.now + spec.interval, () => this.sendNext(item));
  }

  /** A terminal received a packet addressed to it: is it one of ours, or a reply to one? */
  arrived(packet: InFlight, d: PacketDescription): void {
    const now = this.ctx.now;
    if (d.icmp !== undefined && (d.kind === 'data' || d.kind === 'data-reply')) {
      const request = d.icmp.type === 8;
      const found = this.byKey.get(
        request ? echoKey(d.src, d.dst, d.icmp.id, d.icmp.seq) : echoKey(d.dst, d.src, d.icmp.id, d.icmp.seq),
      );
      if (found === undefined) return;
      const p = found.packet;
      if (request) this.delivered(found.item, p, packet);
      else if (p.repliedAt === undefined) {
        p.repliedAt = now;
        p.replyVpnLayers = this.layerNames(packet);
      } else this.duplicates++;
      return;
    }
    if (d.tcp !== undefined && d.kind === 'tcp-syn') {
      const found = this.byKey.get(tcpKey(d.src, d.dst, d.tcp.srcPort, d.tcp.seq));
      if (found === undefined) return;
      if (this.delivered(found.item, found.packet, packet)) found.packet.mss = d.tcp.mss;
    }
  }

  private delivered(item: TrafficItem, p: PacketOutcome, packet: InFlight): boolean {
    if (p.deliveredAt !== undefined) {
      this.duplicates++;
      return false;
    }
    p.deliveredAt = this.ctx.now;
    p.vpnLayers = this.layerNames(packet);
    item.firstDelivered ??= p;
    return true;
  }

  private layerNames(packet: InFlight): string[] {
    const ids = packet.wanLayers ?? [];
    const names: string[] = [];
    for (let i = ids.length - 1; i >= 0; i--) names.push(this.ctx.vpnName(ids[i]));
    return names;
  }

  outcomes(): PathOutcome[] {
    return this.items.map((item) => {
      const first = item.packets[0];
      const deliveredCount = item.packets.filter((p) => p.deliveredAt !== undefined).length;
      const repliedCount = item.packets.filter((p) => p.repliedAt !== undefined).length;
      return {
        from: item.spec.from,
        to: item.spec.to,
        kind: item.spec.kind,
        src: item.src,
        dst: item.dst,
        delivered: deliveredCount > 0,
        replied: repliedCount > 0,
        vpnLayers: item.firstDelivered?.vpnLayers ?? [],
        firstPacketDelay: first?.deliveredAt !== undefined ? first.deliveredAt - first.sentAt : null,
        sent: item.packets.length,
        deliveredCount,
        repliedCount,
        packets: item.packets,
      };
    });
  }
}

/** ICMP echo identifier of a traffic item (as ping uses one per process). */
function echoId(index: number): number {
  return (index + 1) & 0xffff;
}

function sourcePort(index: number): number {
  return 32768 + (index % 28232);
}

function tcpSeq(index: number, seq: number): number {
  return Math.imul(index * 65536 + seq, 0x9e3779b1) >>> 0;
}

function echoKey(src: string, dst: string, id: number, seq: number): string {
  return `${src}>${dst}#${id}#${seq}`;
}

function tcpKey(src: string, dst: string, port: number, seq: number): string {
  return `${src}>${dst}#tcp${port}#${seq}`;
}

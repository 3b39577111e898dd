// Packets from the inside (the terminals' LANs) that the executor could not settle by itself:
// the first packet of a path starts a key search (seed 000 §3.3 steps 1–2); packets of a pending
// path are buffered; packets too big for the path get ICMP "fragmentation needed" (IPv4) or
// ICMPv6 Packet Too Big (IPv6).
import { forwardPlain, type CoreContext } from './context.js';
import { pathKey, type KeyTableEntry } from './key-table.js';
import { ipVersion, packetDst, packetSrc } from './packet/ip.js';
import { buildIcmpFragNeeded, icmpErrorAllowed } from './packet/icmp.js';
import type { SearchOriginator } from './search/originator.js';
import {
  CARRIED6_OVERHEAD_MAX,
  GROUP_OVERHEAD_MAX,
  UDP_ESP_TUNNEL6_OVERHEAD_MAX,
  UDP_ESP_TUNNEL_OVERHEAD_MAX,
} from './executor.js';
import { ipFamily } from '../base/addr.js';
import { buildIcmpv6PacketTooBig, ICMPV6_PACKET_TOO_BIG, icmpv6ErrorAllowed } from './packet/icmpv6.js';
import { NH_IPV4, NH_IPV6 } from './packet/ipv6.js';

export function onInsideMiss(ctx: CoreContext, searches: SearchOriginator, packet: Uint8Array, now: number): void {
  const local = packetSrc(packet);
  const remote = packetDst(packet);
  if (ctx.ring.coveringVpns(local).length === 0) {
    // We protect nothing for this terminal: relay plain (an outer gateway may still protect it).
    return forwardPlain(ctx, 'inside', packet, now, 'unprotected');
  }
  // Searches this gateway originates are bounded like those it relays. At the bound the packet is
  // dropped (counted) and no entry is made: a later packet of the path searches once there is room.
  if (!searches.has(local, remote) && searches.full()) return ctx.drop('search-limit', packet);
  // Steps 1–2: no entry; buffer and search.
  ctx.install(
    {
      local,
      remote,
      action: 'pending',
      layers: [],
      reason: 'searching',
      installedAt: now,
      lastUsed: now,
      expiresAt: Number.MAX_SAFE_INTEGER,
    },
    now,
  );
  ctx.trace({ event: 'miss-buffer', kind: 'data', step: 2, detail: { local, remote } });
  bufferPacket(ctx, pathKey(local, remote), packet);
  if (!searches.has(local, remote)) searches.start(local, remote, now);
}

export function onInsidePending(ctx: CoreContext, packet: Uint8Array): void {
  bufferPacket(ctx, pathKey(packetSrc(packet), packetDst(packet)), packet);
}

function bufferPacket(ctx: CoreContext, key: string, packet: Uint8Array): void {
  const r = ctx.pending.push(key, packet);
  if (r === 'buffered') ctx.count('pending.buffered');
  else ctx.drop(`buffer-${r}`, packet);
}

export function onInsideTooBig(ctx: CoreContext, packet: Uint8Array): void {
  const rule = ctx.table.get(packetSrc(packet), packetDst(packet));
  const pairwise = rule?.vpnId !== undefined && ctx.ring.vpn(rule.vpnId)?.mode === 'pairwise';
  if (ipVersion(packet) === 6) return packetTooBig(ctx, packet, rule, pairwise);
  // rule.mtu is the largest packet after our own encryption: take off what our layer adds.
  const overhead = pairwise ? UDP_ESP_TUNNEL_OVERHEAD_MAX : GROUP_OVERHEAD_MAX;
  const mtu = Math.min(rule?.mtu ?? ctx.config.pathMtu, 0xffff) - overhead;
  // RFC 1812 §4.3.2.7: no ICMP error about an ICMP error, a non-first fragment, or a broadcast.
  if (icmpErrorAllowed(packet))
    ctx.emit(buildIcmpFragNeeded(packet, mtu, ctx.config.address), { op: 'icmp-error', type: 3, code: 4 });
  ctx.drop('too-big', packet);
}

/**
 * IPv6 is never fragmented on the way: a packet too big for the path after our encryption is
 * answered with ICMPv6 Packet Too Big from our outside IPv6 address (RFC 8201), reporting the path
 * less what our layer adds (never below 1280). Without an outside IPv6 address it is only dropped.
 */
function packetTooBig(ctx: CoreContext, packet: Uint8Array, rule: KeyTableEntry | undefined, pairwise: boolean): void {
  let overhead: number;
  if (pairwise) {
    const peer =
      rule?.peer !== undefined && rule.vpnId !== undefined
        ? ctx.ring.peerMember(rule.vpnId, rule.peer)?.address
        : undefined;
    overhead = peer !== undefined && ipFamily(peer) === 4 ? UDP_ESP_TUNNEL_OVERHEAD_MAX : UDP_ESP_TUNNEL6_OVERHEAD_MAX;
  } else overhead = packet[6] === NH_IPV6 || packet[6] === NH_IPV4 ? CARRIED6_OVERHEAD_MAX : GROUP_OVERHEAD_MAX;
  const mtu = (rule?.mtu ?? ctx.config.pathMtu) - overhead;
  const from = ctx.config.address6;
  if (from !== undefined && icmpv6ErrorAllowed(packet, true)) {
    ctx.emit(buildIcmpv6PacketTooBig(packet, mtu, from), { op: 'icmp-error', type: ICMPV6_PACKET_TOO_BIG, code: 0 });
  }
  ctx.drop('too-big', packet);
}

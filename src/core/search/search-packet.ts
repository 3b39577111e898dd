// Key-search messages travel as ICMP echo requests/replies between the terminals' addresses (the
// original header is preserved, so they follow the same routed path as the data they prepare):
// ICMP over IPv4, ICMPv6 (types 128/129, checksum over the IPv6 pseudo-header) over IPv6, the
// message the same apart from its address family (docs/protocol.md §2.1).
import { ipFamily, type Ip } from '../../base/addr.js';
import { buildIpv4, parseIpv4, PROTO_ICMP } from '../packet/ipv4.js';
import { buildIcmpEcho, isIcmpEcho, parseIcmp } from '../packet/icmp.js';
import { buildIcmpv6Echo, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, parseIcmpv6 } from '../packet/icmpv6.js';
import { IPV6_HEADER, NH_ICMPV6, parseIpv6 } from '../packet/ipv6.js';
import {
  decodeSearchMessage,
  encodeSearchMessage,
  isSearchPayload,
  type SearchMessage,
} from '../packet/search-message.js';
import { err, ok, type Result } from '../../base/result.js';

/** What a relay keeps of the IP header it re-emits (IPv4 field names; IPv6 in the comments). */
export interface SearchIpHeader {
  src: Ip;
  dst: Ip;
  /** TTL (IPv6: hop limit). */
  ttl: number;
  /** TOS (IPv6: traffic class). */
  tos: number;
  /** Identification (IPv6: flow label, kept so the search hashes onto the data's path). */
  id: number;
}

export interface SearchPacket {
  ip: SearchIpHeader;
  /** 8 = echo request, 0 = echo reply (ICMPv6 128 and 129 read as 8 and 0). */
  icmpType: 0 | 8;
  id: number;
  seq: number;
  msg: SearchMessage;
}

export function parseSearchPacket(packet: Uint8Array): Result<SearchPacket> {
  if (packet.length > 0 && packet[0] >> 4 === 6) return parseSearchPacket6(packet);
  const ip = parseIpv4(packet);
  if (!ip.ok) return ip;
  if (ip.value.header.protocol !== PROTO_ICMP) return err('not-search', 'not ICMP');
  const icmp = parseIcmp(ip.value.payload);
  if (!icmp.ok) return icmp;
  const m = icmp.value;
  if (!isIcmpEcho(m)) return err('not-search', 'not an ICMP echo');
  const echo = m;
  if (!isSearchPayload(echo.data)) return err('not-search', 'no key-search payload');
  const msg = decodeSearchMessage(echo.data);
  if (!msg.ok) return msg;
  const h = ip.value.header;
  return ok({
    ip: { src: h.src, dst: h.dst, ttl: h.ttl, tos: h.tos, id: h.id },
    icmpType: echo.type,
    id: echo.id,
    seq: echo.seq,
    msg: msg.value,
  });
}

function parseSearchPacket6(packet: Uint8Array): Result<SearchPacket> {
  const ip = parseIpv6(packet);
  if (!ip.ok) return ip;
  const { header, walk } = ip.value;
  if (walk.upperProto !== NH_ICMPV6 || walk.upperOffset === undefined || walk.fragment !== 'none')
    return err('not-search', 'not ICMPv6');
  const icmp = parseIcmpv6(packet, walk.upperOffset, IPV6_HEADER + header.payloadLength);
  if (!icmp.ok) return icmp;
  const m = icmp.value;
  if (m.type !== ICMPV6_ECHO_REQUEST && m.type !== ICMPV6_ECHO_REPLY) return err('not-search', 'not an ICMPv6 echo');
  if (!isSearchPayload(m.body)) return err('not-search', 'no key-search payload');
  const msg = decodeSearchMessage(m.body);
  if (!msg.ok) return msg;
  return ok({
    ip: { src: header.src, dst: header.dst, ttl: header.hopLimit, tos: header.trafficClass, id: header.flowLabel },
    icmpType: m.type === ICMPV6_ECHO_REQUEST ? 8 : 0,
    id: m.id,
    seq: m.seq,
    msg: msg.value,
  });
}

/**
 * The search packet between two terminals: ICMP over IPv4, ICMPv6 over IPv6 (no extension
 * headers), after the family of `src` (the two must agree). `ipId` is the IPv4 identification or
 * the IPv6 flow label; `ttl` the TTL or hop limit; `tos` the TOS or traffic class.
 */
export function buildSearchPacket(opts: {
  src: Ip;
  dst: Ip;
  icmpType: 0 | 8;
  id: number;
  seq: number;
  msg: SearchMessage;
  ttl?: number;
  ipId?: number;
  tos?: number;
}): Uint8Array {
  const data = encodeSearchMessage(opts.msg);
  if (ipFamily(opts.src) === 6) {
    const type = opts.icmpType === 8 ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
    return buildIcmpv6Echo({
      src: opts.src,
      dst: opts.dst,
      type,
      id: opts.id,
      seq: opts.seq,
      data,
      hopLimit: opts.ttl ?? 64,
      trafficClass: opts.tos ?? 0,
      flowLabel: opts.ipId ?? 0,
    });
  }
  const icmp = buildIcmpEcho({ type: opts.icmpType, id: opts.id, seq: opts.seq, data });
  return buildIpv4({
    src: opts.src,
    dst: opts.dst,
    protocol: PROTO_ICMP,
    payload: icmp,
    ttl: opts.ttl ?? 64,
    id: opts.ipId ?? 0,
    tos: opts.tos ?? 0,
  });
}

/** ICMP echo identifier and sequence number for a transaction (its first four bytes). */
export function echoIds(txid: Uint8Array): { id: number; seq: number } {
  return { id: (txid[0] << 8) | txid[1], seq: (txid[2] << 8) | txid[3] };
}

export function kindOf(msg: SearchMessage, icmpType: 0 | 8): string {
  return `search-${icmpType === 8 ? 'request' : 'reply'}(${msg.phase})`;
}

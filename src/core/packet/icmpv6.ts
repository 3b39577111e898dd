// ICMPv6 (RFC 4443): echo (key search travels in it, as in ICMP), Packet Too Big (the path MTU
// error a gateway originates, and learns from), and the checksum over the IPv6 pseudo-header.
import { ipFromBytes, type Ip } from '../../base/addr.js';
import { rd16, rd32, wr16, wr32 } from '../../base/bytes.js';
import { err, ok, type Result } from '../../base/result.js';
import { internetChecksum } from './checksum.js';
import {
  buildIpv6,
  IPV6_HEADER,
  IPV6_MIN_MTU,
  ipv6PseudoHeaderSum,
  isLinkScopedIcmpv6,
  NH_ICMPV6,
  parseIpv6,
  type ExtensionWalk,
} from './ipv6.js';

export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAMETER_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

export interface Icmpv6Message {
  type: number;
  code: number;
  /** Echo: identifier and sequence number. */
  id: number;
  seq: number;
  /** Packet Too Big: the MTU (0 for other types). */
  mtu: number;
  /** Everything after the first 8 bytes (echo data, or the quoted packet of an error); a view. */
  body: Uint8Array;
}

/**
 * Parses the ICMPv6 message at `offset` of an IPv6 packet (to the end of its payload), verifying
 * the checksum with the pseudo-header of the packet's addresses.
 */
export function parseIcmpv6(packet: Uint8Array, offset: number, end: number): Result<Icmpv6Message> {
  const length = end - offset;
  if (length < 8) return err('truncated', `ICMPv6 message of ${length} bytes is shorter than 8`);
  if (internetChecksum(packet, offset, length, ipv6PseudoHeaderSum(packet, length, NH_ICMPV6)) !== 0)
    return err('bad-checksum', 'ICMPv6 checksum does not verify');
  const type = packet[offset];
  return ok({
    type,
    code: packet[offset + 1],
    id: rd16(packet, offset + 4),
    seq: rd16(packet, offset + 6),
    mtu: type === ICMPV6_PACKET_TOO_BIG ? rd32(packet, offset + 4) : 0,
    body: packet.subarray(offset + 8, end),
  });
}

/** Writes the checksum of the ICMPv6 message that fills `packet` from offset 40 (no extension headers). */
export function setIcmpv6Checksum(packet: Uint8Array): void {
  const length = packet.length - IPV6_HEADER;
  wr16(packet, IPV6_HEADER + 2, 0);
  wr16(
    packet,
    IPV6_HEADER + 2,
    internetChecksum(packet, IPV6_HEADER, length, ipv6PseudoHeaderSum(packet, length, NH_ICMPV6)),
  );
}

/** An ICMPv6 echo request (128) or reply (129) as a whole IPv6 packet, no extension headers. */
export function buildIcmpv6Echo(o: {
  src: Ip;
  dst: Ip;
  type: 128 | 129;
  id: number;
  seq: number;
  data: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}): Uint8Array {
  const icmp = new Uint8Array(8 + o.data.length);
  icmp[0] = o.type;
  wr16(icmp, 4, o.id & 0xffff);
  wr16(icmp, 6, o.seq & 0xffff);
  icmp.set(o.data, 8);
  const packet = buildIpv6({
    src: o.src,
    dst: o.dst,
    nextHeader: NH_ICMPV6,
    payload: icmp,
    hopLimit: o.hopLimit ?? 64,
    trafficClass: o.trafficClass,
    flowLabel: o.flowLabel,
  });
  setIcmpv6Checksum(packet);
  return packet;
}

/**
 * Packet Too Big (type 2, code 0) from `from` to the original's source, reporting `mtu` (never
 * below 1280, RFC 8201 §4) and quoting as much of the original as fits in 1280 bytes (RFC 4443 §3.2).
 */
export function buildIcmpv6PacketTooBig(original: Uint8Array, mtu: number, from: Ip): Uint8Array {
  if (original.length < IPV6_HEADER || original[0] >> 4 !== 6)
    throw new TypeError('Packet Too Big about something that is not an IPv6 packet');
  const end = Math.min(original.length, IPV6_HEADER + rd16(original, 4));
  const quote = original.subarray(0, Math.min(end, IPV6_MIN_MTU - IPV6_HEADER - 8));
  const icmp = new Uint8Array(8 + quote.length);
  icmp[0] = ICMPV6_PACKET_TOO_BIG;
  wr32(icmp, 4, Math.max(IPV6_MIN_MTU, Math.min(0xffffffff, Math.floor(mtu))));
  icmp.set(quote, 8);
  const packet = buildIpv6({
    src: from,
    dst: ipFromBytes(original, 8, 6),
    nextHeader: NH_ICMPV6,
    payload: icmp,
    hopLimit: 64,
  });
  setIcmpv6Checksum(packet);
  return packet;
}

/**
 * Whether an ICMPv6 error may be sent about this packet (RFC 4443 §2.4 (e)): not about an ICMPv6
 * error or link-scoped message, not from the unspecified, a multicast or a link-local source, and
 * not to a multicast destination (Packet Too Big may be; `packetTooBig`). Bounds-checked; false
 * for anything not IPv6 or malformed.
 */
export function icmpv6ErrorAllowed(packet: Uint8Array, packetTooBig = false): boolean {
  const ip = parseIpv6(packet);
  if (!ip.ok) return false;
  const s = packet.subarray(8, 24);
  if (s.every((b) => b === 0) || s[0] === 0xff || (s[0] === 0xfe && (s[1] & 0xc0) === 0x80)) return false;
  if (packet[24] === 0xff && !packetTooBig) return false;
  return !isIcmpv6ErrorOrLink(packet, ip.value.walk);
}

function isIcmpv6ErrorOrLink(packet: Uint8Array, walk: ExtensionWalk): boolean {
  if (walk.upperProto !== NH_ICMPV6) return false;
  // A non-first fragment of ICMPv6: its type is unknown here; be conservative (no error).
  if (walk.upperOffset === undefined || walk.upperOffset >= packet.length) return true;
  const type = packet[walk.upperOffset];
  return type < 128 || isLinkScopedIcmpv6(type);
}

/**
 * The echo reply a terminal's IPv6 stack sends for an ICMPv6 echo request: addresses swapped,
 * type 129, the same id, sequence number and data, hop limit 64, the traffic class kept, no
 * extension headers. Fragments are refused (a real stack would reassemble first).
 */
export function echoReplyFor6(requestPacket: Uint8Array): Result<Uint8Array> {
  const ip = parseIpv6(requestPacket);
  if (!ip.ok) return ip;
  const { header, walk } = ip.value;
  if (walk.upperProto !== NH_ICMPV6) return err('not-icmp', `next header ${walk.upperProto} is not ICMPv6`);
  if (walk.fragment !== 'none' || walk.upperOffset === undefined)
    return err('fragmented', 'echo request is a fragment');
  const icmp = parseIcmpv6(requestPacket, walk.upperOffset, IPV6_HEADER + header.payloadLength);
  if (!icmp.ok) return icmp;
  const m = icmp.value;
  if (m.type !== ICMPV6_ECHO_REQUEST) return err('not-echo-request', `ICMPv6 type ${m.type} is not an echo request`);
  return ok(
    buildIcmpv6Echo({
      src: header.dst,
      dst: header.src,
      type: ICMPV6_ECHO_REPLY,
      id: m.id,
      seq: m.seq,
      data: m.body,
      trafficClass: header.trafficClass,
    }),
  );
}

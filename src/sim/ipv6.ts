// What a terminal's IPv6 stack sends, for the simulator: the fixed header, ICMPv6 echo (RFC 4443)
// with the pseudo-header checksum (RFC 8200 §8.1), the echo reply, and a TCP SYN over IPv6. The
// simulator never builds extension headers; reading them is the core's extension-header walk.
import { ipFromBytes, ipToBytes, type Ip } from '../base/addr.js';
import { internetChecksum, onesComplementSum } from '../core/packet/checksum.js';
import { buildTcpSyn } from '../core/packet/tcp.js';

export const IPV6_HEADER = 40;
export const NEXT_ICMPV6 = 58;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
const DEFAULT_HOP_LIMIT = 64;

/** An IPv6 packet with the fixed header only. */
export function buildIpv6(o: { src: Ip; dst: Ip; nextHeader: number; payload: Uint8Array; hopLimit?: number; trafficClass?: number }): Uint8Array {
  if (o.payload.length > 0xffff) throw new RangeError(`IPv6 payload of ${o.payload.length} bytes exceeds 65535`);
  const out = new Uint8Array(IPV6_HEADER + o.payload.length);
  const tc = (o.trafficClass ?? 0) & 0xff;
  out[0] = 0x60 | (tc >> 4);
  out[1] = (tc & 0x0f) << 4;
  out[4] = o.payload.length >> 8;
  out[5] = o.payload.length & 0xff;
  out[6] = o.nextHeader & 0xff;
  out[7] = (o.hopLimit ?? DEFAULT_HOP_LIMIT) & 0xff;
  out.set(ipToBytes(o.src), 8);
  out.set(ipToBytes(o.dst), 24);
  out.set(o.payload, IPV6_HEADER);
  return out;
}

/** The uncomplemented sum of the IPv6 pseudo-header of an upper-layer message in `packet`. */
function pseudoHeaderSum(packet: Uint8Array, upperLength: number, nextHeader: number): number {
  const sum = onesComplementSum(packet, 8, 32);
  return onesComplementSum(Uint8Array.of(upperLength >>> 24, (upperLength >> 16) & 0xff, (upperLength >> 8) & 0xff, upperLength & 0xff, 0, 0, 0, nextHeader), 0, 8, sum);
}

/** Writes the checksum of the upper-layer message at IPV6_HEADER whose checksum field is at `field`. */
function setUpperChecksum(packet: Uint8Array, nextHeader: number, field: number): void {
  const length = packet.length - IPV6_HEADER;
  packet[IPV6_HEADER + field] = 0;
  packet[IPV6_HEADER + field + 1] = 0;
  const c = internetChecksum(packet, IPV6_HEADER, length, pseudoHeaderSum(packet, length, nextHeader));
  packet[IPV6_HEADER + field] = c >> 8;
  packet[IPV6_HEADER + field + 1] = c & 0xff;
}

/** True when the ICMPv6 message at `offset` (to the end of the packet) has a correct checksum. */
export function icmpv6ChecksumOk(packet: Uint8Array, offset: number): boolean {
  const length = packet.length - offset;
  return internetChecksum(packet, offset, length, pseudoHeaderSum(packet, length, NEXT_ICMPV6)) === 0;
}

/** An ICMPv6 echo request or reply as a complete IPv6 packet. */
export function buildIcmpv6Echo(o: { type: 128 | 129; src: Ip; dst: Ip; id: number; seq: number; data: Uint8Array; hopLimit?: number; trafficClass?: number }): Uint8Array {
  const icmp = new Uint8Array(8 + o.data.length);
  icmp[0] = o.type;
  icmp[4] = (o.id >> 8) & 0xff;
  icmp[5] = o.id & 0xff;
  icmp[6] = (o.seq >> 8) & 0xff;
  icmp[7] = o.seq & 0xff;
  icmp.set(o.data, 8);
  const packet = buildIpv6({ src: o.src, dst: o.dst, nextHeader: NEXT_ICMPV6, payload: icmp, hopLimit: o.hopLimit, trafficClass: o.trafficClass });
  setUpperChecksum(packet, NEXT_ICMPV6, 2);
  return packet;
}

/**
 * The reply an IPv6 stack sends for an echo request with no extension headers: addresses
 * swapped, type 129, the same id, sequence number and data, hop limit 64; undefined for anything
 * else (a real stack would process extension headers first; the simulator's terminals send none).
 */
export function icmpv6EchoReplyFor(request: Uint8Array): Uint8Array | undefined {
  if (request.length < IPV6_HEADER + 8 || request[0] >> 4 !== 6 || request[6] !== NEXT_ICMPV6) return undefined;
  const end = IPV6_HEADER + ((request[4] << 8) | request[5]);
  if (end > request.length) return undefined;
  const packet = request.subarray(0, end);
  if (packet[IPV6_HEADER] !== ICMPV6_ECHO_REQUEST || !icmpv6ChecksumOk(packet, IPV6_HEADER)) return undefined;
  return buildIcmpv6Echo({
    type: ICMPV6_ECHO_REPLY,
    src: ipFromBytes(packet, 24, 6),
    dst: ipFromBytes(packet, 8, 6),
    id: (packet[IPV6_HEADER + 4] << 8) | packet[IPV6_HEADER + 5],
    seq: (packet[IPV6_HEADER + 6] << 8) | packet[IPV6_HEADER + 7],
    data: packet.subarray(IPV6_HEADER + 8),
    trafficClass: ((packet[0] & 0x0f) << 4) | (packet[1] >> 4),
  });
}

/** A TCP SYN with an MSS option over IPv6: the core's segment, checksummed with the v6 pseudo-header. */
export function buildTcpSyn6(o: { src: Ip; dst: Ip; srcPort: number; dstPort: number; seq: number; mss?: number }): Uint8Array {
  // The segment is the same for both families but for its checksum: build it once (over any v4
  // pair) and checksum it again over IPv6.
  const v4 = buildTcpSyn({ ...o, src: '0.0.0.0', dst: '0.0.0.0' });
  const segment = v4.subarray((v4[0] & 0x0f) * 4);
  const packet = buildIpv6({ src: o.src, dst: o.dst, nextHeader: 6, payload: segment });
  setUpperChecksum(packet, 6, 16);
  return packet;
}

// What the core needs of a packet whatever its IP version: addresses and the pseudo-header of
// upper-layer checksums. For packets already validated (by parseIpv4/parseIpv6 or an executor).
import type { Ip } from '../../base/addr.js';
import { onesComplementSum } from './checksum.js';
import { ipv4Dst, ipv4Src } from './ipv4.js';
import { ipv6Dst, ipv6PseudoHeaderSum, ipv6Src } from './ipv6.js';

/** The IP version nibble (4 or 6 for anything an executor accepted). */
export function ipVersion(packet: Uint8Array): number {
  return packet.length > 0 ? packet[0] >> 4 : 0;
}

export function packetSrc(packet: Uint8Array): Ip {
  return ipVersion(packet) === 6 ? ipv6Src(packet) : ipv4Src(packet);
}

export function packetDst(packet: Uint8Array): Ip {
  return ipVersion(packet) === 6 ? ipv6Dst(packet) : ipv4Dst(packet);
}

/** Uncomplemented pseudo-header sum for an upper-layer checksum (TCP, UDP; ICMPv6) of either version. */
export function pseudoHeaderSum(packet: Uint8Array, proto: number, upperLength: number): number {
  if (ipVersion(packet) === 6) return ipv6PseudoHeaderSum(packet, upperLength, proto);
  return onesComplementSum(packet, 12, 8, proto + upperLength);
}

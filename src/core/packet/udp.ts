// UDP (RFC 768) as a gateway writes it around ESP (RFC 3948): over IPv4 the checksum may be 0;
// over IPv6 it may not (RFC 8200 §8.1), so it is computed with the IPv6 pseudo-header.
import { wr16 } from '../../base/bytes.js';
import { internetChecksum } from './checksum.js';
import { pseudoHeaderSum } from './ip.js';
import { PROTO_UDP } from './ipv4.js';

export const UDP_HEADER = 8;

/** UDP `port` -> `port` around `body`, length filled, checksum 0 (to be set over IPv6). */
export function udpDatagram(srcPort: number, dstPort: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(UDP_HEADER + body.length);
  wr16(out, 0, srcPort);
  wr16(out, 2, dstPort);
  wr16(out, 4, out.length);
  out.set(body, UDP_HEADER);
  return out;
}

/**
 * Computes the UDP checksum of the datagram at `offset` (to the end of `packet`) in place, with
 * the pseudo-header of the packet's version; a computed 0 is sent as 0xffff (RFC 768).
 */
export function setUdpChecksum(packet: Uint8Array, offset: number): void {
  const length = packet.length - offset;
  wr16(packet, offset + 6, 0);
  const c = internetChecksum(packet, offset, length, pseudoHeaderSum(packet, PROTO_UDP, length));
  wr16(packet, offset + 6, c === 0 ? 0xffff : c);
}

/** Whether the UDP checksum of the datagram at `offset..end` verifies (0 = none, IPv4 only). */
export function udpChecksumOk(packet: Uint8Array, offset: number, end = packet.length): boolean {
  const length = end - offset;
  if (length < UDP_HEADER) return false;
  if (packet[offset + 6] === 0 && packet[offset + 7] === 0) return packet[0] >> 4 === 4;
  return internetChecksum(packet, offset, length, pseudoHeaderSum(packet, PROTO_UDP, length)) === 0;
}

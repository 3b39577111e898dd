// Where the ESP of a group-mode packet starts (docs/executor.md, "ESP format"): right after the
// IP header for raw ESP (protocol 50), or after a UDP header to port 4500 for ESP in UDP (the
// default encapsulation, RFC 3948). Everything that reads group ESP off the wire (the executor,
// the core's outside miss and floors, ICMP quotes) goes through here.
import { GROUP_UDP_HEADER, GROUP_UDP_PORT } from '../executor.js';
import { parseIpv4, PROTO_ESP, PROTO_UDP } from './ipv4.js';
import { parseIpv6 } from './ipv6.js';

/**
 * The ESP packet inside an IP payload of `protocol`, or undefined when it is not group ESP. With
 * `quote` (the start of a packet an ICMP error quotes) the UDP length is not checked against the
 * bytes at hand.
 */
export function groupEspOf(protocol: number, payload: Uint8Array, quote = false): Uint8Array | undefined {
  if (protocol === PROTO_ESP) return payload;
  if (protocol !== PROTO_UDP || payload.length < GROUP_UDP_HEADER) return undefined;
  if (((payload[2] << 8) | payload[3]) !== GROUP_UDP_PORT) return undefined;
  if (!quote && ((payload[4] << 8) | payload[5]) !== payload.length) return undefined;
  return payload.subarray(GROUP_UDP_HEADER);
}

/**
 * The group ESP of a whole IPv4 or IPv6 packet, or undefined when it is not one (malformed, not
 * ESP, or IPv6 ESP behind extension headers or in a fragment: ours has neither).
 */
export function groupEspOfPacket(packet: Uint8Array): Uint8Array | undefined {
  if (packet.length > 0 && packet[0] >> 4 === 6) {
    const ip = parseIpv6(packet);
    if (!ip.ok || ip.value.walk.extLength !== 0) return undefined;
    return groupEspOf(ip.value.header.nextHeader, ip.value.payload);
  }
  const ip = parseIpv4(packet);
  return ip.ok ? groupEspOf(ip.value.header.protocol, ip.value.payload) : undefined;
}

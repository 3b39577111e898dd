// Path MTU for the ESP this gateway sends (RFC 1191, per peer). Bump-in-the-wire ESP keeps the
// terminals' addresses, so a router that cannot forward one of our ESP packets sends its ICMP
// "fragmentation needed" to the terminal, and it reaches us on its way there: we are the gateway
// that protects that terminal. That ICMP is useless to the terminal (it quotes ESP); to us it says
// how large our packets toward that peer may be. We learn it, and answer the terminal's next
// oversized packet with our own ICMP, which quotes the terminal's packet (inside.ts). IPv6 is the
// same with ICMPv6 Packet Too Big (RFC 8201), and no estimate below 1280.
import type { Ip } from '../base/addr.js';
import { parseIcmp, ICMP_UNREACHABLE, UNREACH_FRAG_NEEDED, isIcmpUnreachable } from './packet/icmp.js';
import { parseIpv4, PROTO_ICMP } from './packet/ipv4.js';
import { groupEspOf } from './packet/group-esp.js';
import { ipFromBytes } from '../base/addr.js';
import { rd32 } from '../base/bytes.js';
import { ICMPV6_PACKET_TOO_BIG, parseIcmpv6 } from './packet/icmpv6.js';
import { IPV6_HEADER, NH_ICMPV6, parseIpv6 } from './packet/ipv6.js';

/**
 * Smallest path MTU believed (Linux's net.ipv4.route.min_pmtu): a report below it is taken as this,
 * so a forged ICMP cannot shrink our packets to nothing.
 */
export const PMTU_MIN = 552;
/** A quoted sequence number must be one of the last this many we sent under that SA. */
export const PMTU_SEQ_WINDOW = 1 << 24;

/** RFC 1191 §7: MTU plateaus, for routers that report no next-hop MTU (0). */
const PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/** What an ICMP "fragmentation needed" (or an ICMPv6 Packet Too Big) about an ESP packet says. */
export interface EspFragNeeded {
  /** The quoted packet's source (a terminal: where the ICMP is addressed) and destination. */
  local: Ip;
  remote: Ip;
  spi: number;
  /** The low 32 bits of the sequence number (the ESP header's; a quote has at least 8 bytes). */
  seqLow: number;
  /** The next-hop MTU it reports, or the RFC 1191 plateau below the quoted packet's length. */
  mtu: number;
}

/** Parses an ICMP destination unreachable, code 4, whose quote is an ESP packet; undefined for anything else. */
export function parseEspFragNeeded(packet: Uint8Array): EspFragNeeded | undefined {
  const ip = parseIpv4(packet);
  if (!ip.ok || ip.value.header.protocol !== PROTO_ICMP) return undefined;
  const icmp = parseIcmp(ip.value.payload);
  if (
    !icmp.ok ||
    icmp.value.type !== ICMP_UNREACHABLE ||
    icmp.value.code !== UNREACH_FRAG_NEEDED ||
    !isIcmpUnreachable(icmp.value)
  )
    return undefined;
  const q = icmp.value.original;
  if (q.length < 20 || q[0] >> 4 !== 4) return undefined;
  const hl = (q[0] & 15) * 4;
  if (hl < 20) return undefined;
  const esp = groupEspOf(q[9], q.subarray(hl), true);
  if (!esp || esp.length < 8) return undefined;
  const quotedLength = (q[2] << 8) | q[3];
  const reported = icmp.value.nextHopMtu;
  return {
    local: ipFromBytes(q, 12, 4),
    remote: ipFromBytes(q, 16, 4),
    spi: ((esp[0] << 24) | (esp[1] << 16) | (esp[2] << 8) | esp[3]) >>> 0,
    seqLow: ((esp[4] << 24) | (esp[5] << 16) | (esp[6] << 8) | esp[7]) >>> 0,
    mtu: reported !== 0 ? reported : (PLATEAUS.find((p) => p < quotedLength) ?? 68),
  };
}

/**
 * Parses an ICMPv6 Packet Too Big (RFC 4443 §3.2) whose quote is group ESP (IPv6 fixed header, no
 * extension headers, then UDP 4500 or ESP); undefined for anything else. The MTU is as reported
 * (callers never believe less than 1280).
 */
export function parseEspPacketTooBig(packet: Uint8Array): EspFragNeeded | undefined {
  const ip = parseIpv6(packet);
  if (!ip.ok) return undefined;
  const { header, walk } = ip.value;
  if (walk.upperProto !== NH_ICMPV6 || walk.upperOffset === undefined || walk.fragment !== 'none') return undefined;
  const icmp = parseIcmpv6(packet, walk.upperOffset, IPV6_HEADER + header.payloadLength);
  if (!icmp.ok || icmp.value.type !== ICMPV6_PACKET_TOO_BIG || icmp.value.code !== 0) return undefined;
  const q = icmp.value.body;
  if (q.length < IPV6_HEADER || q[0] >> 4 !== 6) return undefined;
  const esp = groupEspOf(q[6], q.subarray(IPV6_HEADER), true);
  if (!esp || esp.length < 8) return undefined;
  return {
    local: ipFromBytes(q, 8, 6),
    remote: ipFromBytes(q, 24, 6),
    spi: rd32(esp, 0),
    seqLow: rd32(esp, 4),
    mtu: Math.min(icmp.value.mtu, 0xffffffff),
  };
}

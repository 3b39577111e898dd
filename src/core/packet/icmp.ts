// ICMPv4 (RFC 792): echo, the errors a gateway originates (destination unreachable, including
// RFC 1191 "fragmentation needed"), and the echo reply a terminal's own IP stack would send.
import type { Ip } from '../../base/addr.js';
import { err, ok, type Result } from '../../base/result.js';
import { internetChecksum } from './checksum.js';
import { buildIpv4, ipv4HeaderLength, parseIpv4, PROTO_ICMP } from './ipv4.js';
import { echoReplyFor6 } from './icmpv6.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

/** Destination-unreachable codes used by gateways. */
export const UNREACH_HOST = 1;
export const UNREACH_FRAG_NEEDED = 4;
export const UNREACH_ADMIN_PROHIBITED = 13;

export interface IcmpEcho {
  type: 0 | 8;
  code: number;
  id: number;
  seq: number;
  /** A view into the input (no copy). */
  data: Uint8Array;
}

export interface IcmpUnreachable {
  type: 3;
  code: number;
  /** RFC 1191 next-hop MTU; meaningful for code 4 only (0 otherwise). */
  nextHopMtu: number;
  /** The quoted original datagram (IP header + leading payload bytes); a view into the input. */
  original: Uint8Array;
}

export interface IcmpOther {
  type: number;
  code: number;
  /** Everything after the checksum; a view into the input. */
  rest: Uint8Array;
}

export type IcmpMessage = IcmpEcho | IcmpUnreachable | IcmpOther;

// `type` alone does not narrow the union (IcmpOther.type is any number): use these.
export function isIcmpEcho(m: IcmpMessage): m is IcmpEcho {
  return (m.type === ICMP_ECHO_REQUEST || m.type === ICMP_ECHO_REPLY) && 'data' in m;
}

export function isIcmpUnreachable(m: IcmpMessage): m is IcmpUnreachable {
  return m.type === ICMP_UNREACHABLE && 'original' in m;
}

/** Parses an ICMP message (the IPv4 payload), verifying its checksum. */
export function parseIcmp(payload: Uint8Array): Result<IcmpMessage> {
  if (payload.length < 8) return err('truncated', `ICMP message of ${payload.length} bytes is shorter than 8`);
  if (internetChecksum(payload, 0, payload.length) !== 0) return err('bad-checksum', 'ICMP checksum does not verify');
  const type = payload[0];
  const code = payload[1];
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    return ok({
      type,
      code,
      id: (payload[4] << 8) | payload[5],
      seq: (payload[6] << 8) | payload[7],
      data: payload.subarray(8),
    });
  }
  if (type === ICMP_UNREACHABLE) {
    const nextHopMtu = code === UNREACH_FRAG_NEEDED ? (payload[6] << 8) | payload[7] : 0;
    return ok({ type, code, nextHopMtu, original: payload.subarray(8) });
  }
  return ok({ type, code, rest: payload.subarray(4) });
}

/** ICMP echo request/reply bytes with the checksum computed. */
export function buildIcmpEcho(o: {
  type: 0 | 8;
  id: number;
  seq: number;
  data: Uint8Array;
  code?: number;
}): Uint8Array {
  const out = new Uint8Array(8 + o.data.length);
  out[0] = o.type;
  out[1] = (o.code ?? 0) & 0xff;
  out[4] = (o.id >> 8) & 0xff;
  out[5] = o.id & 0xff;
  out[6] = (o.seq >> 8) & 0xff;
  out[7] = o.seq & 0xff;
  out.set(o.data, 8);
  setIcmpChecksum(out);
  return out;
}

function setIcmpChecksum(icmp: Uint8Array): void {
  icmp[2] = 0;
  icmp[3] = 0;
  const c = internetChecksum(icmp, 0, icmp.length);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
}

/**
 * Destination unreachable, code 4 (RFC 1191), as a complete IPv4 packet from `from` to the
 * original's source, quoting as much of the original as fits in 576 bytes (RFC 1812).
 */
export function buildIcmpFragNeeded(originalPacket: Uint8Array, nextHopMtu: number, from: Ip): Uint8Array {
  return buildUnreachable(originalPacket, UNREACH_FRAG_NEEDED, from, nextHopMtu);
}

/** Destination unreachable with another code (e.g. 1 host unreachable, 13 administratively prohibited). */
export function buildIcmpUnreachable(originalPacket: Uint8Array, code: number, from: Ip): Uint8Array {
  return buildUnreachable(originalPacket, code, from, 0);
}

// RFC 1812 4.3.2.5: ICMP errors other than source quench get precedence 6 (internetwork control).
const ICMP_ERROR_TOS = 0xc0;

function buildUnreachable(original: Uint8Array, code: number, from: Ip, mtu: number): Uint8Array {
  if (original.length < 20 || original[0] >> 4 !== 4)
    throw new TypeError('ICMP error about something that is not an IPv4 packet');
  const headerLength = Math.min(Math.max(ipv4HeaderLength(original), 20), original.length);
  const total = (original[2] << 8) | original[3];
  const end = total >= headerLength ? Math.min(total, original.length) : original.length;
  // RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes (what Linux quotes), not
  // RFC 792's header + 8: a gateway needs the ESP header behind a UDP header to believe the error.
  const quote = original.subarray(0, Math.min(end, 576 - 20 - 8));
  const icmp = new Uint8Array(8 + quote.length);
  icmp[0] = ICMP_UNREACHABLE;
  icmp[1] = code & 0xff;
  if (code === UNREACH_FRAG_NEEDED) {
    const m = Math.max(0, Math.min(0xffff, Math.floor(mtu)));
    icmp[6] = m >> 8;
    icmp[7] = m & 0xff;
  }
  icmp.set(quote, 8);
  setIcmpChecksum(icmp);
  const dst = `${original[12]}.${original[13]}.${original[14]}.${original[15]}`;
  return buildIpv4({ src: from, dst, protocol: PROTO_ICMP, payload: icmp, ttl: 64, tos: ICMP_ERROR_TOS });
}

/**
 * Whether an ICMP error may be sent about this packet (RFC 1812 4.3.2.7): not about an ICMP error,
 * a non-initial fragment, or a packet whose source is not a unicast host or whose destination is
 * multicast/limited broadcast. Cheap; bounds-checked; false for anything not IPv4.
 */
export function icmpErrorAllowed(packet: Uint8Array): boolean {
  if (packet.length < 20 || packet[0] >> 4 !== 4) return false;
  if ((((packet[6] << 8) | packet[7]) & 0x1fff) !== 0) return false;
  const s0 = packet[12];
  if (s0 === 0 || s0 === 127 || s0 >= 224) return false;
  const d0 = packet[16];
  if (d0 >= 224 && d0 < 240) return false;
  if (packet[16] === 255 && packet[17] === 255 && packet[18] === 255 && packet[19] === 255) return false;
  if (packet[9] === PROTO_ICMP) {
    const hl = ipv4HeaderLength(packet);
    if (hl < 20 || hl >= packet.length) return false;
    const type = packet[hl];
    if (type === 3 || type === 4 || type === 5 || type === 11 || type === 12) return false;
  }
  return true;
}

/**
 * The echo reply a terminal's IP stack sends for an IPv4 echo request: addresses swapped, type 0,
 * the same id, sequence number and data, TTL 64, fresh checksums. Fragments are refused (a real
 * stack would reassemble first). An IPv6 packet gets the ICMPv6 reply (echoReplyFor6).
 */
export function echoReplyFor(requestPacket: Uint8Array): Result<Uint8Array> {
  if (requestPacket.length > 0 && requestPacket[0] >> 4 === 6) return echoReplyFor6(requestPacket);
  const ip = parseIpv4(requestPacket);
  if (!ip.ok) return ip;
  const h = ip.value.header;
  if (h.protocol !== PROTO_ICMP) return err('not-icmp', `IP protocol ${h.protocol} is not ICMP`);
  if (h.mf || h.fragmentOffset !== 0) return err('fragmented', 'echo request is a fragment');
  const icmp = parseIcmp(ip.value.payload);
  if (!icmp.ok) return icmp;
  const m = icmp.value;
  if (!isIcmpEcho(m) || m.type !== ICMP_ECHO_REQUEST)
    return err('not-echo-request', `ICMP type ${m.type} is not an echo request`);
  const reply = buildIcmpEcho({ type: ICMP_ECHO_REPLY, id: m.id, seq: m.seq, data: m.data });
  return ok(buildIpv4({ src: h.dst, dst: h.src, protocol: PROTO_ICMP, payload: reply, ttl: 64, tos: h.tos }));
}

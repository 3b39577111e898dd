// What the simulator needs to know about the packets it carries, IPv4 and IPv6 alike: addresses
// for routing, the TTL / hop limit for forwarding, and a classification for traces (data,
// key-search request/reply by phase, ESP, TCP SYN, ICMP errors). Kinds are the same for both
// families, so a v4 run and its v6 twin trace alike. Building and parsing use the core's codecs;
// only the fixed header fields that forwarding touches are read here directly.
import { ipFamily, ipFromBytes, type Ip } from '../base/addr.js';
import { buildIcmpEcho, echoReplyFor, isIcmpEcho, parseIcmp } from '../core/packet/icmp.js';
import {
  buildIpv4,
  ipv4HeaderLength,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  setHeaderChecksum,
} from '../core/packet/ipv4.js';
import { groupEspOf } from '../core/packet/group-esp.js';
import { eachOption } from '../core/packet/options.js';
import {
  buildIcmpv6Echo,
  echoReplyFor6,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  parseIcmpv6,
} from '../core/packet/icmpv6.js';
import { IPV6_HEADER, NH_ICMPV6, walkExtensionHeaders } from '../core/packet/ipv6.js';
import { decodeSearchMessage, isSearchPayload } from '../core/packet/search-message.js';

const DEFAULT_TTL = 64;

export interface PacketDescription {
  src: Ip;
  dst: Ip;
  /** data, data-reply, search-request(source), search-reply(destination), esp, tcp-syn, ... */
  kind: string;
  /** Echo fields; `type` is ICMP's (8 request, 0 reply) for both families. */
  icmp?: { type: number; id: number; seq: number };
  tcp?: { srcPort: number; dstPort: number; seq: number; flags: number; mss?: number };
}

/** The IP version of a packet whose fixed header is complete and within its bytes, else 0. */
function ipVersion(bytes: Uint8Array): 0 | 4 | 6 {
  const version = bytes.length > 0 ? bytes[0] >> 4 : 0;
  if (version === 4) {
    if (bytes.length < 20) return 0;
    const headerLength = ipv4HeaderLength(bytes);
    return headerLength >= 20 && headerLength <= bytes.length ? 4 : 0;
  }
  if (version === 6) return bytes.length >= IPV6_HEADER ? 6 : 0;
  return 0;
}

/** Source and destination of an IPv4 or IPv6 packet, or undefined when it is neither. */
export function ipEndpoints(bytes: Uint8Array): { src: Ip; dst: Ip } | undefined {
  const v = ipVersion(bytes);
  if (v === 4) return { src: ipFromBytes(bytes, 12, 4), dst: ipFromBytes(bytes, 16, 4) };
  if (v === 6) return { src: ipFromBytes(bytes, 8, 6), dst: ipFromBytes(bytes, 24, 6) };
  return undefined;
}

/** The destination address of an IPv4 or IPv6 packet. */
export function ipDestination(bytes: Uint8Array): Ip | undefined {
  const v = ipVersion(bytes);
  if (v === 4) return ipFromBytes(bytes, 16, 4);
  if (v === 6) return ipFromBytes(bytes, 24, 6);
  return undefined;
}

/**
 * The packet a forwarding node passes on: a copy with the IPv4 TTL decremented (and the header
 * checksum recomputed) or the IPv6 hop limit decremented; undefined when it runs out (or the
 * packet is not IP).
 */
export function decrementTtl(bytes: Uint8Array): Uint8Array | undefined {
  const v = ipVersion(bytes);
  const at = v === 4 ? 8 : v === 6 ? 7 : -1;
  if (at < 0 || bytes[at] <= 1) return undefined;
  // A copy: the sender (a core's retry buffer, a terminal's record) may still hold the original.
  const out = bytes.slice();
  out[at] -= 1;
  if (v === 4) setHeaderChecksum(out);
  return out;
}

/** An echo request or reply, either family: ICMP's type (8 or 0), id, sequence number and data. */
interface Echo {
  type: 0 | 8;
  id: number;
  seq: number;
  data: Uint8Array;
}

interface UpperLayer {
  version: 4 | 6;
  protocol: number;
  /** Where the upper-layer message starts in the packet, and where the packet's payload ends. */
  offset: number;
  end: number;
  payload: Uint8Array;
}

/**
 * The upper-layer protocol and message of a packet (IPv6: after the core's extension-header
 * walk); a string for an IPv6 packet that has none to show (a malformed chain, a later fragment).
 */
function upperLayer(bytes: Uint8Array): UpperLayer | 'bad-ipv6' | 'ipv6-fragment' | undefined {
  const v = ipVersion(bytes);
  if (v === 4) {
    const offset = ipv4HeaderLength(bytes);
    const end = Math.max(offset, Math.min((bytes[2] << 8) | bytes[3], bytes.length));
    return { version: 4, protocol: bytes[9], offset, end, payload: bytes.subarray(offset, end) };
  }
  if (v !== 6) return undefined;
  const end = Math.min(IPV6_HEADER + ((bytes[4] << 8) | bytes[5]), bytes.length);
  const walk = walkExtensionHeaders(bytes, bytes[6], IPV6_HEADER, end);
  if (!walk.ok) return 'bad-ipv6';
  const offset = walk.value.upperOffset;
  if (offset === undefined) return 'ipv6-fragment';
  return { version: 6, protocol: walk.value.upperProto, offset, end, payload: bytes.subarray(offset, end) };
}

type IcmpView = { echo: Echo } | { type: number; code: number } | { malformed: true };

/** An ICMP (v4) or ICMPv6 message, checksum verified; echo types mapped to ICMP's. */
function icmpView(bytes: Uint8Array, upper: UpperLayer): IcmpView | undefined {
  if (upper.version === 4) {
    if (upper.protocol !== PROTO_ICMP) return undefined;
    const m = parseIcmp(upper.payload);
    if (!m.ok) return { malformed: true };
    if (isIcmpEcho(m.value))
      return { echo: { type: m.value.type, id: m.value.id, seq: m.value.seq, data: m.value.data } };
    return { type: m.value.type, code: m.value.code };
  }
  if (upper.protocol !== NH_ICMPV6) return undefined;
  const m = parseIcmpv6(bytes, upper.offset, upper.end);
  if (!m.ok) return { malformed: true };
  const { type, code, id, seq, body } = m.value;
  if (type === ICMPV6_ECHO_REQUEST || type === ICMPV6_ECHO_REPLY)
    return { echo: { type: type === ICMPV6_ECHO_REQUEST ? 8 : 0, id, seq, data: body } };
  return { type, code };
}

/** True for an echo request/reply (ICMP or ICMPv6) that carries a kasane key-search payload. */
export function isSearchPacket(bytes: Uint8Array): boolean {
  const upper = upperLayer(bytes);
  if (typeof upper !== 'object') return false;
  const icmp = icmpView(bytes, upper);
  return icmp !== undefined && 'echo' in icmp && isSearchPayload(icmp.echo.data);
}

/** The kind of an ICMP message other than echo: the errors a gateway sends, by family. */
function icmpErrorKind(version: 4 | 6, type: number, code: number): string {
  if (version === 4) {
    if (type === 3 && code === 4) return 'icmp-frag-needed';
    if (type === 3 || type === 11) return 'icmp-error';
    return `icmp-${type}`;
  }
  if (type === 2) return 'icmp6-packet-too-big';
  if (type === 1 || type === 3 || type === 4) return 'icmp-error';
  return `icmp6-${type}`;
}

export function describePacket(bytes: Uint8Array): PacketDescription {
  const ends = ipEndpoints(bytes);
  const upper = upperLayer(bytes);
  if (ends === undefined || upper === undefined) return { src: '?', dst: '?', kind: 'malformed' };
  if (typeof upper === 'string') return { ...ends, kind: upper };
  const { protocol, payload } = upper;
  if (groupEspOf(protocol, payload)) return { ...ends, kind: 'esp' };
  const icmp = icmpView(bytes, upper);
  if (icmp !== undefined) {
    if ('malformed' in icmp) return { ...ends, kind: 'icmp-malformed' };
    if (!('echo' in icmp)) return { ...ends, kind: icmpErrorKind(upper.version, icmp.type, icmp.code) };
    const { type, id, seq, data } = icmp.echo;
    const fields = { type, id, seq };
    if (!isSearchPayload(data)) return { ...ends, kind: type === 8 ? 'data' : 'data-reply', icmp: fields };
    const msg = decodeSearchMessage(data);
    const direction = type === 8 ? 'request' : 'reply';
    return {
      ...ends,
      kind: msg.ok ? `search-${direction}(${msg.value.phase})` : `search-${direction}(invalid)`,
      icmp: fields,
    };
  }
  if (protocol === PROTO_TCP) {
    const tcp = readTcp(payload);
    if (tcp === undefined) return { ...ends, kind: 'tcp-malformed' };
    const syn = (tcp.flags & 0x02) !== 0;
    const ack = (tcp.flags & 0x10) !== 0;
    return { ...ends, kind: syn ? (ack ? 'tcp-syn-ack' : 'tcp-syn') : 'tcp', tcp };
  }
  if (protocol === PROTO_UDP) return { ...ends, kind: 'udp' };
  return { ...ends, kind: upper.version === 4 ? `ip-proto-${protocol}` : `ipv6-next-${protocol}` };
}

/** TCP header fields the simulator reports (ports, sequence number, flags, the MSS option). */
function readTcp(segment: Uint8Array): PacketDescription['tcp'] {
  if (segment.length < 20) return undefined;
  const dataOffset = (segment[12] >> 4) * 4;
  if (dataOffset < 20 || dataOffset > segment.length) return undefined;
  const out: NonNullable<PacketDescription['tcp']> = {
    srcPort: (segment[0] << 8) | segment[1],
    dstPort: (segment[2] << 8) | segment[3],
    seq: ((segment[4] << 24) | (segment[5] << 16) | (segment[6] << 8) | segment[7]) >>> 0,
    flags: segment[13],
  };
  for (const [at, length] of eachOption(segment, 20, dataOffset))
    if (segment[at] === 2 && length === 4) out.mss = (segment[at + 2] << 8) | segment[at + 3];
  return out;
}

/** An echo request as a terminal's IP stack sends it: ICMP over IPv4, ICMPv6 over IPv6 (by the addresses). */
export function buildEchoRequest(opts: {
  src: Ip;
  dst: Ip;
  id: number;
  seq: number;
  data: Uint8Array;
  ipId: number;
}): Uint8Array {
  if (ipFamily(opts.src) === 6)
    return buildIcmpv6Echo({
      type: ICMPV6_ECHO_REQUEST,
      src: opts.src,
      dst: opts.dst,
      id: opts.id,
      seq: opts.seq,
      data: opts.data,
    });
  const icmp = buildIcmpEcho({ type: 8, id: opts.id, seq: opts.seq, data: opts.data });
  return buildIpv4({
    src: opts.src,
    dst: opts.dst,
    protocol: PROTO_ICMP,
    payload: icmp,
    ttl: DEFAULT_TTL,
    id: opts.ipId,
    tos: 0,
  });
}

/** The echo reply an unmodified IP stack sends for a request (payload returned intact). */
export function buildEchoReply(request: Uint8Array): Uint8Array | undefined {
  const reply = ipVersion(request) === 6 ? echoReplyFor6(request) : echoReplyFor(request);
  return reply.ok ? reply.value : undefined;
}

/** Echo data: the marker text, then a counting pattern up to `size` bytes (as ping pads). */
export function echoData(size: number, marker?: string): Uint8Array {
  const data = new Uint8Array(size);
  const text = marker === undefined ? new Uint8Array(0) : new TextEncoder().encode(marker);
  data.set(text.subarray(0, size));
  for (let i = text.length; i < size; i++) data[i] = i & 0xff;
  return data;
}

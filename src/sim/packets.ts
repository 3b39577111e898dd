// What the simulator needs to know about the packets it carries: addresses for routing, the TTL
// for forwarding, and a classification for traces (data, key-search request/reply by phase, ESP,
// TCP SYN, ICMP errors). Building and parsing use the core's codecs; only the fixed IPv4 header
// fields that forwarding touches are read here directly.
import { ipFromBytes, type Ip } from '../base/addr.js';
import { buildIcmpEcho, echoReplyFor, isIcmpEcho, parseIcmp } from '../core/packet/icmp.js';
import { buildIpv4, ipv4HeaderLength, PROTO_ICMP, PROTO_TCP, PROTO_UDP, setHeaderChecksum } from '../core/packet/ipv4.js';
import { groupEspOf } from '../core/packet/group-esp.js';
import { decodeSearchMessage, isSearchPayload } from '../core/packet/search-message.js';

const DEFAULT_TTL = 64;

export interface PacketDescription {
  src: Ip;
  dst: Ip;
  /** data, data-reply, search-request(source), search-reply(destination), esp, tcp-syn, ... */
  kind: string;
  icmp?: { type: number; id: number; seq: number };
  tcp?: { srcPort: number; dstPort: number; seq: number; flags: number; mss?: number };
}

/** Enough of an IPv4 header to route and forward (full validation is the core's job). */
function forwardable(bytes: Uint8Array): boolean {
  if (bytes.length < 20 || bytes[0] >> 4 !== 4) return false;
  const headerLength = ipv4HeaderLength(bytes);
  return headerLength >= 20 && headerLength <= bytes.length;
}

/** Source and destination of an IPv4 packet, or undefined when it is not one. */
export function ipv4Endpoints(bytes: Uint8Array): { src: Ip; dst: Ip } | undefined {
  if (!forwardable(bytes)) return undefined;
  return { src: ipFromBytes(bytes, 12, 4), dst: ipFromBytes(bytes, 16, 4) };
}

/** The destination address of an IPv4 packet. */
export function ipv4Destination(bytes: Uint8Array): Ip | undefined {
  if (!forwardable(bytes)) return undefined;
  return ipFromBytes(bytes, 16, 4);
}

/**
 * The packet a forwarding node passes on: a copy with the TTL decremented and the header
 * checksum recomputed; undefined when the TTL runs out (or the header is not IPv4).
 */
export function decrementTtl(bytes: Uint8Array): Uint8Array | undefined {
  if (!forwardable(bytes) || bytes[8] <= 1) return undefined;
  // A copy: the sender (a core's retry buffer, a terminal's record) may still hold the original.
  const out = bytes.slice();
  out[8] -= 1;
  setHeaderChecksum(out);
  return out;
}

/** True for an ICMP echo request/reply that carries a kasane key-search payload. */
export function isSearchPacket(bytes: Uint8Array): boolean {
  const icmp = icmpOf(bytes);
  if (icmp === undefined) return false;
  const m = parseIcmp(icmp);
  return m.ok && isIcmpEcho(m.value) && isSearchPayload(m.value.data);
}

function icmpOf(bytes: Uint8Array): Uint8Array | undefined {
  if (!forwardable(bytes) || bytes[9] !== PROTO_ICMP) return undefined;
  const headerLength = ipv4HeaderLength(bytes);
  const total = Math.min((bytes[2] << 8) | bytes[3], bytes.length);
  return bytes.subarray(headerLength, total);
}

export function describePacket(bytes: Uint8Array): PacketDescription {
  const ends = ipv4Endpoints(bytes);
  if (ends === undefined) return { src: '?', dst: '?', kind: 'malformed' };
  const headerLength = ipv4HeaderLength(bytes);
  const protocol = bytes[9];
  const payload = bytes.subarray(headerLength, Math.min((bytes[2] << 8) | bytes[3], bytes.length));
  if (groupEspOf(protocol, payload)) return { ...ends, kind: 'esp' };
  if (protocol === PROTO_ICMP) {
    const m = parseIcmp(payload);
    if (!m.ok) return { ...ends, kind: 'icmp-malformed' };
    const type = m.value.type;
    if (isIcmpEcho(m.value)) {
      const echo = m.value;
      const icmp = { type, id: echo.id, seq: echo.seq };
      if (!isSearchPayload(echo.data)) return { ...ends, kind: type === 8 ? 'data' : 'data-reply', icmp };
      const msg = decodeSearchMessage(echo.data);
      const direction = type === 8 ? 'request' : 'reply';
      return { ...ends, kind: msg.ok ? `search-${direction}(${msg.value.phase})` : `search-${direction}(invalid)`, icmp };
    }
    if (type === 3 && m.value.code === 4) return { ...ends, kind: 'icmp-frag-needed' };
    if (type === 3 || type === 11) return { ...ends, kind: 'icmp-error' };
    return { ...ends, kind: `icmp-${type}` };
  }
  if (protocol === PROTO_TCP) {
    const tcp = readTcp(payload);
    if (tcp === undefined) return { ...ends, kind: 'tcp-malformed' };
    const syn = (tcp.flags & 0x02) !== 0;
    const ack = (tcp.flags & 0x10) !== 0;
    return { ...ends, kind: syn ? (ack ? 'tcp-syn-ack' : 'tcp-syn') : 'tcp', tcp };
  }
  if (protocol === PROTO_UDP) return { ...ends, kind: 'udp' };
  return { ...ends, kind: `ip-proto-${protocol}` };
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
  for (let i = 20; i < dataOffset; ) {
    const kind = segment[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = segment[i + 1];
    if (len === undefined || len < 2 || i + len > dataOffset) break;
    if (kind === 2 && len === 4) out.mss = (segment[i + 2] << 8) | segment[i + 3];
    i += len;
  }
  return out;
}

/** An ICMP echo request as a terminal's IP stack sends it. */
export function buildEchoRequest(opts: { src: Ip; dst: Ip; id: number; seq: number; data: Uint8Array; ipId: number }): Uint8Array {
  const icmp = buildIcmpEcho({ type: 8, id: opts.id, seq: opts.seq, data: opts.data });
  return buildIpv4({ src: opts.src, dst: opts.dst, protocol: PROTO_ICMP, payload: icmp, ttl: DEFAULT_TTL, id: opts.ipId, tos: 0 });
}

/** The echo reply an unmodified IP stack sends for a request (payload returned intact). */
export function buildEchoReply(request: Uint8Array): Uint8Array | undefined {
  const reply = echoReplyFor(request);
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

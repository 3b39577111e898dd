// The little of TCP (RFC 9293) a gateway touches: clamping the MSS option of SYNs so that
// encapsulation overhead does not break the path MTU, plus a builder and a checksum check for tests.
import { ipFamily, type Ip } from '../../base/addr.js';
import { checksumAdjust, internetChecksum } from './checksum.js';
import { pseudoHeaderSum } from './ip.js';
import { eachOption } from './options.js';
import { buildIpv4, PROTO_TCP } from './ipv4.js';
import { buildIpv6, IPV6_HEADER, parseIpv6 } from './ipv6.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

const OPT_MSS = 2;

/**
 * Where the TCP segment of an IPv4 or IPv6 packet lies, or undefined if it is not a whole, sane
 * one (IPv6: behind any extension headers, never in a fragment).
 */
function tcpBounds(p: Uint8Array): { start: number; end: number } | undefined {
  if (p.length > 0 && p[0] >> 4 === 6) {
    const ip = parseIpv6(p);
    if (!ip.ok || ip.value.walk.upperProto !== PROTO_TCP || ip.value.walk.fragment !== 'none') return undefined;
    const start = ip.value.walk.upperOffset ?? p.length;
    const end = IPV6_HEADER + ip.value.header.payloadLength;
    return end >= start + 20 ? { start, end } : undefined;
  }
  if (p.length < 20 || p[0] >> 4 !== 4 || p[9] !== PROTO_TCP) return undefined;
  const hl = (p[0] & 0x0f) * 4;
  const total = (p[2] << 8) | p[3];
  if (hl < 20 || total > p.length || total < hl + 20) return undefined;
  return { start: hl, end: total };
}

/**
 * If `packet` (IPv4 or IPv6) is an unfragmented TCP segment with SYN set whose MSS option exceeds
 * `maxMss`, lowers the option to `maxMss` in place and updates the TCP checksum incrementally.
 * Returns whether anything changed. Never reads outside the packet and never throws, whatever the bytes.
 */
export function clampTcpMss(packet: Uint8Array, maxMss: number): boolean {
  const p = packet;
  const b = tcpBounds(p);
  if (b === undefined) return false;
  if (p[0] >> 4 === 4 && (((p[6] << 8) | p[7]) & 0x3fff) !== 0) return false; // MF or a fragment offset
  const t = b.start;
  if ((p[t + 13] & TCP_SYN) === 0) return false;
  const dataOffset = (p[t + 12] >> 4) * 4;
  if (dataOffset < 20 || t + dataOffset > b.end) return false;
  const limit = Math.max(0, Math.min(0xffff, Math.floor(maxMss)));
  if (!(limit >= 0)) return false; // NaN
  const optEnd = t + dataOffset;
  let changed = false;
  for (const at of mssOptions(p, t + 20, optEnd)) {
    const old = (p[at] << 8) | p[at + 1];
    if (old <= limit) continue;
    p[at] = limit >> 8;
    p[at + 1] = limit & 0xff;
    // A word at an odd offset straddles two checksum words; its contribution equals that of
    // the byte-swapped word at an even offset (RFC 1071 byte-order independence).
    const odd = ((at - t) & 1) === 1;
    const c = (p[t + 16] << 8) | p[t + 17];
    const n = odd ? checksumAdjust(c, swap16(old), swap16(limit)) : checksumAdjust(c, old, limit);
    p[t + 16] = n >> 8;
    p[t + 17] = n & 0xff;
    changed = true;
  }
  return changed;
}

function swap16(v: number): number {
  return ((v & 0xff) << 8) | (v >> 8);
}

/** True when `packet` (IPv4 or IPv6) holds a whole TCP segment whose checksum verifies. */
export function tcpChecksumOk(packet: Uint8Array): boolean {
  const b = tcpBounds(packet);
  if (b === undefined) return false;
  const len = b.end - b.start;
  return internetChecksum(packet, b.start, len, pseudoHeaderSum(packet, PROTO_TCP, len)) === 0;
}

/** The MSS option of a TCP segment in an IPv4 or IPv6 packet, if present and well formed. */
export function tcpMss(packet: Uint8Array): number | undefined {
  const p = packet;
  const b = tcpBounds(p);
  if (b === undefined) return undefined;
  const t = b.start;
  const optEnd = t + (p[t + 12] >> 4) * 4;
  if (optEnd < t + 20 || optEnd > b.end) return undefined;
  for (const at of mssOptions(p, t + 20, optEnd)) return (p[at] << 8) | p[at + 1];
  return undefined;
}

/**
 * Offsets of the value of every well-formed MSS option in a TCP option list [from, optEnd).
 * Stops at the end-of-list option or at the first malformed option (touch nothing beyond it).
 */
function* mssOptions(p: Uint8Array, from: number, optEnd: number): Generator<number> {
  for (const [at, length] of eachOption(p, from, optEnd)) if (p[at] === OPT_MSS && length === 4) yield at + 2;
}

export interface TcpSegmentOptions {
  src: Ip;
  dst: Ip;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack?: number;
  /** TCP flag bits (TCP_SYN etc.); SYN by default. */
  flags?: number;
  window?: number;
  /** An MSS option, placed first. */
  mss?: number;
  /** Further raw option bytes (after the MSS option); padded with EOL to a 4-byte boundary. */
  options?: Uint8Array;
  payload?: Uint8Array;
  ttl?: number;
  df?: boolean;
}

/**
 * An IPv4 (or, with IPv6 addresses, IPv6) packet carrying one TCP segment, checksums computed.
 * Throws if the options exceed 40 bytes.
 */
export function buildTcpSegment(o: TcpSegmentOptions): Uint8Array {
  const extra = o.options ?? new Uint8Array(0);
  const rawOptLen = (o.mss !== undefined ? 4 : 0) + extra.length;
  const optLen = (rawOptLen + 3) & ~3;
  if (optLen > 40) throw new RangeError(`TCP options of ${rawOptLen} bytes exceed 40`);
  const payload = o.payload ?? new Uint8Array(0);
  const seg = new Uint8Array(20 + optLen + payload.length);
  const v = new DataView(seg.buffer);
  v.setUint16(0, o.srcPort & 0xffff);
  v.setUint16(2, o.dstPort & 0xffff);
  v.setUint32(4, o.seq >>> 0);
  v.setUint32(8, (o.ack ?? 0) >>> 0);
  seg[12] = ((20 + optLen) / 4) << 4;
  seg[13] = (o.flags ?? TCP_SYN) & 0xff;
  v.setUint16(14, (o.window ?? 65535) & 0xffff);
  let i = 20;
  if (o.mss !== undefined) {
    seg[i] = OPT_MSS;
    seg[i + 1] = 4;
    v.setUint16(i + 2, o.mss & 0xffff);
    i += 4;
  }
  seg.set(extra, i);
  seg.set(payload, 20 + optLen);
  const v6 = ipFamily(o.src) === 6;
  const packet = v6
    ? buildIpv6({ src: o.src, dst: o.dst, nextHeader: PROTO_TCP, payload: seg, hopLimit: o.ttl ?? 64 })
    : buildIpv4({ src: o.src, dst: o.dst, protocol: PROTO_TCP, payload: seg, ttl: o.ttl ?? 64, df: o.df ?? true });
  const at = v6 ? IPV6_HEADER : 20;
  const c = internetChecksum(packet, at, seg.length, pseudoHeaderSum(packet, PROTO_TCP, seg.length));
  packet[at + 16] = c >> 8;
  packet[at + 17] = c & 0xff;
  return packet;
}

/** A SYN with an MSS option (the common case in tests). */
export function buildTcpSyn(o: {
  src: Ip;
  dst: Ip;
  srcPort: number;
  dstPort: number;
  seq: number;
  mss?: number;
  options?: Uint8Array;
}): Uint8Array {
  return buildTcpSegment({ ...o, flags: TCP_SYN });
}

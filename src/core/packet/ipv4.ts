// IPv4 header codec (RFC 791). Parsing validates everything a forwarder relies on and never
// throws; builders and rewriters are for packets this gateway originates or re-frames.
import { ipFromBytes, type Ip } from '../../base/addr.js';
import { err, ok, type Result } from '../../base/result.js';
import { internetChecksum } from './checksum.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ESP = 50;

export const IPV4_MIN_HEADER = 20;
export const IPV4_MAX_TOTAL = 0xffff;

export interface Ipv4Header {
  /** Bytes, including options (20..60). */
  headerLength: number;
  tos: number;
  totalLength: number;
  id: number;
  df: boolean;
  mf: boolean;
  /** In bytes (the wire field times 8). */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: Ip;
  dst: Ip;
}

export interface ParsedIpv4 {
  header: Ipv4Header;
  /** A view into the input (no copy), up to totalLength: link padding is excluded. */
  payload: Uint8Array;
}

export function parseIpv4(buf: Uint8Array): Result<ParsedIpv4> {
  if (buf.length < IPV4_MIN_HEADER)
    return err('truncated', `IPv4 packet of ${buf.length} bytes is shorter than a header`);
  const version = buf[0] >> 4;
  if (version !== 4) return err('bad-version', `IP version ${version}, expected 4`);
  const headerLength = (buf[0] & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER) return err('bad-length', `IPv4 header length ${headerLength} is below 20`);
  if (headerLength > buf.length) return err('truncated', `IPv4 header of ${headerLength} bytes in ${buf.length} bytes`);
  const totalLength = (buf[2] << 8) | buf[3];
  if (totalLength < headerLength)
    return err('bad-length', `IPv4 total length ${totalLength} is below the header length ${headerLength}`);
  if (totalLength > buf.length)
    return err('truncated', `IPv4 total length ${totalLength} exceeds the ${buf.length} bytes received`);
  if (internetChecksum(buf, 0, headerLength) !== 0) return err('bad-checksum', 'IPv4 header checksum does not verify');
  const flags = (buf[6] << 8) | buf[7];
  return ok({
    header: {
      headerLength,
      tos: buf[1],
      totalLength,
      id: (buf[4] << 8) | buf[5],
      df: (flags & 0x4000) !== 0,
      mf: (flags & 0x2000) !== 0,
      fragmentOffset: (flags & 0x1fff) * 8,
      ttl: buf[8],
      protocol: buf[9],
      checksum: (buf[10] << 8) | buf[11],
      src: ipFromBytes(buf, 12, 4),
      dst: ipFromBytes(buf, 16, 4),
    },
    payload: buf.subarray(headerLength, totalLength),
  });
}

export interface BuildIpv4Options {
  src: Ip;
  dst: Ip;
  protocol: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
  df?: boolean;
  tos?: number;
}

/** A complete IPv4 packet with a 20-byte header. Throws only on programmer error (bad address, too large). */
export function buildIpv4(o: BuildIpv4Options): Uint8Array {
  const total = IPV4_MIN_HEADER + o.payload.length;
  if (total > IPV4_MAX_TOTAL) throw new RangeError(`IPv4 packet of ${total} bytes exceeds 65535`);
  const out = new Uint8Array(total);
  out[0] = 0x45;
  out[1] = (o.tos ?? 0) & 0xff;
  out[2] = total >> 8;
  out[3] = total & 0xff;
  const id = (o.id ?? 0) & 0xffff;
  out[4] = id >> 8;
  out[5] = id & 0xff;
  out[6] = o.df ? 0x40 : 0;
  out[8] = (o.ttl ?? 64) & 0xff;
  out[9] = o.protocol & 0xff;
  out.set(v4Bytes(o.src), 12);
  out.set(v4Bytes(o.dst), 16);
  setHeaderChecksum(out, IPV4_MIN_HEADER);
  out.set(o.payload, IPV4_MIN_HEADER);
  return out;
}

// Cheap accessors for packets the caller has already validated (parseIpv4 or the native executor).
export function ipv4Protocol(buf: Uint8Array): number {
  return buf[9];
}

export function ipv4Src(buf: Uint8Array): Ip {
  return ipFromBytes(buf, 12, 4);
}

export function ipv4Dst(buf: Uint8Array): Ip {
  return ipFromBytes(buf, 16, 4);
}

/** Header length in bytes from the IHL field (no validation). */
export function ipv4HeaderLength(buf: Uint8Array): number {
  return (buf[0] & 0x0f) * 4;
}

/**
 * A new packet with `packet`'s header (options, id, flags, ttl, tos, addresses kept) and the given
 * payload and protocol; total length and header checksum recomputed. `packet` must have a valid
 * header. Throws only if the result would exceed 65535 bytes (the caller checks sizes first).
 */
export function rewriteIpv4(packet: Uint8Array, o: { protocol?: number; payload: Uint8Array }): Uint8Array {
  const headerLength = Math.min(ipv4HeaderLength(packet), packet.length);
  const total = headerLength + o.payload.length;
  if (total > IPV4_MAX_TOTAL) throw new RangeError(`IPv4 packet of ${total} bytes exceeds 65535`);
  const out = new Uint8Array(total);
  out.set(packet.subarray(0, headerLength), 0);
  out[2] = total >> 8;
  out[3] = total & 0xff;
  if (o.protocol !== undefined) out[9] = o.protocol & 0xff;
  setHeaderChecksum(out, headerLength);
  out.set(o.payload, headerLength);
  return out;
}

/** Recomputes the header checksum in place (e.g. after changing the TTL). */
export function setHeaderChecksum(buf: Uint8Array, headerLength = ipv4HeaderLength(buf)): void {
  buf[10] = 0;
  buf[11] = 0;
  const c = internetChecksum(buf, 0, headerLength);
  buf[10] = c >> 8;
  buf[11] = c & 0xff;
}

function v4Bytes(ip: Ip): Uint8Array {
  const parts = ip.split('.');
  const out = new Uint8Array(4);
  let valid = parts.length === 4;
  for (let i = 0; valid && i < 4; i++) {
    const n = /^\d{1,3}$/.test(parts[i]) ? Number(parts[i]) : 256;
    if (n > 255) valid = false;
    out[i] = n;
  }
  if (!valid) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return out;
}

// IPv6 (RFC 8200): the fixed header, the extension-header walk, and the packets a gateway must
// never intercept. Parsing validates everything a forwarder relies on and never throws; the walk
// is bounded by the packet and by MAX_EXTENSION_HEADERS, and its result is the same as the native
// executor's on the shared vectors (docs/protocol.md §2.8).
import { ipFromBytes, ipToBytes, ipFamily, type Ip } from '../../base/addr.js';
import { rd16, wr16 } from '../../base/bytes.js';
import { err, ok, type Result } from '../../base/result.js';

export const IPV6_HEADER = 40;
export const NH_HOP_BY_HOP = 0;
export const NH_IPV4 = 4;
export const NH_TCP = 6;
export const NH_UDP = 17;
export const NH_IPV6 = 41;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AH = 51;
export const NH_ICMPV6 = 58;
export const NH_NONE = 59;
export const NH_DEST_OPTS = 60;
/** More extension headers than this in one packet: malformed (RFC 8200 gives no bound; we do). */
export const MAX_EXTENSION_HEADERS = 16;
/** The minimum link MTU of IPv6 (RFC 8200 §5): no path is smaller. */
export const IPV6_MIN_MTU = 1280;

export interface Ipv6Header {
  trafficClass: number;
  flowLabel: number;
  /** Bytes after the fixed header (extension headers included). */
  payloadLength: number;
  /** The fixed header's next header. */
  nextHeader: number;
  hopLimit: number;
  src: Ip;
  dst: Ip;
}

export type FragmentKind = 'none' | 'first' | 'non-first';

/** Where the extension-header walk stopped. */
export interface ExtensionWalk {
  /** The upper-layer protocol (6, 17, 58, ...), 59 for "no next header", 50 for ESP (opaque). */
  upperProto: number;
  /** Offset of the upper-layer header in the packet; absent in a fragment with a non-zero offset. */
  upperOffset?: number;
  fragment: FragmentKind;
  /** Bytes of extension headers between the fixed header and the upper layer. */
  extLength: number;
}

export interface ParsedIpv6 {
  header: Ipv6Header;
  /** A view into the input (no copy) of the payload length: link padding is excluded. */
  payload: Uint8Array;
  walk: ExtensionWalk;
}

function isExtension(nh: number): boolean {
  return nh === NH_HOP_BY_HOP || nh === NH_ROUTING || nh === NH_DEST_OPTS || nh === NH_FRAGMENT || nh === NH_AH;
}

/**
 * Walks the extension headers of `buf` from `nextHeader` at `off` (40 for a whole packet) to `end`
 * (40 + payload length). A header that runs past `end`, hop-by-hop anywhere but first, or more
 * than MAX_EXTENSION_HEADERS headers: an error (code 'bad-ipv6').
 */
export function walkExtensionHeaders(
  buf: Uint8Array,
  nextHeader: number,
  off = IPV6_HEADER,
  end = buf.length,
): Result<ExtensionWalk> {
  let nh = nextHeader;
  let at = off;
  let count = 0;
  let fragment: FragmentKind = 'none';
  while (isExtension(nh)) {
    if (nh === NH_HOP_BY_HOP && count > 0)
      return err('bad-ipv6', 'hop-by-hop options not directly after the fixed header');
    if (++count > MAX_EXTENSION_HEADERS) return err('bad-ipv6', `more than ${MAX_EXTENSION_HEADERS} extension headers`);
    if (at + 8 > end) return err('bad-ipv6', `extension header ${nh} at ${at} runs past the packet (${end} bytes)`);
    let length: number;
    if (nh === NH_FRAGMENT) {
      length = 8;
      const offset = rd16(buf, at + 2) & 0xfff8;
      // A later fragment header cannot make a non-first fragment first again.
      if (offset !== 0) fragment = 'non-first';
      else if (fragment === 'none') fragment = 'first';
    } else if (nh === NH_AH) length = (buf[at + 1] + 2) * 4;
    else length = (buf[at + 1] + 1) * 8;
    if (at + length > end)
      return err('bad-ipv6', `extension header ${nh} of ${length} bytes at ${at} runs past the packet (${end} bytes)`);
    nh = buf[at];
    at += length;
    if (fragment === 'non-first') return ok({ upperProto: nh, fragment, extLength: at - off });
  }
  return ok({ upperProto: nh, upperOffset: at, fragment, extLength: at - off });
}

export function parseIpv6(buf: Uint8Array): Result<ParsedIpv6> {
  if (buf.length < IPV6_HEADER) return err('truncated', `IPv6 packet of ${buf.length} bytes is shorter than a header`);
  const version = buf[0] >> 4;
  if (version !== 6) return err('bad-version', `IP version ${version}, expected 6`);
  const payloadLength = rd16(buf, 4);
  // Payload length 0 with a jumbo payload option (RFC 2675) is refused: no link of ours carries one.
  if (IPV6_HEADER + payloadLength > buf.length)
    return err(
      'truncated',
      `IPv6 payload length ${payloadLength} exceeds the ${buf.length - IPV6_HEADER} bytes received`,
    );
  const end = IPV6_HEADER + payloadLength;
  const walk = walkExtensionHeaders(buf, buf[6], IPV6_HEADER, end);
  if (!walk.ok) return walk;
  return ok({
    header: {
      trafficClass: ((buf[0] & 0x0f) << 4) | (buf[1] >> 4),
      flowLabel: ((buf[1] & 0x0f) << 16) | rd16(buf, 2),
      payloadLength,
      nextHeader: buf[6],
      hopLimit: buf[7],
      src: ipFromBytes(buf, 8, 6),
      dst: ipFromBytes(buf, 24, 6),
    },
    payload: buf.subarray(IPV6_HEADER, end),
    walk: walk.value,
  });
}

export interface BuildIpv6Options {
  src: Ip;
  dst: Ip;
  nextHeader: number;
  payload: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

/** A complete IPv6 packet. Throws only on programmer error (an address that is not IPv6, too large). */
export function buildIpv6(o: BuildIpv6Options): Uint8Array {
  if (o.payload.length > 0xffff) throw new RangeError(`IPv6 payload of ${o.payload.length} bytes exceeds 65535`);
  const out = new Uint8Array(IPV6_HEADER + o.payload.length);
  writeFixedHeader(out, o.trafficClass ?? 0, o.flowLabel ?? 0, o.nextHeader, o.hopLimit ?? 64);
  out.set(v6Bytes(o.src), 8);
  out.set(v6Bytes(o.dst), 24);
  out.set(o.payload, IPV6_HEADER);
  return out;
}

function writeFixedHeader(
  out: Uint8Array,
  trafficClass: number,
  flowLabel: number,
  nextHeader: number,
  hopLimit: number,
): void {
  out[0] = 0x60 | ((trafficClass >> 4) & 0x0f);
  out[1] = ((trafficClass & 0x0f) << 4) | ((flowLabel >> 16) & 0x0f);
  wr16(out, 2, flowLabel & 0xffff);
  wr16(out, 4, out.length - IPV6_HEADER);
  out[6] = nextHeader & 0xff;
  out[7] = hopLimit & 0xff;
}

function v6Bytes(ip: Ip): Uint8Array {
  if (typeof ip !== 'string' || ipFamily(ip) !== 6) throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  return ipToBytes(ip);
}

/**
 * A new packet with `packet`'s fixed header (traffic class, flow label, hop limit, addresses kept)
 * and the given payload and next header; the payload length recomputed. `packet` must have a
 * valid fixed header. Throws only if the payload exceeds 65535 bytes (callers check sizes first).
 */
export function rewriteIpv6(packet: Uint8Array, o: { nextHeader?: number; payload: Uint8Array }): Uint8Array {
  if (o.payload.length > 0xffff) throw new RangeError(`IPv6 payload of ${o.payload.length} bytes exceeds 65535`);
  const out = new Uint8Array(IPV6_HEADER + o.payload.length);
  out.set(packet.subarray(0, IPV6_HEADER), 0);
  wr16(out, 4, o.payload.length);
  if (o.nextHeader !== undefined) out[6] = o.nextHeader & 0xff;
  out.set(o.payload, IPV6_HEADER);
  return out;
}

// Cheap accessors for packets the caller has already validated.
export function ipv6Src(buf: Uint8Array): Ip {
  return ipFromBytes(buf, 8, 6);
}

export function ipv6Dst(buf: Uint8Array): Ip {
  return ipFromBytes(buf, 24, 6);
}

/** Uncomplemented sum of the IPv6 pseudo-header (RFC 8200 §8.1), addresses from the packet. */
export function ipv6PseudoHeaderSum(packet: Uint8Array, upperLength: number, nextHeader: number): number {
  let sum = nextHeader + (upperLength >>> 16) + (upperLength & 0xffff);
  for (let i = 8; i < 40; i += 2) sum += rd16(packet, i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * ICMPv6 types that belong to the link (RFC 4861 ND and RD 133-137, MLD 130-132 and 143, inverse ND
 * 141-142, SEND 148-149, multicast router discovery 151-153, RPL 155): never intercepted.
 */
export function isLinkScopedIcmpv6(type: number): boolean {
  return (
    (type >= 130 && type <= 137) ||
    type === 141 ||
    type === 142 ||
    type === 143 ||
    type === 148 ||
    type === 149 ||
    (type >= 151 && type <= 153) ||
    type === 155
  );
}

/**
 * Whether a gateway passes this IPv6 packet untouched (docs/protocol.md §2.8): a link-local source
 * or destination (fe80::/10), a multicast destination (ff00::/8), the unspecified source (::), or
 * link-scoped ICMPv6. `walk` is the packet's extension-header walk (parseIpv6).
 */
export function isNeverIntercepted(packet: Uint8Array, walk: ExtensionWalk): boolean {
  if (packet[8] === 0xfe && (packet[9] & 0xc0) === 0x80) return true;
  if (packet[24] === 0xfe && (packet[25] & 0xc0) === 0x80) return true;
  if (packet[24] === 0xff) return true;
  let unspecified = true;
  for (let i = 8; i < 24 && unspecified; i++) unspecified = packet[i] === 0;
  if (unspecified) return true;
  return (
    walk.upperProto === NH_ICMPV6 &&
    walk.upperOffset !== undefined &&
    // Bounded by the payload length, not the buffer: link padding after the packet is not its type.
    walk.upperOffset < Math.min(packet.length, 40 + ((packet[4] << 8) | packet[5])) &&
    isLinkScopedIcmpv6(packet[walk.upperOffset])
  );
}

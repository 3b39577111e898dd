// IPv6 test support for the native addon: packet builders (extension headers included), the v6
// pseudo-header checksum, an independent model of the extension-header walk, and the group ESP
// forms over IPv6 on node:crypto (refEspSeal), written from the V6 decisions of issue 14 so the C
// code is checked against something that shares none of it.
import fc from 'fast-check';
import { ipToBytes } from '../../src/base/addr.js';
import { checksum, encapsulate, refEspSeal, sum16, type RefEncap, type RefSa } from './support.js';

export interface Ext {
  /** 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment, 51 AH. */
  type: number;
  /** Bytes after the first two (after next header and length); padded to the header's unit. */
  body?: Uint8Array;
  /** Fragment header: offset in 8-byte units and M flag. */
  offset?: number;
  more?: boolean;
}

/** A random extension header (the walk's five kinds, fragments first or later). */
export const extArb: fc.Arbitrary<Ext> = fc.oneof(
  fc.record({ type: fc.constantFrom(0, 43, 60), body: fc.uint8Array({ maxLength: 30 }) }),
  fc.record({ type: fc.constant(44), offset: fc.integer({ min: 0, max: 3 }), more: fc.boolean() }),
  fc.record({ type: fc.constant(51), body: fc.uint8Array({ minLength: 10, maxLength: 22 }) }),
);

/** The bytes of an extension header chain ending in `upper`; returns the chain and the first next header. */
export function extChain(exts: Ext[], upper: number): { bytes: Uint8Array; first: number } {
  const parts: number[] = [];
  exts.forEach((e, i) => {
    const next = i + 1 < exts.length ? exts[i + 1].type : upper;
    if (e.type === 44) {
      const field = ((e.offset ?? 0) << 3) | (e.more ? 1 : 0);
      parts.push(next, 0, field >> 8, field & 0xff, 0, 0, 0x12, 0x34);
    } else if (e.type === 51) {
      const body = Array.from(e.body ?? new Uint8Array(10));
      while ((body.length + 2) % 4 !== 0 || body.length < 10) body.push(0);
      parts.push(next, (body.length + 2) / 4 - 2, ...body);
    } else {
      const body = Array.from(e.body ?? new Uint8Array(6));
      while ((body.length + 2) % 8 !== 0) body.push(0);
      parts.push(next, (body.length + 2) / 8 - 1, ...body);
    }
  });
  return { bytes: Uint8Array.from(parts), first: exts.length ? exts[0].type : upper };
}

export interface Ipv6Opts {
  src: string;
  dst: string;
  /** The upper-layer protocol (after the extension headers). */
  proto: number;
  payload: Uint8Array;
  exts?: Ext[];
  tclass?: number;
  flow?: number;
  hop?: number;
}

export function ipv6(o: Ipv6Opts): Uint8Array {
  const chain = extChain(o.exts ?? [], o.proto);
  const plen = chain.bytes.length + o.payload.length;
  const p = new Uint8Array(40 + plen);
  const tc = o.tclass ?? 0;
  const flow = o.flow ?? 0x12345;
  p[0] = 0x60 | (tc >> 4);
  p[1] = ((tc & 15) << 4) | ((flow >> 16) & 15);
  p[2] = (flow >> 8) & 0xff;
  p[3] = flow & 0xff;
  p[4] = plen >> 8;
  p[5] = plen & 0xff;
  p[6] = chain.first;
  p[7] = o.hop ?? 64;
  p.set(ipToBytes(o.src), 8);
  p.set(ipToBytes(o.dst), 24);
  p.set(chain.bytes, 40);
  p.set(o.payload, 40 + chain.bytes.length);
  return p;
}

/** The v6 pseudo-header partial sum (RFC 8200 §8.1) for an upper layer of len bytes. */
export function pseudo6(packet: Uint8Array, len: number, proto: number): number {
  const b = new Uint8Array(40);
  b.set(packet.subarray(8, 40), 0);
  new DataView(b.buffer).setUint32(32, len);
  b[39] = proto;
  return sum16(b);
}

/** An upper-layer message (ICMPv6, TCP, UDP) with its checksum filled in at `at`, for src/dst. */
export function withChecksum6(src: string, dst: string, proto: number, msg: Uint8Array, at: number): Uint8Array {
  const fake = ipv6({ src, dst, proto, payload: new Uint8Array(0) });
  msg[at] = msg[at + 1] = 0;
  const c = checksum(msg, 0, msg.length, pseudo6(fake, msg.length, proto));
  msg[at] = c >> 8;
  msg[at + 1] = c & 0xff;
  return msg;
}

export function icmp6(src: string, dst: string, type: number, body: Uint8Array, exts?: Ext[]): Uint8Array {
  const m = new Uint8Array(4 + body.length);
  m[0] = type;
  m.set(body, 4);
  return ipv6({ src, dst, proto: 58, payload: withChecksum6(src, dst, 58, m, 2), exts });
}

/** TCP over IPv6 (no extension headers unless given) with a correct checksum; an MSS option when mss is set. */
export function tcp6(
  src: string,
  dst: string,
  flags: number,
  mss?: number,
  data = new Uint8Array(0),
  exts?: Ext[],
): Uint8Array {
  const opt = mss === undefined ? [] : [2, 4, mss >> 8, mss & 0xff];
  const t = new Uint8Array(20 + opt.length + data.length);
  t.set([0x30, 0x39, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, ((20 + opt.length) / 4) << 4, flags, 0xff, 0xff]);
  t.set(opt, 20);
  t.set(data, 20 + opt.length);
  return ipv6({ src, dst, proto: 6, payload: withChecksum6(src, dst, 6, t, 16), exts });
}

/**
 * True when the checksum of the upper layer at `off` (proto, to the packet's end) verifies over the
 * v6 pseudo-header.
 */
export function upperChecksumOk6(packet: Uint8Array, off: number, proto: number): boolean {
  const end = 40 + ((packet[4] << 8) | packet[5]);
  return checksum(packet, off, end - off, pseudo6(packet, end - off, proto)) === 0;
}

/** A model of the walk (V6 decisions): [upperProto, upperOffset (-1 none), fragment, extLength], or undefined. */
export function modelWalk(p: Uint8Array): [number, number, number, number] | undefined {
  if (p.length < 40 || p[0] >> 4 !== 6) return undefined;
  const end = 40 + ((p[4] << 8) | p[5]);
  if (end > p.length) return undefined;
  let nh = p[6];
  let off = 40;
  let frag = 0;
  for (let count = 0; ; count++) {
    let len: number;
    if (nh === 0 && count > 0) return undefined;
    if (nh === 0 || nh === 43 || nh === 60) {
      if (off + 2 > end) return undefined;
      len = (p[off + 1] + 1) * 8;
    } else if (nh === 44) len = 8;
    else if (nh === 51) {
      if (off + 2 > end) return undefined;
      len = (p[off + 1] + 2) * 4;
    } else return [nh, off, frag, off - 40];
    if (count === 16 || off + len > end) return undefined;
    const next = p[off];
    if (nh === 44) {
      frag = ((p[off + 2] << 8) | p[off + 3]) & 0xfff8 ? 2 : 1;
      if (frag === 2) return [next, -1, 2, off + 8 - 40];
    }
    off += len;
    nh = next;
  }
}

/** `inner` sealed as ESP (next header `nh`) behind a copy of `packet`'s fixed header, in UDP with its v6 checksum. */
function sealBehindFixedHeader(
  sa: RefSa,
  seq: bigint,
  packet: Uint8Array,
  nh: number,
  inner: Uint8Array,
  encap: RefEncap,
): Uint8Array {
  const body = encapsulate(refEspSeal(sa, seq, nh, inner), encap);
  const out = new Uint8Array(40 + body.length);
  out.set(packet.subarray(0, 40));
  out[4] = body.length >> 8;
  out[5] = body.length & 0xff;
  out[6] = encap === 'udp' ? 17 : 50;
  out.set(body, 40);
  if (encap === 'udp') {
    const c = checksum(out, 40, out.length - 40, pseudo6(out, out.length - 40, 17));
    out[46] = (c || 0xffff) >> 8;
    out[47] = (c || 0xffff) & 0xff;
  }
  return out;
}

/** The IPv6 transport form: the fixed header kept, everything after it under ESP (next header = the fixed header's). */
export function refEncrypt6(sa: RefSa, seq: bigint, packet: Uint8Array, encap: RefEncap = 'udp'): Uint8Array {
  const end = 40 + ((packet[4] << 8) | packet[5]);
  return sealBehindFixedHeader(sa, seq, packet, packet[6], packet.subarray(40, end), encap);
}

/** The IPv6 carried form: an outer copy of the fixed header around the whole packet, ESP next header 41. */
export function refEncryptCarried6(sa: RefSa, seq: bigint, packet: Uint8Array, encap: RefEncap = 'udp'): Uint8Array {
  const end = 40 + ((packet[4] << 8) | packet[5]);
  return sealBehindFixedHeader(sa, seq, packet, 41, packet.subarray(0, end), encap);
}

// Traffic Selector payload body (RFC 7296 §3.13): address ranges with protocol and port range.
import { ipFamily, ipFromBytes, ipToBytes, parseIp, type Ip, type Prefix } from '../../base/addr.js';
import { ok } from '../../base/result.js';
import { TsType } from './constants.js';
import { invalid, malformed, type IkeResult } from './errors.js';
import { bytes, copy, u16, u8 } from './wire.js';

export interface AddressRangeSelector {
  tsType: 7 | 8;
  /** IP protocol number, 0 = any. */
  ipProtocol: number;
  startPort: number;
  endPort: number;
  startAddr: Ip;
  endAddr: Ip;
}

/**
 * A selector of a type we do not interpret (e.g. RFC 9478 security labels), kept so the state
 * machine can answer TS_UNACCEPTABLE rather than INVALID_SYNTAX. `byte1` is the octet after the
 * type; `data` follows the 4-byte selector header.
 */
export interface OpaqueSelector {
  tsType: number;
  byte1: number;
  data: Buffer;
}

export type TrafficSelector = AddressRangeSelector | OpaqueSelector;

export function isAddressRange(s: TrafficSelector): s is AddressRangeSelector {
  return !('data' in s);
}

const V4_LEN = 16;
const V6_LEN = 40;

/** Decodes a TSi/TSr body buf[start, end) for payload type `T` (for error messages). */
export function decodeTsBody(buf: Buffer, start: number, end: number, T: number): IkeResult<TrafficSelector[]> {
  if (end - start < 4) return malformed(T, start, `TS body needs 4 bytes, got ${end - start}`);
  const count = buf[start];
  const out: TrafficSelector[] = [];
  let o = start + 4;
  for (let i = 0; i < count; i++) {
    if (end - o < 4) return malformed(T, o, `selector ${i + 1} of ${count} needs 4 bytes, ${end - o} left`);
    const type = buf[o];
    const len = buf.readUInt16BE(o + 2);
    if (len < 4 || len > end - o) return malformed(T, o + 2, `selector length ${len} outside 4..${end - o}`);
    if (type === TsType.TS_IPV4_ADDR_RANGE || type === TsType.TS_IPV6_ADDR_RANGE) {
      const v4 = type === TsType.TS_IPV4_ADDR_RANGE;
      const want = v4 ? V4_LEN : V6_LEN;
      if (len !== want) return malformed(T, o + 2, `selector type ${type} must be ${want} bytes, says ${len}`);
      const n = v4 ? 4 : 16;
      out.push({
        tsType: type,
        ipProtocol: buf[o + 1],
        startPort: buf.readUInt16BE(o + 4),
        endPort: buf.readUInt16BE(o + 6),
        startAddr: ipFromBytes(buf, o + 8, v4 ? 4 : 6),
        endAddr: ipFromBytes(buf, o + 8 + n, v4 ? 4 : 6),
      });
    } else {
      out.push({ tsType: type, byte1: buf[o + 1], data: copy(buf, o + 4, o + len) });
    }
    o += len;
  }
  if (o !== end) return malformed(T, o, `${end - o} bytes after the last of ${count} selectors`);
  return ok(out);
}

export function encodeTsBody(selectors: readonly TrafficSelector[]): Buffer {
  if (selectors.length > 255) invalid(`${selectors.length} traffic selectors, at most 255`);
  const parts = selectors.map(encodeSelector);
  const head = Buffer.alloc(4);
  head[0] = selectors.length;
  return Buffer.concat([head, ...parts]);
}

function addr(ip: Ip, family: 4 | 6, what: string): Uint8Array {
  const p = typeof ip === 'string' ? parseIp(ip) : undefined;
  if (!p?.ok || ipFamily(p.value) !== family) invalid(`${what} ${JSON.stringify(ip)} is not an IPv${family} address`);
  return ipToBytes(p.value);
}

function encodeSelector(s: TrafficSelector): Buffer {
  if (!isAddressRange(s)) {
    if (s.tsType === TsType.TS_IPV4_ADDR_RANGE || s.tsType === TsType.TS_IPV6_ADDR_RANGE) {
      invalid(`selector type ${s.tsType} must be given as an address range, not opaque`);
    }
    const data = bytes(s.data, 'selector data');
    const out = Buffer.alloc(4 + data.length);
    out[0] = u8(s.tsType, 'TS type');
    out[1] = u8(s.byte1, 'selector byte 1');
    out.writeUInt16BE(u16(out.length, 'selector length'), 2);
    out.set(data, 4);
    return out;
  }
  if (s.tsType !== TsType.TS_IPV4_ADDR_RANGE && s.tsType !== TsType.TS_IPV6_ADDR_RANGE)
    invalid(`TS type ${String(s.tsType)}`);
  const family = s.tsType === TsType.TS_IPV4_ADDR_RANGE ? 4 : 6;
  const a = addr(s.startAddr, family, 'start address');
  const b = addr(s.endAddr, family, 'end address');
  const out = Buffer.alloc(8 + 2 * a.length);
  out[0] = s.tsType;
  out[1] = u8(s.ipProtocol, 'IP protocol');
  out.writeUInt16BE(out.length, 2);
  out.writeUInt16BE(u16(s.startPort, 'start port'), 4);
  out.writeUInt16BE(u16(s.endPort, 'end port'), 6);
  out.set(a, 8);
  out.set(b, 8 + a.length);
  return out;
}

/** The selector covering a prefix: all protocols and ports unless narrowed. */
export function selectorFromPrefix(
  prefix: Prefix,
  opts: { ipProtocol?: number; startPort?: number; endPort?: number } = {},
): AddressRangeSelector {
  const start = Uint8Array.from(prefix.bytes);
  const end = Uint8Array.from(prefix.bytes);
  for (let bit = prefix.length; bit < end.length * 8; bit++) end[bit >> 3] |= 0x80 >> (bit & 7);
  return {
    tsType: prefix.family === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE,
    ipProtocol: opts.ipProtocol ?? 0,
    startPort: opts.startPort ?? 0,
    endPort: opts.endPort ?? 65535,
    startAddr: ipFromBytes(start, 0, prefix.family),
    endAddr: ipFromBytes(end, 0, prefix.family),
  };
}

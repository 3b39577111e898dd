// IPv6 packets of the end-to-end tests' captures (test/support/capture.ts reads the IPv4 ones).
import { readFileSync } from 'node:fs';
import { ipFromBytes } from '../../src/base/addr.js';

export interface CapturedIpv6 {
  src: string;
  dst: string;
  /** The fixed header's next header (ESP in UDP: 17; raw ESP: 50; ICMPv6: 58; an extension header: its number). */
  proto: number;
  payloadLength: number;
  /** Everything after the fixed header. */
  payload: Buffer;
  time: number;
}

/**
 * IPv6 packets of a classic pcap file (Ethernet link type), addresses canonical; a capture still
 * being written is read up to its last whole record.
 */
export function readPcap6(path: string): CapturedIpv6[] {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return [];
  }
  if (buf.length < 24) return [];
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: CapturedIpv6[] = [];
  for (let off = 24; off + 16 <= buf.length && off + 16 + u32(off + 8) <= buf.length;) {
    const len = u32(off + 8);
    const time = u32(off) * 1000 + u32(off + 4) / 1000;
    const frame = buf.subarray(off + 16, off + 16 + len);
    off += 16 + len;
    if (frame.length < 54 || frame.readUInt16BE(12) !== 0x86dd) continue;
    const ip = frame.subarray(14);
    out.push({
      src: ipFromBytes(ip, 8, 6),
      dst: ipFromBytes(ip, 24, 6),
      proto: ip[6],
      payloadLength: ip.readUInt16BE(4),
      payload: ip.subarray(40),
      time,
    });
  }
  return out;
}

/** ESP between IPv6 terminals on the wire: in UDP to port 4500 (not IKE's non-ESP marker), or raw. */
export function isEsp6(p: CapturedIpv6): boolean {
  return (
    p.proto === 50 ||
    (p.proto === 17 && p.payload.length >= 16 && p.payload.readUInt16BE(2) === 4500 && p.payload.readUInt32BE(8) !== 0)
  );
}

/** A key-search message over ICMPv6 (echo request 128 or reply 129 whose data carries "KSRC"). */
export function isSearch6(p: CapturedIpv6): boolean {
  return p.proto === 58 && (p.payload[0] === 128 || p.payload[0] === 129) && p.payload.includes(Buffer.from('KSRC'));
}

/** ICMPv6 neighbour discovery (133-137): the link's own business, never intercepted. */
export function isNd(p: CapturedIpv6): boolean {
  return p.proto === 58 && p.payload[0] >= 133 && p.payload[0] <= 137;
}

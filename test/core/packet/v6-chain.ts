// Builders of IPv6 packets with extension-header chains, for the v6 codec and executor tests.
import { buildIpv6 } from '../../../src/core/packet/ipv6.js';

/** One extension header: its type and (for fragments) offset and M flag. */
export interface Ext {
  type: 0 | 43 | 44 | 51 | 60;
  /** Options/routing bytes beyond the minimum (a multiple of 8; AH: of 4). */
  extra?: number;
  fragmentOffset?: number;
  more?: boolean;
}

/** The bytes of a chain of extension headers followed by `upper` (upper-layer protocol `upperProto`). */
export function extChain(
  exts: Ext[],
  upperProto: number,
  upper: Uint8Array,
): { firstNextHeader: number; bytes: Uint8Array } {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i];
    const next = i + 1 < exts.length ? exts[i + 1].type : upperProto;
    let h: Uint8Array;
    if (e.type === 44) {
      h = new Uint8Array(8);
      const field = ((e.fragmentOffset ?? 0) & 0xfff8) | (e.more ? 1 : 0);
      h[2] = field >> 8;
      h[3] = field & 0xff;
      h[7] = 0x42;
    } else if (e.type === 51) {
      const len = 12 + (e.extra ?? 0);
      h = new Uint8Array(len);
      h[1] = len / 4 - 2;
    } else {
      const len = 8 + (e.extra ?? 0);
      h = new Uint8Array(len);
      h[1] = len / 8 - 1;
      // PadN over the option area (hop-by-hop, destination options); a type-4 routing header otherwise.
      if (e.type !== 43) {
        h[2] = 1;
        h[3] = len - 4;
      } else h[2] = 4;
    }
    h[0] = next;
    parts.push(h);
  }
  parts.push(upper);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { firstNextHeader: exts.length > 0 ? exts[0].type : upperProto, bytes };
}

/** A whole IPv6 packet: fixed header, the chain, then `upper`. */
export function v6Packet(
  src: string,
  dst: string,
  exts: Ext[],
  upperProto: number,
  upper: Uint8Array,
  hopLimit = 64,
): Uint8Array {
  const c = extChain(exts, upperProto, upper);
  return buildIpv6({
    src,
    dst,
    nextHeader: c.firstNextHeader,
    payload: c.bytes,
    hopLimit,
    trafficClass: 0x28,
    flowLabel: 0x12345,
  });
}

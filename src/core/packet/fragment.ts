// IPv4 fragmentation (RFC 791 §3.2, "fragmentation and reassembly"), for a gateway that must send a
// packet without DF through a path narrower than the packet: it fragments the packet itself, before
// encryption, so that no ESP packet is ever fragmented on the way (receivers cannot decrypt pieces).
import { ipv4HeaderLength, setHeaderChecksum } from './ipv4.js';
import { eachOption } from './options.js';

const MF = 0x2000;
const OFFSET_MASK = 0x1fff;

/**
 * The fragments of `packet` (a valid IPv4 packet of exactly its total length) each carrying at
 * most `maxData` payload bytes (a multiple of 8, at least 8). A packet that is itself a fragment
 * is split further (offsets continue from its own; the last piece keeps its MF). Options without
 * the copy flag are replaced by NOPs in every fragment but the first, keeping the header length
 * (what Linux's ip_options_fragment does).
 */
export function fragmentIpv4(packet: Uint8Array, maxData: number): Uint8Array[] {
  if (maxData < 8 || maxData % 8 !== 0)
    throw new RangeError(`fragment payload must be a positive multiple of 8, got ${maxData}`);
  const hl = ipv4HeaderLength(packet);
  const flags = (packet[6] << 8) | packet[7];
  const baseOffset = (flags & OFFSET_MASK) * 8;
  const lastMf = (flags & MF) !== 0;
  const data = packet.subarray(hl);
  const later = packet.slice(0, hl);
  nopUncopiedOptions(later, hl);
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += maxData) {
    const n = Math.min(maxData, data.length - at);
    const f = new Uint8Array(hl + n);
    f.set(at === 0 ? packet.subarray(0, hl) : later, 0);
    f.set(data.subarray(at, at + n), hl);
    f[2] = f.length >> 8;
    f[3] = f.length & 0xff;
    const more = at + n < data.length || lastMf;
    const field = (flags & 0x4000) | (more ? MF : 0) | ((baseOffset + at) / 8);
    f[6] = field >> 8;
    f[7] = field & 0xff;
    setHeaderChecksum(f, hl);
    out.push(f);
  }
  return out;
}

/** Options whose copy flag (bit 7 of the type) is clear become NOPs; malformed options stop the scan. */
function nopUncopiedOptions(h: Uint8Array, hl: number): void {
  for (const [at, length] of eachOption(h, 20, hl)) if ((h[at] & 0x80) === 0) h.fill(1, at, at + length);
}

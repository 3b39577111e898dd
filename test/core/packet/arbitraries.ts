// fast-check generators shared by the packet codec tests.
import fc from 'fast-check';
import { ipFromBytes, type Ip } from '../../../src/base/addr.js';

export const ipv4: fc.Arbitrary<Ip> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => ipFromBytes(b, 0, 4));
export const ipv6: fc.Arbitrary<Ip> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ipFromBytes(b, 0, 6));
export const anyIp: fc.Arbitrary<Ip> = fc.oneof(ipv4, ipv6);

/** Index and replacement for a single-byte mutation that really changes the byte. */
export function mutation(length: number): fc.Arbitrary<{ index: number; xor: number }> {
  return fc.record({ index: fc.nat({ max: Math.max(0, length - 1) }), xor: fc.integer({ min: 1, max: 255 }) });
}

export function mutate(bytes: Uint8Array, m: { index: number; xor: number }): Uint8Array {
  const out = bytes.slice();
  out[m.index] ^= m.xor;
  return out;
}

export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** A straightforward RFC 1071 checksum for cross-checking the optimised one. */
export function naiveChecksum(bytes: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i] << 8) + (i + 1 < bytes.length ? bytes[i + 1] : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return ~sum & 0xffff;
}

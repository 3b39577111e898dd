// The Internet checksum (RFC 1071) and its incremental update (RFC 1624), shared by the IPv4,
// ICMP and TCP codecs.

/**
 * One's complement sum of `len` bytes from `off` as big-endian 16-bit words (an odd last byte is
 * padded with zero), added to `initial` and folded to 16 bits. Not complemented: use it to
 * accumulate a pseudo-header before `internetChecksum`.
 */
export function onesComplementSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len;
  const evenEnd = end - (len & 1);
  let i = off;
  // Doubles hold 2^53 exactly: no folding is needed inside the loop for any IP-sized buffer.
  for (; i < evenEnd; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return fold(sum);
}

/**
 * The 16-bit checksum to store for `len` bytes from `off` (with the checksum field zeroed), or,
 * over data that includes a correct checksum, 0. `initial` is an uncomplemented partial sum
 * (e.g. a pseudo-header's, from `onesComplementSum`).
 */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesComplementSum(buf, off, len, initial) & 0xffff;
}

/** RFC 1624 eqn. 3: the new checksum after one 16-bit word changed from `oldWord` to `newWord`. */
export function checksumAdjust(oldChecksum: number, oldWord16: number, newWord16: number): number {
  const sum = (~oldChecksum & 0xffff) + (~oldWord16 & 0xffff) + (newWord16 & 0xffff);
  return ~fold(sum) & 0xffff;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

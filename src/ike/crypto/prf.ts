// prf and prf+ (RFC 7296 §2.13). Every PRF we implement is HMAC, which takes keys of any length,
// so no special-casing of the nonces is needed (that exists only for AES-XCBC/CMAC PRFs).

import { createHmac } from 'node:crypto';
import type { PrfAlgorithm } from './transforms.js';

export function prf(alg: PrfAlgorithm, key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac(alg.hash, key).update(data).digest();
}

/** Most bytes prf+ can give: its counter is one octet, 0x01..0xff. */
export function prfPlusMax(alg: PrfAlgorithm): number {
  return 255 * alg.length;
}

/**
 * prf+ (K, S) = T1 | T2 | ... truncated to `length`, where
 * T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
 * Asking for more than 255 blocks is a programming error (key sizes are fixed by the suite).
 */
export function prfPlus(alg: PrfAlgorithm, key: Uint8Array, seed: Uint8Array, length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0 || length > prfPlusMax(alg)) {
    throw new RangeError(`prf+: cannot produce ${length} bytes with ${alg.hash}`);
  }
  const blocks: Buffer[] = [];
  let t: Buffer = Buffer.alloc(0);
  let have = 0;
  for (let n = 1; have < length; n++) {
    t = createHmac(alg.hash, key).update(t).update(seed).update(Uint8Array.of(n)).digest();
    blocks.push(t);
    have += t.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

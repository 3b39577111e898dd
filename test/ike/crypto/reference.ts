// Independent re-statements of RFC 7296 formulas for the tests, written directly against
// node:crypto HMAC rather than through src/ike/crypto.
import { createHmac } from 'node:crypto';

export function hmac(hash: string, key: Uint8Array, ...data: Uint8Array[]): Buffer {
  const h = createHmac(hash, key);
  h.update(Buffer.concat(data));
  return h.digest();
}

/** prf+ (RFC 7296 §2.13) the long way: T1 = prf(K, S | 1), Tn = prf(K, Tn-1 | S | n). */
export function referencePrfPlus(hash: string, key: Uint8Array, seed: Uint8Array, length: number): Buffer {
  let out: Buffer = Buffer.alloc(0);
  let t: Buffer = Buffer.alloc(0);
  for (let n = 1; out.length < length; n++) {
    t = hmac(hash, key, t, seed, Buffer.from([n]));
    out = Buffer.concat([out, t]);
  }
  return out.subarray(0, length);
}

/** Cuts `stream` into consecutive pieces of the given sizes. */
export function slices(stream: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(stream.subarray(at, at + n));
    at += n;
  }
  return out;
}

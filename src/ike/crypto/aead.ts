// The Encrypted payload (SK, RFC 7296 §3.14) and Encrypted Fragment payload (SKF, RFC 7383 §2.5)
// with AES-GCM-16 as RFC 5282 uses it:
//
//   body      = IV (8) | ciphertext | ICV (16)
//   plaintext = inner payloads | padding (any bytes) | pad length (1 byte)
//   nonce     = salt (4, the end of SK_e*) | IV (8)
//   AAD       = the message bytes from the IKE header up to the end of the SK/SKF payload header
//               (for SKF that header includes Fragment Number and Total Fragments)
//
// Callers build the AAD with the final lengths already in it (skBodyLength tells the body size
// before encrypting). SKF needs nothing else: each fragment is sealed on its own with its own AAD
// and IV under the same SK_e* (RFC 7383 §2.5).
//
// The IV is a per-key 64-bit counter, not random bytes: GCM loses both confidentiality and
// authenticity if a (key, nonce) pair ever repeats, and random 64-bit IVs make that likely after
// about 2^32 messages (birthday bound) while a counter never repeats. The IKE Message ID cannot
// serve: all fragments of one message share it. Each direction has its own key (SK_ei, SK_er), so
// each side keeps just its own counter; a retransmission resends the same bytes and uses no new
// IV; and SK keys live only in memory, so a restart cannot replay a counter under an old key.

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { err, ok, type Result } from '../../base/result.js';
import type { AeadKey } from './keys.js';
import type { AeadAlgorithm } from './transforms.js';

/** IV | one plaintext byte (the pad length) | ICV. */
export function skMinBodyLength(encr: AeadAlgorithm): number {
  return encr.ivLength + 1 + encr.icvLength;
}

/** The body length for `innerLength` bytes of inner payloads and `padLength` bytes of padding. */
export function skBodyLength(encr: AeadAlgorithm, innerLength: number, padLength = 0): number {
  return encr.ivLength + innerLength + padLength + 1 + encr.icvLength;
}

function nonce(k: AeadKey, iv: Uint8Array): Buffer {
  return Buffer.concat([k.salt, iv]);
}

/** The AEAD core: AES-GCM with a 16-byte tag and nonce = salt | 8-byte explicit IV. */
export function aeadSeal(
  k: AeadKey,
  iv: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): { ciphertext: Buffer; icv: Buffer } {
  if (iv.length !== k.encr.ivLength) throw new RangeError(`AEAD IV must be ${k.encr.ivLength} bytes`);
  const c = createCipheriv(k.encr.cipher, k.key, nonce(k, iv), { authTagLength: k.encr.icvLength });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, icv: c.getAuthTag() };
}

/** Opens what aeadSeal produced; an error (never an exception) when the ICV does not verify. */
export function aeadOpen(
  k: AeadKey,
  iv: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  icv: Uint8Array,
): Result<Buffer> {
  if (iv.length !== k.encr.ivLength || icv.length !== k.encr.icvLength)
    return err('sk-truncated', 'AEAD IV or ICV of the wrong length');
  try {
    const d = createDecipheriv(k.encr.cipher, k.key, nonce(k, iv), { authTagLength: k.encr.icvLength });
    d.setAAD(aad);
    d.setAuthTag(icv);
    return ok(Buffer.concat([d.update(ciphertext), d.final()]));
  } catch {
    return err('sk-auth-failed', 'integrity check of the encrypted payload failed');
  }
}

const IV_MAX = (1n << 64n) - 1n;

function ivBytes(iv: bigint): Buffer {
  if (iv < 0n || iv > IV_MAX) throw new RangeError('SK IV counter out of range');
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(iv);
  return b;
}

/** Hands out the IVs for one sending key: 0, 1, 2, ...; refuses to wrap (the SA must be rekeyed). */
export class SkIvCounter {
  #next: bigint;

  constructor(start = 0n) {
    if (start < 0n || start > IV_MAX + 1n) throw new RangeError('SK IV counter start out of range');
    this.#next = start;
  }

  next(): bigint {
    if (this.#next > IV_MAX) throw new RangeError('SK IV counter exhausted: rekey the IKE SA');
    return this.#next++;
  }

  /** IVs used so far under this key. */
  get used(): bigint {
    return this.#next;
  }
}

/**
 * Encrypts inner payload bytes into an SK (or SKF) body. `iv` is this key's counter value (from
 * SkIvCounter); `padLength` extra padding bytes are optional since GCM needs no block alignment.
 */
export function skSeal(k: AeadKey, iv: bigint, associatedData: Uint8Array, inner: Uint8Array, padLength = 0): Buffer {
  if (!Number.isInteger(padLength) || padLength < 0 || padLength > 255)
    throw new RangeError('SK pad length must be 0..255');
  const plaintext = Buffer.alloc(inner.length + padLength + 1);
  plaintext.set(inner, 0);
  plaintext[plaintext.length - 1] = padLength; // padding bytes stay zero
  const ivb = ivBytes(iv);
  const { ciphertext, icv } = aeadSeal(k, ivb, associatedData, plaintext);
  return Buffer.concat([ivb, ciphertext, icv]);
}

/** Decrypts an SK (or SKF) body to the inner payload bytes, or an error for anything malformed or forged. */
export function skOpen(k: AeadKey, associatedData: Uint8Array, body: Uint8Array): Result<Buffer> {
  const { ivLength, icvLength } = k.encr;
  if (body.length < skMinBodyLength(k.encr))
    return err('sk-truncated', `encrypted payload body of ${body.length} bytes is too short`);
  const iv = body.subarray(0, ivLength);
  const opened = aeadOpen(
    k,
    iv,
    associatedData,
    body.subarray(ivLength, body.length - icvLength),
    body.subarray(body.length - icvLength),
  );
  if (!opened.ok) return opened;
  const plaintext = opened.value;
  const pad = plaintext[plaintext.length - 1];
  if (pad + 1 > plaintext.length)
    return err('sk-bad-pad-length', `pad length ${pad} exceeds the decrypted ${plaintext.length} bytes`);
  return ok(plaintext.subarray(0, plaintext.length - 1 - pad));
}

// Key-search proofs: a gateway shows it holds a VPN key without revealing it, by a MAC under the
// VPN's search key (kdf.ts) over an input the caller binds to the search (transaction id,
// terminal pair, claimant, ...). 128-bit tags: forging one is a 2^-128 guess per attempt.

import { createHmac, timingSafeEqual } from 'node:crypto';

export const SEARCH_PROOF_LENGTH = 16;
const MIN_KEY_LENGTH = 16;

function checkArgs(searchKey: Uint8Array, input: Uint8Array): void {
  if (!(searchKey instanceof Uint8Array) || searchKey.length < MIN_KEY_LENGTH)
    throw new TypeError('searchProof: key must be at least 16 bytes');
  if (!(input instanceof Uint8Array)) throw new TypeError('searchProof: input must be bytes');
}

/** First 16 bytes of HMAC-SHA256(searchKey, input). Throws TypeError only on a malformed key or input. */
export function searchProof(searchKey: Uint8Array, input: Uint8Array): Uint8Array {
  checkArgs(searchKey, input);
  return new Uint8Array(createHmac('sha256', searchKey).update(input).digest().subarray(0, SEARCH_PROOF_LENGTH));
}

/**
 * Constant-time check of a proof taken from the wire. Any proof value (wrong length, not bytes)
 * gives a boolean; only a malformed key or input (programmer error) throws TypeError.
 */
export function verifySearchProof(searchKey: Uint8Array, input: Uint8Array, proof: Uint8Array): boolean {
  checkArgs(searchKey, input);
  if (!(proof instanceof Uint8Array) || proof.length !== SEARCH_PROOF_LENGTH) return false;
  const expected = createHmac('sha256', searchKey).update(input).digest().subarray(0, SEARCH_PROOF_LENGTH);
  return timingSafeEqual(expected, proof);
}

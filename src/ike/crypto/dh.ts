// Diffie-Hellman for the KE payload: ECP groups 19/20 (RFC 5903) and Curve25519 (RFC 8031).
//
// Encodings: an ECP public value is x | y, each padded to the field size, without the SEC1 0x04
// prefix (RFC 5903 §7); the ECP shared secret is the x coordinate only (RFC 5903 §7; its §9 notes
// that this corrects RFC 4753, which used x | y). An X25519 public value and shared secret are the
// 32-byte u coordinate (RFC 8031 §2).
//
// A peer's public value is untrusted: it is checked for length and, for ECP, for being a point on
// the curve (by importing it as a JWK, which node:crypto validates), and an all-zero X25519 result
// (a low-order peer point, RFC 8031 §2.3) is refused. Bad values give an error result; only a
// broken local input (our own private key, a random source that cannot produce a scalar) throws.

import { createECDH, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { err, ok, type Result } from '../../base/result.js';
import type { RandomSource } from '../../base/random.js';
import type { DhGroup } from './transforms.js';

export interface DhKeyPair {
  readonly group: DhGroup;
  /** The raw private scalar (ECP) or 32-byte private key (X25519). */
  readonly privateKey: Buffer;
  /** What goes into our KE payload. */
  readonly publicValue: Buffer;
}

// Fixed DER wrappers for a raw X25519 key (RFC 8410): PKCS#8 private key and SPKI public key.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function x25519Private(priv: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

/** Builds the key pair for a given private key (tests and known-answer vectors; throws if invalid). */
export function dhFromPrivate(group: DhGroup, privateKey: Uint8Array): DhKeyPair {
  if (privateKey.length !== group.fieldLength)
    throw new RangeError(`DH ${group.id}: private key must be ${group.fieldLength} bytes`);
  const priv = Buffer.from(privateKey);
  if (group.kind === 'x25519') {
    const spki = createPublicKey(x25519Private(priv)).export({ format: 'der', type: 'spki' });
    return { group, privateKey: priv, publicValue: Buffer.from(spki.subarray(spki.length - 32)) };
  }
  const ecdh = createECDH(group.curve);
  ecdh.setPrivateKey(priv); // throws unless 1 <= d < n
  return { group, privateKey: priv, publicValue: ecdh.getPublicKey().subarray(1) };
}

/** A fresh ephemeral key pair from injected randomness. */
export function dhGenerate(group: DhGroup, random: RandomSource): DhKeyPair {
  // ECP: a uniformly random scalar by rejection of 0 and values >= n (for P-256 and P-384 a
  // rejection has probability below 2^-32, so several in a row mean the source is broken).
  for (let attempt = 0; attempt < 8; attempt++) {
    const priv = random(group.fieldLength);
    if (priv.length !== group.fieldLength) throw new RangeError('DH: random source returned the wrong length');
    try {
      return dhFromPrivate(group, priv);
    } catch (e) {
      if (group.kind === 'x25519') throw e; // every 32-byte string is an X25519 private key
    }
  }
  throw new Error(`DH ${group.id}: random source gave no valid private scalar`);
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

/** Checks a peer's KE data for this group (length, and for ECP that it is a point on the curve). */
export function dhCheckPublic(group: DhGroup, peer: Uint8Array): Result<KeyObject> {
  if (peer.length !== group.publicLength) {
    return err(
      'dh-bad-length',
      `DH group ${group.id} public value must be ${group.publicLength} bytes, got ${peer.length}`,
    );
  }
  try {
    if (group.kind === 'x25519') {
      return ok(createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, peer]), format: 'der', type: 'spki' }));
    }
    const n = group.fieldLength;
    const jwk = { kty: 'EC', crv: group.jwkCurve, x: b64url(peer.subarray(0, n)), y: b64url(peer.subarray(n)) };
    return ok(createPublicKey({ key: jwk, format: 'jwk' }));
  } catch {
    return err('dh-invalid-public', `DH group ${group.id} public value is not a point on the curve`);
  }
}

/** g^ir from our key pair and the peer's KE data, or an error for an unacceptable peer value. */
export function dhSharedSecret(own: DhKeyPair, peer: Uint8Array): Result<Buffer> {
  const group = own.group;
  const checked = dhCheckPublic(group, peer);
  if (!checked.ok) return checked;
  let secret: Buffer;
  try {
    if (group.kind === 'x25519') {
      secret = diffieHellman({ privateKey: x25519Private(own.privateKey), publicKey: checked.value });
    } else {
      const ecdh = createECDH(group.curve);
      ecdh.setPrivateKey(own.privateKey);
      secret = ecdh.computeSecret(Buffer.concat([Uint8Array.of(0x04), peer]));
    }
  } catch {
    // OpenSSL refuses an all-zero X25519 output itself; ECP points were checked above.
    return err(
      group.kind === 'x25519' ? 'dh-zero-secret' : 'dh-invalid-public',
      `DH group ${group.id}: no shared secret with this public value`,
    );
  }
  if (secret.length !== group.sharedLength)
    return err('dh-invalid-public', `DH group ${group.id}: shared secret of unexpected length`);
  if (secret.every((b) => b === 0)) return err('dh-zero-secret', `DH group ${group.id}: all-zero shared secret`);
  return ok(secret);
}

// Group keys at rest and in transit.
//
// At rest: each epoch's 32-byte key is sealed with AES-256-GCM under the authority's key-encryption
// key (keystore/kek), nonce random per key, AAD binding the VPN id and epoch:
//   wrapped = nonce(12) || ciphertext(32) || tag(16)
//   aad     = "kasane/v1 kek" || vpnId u32 || epoch u32
//
// In transit: HPKE (RFC 9180) base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM,
// to the member gateway's certificate key (the same P-256 point, used for ECDH):
//   info = aad = "kasane/v1 group-key" || 0x00 || len u8 || authority || len u8 || gateway
//                || vpnId u32 || epoch u32                     (names UTF-8, integers big-endian)
//   (enc, ct) = SealBase(pkR = gateway key, info, aad, pt = the 32-byte key)
// A sealed key therefore opens only with that gateway's private key and only as the key of that
// VPN and epoch for that gateway of that authority: moved to another slot it fails to open.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import type { RandomSource } from '../base/random.js';
import { sealBase } from './hpke-seal.js';

export const GROUP_KEY_BYTES = 32;

const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function lv(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  if (b.length > 255) throw new Error('name too long for the delivery context');
  return concat([Uint8Array.of(b.length), b]);
}

/** The HPKE info/aad for one (authority, gateway, VPN, epoch). */
export function deliveryContext(authority: string, gateway: string, vpnId: number, epoch: number): Uint8Array {
  return concat([
    new TextEncoder().encode('kasane/v1 group-key'),
    Uint8Array.of(0),
    lv(authority),
    lv(gateway),
    u32(vpnId),
    u32(epoch),
  ]);
}

export interface SealedKey {
  /** HPKE encapsulated key (65 bytes, uncompressed P-256 point). */
  enc: Uint8Array;
  /** AES-256-GCM ciphertext of the 32-byte key with its tag (48 bytes). */
  ct: Uint8Array;
}

/**
 * Seals a group key to a gateway's SubjectPublicKeyInfo (P-256): HPKE base mode (hpke-seal.ts, the same output as
 * @hpke/core's).
 */
export async function sealGroupKey(
  key: Uint8Array,
  recipientSpki: Uint8Array,
  context: Uint8Array,
): Promise<SealedKey> {
  return sealBase(recipientSpki, context, context, key);
}

/** Opens a sealed group key with the gateway's private key (an ECDH P-256 CryptoKey). Throws if it does not open. */
export async function openGroupKey(sealed: SealedKey, privateKey: CryptoKey, context: Uint8Array): Promise<Uint8Array> {
  const pt = new Uint8Array(
    await suite.open({ recipientKey: privateKey, enc: sealed.enc, info: context }, sealed.ct, context),
  );
  if (pt.length !== GROUP_KEY_BYTES) throw new Error(`a group key is ${GROUP_KEY_BYTES} bytes, got ${pt.length}`);
  return pt;
}

function kekAad(vpnId: number, epoch: number): Uint8Array {
  return concat([new TextEncoder().encode('kasane/v1 kek'), u32(vpnId), u32(epoch)]);
}

/** Encrypts a group key under the key-encryption key for storage. */
export function wrapGroupKey(
  kek: Uint8Array,
  vpnId: number,
  epoch: number,
  key: Uint8Array,
  random: RandomSource,
): Uint8Array {
  const nonce = random(12);
  const c = createCipheriv('aes-256-gcm', kek, nonce);
  c.setAAD(kekAad(vpnId, epoch));
  const ct = Buffer.concat([c.update(key), c.final()]);
  return concat([nonce, ct, c.getAuthTag()]);
}

export function unwrapGroupKey(kek: Uint8Array, vpnId: number, epoch: number, wrapped: Uint8Array): Uint8Array {
  if (wrapped.length !== 12 + GROUP_KEY_BYTES + 16) throw new Error('stored group key has the wrong length');
  const d = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
  d.setAAD(kekAad(vpnId, epoch));
  d.setAuthTag(wrapped.subarray(12 + GROUP_KEY_BYTES));
  return new Uint8Array(Buffer.concat([d.update(wrapped.subarray(12, 12 + GROUP_KEY_BYTES)), d.final()]));
}

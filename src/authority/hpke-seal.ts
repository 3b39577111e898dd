// HPKE (RFC 9180) base-mode Seal for the authority's one suite — DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM — written on node:crypto directly.
//
// Why not @hpke/core here (it still opens deliveries on the gateways): it costs about 1.4 ms per
// seal on this project's machines (a chain of async WebCrypto calls), and rotating 1,000 VPNs of
// 10 members seals 10,000 times; this costs about 0.25 ms (one ECDH key generation and derivation,
// six HMACs, one AES-GCM). The output is the same: test/authority/group-keys.test.ts checks it
// byte for byte against @hpke/core with the same ephemeral key, and that @hpke/core opens it.
import { createCipheriv, createECDH, createHmac, type ECDH } from 'node:crypto';

const KEM_ID = 0x0010; // DHKEM(P-256, HKDF-SHA256)
const KDF_ID = 0x0001; // HKDF-SHA256
const AEAD_ID = 0x0002; // AES-256-GCM
const NK = 32;
const NN = 12;
const NSECRET = 32;

const VERSION = Buffer.from('HPKE-v1');
const KEM_SUITE = Buffer.concat([Buffer.from('KEM'), u16(KEM_ID)]);
const HPKE_SUITE = Buffer.concat([Buffer.from('HPKE'), u16(KEM_ID), u16(KDF_ID), u16(AEAD_ID)]);
/** SubjectPublicKeyInfo DER before an uncompressed P-256 point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function hmac(key: Uint8Array, ...data: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const d of data) h.update(d);
  return h.digest();
}

/** LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suite || label || ikm). */
function labeledExtract(suite: Buffer, salt: Uint8Array, label: string, ikm: Uint8Array): Buffer {
  return hmac(salt, VERSION, suite, Buffer.from(label), ikm);
}

/** LabeledExpand(prk, label, info, L) for L <= 32: one HKDF-Expand block. */
function labeledExpand(suite: Buffer, prk: Uint8Array, label: string, info: Uint8Array, length: number): Buffer {
  return hmac(prk, u16(length), VERSION, suite, Buffer.from(label), info, Uint8Array.of(1)).subarray(0, length);
}

/** The uncompressed point of a P-256 SubjectPublicKeyInfo (DER), or the point itself. */
export function p256Point(spkiOrPoint: Uint8Array): Buffer {
  const b = Buffer.from(spkiOrPoint.buffer, spkiOrPoint.byteOffset, spkiOrPoint.byteLength);
  if (b.length === 65 && b[0] === 4) return b;
  if (b.length === P256_SPKI_PREFIX.length + 65 && b.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX))
    return b.subarray(P256_SPKI_PREFIX.length);
  throw new Error('not an uncompressed P-256 public key');
}

/**
 * SealBase(pkR, info, aad, pt) -> (enc, ct). `ephemeral` (tests only) fixes the sender's key pair;
 * normally a fresh one is made for every seal.
 */
export function sealBase(
  recipient: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  ephemeral?: ECDH,
): { enc: Uint8Array; ct: Uint8Array } {
  const pkRm = p256Point(recipient);
  // Encap: DH with a fresh ephemeral key (its output is the shared point's x-coordinate).
  const e = ephemeral ?? createECDH('prime256v1');
  if (!ephemeral) e.generateKeys();
  const enc = e.getPublicKey();
  const dh = e.computeSecret(pkRm);
  const kemContext = Buffer.concat([enc, pkRm]);
  const eaePrk = labeledExtract(KEM_SUITE, new Uint8Array(0), 'eae_prk', dh);
  const sharedSecret = labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', kemContext, NSECRET);
  // KeySchedule, mode base (0), no PSK.
  const none = new Uint8Array(0);
  const pskIdHash = labeledExtract(HPKE_SUITE, none, 'psk_id_hash', none);
  const infoHash = labeledExtract(HPKE_SUITE, none, 'info_hash', info);
  const context = Buffer.concat([Uint8Array.of(0), pskIdHash, infoHash]);
  const secret = labeledExtract(HPKE_SUITE, sharedSecret, 'secret', none);
  const key = labeledExpand(HPKE_SUITE, secret, 'key', context, NK);
  const nonce = labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, NN); // sequence number 0
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { enc: new Uint8Array(enc), ct: new Uint8Array(ct) };
}

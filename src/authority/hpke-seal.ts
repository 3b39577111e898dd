// HPKE (RFC 9180) base-mode Seal for the authority's one suite — DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM — written on node:crypto directly.
//
// Why not @hpke/core here (it still opens deliveries on the gateways): it costs about 1.4 ms per
// seal on this project's machines (a chain of async WebCrypto calls), and rotating 1,000 VPNs of
// 10 members seals 10,000 times; this costs about 0.17 ms (one P-256 key pair and ECDH, five HMACs,
// one AES-GCM). The P-256 operations run on KeyObjects: OpenSSL's EVP path takes ~30 us for the key
// pair and ~80 us for the ECDH where node's legacy ECDH object takes ~70 and ~140. A rotation of
// many VPNs seals in worker threads (seal-pool.ts). The output is the same as @hpke/core's:
// test/authority/group-keys.test.ts checks it byte for byte with the same ephemeral key, and that
// @hpke/core opens it.
import {
  createCipheriv,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';

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

const NONE = new Uint8Array(0);
/** psk_id_hash: base mode has no PSK id, so it is the same for every seal. */
const PSK_ID_HASH = labeledExtract(HPKE_SUITE, NONE, 'psk_id_hash', NONE);

/** Recipients' keys as KeyObjects, by their point: a rotation seals to the same gateways as the last one. */
const recipients = new Map<string, KeyObject>();
const MAX_RECIPIENTS = 16_384;

function recipientKey(point: Buffer): KeyObject {
  const id = point.toString('base64');
  let k = recipients.get(id);
  if (!k) {
    // Decoding checks that the point is on the curve.
    k = createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, point]), format: 'der', type: 'spki' });
    if (recipients.size >= MAX_RECIPIENTS) recipients.clear();
    recipients.set(id, k);
  }
  return k;
}

/** The uncompressed point of a P-256 public key (a KeyObject). */
function pointOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Uint8Array.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
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
  ephemeral?: KeyPair,
): { enc: Uint8Array; ct: Uint8Array } {
  const pkRm = p256Point(recipient);
  const pkR = recipientKey(pkRm);
  // Encap: DH with a fresh ephemeral key (its output is the shared point's x-coordinate).
  const e = ephemeral ?? generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const dh = diffieHellman({ privateKey: e.privateKey, publicKey: pkR });
  const enc = pointOf(e.publicKey);
  const kemContext = Buffer.concat([enc, pkRm]);
  const eaePrk = labeledExtract(KEM_SUITE, NONE, 'eae_prk', dh);
  const sharedSecret = labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', kemContext, NSECRET);
  // KeySchedule, mode base (0), no PSK.
  const infoHash = labeledExtract(HPKE_SUITE, NONE, 'info_hash', info);
  const context = Buffer.concat([Uint8Array.of(0), PSK_ID_HASH, infoHash]);
  const secret = labeledExtract(HPKE_SUITE, sharedSecret, 'secret', NONE);
  const key = labeledExpand(HPKE_SUITE, secret, 'key', context, NK);
  const nonce = labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, NN); // sequence number 0
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { enc: new Uint8Array(enc), ct: new Uint8Array(ct) };
}

// The IKEv2 transforms kasane implements, with their IANA ids (RFC 7296 §3.3.2, "IKEv2 Transform
// Type N Transform IDs") and the sizes the key schedule and the SK payload need. Deliberately
// small: AES-GCM-16 for IKE and ESP, HMAC-SHA2 PRFs, and three elliptic-curve DH groups. Anything
// else in a peer's proposal is simply not ours to pick.

export const TransformType = { ENCR: 1, PRF: 2, INTEG: 3, DH: 4, ESN: 5 } as const;

/** Transform attribute "Key Length" (RFC 7296 §3.3.5), required for AES-GCM. */
export const KEY_LENGTH_ATTRIBUTE = 14;

export const ENCR_AES_GCM_16 = 20;

export const PrfId = { HMAC_SHA2_256: 5, HMAC_SHA2_384: 6, HMAC_SHA2_512: 7 } as const;
export type PrfId = (typeof PrfId)[keyof typeof PrfId];

export const DhGroupId = { ECP256: 19, ECP384: 20, CURVE25519: 31 } as const;
export type DhGroupId = (typeof DhGroupId)[keyof typeof DhGroupId];

/** An AEAD cipher (RFC 5282 for IKE, RFC 4106 for ESP): keying material = key | salt. */
export interface AeadAlgorithm {
  readonly id: typeof ENCR_AES_GCM_16;
  readonly keyBits: 128 | 256;
  /** Name for node:crypto. */
  readonly cipher: 'aes-128-gcm' | 'aes-256-gcm';
  readonly keyLength: number;
  readonly saltLength: 4;
  /** Keying material taken from prf+: key + salt (RFC 5282 §7.1, RFC 4106 §8.1). */
  readonly keymatLength: number;
  readonly ivLength: 8;
  readonly icvLength: 16;
}

function gcm16(keyBits: 128 | 256): AeadAlgorithm {
  const keyLength = keyBits / 8;
  return Object.freeze({
    id: ENCR_AES_GCM_16,
    keyBits,
    cipher: keyBits === 128 ? 'aes-128-gcm' : 'aes-256-gcm',
    keyLength,
    saltLength: 4,
    keymatLength: keyLength + 4,
    ivLength: 8,
    icvLength: 16,
  } as const);
}

export const AES_GCM_16_128 = gcm16(128);
export const AES_GCM_16_256 = gcm16(256);

/** The AEAD for ENCR transform `id` with a Key Length attribute of `keyBits`, or undefined. */
export function aeadById(id: number, keyBits: number | undefined): AeadAlgorithm | undefined {
  if (id !== ENCR_AES_GCM_16) return undefined;
  if (keyBits === 128) return AES_GCM_16_128;
  if (keyBits === 256) return AES_GCM_16_256;
  return undefined; // AES-GCM has no default key length: the attribute is mandatory
}

export interface PrfAlgorithm {
  readonly id: PrfId;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  /** Output length of the PRF, and also its "preferred key length" (HMAC, RFC 7296 §2.14). */
  readonly length: number;
}

function hmacPrf(id: PrfId, hash: PrfAlgorithm['hash'], length: number): PrfAlgorithm {
  return Object.freeze({ id, hash, length });
}

export const PRF_HMAC_SHA2_256 = hmacPrf(PrfId.HMAC_SHA2_256, 'sha256', 32);
export const PRF_HMAC_SHA2_384 = hmacPrf(PrfId.HMAC_SHA2_384, 'sha384', 48);
export const PRF_HMAC_SHA2_512 = hmacPrf(PrfId.HMAC_SHA2_512, 'sha512', 64);

export function prfById(id: number): PrfAlgorithm | undefined {
  return [PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512].find((p) => p.id === id);
}

export interface DhGroup {
  readonly id: DhGroupId;
  readonly kind: 'ecp' | 'x25519';
  /** node:crypto curve name for ECP groups. */
  readonly curve: 'prime256v1' | 'secp384r1' | 'x25519';
  /** JWK curve name (used to validate peer points). */
  readonly jwkCurve: 'P-256' | 'P-384' | 'X25519';
  /** Bytes of one coordinate / of the private scalar. */
  readonly fieldLength: number;
  /** KE payload key-exchange data length: x | y for ECP (RFC 5903 §7), u for X25519 (RFC 8031 §2). */
  readonly publicLength: number;
  /** g^ir length: the x coordinate for ECP, u for X25519. */
  readonly sharedLength: number;
}

export const DH_ECP256: DhGroup = Object.freeze({
  id: DhGroupId.ECP256,
  kind: 'ecp',
  curve: 'prime256v1',
  jwkCurve: 'P-256',
  fieldLength: 32,
  publicLength: 64,
  sharedLength: 32,
});

export const DH_ECP384: DhGroup = Object.freeze({
  id: DhGroupId.ECP384,
  kind: 'ecp',
  curve: 'secp384r1',
  jwkCurve: 'P-384',
  fieldLength: 48,
  publicLength: 96,
  sharedLength: 48,
});

export const DH_CURVE25519: DhGroup = Object.freeze({
  id: DhGroupId.CURVE25519,
  kind: 'x25519',
  curve: 'x25519',
  jwkCurve: 'X25519',
  fieldLength: 32,
  publicLength: 32,
  sharedLength: 32,
});

export function dhGroupById(id: number): DhGroup | undefined {
  return [DH_ECP256, DH_ECP384, DH_CURVE25519].find((g) => g.id === id);
}

/** What an IKE SA runs with. Integrity is implied by the AEAD (no INTEG transform, SK_a* empty). */
export interface IkeSuite {
  readonly encr: AeadAlgorithm;
  readonly prf: PrfAlgorithm;
  readonly dh: DhGroup;
}

/** What an ESP Child SA runs with (RFC 4106). The DH group is only for PFS and does not size keys. */
export interface EspSuite {
  readonly encr: AeadAlgorithm;
}

/** Bytes of Child SA KEYMAT per direction: AES key + 4-byte salt, no integrity key. */
export function espKeymatLength(suite: EspSuite): number {
  return suite.encr.keymatLength;
}

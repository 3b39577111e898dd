// AUTH by Digital Signature (RFC 7427, auth method 14) and the SIGNATURE_HASH_ALGORITHMS notify.
//
//   AUTH data = ASN.1 length (1) | AlgorithmIdentifier (DER) | signature value
//
// The signature value is what the AlgorithmIdentifier's scheme defines: for ECDSA the DER
// Ecdsa-Sig-Value (SEQUENCE of r, s), for RSA PKCS#1 v1.5 the raw block. Signing goes through an
// injected signer so that a PKCS#11 token or the file keystore signs without handing out the key;
// a signer hashes the data itself with the scheme's hash (a token doing raw ECDSA must hash first
// and, since PKCS#11 returns r | s, convert with ecdsaRawToDer).

import { createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { err, ok, type Result } from '../../base/result.js';
import { isDerEcdsaSignature } from '../../pki/ecdsa-signature.js';

export const AUTH_METHOD_DIGITAL_SIGNATURE = 14;

/** RFC 7427 §4 hash algorithm ids ("IKEv2 Hash Algorithms" registry). */
export const HashAlgorithmId = { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4, IDENTITY: 5 } as const;
export const NOTIFY_SIGNATURE_HASH_ALGORITHMS = 16431;

export type SignatureSchemeName =
  | 'ecdsa-with-SHA256'
  | 'ecdsa-with-SHA384'
  | 'ecdsa-with-SHA512'
  | 'sha256WithRSAEncryption'
  | 'sha384WithRSAEncryption'
  | 'sha512WithRSAEncryption';

export interface SignatureScheme {
  readonly name: SignatureSchemeName;
  /** DER AlgorithmIdentifier we send (RFC 7427 Appendix A). */
  readonly algorithmIdentifier: Buffer;
  /** Further encodings accepted on receive (RSA without the NULL parameters). */
  readonly alsoAccepted: readonly Buffer[];
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly hashId: number;
  readonly keyType: 'ec' | 'rsa';
}

const hex = (s: string) => Buffer.from(s, 'hex');

// AlgorithmIdentifier ::= SEQUENCE { OID, parameters }: absent for ECDSA (RFC 5758), NULL for RSA.
function ecdsa(
  name: SignatureSchemeName,
  last: string,
  hash: SignatureScheme['hash'],
  hashId: number,
): SignatureScheme {
  return {
    name,
    algorithmIdentifier: hex(`300a06082a8648ce3d0403${last}`),
    alsoAccepted: [],
    hash,
    hashId,
    keyType: 'ec',
  };
}
function rsa(name: SignatureSchemeName, last: string, hash: SignatureScheme['hash'], hashId: number): SignatureScheme {
  const oid = `06092a864886f70d0101${last}`;
  return {
    name,
    algorithmIdentifier: hex(`300d${oid}0500`),
    alsoAccepted: [hex(`300b${oid}`)],
    hash,
    hashId,
    keyType: 'rsa',
  };
}

export const SIGNATURE_SCHEMES: readonly SignatureScheme[] = [
  ecdsa('ecdsa-with-SHA256', '02', 'sha256', HashAlgorithmId.SHA2_256),
  ecdsa('ecdsa-with-SHA384', '03', 'sha384', HashAlgorithmId.SHA2_384),
  ecdsa('ecdsa-with-SHA512', '04', 'sha512', HashAlgorithmId.SHA2_512),
  rsa('sha256WithRSAEncryption', '0b', 'sha256', HashAlgorithmId.SHA2_256),
  rsa('sha384WithRSAEncryption', '0c', 'sha384', HashAlgorithmId.SHA2_384),
  rsa('sha512WithRSAEncryption', '0d', 'sha512', HashAlgorithmId.SHA2_512),
].map((s) => Object.freeze(s));

export function signatureScheme(name: SignatureSchemeName): SignatureScheme {
  const s = SIGNATURE_SCHEMES.find((x) => x.name === name);
  if (!s) throw new RangeError(`unknown signature scheme ${name}`);
  return s;
}

/**
 * Signs with the hash of the scheme it is used with; returns the scheme's signature value (DER for
 * ECDSA). Synchronous, as every keystore is (node:crypto, PKCS#11 C_Sign): the IKE engine is.
 */
export interface AuthSigner {
  sign(data: Buffer): Buffer;
}

/** A signer over a node KeyObject (the file keystore, tests). */
export function keyObjectSigner(privateKey: KeyObject, scheme: SignatureSchemeName): AuthSigner {
  const s = signatureScheme(scheme);
  return { sign: (data) => nodeSign(s.hash, data, { key: privateKey, dsaEncoding: 'der' }) };
}

// --- AUTH data -------------------------------------------------------------------------------

/** Signs the §2.15 octets and returns the AUTH payload data for method 14. */
export function signAuth(signer: AuthSigner, scheme: SignatureSchemeName, octets: Uint8Array): Buffer {
  const s = signatureScheme(scheme);
  const sig = signer.sign(Buffer.from(octets));
  if (sig.length === 0) throw new Error('signer returned an empty signature');
  if (s.keyType === 'ec' && !isDerEcdsaSignature(sig)) throw new Error('signer did not return a DER ECDSA signature');
  return Buffer.concat([Buffer.of(s.algorithmIdentifier.length), s.algorithmIdentifier, sig]);
}

export interface ParsedAuthData {
  readonly scheme: SignatureScheme;
  readonly signature: Buffer;
}

/** Splits method-14 AUTH data into its scheme and signature value. */
export function parseSignatureAuthData(authData: Uint8Array): Result<ParsedAuthData> {
  if (authData.length < 1) return err('auth-truncated', 'AUTH data is empty');
  const n = authData[0];
  const algId = Buffer.from(authData.subarray(1, 1 + n));
  if (n === 0 || authData.length < 1 + n)
    return err('auth-algid-truncated', `AlgorithmIdentifier of ${n} bytes does not fit the AUTH data`);
  const scheme = SIGNATURE_SCHEMES.find(
    (s) => s.algorithmIdentifier.equals(algId) || s.alsoAccepted.some((a) => a.equals(algId)),
  );
  if (!scheme) {
    const prefix = SIGNATURE_SCHEMES.some(
      (s) => n < s.algorithmIdentifier.length && s.algorithmIdentifier.subarray(0, n).equals(algId),
    );
    return prefix
      ? err('auth-algid-truncated', 'AlgorithmIdentifier is cut short')
      : err('auth-unknown-algorithm', `unsupported AlgorithmIdentifier ${algId.toString('hex')}`);
  }
  const signature = Buffer.from(authData.subarray(1 + n));
  if (signature.length === 0) return err('auth-truncated', 'AUTH data has no signature value');
  return ok({ scheme, signature });
}

export interface VerifyAuthOptions {
  /** Schemes we accept (default: all we know). */
  readonly accept?: readonly SignatureSchemeName[];
}

/**
 * Verifies method-14 AUTH data over the §2.15 octets with the peer's public key (SPKI DER or a
 * KeyObject). Every failure is an error result with a reason; nothing throws.
 */
export function verifyAuth(
  publicKey: KeyObject | Uint8Array,
  octets: Uint8Array,
  authData: Uint8Array,
  options: VerifyAuthOptions = {},
): Result<{ scheme: SignatureSchemeName }> {
  const parsed = parseSignatureAuthData(authData);
  if (!parsed.ok) return parsed;
  const { scheme, signature } = parsed.value;
  if (options.accept && !options.accept.includes(scheme.name))
    return err('auth-algorithm-not-allowed', `${scheme.name} is not accepted`);
  let key: KeyObject;
  try {
    key =
      publicKey instanceof Uint8Array
        ? createPublicKey({ key: Buffer.from(publicKey), format: 'der', type: 'spki' })
        : publicKey;
  } catch {
    return err('auth-bad-public-key', 'the public key is not a valid SPKI');
  }
  if (key.type !== 'public' || key.asymmetricKeyType !== scheme.keyType) {
    return err(
      'auth-key-mismatch',
      `${scheme.name} needs an ${scheme.keyType} public key, not ${key.asymmetricKeyType ?? key.type}`,
    );
  }
  let good = false;
  try {
    good = nodeVerify(scheme.hash, octets, { key, dsaEncoding: 'der' }, signature);
  } catch {
    good = false;
  }
  return good ? ok({ scheme: scheme.name }) : err('auth-bad-signature', `${scheme.name} signature does not verify`);
}

// --- SIGNATURE_HASH_ALGORITHMS notify data (RFC 7427 §4) ---------------------------------------

export function encodeSignatureHashAlgorithms(ids: readonly number[]): Buffer {
  const b = Buffer.alloc(ids.length * 2);
  ids.forEach((id, i) => b.writeUInt16BE(id, i * 2));
  return b;
}

/** The peer's hash ids in its order; unknown ids are kept (ignoring them is the caller's choice). */
export function decodeSignatureHashAlgorithms(data: Uint8Array): Result<number[]> {
  if (data.length === 0 || data.length % 2 !== 0)
    return err('bad-hash-algorithms', `SIGNATURE_HASH_ALGORITHMS data of ${data.length} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < data.length; i += 2) ids.push((data[i] << 8) | data[i + 1]);
  return ok(ids);
}

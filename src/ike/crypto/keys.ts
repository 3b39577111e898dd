// The IKEv2 key schedule: SKEYSEED and the seven SK_* keys (RFC 7296 §2.14), their rekeyed
// successors (§2.18) and Child SA KEYMAT (§2.17).
//
// With an AEAD (RFC 5282 §7.1) there is no integrity transform: SK_ai and SK_ar are empty and
// SK_ei/SK_er are key | 4-byte salt. Nonces are the Nonce payload data (no header); SPIs are the
// 8-byte IKE SPIs; g^ir is the DH shared secret as dh.ts returns it (fixed length per group).

import { prf, prfPlus } from './prf.js';
import type { AeadAlgorithm, EspSuite, IkeSuite, PrfAlgorithm } from './transforms.js';

export interface IkeSaKeys {
  readonly skD: Buffer;
  readonly skAi: Buffer;
  readonly skAr: Buffer;
  readonly skEi: Buffer;
  readonly skEr: Buffer;
  readonly skPi: Buffer;
  readonly skPr: Buffer;
}

export interface IkeKeyInput {
  /** g^ir of the exchange (IKE_SA_INIT, or the CREATE_CHILD_SA that rekeys). */
  readonly sharedSecret: Uint8Array;
  readonly ni: Uint8Array;
  readonly nr: Uint8Array;
  /** Initiator and responder SPIs of the (new) IKE SA, 8 bytes each. */
  readonly spiI: Uint8Array;
  readonly spiR: Uint8Array;
}

/** Bytes of each SK_* key for a suite, in prf+ order. */
export function ikeKeyLengths(suite: Pick<IkeSuite, 'encr' | 'prf'>): {
  d: number;
  a: number;
  e: number;
  p: number;
  total: number;
} {
  const d = suite.prf.length;
  const a = 0; // AEAD: integrity comes with the cipher
  const e = suite.encr.keymatLength;
  const p = suite.prf.length;
  return { d, a, e, p, total: d + 2 * a + 2 * e + 2 * p };
}

function checkSpi(name: string, spi: Uint8Array): void {
  if (spi.length !== 8) throw new RangeError(`${name} must be 8 bytes`);
}

/** {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr). */
function expand(suite: Pick<IkeSuite, 'encr' | 'prf'>, skeyseed: Uint8Array, input: IkeKeyInput): IkeSaKeys {
  checkSpi('SPIi', input.spiI);
  checkSpi('SPIr', input.spiR);
  const len = ikeKeyLengths(suite);
  const seed = Buffer.concat([input.ni, input.nr, input.spiI, input.spiR]);
  const km = prfPlus(suite.prf, skeyseed, seed, len.total);
  let at = 0;
  const take = (n: number): Buffer => Buffer.from(km.subarray(at, (at += n)));
  return {
    skD: take(len.d),
    skAi: take(len.a),
    skAr: take(len.a),
    skEi: take(len.e),
    skEr: take(len.e),
    skPi: take(len.p),
    skPr: take(len.p),
  };
}

/** Initial IKE SA: SKEYSEED = prf(Ni | Nr, g^ir). */
export function deriveIkeSaKeys(
  suite: Pick<IkeSuite, 'encr' | 'prf'>,
  input: IkeKeyInput,
): { skeyseed: Buffer; keys: IkeSaKeys } {
  const skeyseed = prf(suite.prf, Buffer.concat([input.ni, input.nr]), input.sharedSecret);
  return { skeyseed, keys: expand(suite, skeyseed, input) };
}

/**
 * Rekeyed IKE SA (§2.18): SKEYSEED = prf(SK_d(old), g^ir(new) | Ni | Nr) with the OLD SA's PRF,
 * because the rekeying exchange belongs to the old SA; prf+ then uses the NEW suite's PRF, and the
 * new nonces and new SPIs (from the SA payload proposals).
 */
export function deriveRekeyedIkeSaKeys(
  oldPrf: PrfAlgorithm,
  oldSkD: Uint8Array,
  suite: Pick<IkeSuite, 'encr' | 'prf'>,
  input: IkeKeyInput,
): { skeyseed: Buffer; keys: IkeSaKeys } {
  const skeyseed = prf(oldPrf, oldSkD, Buffer.concat([input.sharedSecret, input.ni, input.nr]));
  return { skeyseed, keys: expand(suite, skeyseed, input) };
}

/** One direction of an AEAD SA: the cipher key and its salt, split from the keying material. */
export interface AeadKey {
  readonly encr: AeadAlgorithm;
  readonly key: Buffer;
  readonly salt: Buffer;
}

/** Splits SK_e* or one direction of ESP KEYMAT into key and salt (the salt is the last 4 bytes). */
export function aeadKey(encr: AeadAlgorithm, keymat: Uint8Array): AeadKey {
  if (keymat.length !== encr.keymatLength)
    throw new RangeError(`keying material must be ${encr.keymatLength} bytes, got ${keymat.length}`);
  return {
    encr,
    key: Buffer.from(keymat.subarray(0, encr.keyLength)),
    salt: Buffer.from(keymat.subarray(encr.keyLength)),
  };
}

/** The SK payload keys of an IKE SA, seen from one side: which key it seals with, which it opens with. */
export function ikeSkKeys(
  encr: AeadAlgorithm,
  keys: IkeSaKeys,
  role: 'initiator' | 'responder',
): { seal: AeadKey; open: AeadKey } {
  const i = aeadKey(encr, keys.skEi);
  const r = aeadKey(encr, keys.skEr);
  return role === 'initiator' ? { seal: i, open: r } : { seal: r, open: i };
}

export interface ChildKeyInput {
  /** Nonces of the exchange that creates the Child SA (for the first one: those of IKE_SA_INIT). */
  readonly ni: Uint8Array;
  readonly nr: Uint8Array;
  /** g^ir of a CREATE_CHILD_SA with PFS (a KE payload pair); absent otherwise. */
  readonly sharedSecret?: Uint8Array;
}

export interface ChildSaKeys {
  /**
   * Protects traffic sent by the initiator of the exchange that created the SA (IKE_AUTH or
   * CREATE_CHILD_SA), which after a rekey need not be the IKE SA's original initiator.
   */
  readonly initiatorToResponder: AeadKey;
  readonly responderToInitiator: AeadKey;
}

/**
 * KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir(new) | Ni | Nr) with PFS. Keys are taken
 * initiator-to-responder first (RFC 7296 §2.17), each direction encryption key | salt.
 */
export function deriveChildSaKeys(
  prfAlg: PrfAlgorithm,
  skD: Uint8Array,
  suite: EspSuite,
  input: ChildKeyInput,
): ChildSaKeys {
  const per = suite.encr.keymatLength;
  const seed = Buffer.concat(input.sharedSecret ? [input.sharedSecret, input.ni, input.nr] : [input.ni, input.nr]);
  const km = prfPlus(prfAlg, skD, seed, 2 * per);
  return {
    initiatorToResponder: aeadKey(suite.encr, km.subarray(0, per)),
    responderToInitiator: aeadKey(suite.encr, km.subarray(per, 2 * per)),
  };
}

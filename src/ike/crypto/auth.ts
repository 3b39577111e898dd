// The octets an AUTH payload signs (RFC 7296 §2.15):
//
//   InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
//   ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
//
// RealMessage1/2 are the IKE_SA_INIT request/response exactly as sent (for the initiator, the last
// request: the one carrying the COOKIE or the changed KE, if there was a retry); NonceXData is the
// other side's Nonce payload data without its header; RestOf...IDPayload is the ID payload after
// its generic header: ID Type (1) | RESERVED (3) | identification data. Pass those bytes as they
// were on the wire, so a peer's non-zero RESERVED bytes still verify.

import { prf } from './prf.js';
import type { IkeSaKeys } from './keys.js';
import type { PrfAlgorithm } from './transforms.js';

/** RestOfIDPayload for our own ID payload: type, three zero RESERVED bytes, data. */
export function idPayloadBody(idType: number, idData: Uint8Array): Buffer {
  if (!Number.isInteger(idType) || idType < 0 || idType > 255) throw new RangeError('ID type must be one octet');
  const b = Buffer.alloc(4 + idData.length);
  b[0] = idType;
  b.set(idData, 4);
  return b;
}

export interface SignedOctetsInput {
  /** The signer's IKE_SA_INIT message (request for the initiator, response for the responder). */
  readonly realMessage: Uint8Array;
  /** The OTHER side's nonce data. */
  readonly peerNonce: Uint8Array;
  /** The signer's RestOfIDPayload (ID type | RESERVED | data). */
  readonly idBody: Uint8Array;
}

/**
 * The octets signed by `signer` ('initiator' uses SK_pi, 'responder' SK_pr). The same bytes are
 * built to sign our own AUTH and to verify the peer's.
 */
export function authSignedOctets(
  prfAlg: PrfAlgorithm,
  keys: Pick<IkeSaKeys, 'skPi' | 'skPr'>,
  signer: 'initiator' | 'responder',
  input: SignedOctetsInput,
): Buffer {
  if (input.idBody.length < 4) throw new RangeError('RestOfIDPayload is at least 4 bytes');
  const skP = signer === 'initiator' ? keys.skPi : keys.skPr;
  return Buffer.concat([input.realMessage, input.peerNonce, prf(prfAlg, skP, input.idBody)]);
}

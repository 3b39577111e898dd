// The IKE header's fields as plain data (RFC 7296 §3.1); header.ts encodes and decodes them. A file
// of its own so that errors.ts can name it without importing the codec that imports errors.ts.

/**
 * What a caller sets. Next payload and length follow from the payloads, so they are not here;
 * the minor version is always sent as 0 and ignored on receipt (§2.5), as are reserved flag bits.
 */
export interface IkeHeader {
  spiI: Buffer;
  spiR: Buffer;
  exchangeType: number;
  /** I flag: sent by the original initiator of the IKE SA. */
  initiator: boolean;
  /** R flag: this message is a response. */
  response: boolean;
  /** V flag: the sender could speak a higher major version. */
  higherVersion: boolean;
  messageId: number;
}

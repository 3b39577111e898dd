// The 28-byte IKE header (RFC 7296 §3.1).
//
//   0..7 SPIi | 8..15 SPIr | 16 next payload | 17 MjVer<<4|MnVer | 18 exchange | 19 flags
//   20..23 message ID | 24..27 length (whole message, header included)
import { HeaderFlag, IKE_HEADER_BYTES, IKE_SPI_BYTES, IKE_VERSION_MAJOR, MAX_MESSAGE_BYTES } from './constants.js';
import { badMajorVersion, malformed, type IkeResult } from './errors.js';
import type { IkeHeader } from './ike-header.js';
import { asBuffer, bytes, copy, u32, u8 } from './wire.js';

export interface DecodedHeader {
  header: IkeHeader;
  nextPayload: number;
  /** The length field (checked against the datagram by decodeMessage, not here). */
  length: number;
  minorVersion: number;
}

export function encodeHeader(h: IkeHeader, nextPayload: number, length: number): Buffer {
  const out = Buffer.alloc(IKE_HEADER_BYTES);
  out.set(bytes(h.spiI, 'SPIi', IKE_SPI_BYTES), 0);
  out.set(bytes(h.spiR, 'SPIr', IKE_SPI_BYTES), 8);
  out[16] = u8(nextPayload, 'next payload');
  out[17] = IKE_VERSION_MAJOR << 4;
  out[18] = u8(h.exchangeType, 'exchange type');
  out[19] =
    (h.initiator ? HeaderFlag.INITIATOR : 0) |
    (h.higherVersion ? HeaderFlag.VERSION : 0) |
    (h.response ? HeaderFlag.RESPONSE : 0);
  out.writeUInt32BE(u32(h.messageId, 'message ID'), 20);
  out.writeUInt32BE(u32(length, 'length'), 24);
  return out;
}

/**
 * Reads the header of a datagram. Checks size and major version only; the rest of the message is
 * decodeMessage's job. Cheap enough for a dispatcher to look up the SA by SPI first.
 */
export function decodeHeader(input: Uint8Array): IkeResult<DecodedHeader> {
  const buf = asBuffer(input);
  if (buf.length < IKE_HEADER_BYTES)
    return malformed(0, 0, `${buf.length} bytes, an IKE header needs ${IKE_HEADER_BYTES}`);
  const flags = buf[19];
  const header: IkeHeader = {
    spiI: copy(buf, 0, 8),
    spiR: copy(buf, 8, 16),
    exchangeType: buf[18],
    initiator: (flags & HeaderFlag.INITIATOR) !== 0,
    response: (flags & HeaderFlag.RESPONSE) !== 0,
    higherVersion: (flags & HeaderFlag.VERSION) !== 0,
    messageId: buf.readUInt32BE(20),
  };
  const major = buf[17] >> 4;
  if (major !== IKE_VERSION_MAJOR) return badMajorVersion(major, header);
  const length = buf.readUInt32BE(24);
  if (length < IKE_HEADER_BYTES)
    return withHeader(malformed(0, 24, `length field ${length} is shorter than the header`), header);
  if (length > MAX_MESSAGE_BYTES)
    return withHeader(malformed(0, 24, `length field ${length} exceeds ${MAX_MESSAGE_BYTES}`), header);
  return { ok: true, value: { header, nextPayload: buf[16], length, minorVersion: buf[17] & 0x0f } };
}

/** Attaches the header to an error so the caller can still answer with the right SPIs. */
export function withHeader<E extends { header?: IkeHeader }>(
  r: { ok: false; error: E },
  header: IkeHeader,
): { ok: false; error: E } {
  r.error.header = header;
  return r;
}

// Whole IKE messages: header, cleartext payload chain, and the Encrypted (SK, RFC 7296 §3.14) or
// Encrypted Fragment (SKF, RFC 7383 §2.5) payload kept as opaque IV | ciphertext | ICV.
//
// Flow for a protected message (the crypto layer does the middle step):
//   send:    encodePayloadChain(inner) → plaintext; body = encrypt(plaintext + padding,
//            aad = encodeEncryptedPrefix(...,  body length)); encodeMessage({ ..., encrypted }).
//   receive: decodeMessage(datagram) → encrypted body + associatedData; plaintext = decrypt(...);
//            decodePayloadChain(plaintext, encrypted.firstPayload).
import { ok } from '../../base/result.js';
import { IKE_HEADER_BYTES, MAX_MESSAGE_BYTES, PayloadType } from './constants.js';
import { invalid, malformed, type IkeResult } from './errors.js';
import { decodeHeader, encodeHeader, withHeader } from './header.js';
import type { IkeHeader } from './ike-header.js';
import { decodeChain, encodeChain, type ChainOptions, type Payload } from './payloads.js';
import { asBuffer, bytes, copy, u16, u8 } from './wire.js';

export interface SkPayload {
  kind: 'SK';
  /** The SK payload's next-payload field: type of the first inner payload (0 if none). */
  firstPayload: number;
  /** IV | ciphertext (with padding and pad length) | ICV, as the crypto layer made it. */
  body: Buffer;
}

export interface SkfPayload {
  kind: 'SKF';
  /** Type of the first inner payload in fragment 1; 0 in the others (RFC 7383 §2.5). */
  firstPayload: number;
  /** 1..totalFragments. */
  fragmentNumber: number;
  totalFragments: number;
  body: Buffer;
}

export type EncryptedPayload = SkPayload | SkfPayload;

/** An SK/SKF payload without its body: what the associated data depends on. */
export type EncryptedPayloadHeader = Omit<SkPayload, 'body'> | Omit<SkfPayload, 'body'>;

export interface IkeMessage {
  header: IkeHeader;
  /** Cleartext payloads (all of them in IKE_SA_INIT; those before SK otherwise, usually none). */
  payloads: Payload[];
  /** The last payload when the message is protected. */
  encrypted?: EncryptedPayload;
}

export interface DecodedMessage {
  message: IkeMessage;
  /** The 28 header bytes as received. */
  headerBytes: Buffer;
  /**
   * With SK/SKF: every byte from the header through the SK/SKF payload header (for SKF including
   * fragment number and total). The AEAD associated data (RFC 5282 §5.1, RFC 7383 §2.5); with
   * HMAC integrity the checksum covers these bytes followed by the body without its ICV.
   */
  associatedData?: Buffer;
}

export type DecodeOptions = ChainOptions;

const SK_HEADER = 4;
const SKF_HEADER = 8;

/**
 * Decodes one IKE message (without the port-4500 non-ESP marker). Never throws on wire data.
 * Errors carry the notify to answer with and, when the header was readable, the header.
 */
export function decodeMessage(input: Uint8Array, opts: DecodeOptions = {}): IkeResult<DecodedMessage> {
  const buf = asBuffer(input);
  const h = decodeHeader(buf);
  if (!h.ok) return h;
  const { header, nextPayload, length } = h.value;
  if (length !== buf.length)
    return withHeader(malformed(0, 24, `length field ${length}, datagram has ${buf.length} bytes`), header);
  const chain = decodeChain(buf, IKE_HEADER_BYTES, buf.length, nextPayload, true, opts);
  if (!chain.ok) return withHeader(chain, header);
  const message: IkeMessage = { header, payloads: chain.value.payloads };
  const headerBytes = copy(buf, 0, IKE_HEADER_BYTES);
  const stop = chain.value.encrypted;
  if (!stop) return ok({ message, headerBytes });

  const o = stop.offset;
  if (stop.type === PayloadType.SK) {
    message.encrypted = { kind: 'SK', firstPayload: stop.nextPayload, body: copy(buf, o + SK_HEADER, buf.length) };
    return ok({ message, headerBytes, associatedData: copy(buf, 0, o + SK_HEADER) });
  }
  if (buf.length - o < SKF_HEADER) {
    return withHeader(malformed(stop.type, o, `payload of ${buf.length - o} bytes, needs ${SKF_HEADER}`), header);
  }
  const fragmentNumber = buf.readUInt16BE(o + 4);
  const totalFragments = buf.readUInt16BE(o + 6);
  if (totalFragments === 0) return withHeader(malformed(stop.type, o + 6, 'total fragments is 0'), header);
  if (fragmentNumber === 0 || fragmentNumber > totalFragments) {
    return withHeader(
      malformed(stop.type, o + 4, `fragment number ${fragmentNumber} outside 1..${totalFragments}`),
      header,
    );
  }
  message.encrypted = {
    kind: 'SKF',
    firstPayload: stop.nextPayload,
    fragmentNumber,
    totalFragments,
    body: copy(buf, o + SKF_HEADER, buf.length),
  };
  return ok({ message, headerBytes, associatedData: copy(buf, 0, o + SKF_HEADER) });
}

function encryptedHeader(e: EncryptedPayloadHeader, payloadLength: number): Buffer {
  if (e.kind !== 'SK' && e.kind !== 'SKF')
    invalid(`encrypted payload kind ${JSON.stringify((e as { kind: unknown }).kind)}`);
  const out = Buffer.alloc(e.kind === 'SK' ? SK_HEADER : SKF_HEADER);
  out[0] = u8(e.firstPayload, 'first inner payload type');
  out.writeUInt16BE(u16(payloadLength, 'encrypted payload length'), 2);
  if (e.kind === 'SKF') {
    u16(e.fragmentNumber, 'fragment number');
    u16(e.totalFragments, 'total fragments');
    if (e.totalFragments < 1 || e.fragmentNumber < 1 || e.fragmentNumber > e.totalFragments) {
      invalid(`fragment ${e.fragmentNumber} of ${e.totalFragments}`);
    }
    out.writeUInt16BE(e.fragmentNumber, 4);
    out.writeUInt16BE(e.totalFragments, 6);
  }
  return out;
}

function prefix(
  m: { header: IkeHeader; payloads?: readonly Payload[]; encrypted?: EncryptedPayloadHeader },
  bodyLength: number,
): Buffer {
  const e = m.encrypted;
  const chain = encodeChain(
    m.payloads ?? [],
    e ? (e.kind === 'SK' ? PayloadType.SK : PayloadType.SKF) : PayloadType.NONE,
  );
  const skHeader = e ? encryptedHeader(e, (e.kind === 'SK' ? SK_HEADER : SKF_HEADER) + bodyLength) : Buffer.alloc(0);
  const total = IKE_HEADER_BYTES + chain.bytes.length + skHeader.length + bodyLength;
  if (total > MAX_MESSAGE_BYTES) invalid(`message of ${total} bytes exceeds ${MAX_MESSAGE_BYTES}: fragment it`);
  return Buffer.concat([encodeHeader(m.header, chain.firstPayload, total), chain.bytes, skHeader]);
}

/**
 * Every byte of a protected message before its SK/SKF body, for a body of `bodyLength` bytes:
 * exactly the associatedData that decodeMessage returns for the finished message.
 */
export function encodeEncryptedPrefix(
  m: { header: IkeHeader; payloads?: readonly Payload[]; encrypted: EncryptedPayloadHeader },
  bodyLength: number,
): Buffer {
  if (!Number.isInteger(bodyLength) || bodyLength < 0) invalid(`body length ${bodyLength}`);
  return prefix(m, bodyLength);
}

/** Encodes a message. Throws (TypeError) only on programmer error: a field out of its range. */
export function encodeMessage(m: IkeMessage): Buffer {
  if (!m.encrypted) return prefix(m, 0);
  const body = bytes(m.encrypted.body, 'encrypted body');
  return Buffer.concat([prefix(m, body.length), body]);
}

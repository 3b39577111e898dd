// The datagrams of the wake-up channel (docs/authority.md, "The wake-up channel"): a gateway
// SUBSCRIBEs with its cursor, the authority ACKs and WAKEs it when a change concerns it, and the
// gateway fetches the delivery over mutual TLS. From protocol 2 on, when the change stream's answer
// fits one datagram the authority sends it instead of the WAKE (DELIVER), encrypted: no TLS
// handshake per change. Each datagram is authenticated with HMAC-SHA256 (first 16 bytes) under the
// gateway's push key, derived from the authority's push secret with HKDF-SHA256 (so any replica
// holding the secret checks it without storing keys).
//
// The codec is written by hand: the protocol is ours, its datagrams are a few fixed-offset
// fields, and its parser must refuse anything else cheaply before any key is derived.
//
//   0      protocol version: 1; 2 (DELIVER); 3 (the SUBSCRIBE's acknowledges flag). A gateway
//          SUBSCRIBEs in the newest its offer says the authority speaks and it speaks itself; the
//          authority answers in the version it was sent.
//   1      type: 1 SUBSCRIBE (gateway → authority), 2 ACK, 3 WAKE, 4 DELIVER (authority → gateway)
//   2      flags: WAKE bit 0 = reset (the gateway's cursor is ahead of the authority), bit 1 = gone
//          (this authority process is stopping: subscribe again, elsewhere or once it is back);
//          SUBSCRIBE (protocol 3) bit 0 = acknowledges (it follows a DELIVER, which showed the
//          authority alive: no ACK wanted unless more is due); others 0
//   3      SUBSCRIBE: length n of the gateway's name (1..63); ACK, WAKE, DELIVER: 0
//   4..7   key id: the push key's issue time (s since the Unix epoch), big-endian
//   8..15  sequence: SUBSCRIBE: the gateway's own, strictly increasing, ~ the authority's clock in
//          ms (replay window); ACK, WAKE, DELIVER: that of the newest SUBSCRIBE accepted (echoed)
//   16..23 SUBSCRIBE: the gateway's cursor; ACK: the version its delivery last changed at; WAKE:
//          the version to fetch; DELIVER: the version of the answer it carries
//   24..   SUBSCRIBE: the name (UTF-8). DELIVER: 24..31 the cursor the answer is from, 32..47 an
//          IV, then the answer (JSON, raw deflate with ANSWER_DICTIONARY as its preset dictionary)
//          encrypted with AES-256-CTR under HKDF(push key, "kasane push deliver v1"):
//          encrypt-then-MAC as ESP does (RFC 3686, RFC 4868)
//   then   16 bytes of HMAC-SHA256 over everything before them
import { createCipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { err, ok, type Result } from '../base/result.js';
import { MAX_NAME_BYTES } from './validate.js';

/** The newest protocol version; 1 and 2 are still spoken to gateways that SUBSCRIBE with them. */
export const PUSH_PROTOCOL_VERSION = 3;
export type PushProtocol = 1 | 2 | 3;
export const MAC_BYTES = 16;
const HEADER_BYTES = 24;
const IV_BYTES = 16;
/** A DELIVER's fields before its ciphertext. */
const DELIVER_HEADER_BYTES = HEADER_BYTES + 8 + IV_BYTES;
/** The largest SUBSCRIBE: the authority refuses anything longer unread. */
export const MAX_SUBSCRIBE_BYTES = HEADER_BYTES + MAX_NAME_BYTES + MAC_BYTES;
/**
 * The largest datagram of this protocol (a DELIVER): one that crosses any path unfragmented (the
 * IPv6 minimum MTU less its headers, with room for tunnels on the way, as QUIC assumes).
 */
export const MAX_DATAGRAM_BYTES = 1200;
const TYPES = { subscribe: 1, ack: 2, wake: 3, deliver: 4 } as const;
const FLAG_RESET = 1;
const FLAG_GONE = 2;
const FLAG_ACKNOWLEDGES = 1;
const KEY_INFO = Buffer.from('kasane push v1', 'latin1');
const DELIVER_INFO = Buffer.from('kasane push deliver v1', 'latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface Subscribe {
  type: 'subscribe';
  keyId: number;
  seq: number;
  cursor: number;
  gateway: string;
  /** Protocol 3: it acknowledges a DELIVER, and wants no ACK unless more is due. */
  acknowledges?: boolean;
}
export interface Ack {
  type: 'ack';
  keyId: number;
  seq: number;
  version: number;
}
export interface Wake {
  type: 'wake';
  keyId: number;
  seq: number;
  version: number;
  reset: boolean;
  /** The authority process is stopping. */
  gone?: boolean;
}
/** The change stream's answer, sent in place of a WAKE (protocol 2). */
export interface Deliver {
  type: 'deliver';
  keyId: number;
  seq: number;
  /** The version of the answer (the cursor once it is applied). */
  version: number;
  /** The cursor the answer was read for: it applies only to a gateway still there. */
  since: number;
  /** IV and ciphertext (`sealAnswer` / `openAnswer`). */
  sealed: Uint8Array;
}
export type PushDatagram = Subscribe | Ack | Wake | Deliver;

/** A datagram read but not yet authenticated: `verify` with the key its fields name. */
export interface ParsedDatagram {
  protocol: PushProtocol;
  datagram: PushDatagram;
  /** The bytes the MAC covers, and the MAC. */
  signed: Uint8Array;
  mac: Uint8Array;
}

/** A gateway's push key: HKDF-SHA256(secret, info = "kasane push v1" 0 name 0 keyId). Names hold no NUL. */
export function pushKey(secret: Uint8Array, gateway: string, keyId: number): Buffer {
  const name = Buffer.from(gateway, 'utf8');
  const info = Buffer.alloc(KEY_INFO.length + 1 + name.length + 1 + 4);
  KEY_INFO.copy(info, 0);
  name.copy(info, KEY_INFO.length + 1);
  info.writeUInt32BE(keyId >>> 0, info.length - 4);
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32));
}

function mac(key: Uint8Array, signed: Uint8Array): Buffer {
  return createHmac('sha256', key).update(signed).digest().subarray(0, MAC_BYTES);
}

/** Does the MAC of a parsed datagram check under `key`? (constant time) */
export function verifyDatagram(p: ParsedDatagram, key: Uint8Array): boolean {
  return timingSafeEqual(mac(key, p.signed), p.mac);
}

function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

function readU64(b: Uint8Array, at: number): number | undefined {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = v.getUint32(at);
  if (hi >= 2 ** 21) return undefined; // beyond Number.MAX_SAFE_INTEGER
  return hi * 2 ** 32 + v.getUint32(at + 4);
}

const u64 = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;

/**
 * The datagram, authenticated under `key`, in `protocol` (that of the SUBSCRIBE it answers). Throws
 * on fields out of range (our own values).
 */
export function encodeDatagram(d: PushDatagram, key: Uint8Array, protocol: PushProtocol = 1): Buffer {
  const name = d.type === 'subscribe' ? Buffer.from(d.gateway, 'utf8') : Buffer.alloc(0);
  if (d.type === 'subscribe' && (name.length < 1 || name.length > MAX_NAME_BYTES))
    throw new RangeError(`gateway name of ${name.length} bytes`);
  if (d.type === 'deliver' && (protocol < 2 || !u64(d.since) || d.sealed.length < IV_BYTES))
    throw new RangeError('a DELIVER needs protocol 2, a cursor and an IV');
  if (d.type === 'subscribe' && d.acknowledges && protocol < 3)
    throw new RangeError('an acknowledging SUBSCRIBE needs protocol 3');
  const third = d.type === 'subscribe' ? d.cursor : d.version;
  if (!Number.isInteger(d.keyId) || d.keyId < 0 || d.keyId > 0xffffffff || !u64(d.seq) || !u64(third))
    throw new RangeError('push datagram field out of range');
  const body = d.type === 'deliver' ? 8 + d.sealed.length : name.length;
  const b = Buffer.alloc(HEADER_BYTES + body + MAC_BYTES);
  if (b.length > MAX_DATAGRAM_BYTES) throw new RangeError(`a datagram of ${b.length} bytes`);
  b[0] = protocol;
  b[1] = TYPES[d.type];
  b[2] =
    d.type === 'wake'
      ? (d.reset ? FLAG_RESET : 0) | (d.gone ? FLAG_GONE : 0)
      : d.type === 'subscribe' && d.acknowledges
        ? FLAG_ACKNOWLEDGES
        : 0;
  b[3] = name.length;
  b.writeUInt32BE(d.keyId, 4);
  writeU64(b, 8, d.seq);
  writeU64(b, 16, third);
  if (d.type === 'deliver') {
    writeU64(b, HEADER_BYTES, d.since);
    b.set(d.sealed, HEADER_BYTES + 8);
  } else name.copy(b, HEADER_BYTES);
  const signed = b.subarray(0, HEADER_BYTES + body);
  mac(key, signed).copy(b, signed.length);
  return b;
}

/** Answer keys by push key object: a subscription and a session keep theirs (HKDF once, not per datagram). */
const answerKeys = new WeakMap<Uint8Array, Buffer>();

/**
 * Derives the answer key of a push key now (kept with the key object), so that the first DELIVER
 * sealed or opened under it costs no HKDF: a SUBSCRIBE or a session start is spread over time, a
 * rotation's DELIVERs are not.
 */
export function answerKey(key: Uint8Array): Buffer {
  let k = answerKeys.get(key);
  if (!k) answerKeys.set(key, (k = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), DELIVER_INFO, 32))));
  return k;
}

/** A DELIVER's `sealed`: a fresh IV and the plaintext encrypted under the push key's answer key. */
export function sealAnswer(plain: Uint8Array, key: Uint8Array): Buffer {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-ctr', answerKey(key), iv);
  return Buffer.concat([iv, c.update(plain), c.final()]);
}

/** The plaintext of a DELIVER whose MAC checked (CTR mode: decryption is the same operation). */
export function openAnswer(sealed: Uint8Array, key: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-ctr', answerKey(key), sealed.subarray(0, IV_BYTES));
  return Buffer.concat([c.update(sealed.subarray(IV_BYTES)), c.final()]);
}

/** The most plaintext a DELIVER carries. */
export const MAX_ANSWER_BYTES = MAX_DATAGRAM_BYTES - DELIVER_HEADER_BYTES - MAC_BYTES;
/** An answer inflates to at most this (a datagram's worth of deflate: far less in practice). */
const MAX_INFLATED_BYTES = 256 * 1024;

/**
 * The preset dictionary of a DELIVER's deflate: the JSON vocabulary of a change stream answer, so
 * that even the first member of a VPN costs its values only (an answer for a VPN of ten members
 * deflates to ~1,030 bytes with it, ~1,270 without). Part of protocol 2: never change it in place.
 */
const ANSWER_DICTIONARY = Buffer.from(
  '{"version":,"changed":true,"reset":false,"delivery":{"format":"kasane-delivery/1","authority":"","gateway":"",' +
    '"version":,"issuedAt":,"protectedPrefixes":["/24","/16"],"vpns":[{"id":,"name":"","mode":"group","mode":"pairwise",' +
    '"epochs":[{"epoch":,"activeFrom":,"expiresAt":9007199254740991,"enc":"","ct":""}],"members":[{"gateway":"",' +
    '"address":"","prefixes":["/24"],"spis":[{"epoch":1,"spi":},{"epoch":2,"spi":}]},{"gateway":"gw-","address":"' +
    '","prefixes":["10.0.0.0/24"],"spis":[{"epoch":,"spi":}]}]}]},"events":[{"version":,"at":,"action":"vpn.rotate",' +
    '"vpn":"","gateway":null}],"eventsTruncated":false}',
  'latin1',
);

/** An answer's JSON as a DELIVER carries it (before encryption). */
export function packAnswer(json: string): Buffer {
  return deflateRawSync(json, { dictionary: ANSWER_DICTIONARY });
}

/** The JSON text of a packed answer; throws on anything that is not one (or inflates too far). */
export function unpackAnswer(packed: Uint8Array): string {
  return inflateRawSync(packed, { dictionary: ANSWER_DICTIONARY, maxOutputLength: MAX_INFLATED_BYTES }).toString();
}

/** Reads a datagram's fields (not its MAC: `verifyDatagram`), or why it is not one of ours. Never throws. */
export function parseDatagram(b: Uint8Array): Result<ParsedDatagram> {
  if (b.length < HEADER_BYTES + MAC_BYTES) return err('short', `${b.length} bytes`);
  if (b.length > MAX_DATAGRAM_BYTES) return err('long', `${b.length} bytes`);
  const protocol = b[0];
  if (protocol !== 1 && protocol !== 2 && protocol !== 3) return err('bad-version', `protocol version ${protocol}`);
  const type = b[1];
  const flags = b[2];
  const n = b[3];
  const keyId = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4);
  const seq = readU64(b, 8);
  const third = readU64(b, 16);
  if (seq === undefined || third === undefined) return err('bad-number', 'a 64-bit field beyond 2^53');
  const signedLength = b.length - MAC_BYTES;
  const signed = b.subarray(0, signedLength);
  const macBytes = b.subarray(signedLength);
  if (type === TYPES.deliver) {
    if (protocol < 2) return err('bad-type', 'DELIVER in protocol 1');
    if (flags !== 0 || n !== 0) return err('bad-flags', `flags ${flags}, name length ${n} in a DELIVER`);
    if (signedLength < DELIVER_HEADER_BYTES) return err('short', `a DELIVER of ${b.length} bytes`);
    const since = readU64(b, HEADER_BYTES);
    if (since === undefined) return err('bad-number', 'a 64-bit field beyond 2^53');
    const sealed = b.subarray(HEADER_BYTES + 8, signedLength);
    return ok({
      protocol,
      datagram: { type: 'deliver', keyId, seq, version: third, since, sealed },
      signed,
      mac: macBytes,
    });
  }
  if (signedLength !== HEADER_BYTES + n) return err('bad-length', `name length ${n} in ${b.length} bytes`);
  if (type === TYPES.subscribe) {
    if ((flags & ~(protocol >= 3 ? FLAG_ACKNOWLEDGES : 0)) !== 0) return err('bad-flags', `flags ${flags}`);
    if (n < 1 || n > MAX_NAME_BYTES) return err('bad-length', `name length ${n}`);
    let gateway: string;
    try {
      gateway = utf8.decode(b.subarray(HEADER_BYTES, signedLength));
    } catch {
      return err('bad-name', 'the name is not UTF-8');
    }
    if (gateway.includes('\u0000')) return err('bad-name', 'the name holds U+0000');
    const acknowledges = (flags & FLAG_ACKNOWLEDGES) !== 0;
    return ok({
      protocol,
      datagram: { type: 'subscribe', keyId, seq, cursor: third, gateway, ...(acknowledges && { acknowledges }) },
      signed,
      mac: macBytes,
    });
  }
  if (type !== TYPES.ack && type !== TYPES.wake) return err('bad-type', `type ${type}`);
  if (n !== 0) return err('bad-length', `name length ${n} in an authority's datagram`);
  if (type === TYPES.ack) {
    if (flags !== 0) return err('bad-flags', `flags ${flags}`);
    return ok({ protocol, datagram: { type: 'ack', keyId, seq, version: third }, signed, mac: macBytes });
  }
  if ((flags & ~(FLAG_RESET | FLAG_GONE)) !== 0) return err('bad-flags', `flags ${flags}`);
  const reset = (flags & FLAG_RESET) !== 0;
  return ok({
    protocol,
    datagram: { type: 'wake', keyId, seq, version: third, reset, ...((flags & FLAG_GONE) !== 0 && { gone: true }) },
    signed,
    mac: macBytes,
  });
}

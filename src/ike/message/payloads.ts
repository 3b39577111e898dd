// Typed payloads and the generic payload chain (RFC 7296 §3.2).
//
// Generic header: next payload (1) | C bit + 7 reserved (1) | payload length (2, header included).
// The C bit is only meaningful for payload types we do not know: known types ignore it on receipt
// and send 0 (§2.5); unknown ones are kept opaque with their C bit, and a critical unknown payload
// is reported as UNSUPPORTED_CRITICAL_PAYLOAD.
import { ok } from '../../base/result.js';
import { MAX_PAYLOADS, PayloadType } from './constants.js';
import { invalid, malformed, unsupportedCritical, type IkeResult } from './errors.js';
import { decodeNotifyBody, encodeNotifyBody, type NotifyPayload } from './notify.js';
import { decodeSaBody, encodeSaBody, type Proposal } from './sa.js';
import { decodeTsBody, encodeTsBody, type TrafficSelector } from './ts.js';
import { bytes, copy, u16, u8 } from './wire.js';

export type { NotifyPayload } from './notify.js';

export interface SaPayload {
  kind: 'SA';
  proposals: Proposal[];
}
export interface KePayload {
  kind: 'KE';
  group: number;
  data: Buffer;
}
export interface IdPayload {
  kind: 'IDi' | 'IDr';
  idType: number;
  data: Buffer;
}
export interface CertPayload {
  kind: 'CERT';
  encoding: number;
  data: Buffer;
}
export interface CertReqPayload {
  kind: 'CERTREQ';
  encoding: number;
  /** For X.509: concatenated SHA-1 hashes of trusted CA public keys. */
  data: Buffer;
}
export interface AuthPayload {
  kind: 'AUTH';
  method: number;
  data: Buffer;
}
export interface NoncePayload {
  kind: 'Nonce';
  /** 16..256 bytes (§3.9). */
  data: Buffer;
}
export interface DeletePayload {
  kind: 'D';
  protocolId: number;
  /** 0 for the IKE SA (with no SPIs), 4 for ESP/AH. */
  spiSize: number;
  spis: Buffer[];
}
export interface VendorPayload {
  kind: 'V';
  data: Buffer;
}
export interface TsPayload {
  kind: 'TSi' | 'TSr';
  selectors: TrafficSelector[];
}
export interface CpAttribute {
  type: number;
  value: Buffer;
}
export interface CpPayload {
  kind: 'CP';
  cfgType: number;
  attributes: CpAttribute[];
}
/** EAP is kept opaque (code, identifier, length, data): we do not run EAP. */
export interface EapPayload {
  kind: 'EAP';
  data: Buffer;
}
/** A payload type we do not know, kept as its body. */
export interface UnknownPayload {
  kind: 'unknown';
  type: number;
  critical: boolean;
  data: Buffer;
}

export type Payload =
  | SaPayload
  | KePayload
  | IdPayload
  | CertPayload
  | CertReqPayload
  | AuthPayload
  | NoncePayload
  | NotifyPayload
  | DeletePayload
  | VendorPayload
  | TsPayload
  | CpPayload
  | EapPayload
  | UnknownPayload;

export type PayloadKind = Payload['kind'];

const TYPE_OF_KIND: Record<Exclude<PayloadKind, 'unknown'>, number> = {
  SA: PayloadType.SA,
  KE: PayloadType.KE,
  IDi: PayloadType.IDi,
  IDr: PayloadType.IDr,
  CERT: PayloadType.CERT,
  CERTREQ: PayloadType.CERTREQ,
  AUTH: PayloadType.AUTH,
  Nonce: PayloadType.NONCE,
  N: PayloadType.N,
  D: PayloadType.D,
  V: PayloadType.V,
  TSi: PayloadType.TSi,
  TSr: PayloadType.TSr,
  CP: PayloadType.CP,
  EAP: PayloadType.EAP,
};

const KNOWN_TYPES = new Set<number>(Object.values(TYPE_OF_KIND));

/** The wire payload type of a typed payload. */
export function payloadTypeOf(p: Payload): number {
  if (p.kind === 'unknown') return p.type;
  const t = TYPE_OF_KIND[p.kind];
  if (t === undefined) invalid(`unknown payload kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
  return t;
}

export const NONCE_MIN_BYTES = 16;
export const NONCE_MAX_BYTES = 256;

// ---- bodies ----

/** Decodes the body buf[start, end) of a payload of known type `type`. */
function decodeBody(type: number, buf: Buffer, start: number, end: number): IkeResult<Payload> {
  const len = end - start;
  const short = (min: number): IkeResult<never> =>
    malformed(type, start, `body of ${len} bytes, needs at least ${min}`);
  switch (type) {
    case PayloadType.SA: {
      const proposals = decodeSaBody(buf, start, end);
      return proposals.ok ? ok({ kind: 'SA', proposals: proposals.value }) : proposals;
    }
    case PayloadType.KE:
      if (len < 4) return short(4);
      return ok({ kind: 'KE', group: buf.readUInt16BE(start), data: copy(buf, start + 4, end) });
    case PayloadType.IDi:
    case PayloadType.IDr:
      if (len < 4) return short(4);
      return ok({
        kind: type === PayloadType.IDi ? 'IDi' : 'IDr',
        idType: buf[start],
        data: copy(buf, start + 4, end),
      });
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
      if (len < 1) return short(1);
      return ok({
        kind: type === PayloadType.CERT ? 'CERT' : 'CERTREQ',
        encoding: buf[start],
        data: copy(buf, start + 1, end),
      });
    case PayloadType.AUTH:
      if (len < 4) return short(4);
      return ok({ kind: 'AUTH', method: buf[start], data: copy(buf, start + 4, end) });
    case PayloadType.NONCE:
      if (len < NONCE_MIN_BYTES || len > NONCE_MAX_BYTES) {
        return malformed(type, start, `nonce of ${len} bytes, must be ${NONCE_MIN_BYTES}..${NONCE_MAX_BYTES}`);
      }
      return ok({ kind: 'Nonce', data: copy(buf, start, end) });
    case PayloadType.N:
      return decodeNotifyBody(buf, start, end);
    case PayloadType.D: {
      if (len < 4) return short(4);
      const spiSize = buf[start + 1];
      const count = buf.readUInt16BE(start + 2);
      if (spiSize === 0 && count !== 0) return malformed(type, start + 2, `${count} SPIs of size 0`);
      if (len !== 4 + spiSize * count) {
        return malformed(
          type,
          start,
          `${count} SPIs of ${spiSize} bytes need ${4 + spiSize * count} bytes, body has ${len}`,
        );
      }
      const spis: Buffer[] = [];
      for (let i = 0, o = start + 4; i < count; i++, o += spiSize) spis.push(copy(buf, o, o + spiSize));
      return ok({ kind: 'D', protocolId: buf[start], spiSize, spis });
    }
    case PayloadType.V:
      return ok({ kind: 'V', data: copy(buf, start, end) });
    case PayloadType.TSi:
    case PayloadType.TSr: {
      const selectors = decodeTsBody(buf, start, end, type);
      return selectors.ok
        ? ok({ kind: type === PayloadType.TSi ? 'TSi' : 'TSr', selectors: selectors.value })
        : selectors;
    }
    case PayloadType.CP: {
      if (len < 4) return short(4);
      const attributes: CpAttribute[] = [];
      let o = start + 4;
      while (o < end) {
        if (end - o < 4) return malformed(type, o, `attribute needs 4 bytes, ${end - o} left`);
        const alen = buf.readUInt16BE(o + 2);
        if (alen > end - o - 4) return malformed(type, o + 2, `attribute length ${alen} exceeds the payload`);
        attributes.push({ type: buf.readUInt16BE(o) & 0x7fff, value: copy(buf, o + 4, o + 4 + alen) });
        o += 4 + alen;
      }
      return ok({ kind: 'CP', cfgType: buf[start], attributes });
    }
    case PayloadType.EAP:
      if (len < 4) return short(4);
      return ok({ kind: 'EAP', data: copy(buf, start, end) });
  }
  return malformed(type, start, 'no decoder for this payload type'); // unreachable: callers check KNOWN_TYPES
}

function withHead(head: Uint8Array, data: Uint8Array): Buffer {
  const out = Buffer.alloc(head.length + data.length);
  out.set(head, 0);
  out.set(data, head.length);
  return out;
}

/** The body (after the generic header) of a payload. Throws on programmer error. */
export function encodePayloadBody(p: Payload): Buffer {
  switch (p.kind) {
    case 'SA':
      return encodeSaBody(p.proposals);
    case 'KE': {
      const head = Buffer.alloc(4);
      head.writeUInt16BE(u16(p.group, 'KE group'), 0);
      return withHead(head, bytes(p.data, 'KE data'));
    }
    case 'IDi':
    case 'IDr':
      return withHead(Uint8Array.of(u8(p.idType, 'ID type'), 0, 0, 0), bytes(p.data, 'ID data'));
    case 'CERT':
    case 'CERTREQ':
      return withHead(Uint8Array.of(u8(p.encoding, 'certificate encoding')), bytes(p.data, `${p.kind} data`));
    case 'AUTH':
      return withHead(Uint8Array.of(u8(p.method, 'auth method'), 0, 0, 0), bytes(p.data, 'AUTH data'));
    case 'Nonce': {
      const n = bytes(p.data, 'nonce').length;
      if (n < NONCE_MIN_BYTES || n > NONCE_MAX_BYTES)
        invalid(`nonce of ${n} bytes, must be ${NONCE_MIN_BYTES}..${NONCE_MAX_BYTES}`);
      return Buffer.from(p.data);
    }
    case 'N':
      return encodeNotifyBody(p);
    case 'D': {
      const head = Buffer.alloc(4);
      head[0] = u8(p.protocolId, 'delete protocol ID');
      head[1] = u8(p.spiSize, 'delete SPI size');
      head.writeUInt16BE(u16(p.spis.length, 'number of SPIs'), 2);
      if (p.spiSize === 0 && p.spis.length) invalid('SPIs in a delete with SPI size 0');
      return Buffer.concat([head, ...p.spis.map((s, i) => bytes(s, `delete SPI ${i}`, p.spiSize))]);
    }
    case 'V':
      return Buffer.from(bytes(p.data, 'vendor ID'));
    case 'TSi':
    case 'TSr':
      return encodeTsBody(p.selectors);
    case 'CP': {
      const attrs = p.attributes.map((a) => {
        if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff)
          invalid(`CP attribute type ${a.type} is not 15 bits`);
        const head = Buffer.alloc(4);
        head.writeUInt16BE(a.type, 0);
        head.writeUInt16BE(u16(bytes(a.value, 'CP attribute value').length, 'CP attribute length'), 2);
        return withHead(head, a.value);
      });
      return Buffer.concat([Buffer.of(u8(p.cfgType, 'CFG type'), 0, 0, 0), ...attrs]);
    }
    case 'EAP':
      if (bytes(p.data, 'EAP data').length < 4) invalid('EAP data needs at least its 4-byte header');
      return Buffer.from(p.data);
    case 'unknown':
      if (
        KNOWN_TYPES.has(p.type) ||
        p.type === PayloadType.SK ||
        p.type === PayloadType.SKF ||
        p.type === PayloadType.NONE
      ) {
        invalid(`payload type ${p.type} cannot be sent as unknown`);
      }
      u8(p.type, 'payload type');
      return Buffer.from(bytes(p.data, 'payload data'));
  }
  return invalid(`unknown payload kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
}

// ---- chains ----

const GENERIC_HEADER = 4;
const CRITICAL = 0x80;
const MAX_BODY = 0xffff - GENERIC_HEADER;

/**
 * Encodes payloads as a chain whose last "next payload" is `after` (0, or SK/SKF when an
 * encrypted payload follows). Returns the chain and the type of its first payload.
 */
export function encodeChain(
  payloads: readonly Payload[],
  after = PayloadType.NONE as number,
): { firstPayload: number; bytes: Buffer } {
  const types = payloads.map(payloadTypeOf);
  const parts: Buffer[] = [];
  payloads.forEach((p, i) => {
    const body = encodePayloadBody(p);
    if (body.length > MAX_BODY) invalid(`${p.kind} payload body of ${body.length} bytes exceeds ${MAX_BODY}`);
    const head = Buffer.alloc(GENERIC_HEADER);
    head[0] = i + 1 < types.length ? types[i + 1] : u8(after, 'next payload');
    head[1] = p.kind === 'unknown' && p.critical ? CRITICAL : 0;
    head.writeUInt16BE(GENERIC_HEADER + body.length, 2);
    parts.push(head, body);
  });
  return { firstPayload: types.length ? types[0] : after, bytes: Buffer.concat(parts) };
}

/** Encodes a decrypted (inner) payload chain: the plaintext the SK payload protects, before padding. */
export function encodePayloadChain(payloads: readonly Payload[]): { firstPayload: number; bytes: Buffer } {
  return encodeChain(payloads);
}

export interface ChainOptions {
  /** Bound on the number of payloads (default MAX_PAYLOADS). */
  maxPayloads?: number;
}

/** Where a chain met an SK/SKF payload (only when decoding the outer message). */
export interface EncryptedStop {
  type: number;
  /** The SK/SKF payload's next-payload field: the first inner payload type. */
  nextPayload: number;
  /** Offset of the SK/SKF generic header. */
  offset: number;
}

/**
 * Walks a chain buf[start, end) starting with payload type `first`. With `outer`, an SK/SKF
 * payload ends the chain (it must then extend to `end`); otherwise it is malformed (§3.14: no
 * encrypted payload inside another).
 */
export function decodeChain(
  buf: Buffer,
  start: number,
  end: number,
  first: number,
  outer: boolean,
  opts: ChainOptions = {},
): IkeResult<{ payloads: Payload[]; encrypted?: EncryptedStop }> {
  const max = opts.maxPayloads ?? MAX_PAYLOADS;
  const payloads: Payload[] = [];
  let type = first;
  let o = start;
  let count = 0;
  let last: number = PayloadType.NONE;
  while (type !== PayloadType.NONE) {
    if (++count > max) return malformed(type, o, `more than ${max} payloads`);
    if (end - o < GENERIC_HEADER) return malformed(type, o, `payload header needs 4 bytes, ${end - o} left`);
    const next = buf[o];
    const critical = (buf[o + 1] & CRITICAL) !== 0;
    const len = buf.readUInt16BE(o + 2);
    if (len < GENERIC_HEADER) return malformed(type, o + 2, `payload length ${len} is below 4`);
    if (len > end - o) return malformed(type, o + 2, `payload length ${len} exceeds the ${end - o} bytes left`);
    if (type === PayloadType.SK || type === PayloadType.SKF) {
      if (!outer) return malformed(type, o, 'encrypted payload inside an encrypted payload');
      if (len !== end - o)
        return malformed(type, o + 2, `encrypted payload must be last: length ${len}, ${end - o} bytes left`);
      return ok({ payloads, encrypted: { type, nextPayload: next, offset: o } });
    }
    if (KNOWN_TYPES.has(type)) {
      const p = decodeBody(type, buf, o + GENERIC_HEADER, o + len);
      if (!p.ok) return p;
      payloads.push(p.value);
    } else {
      if (critical) return unsupportedCritical(type, o);
      payloads.push({ kind: 'unknown', type, critical, data: copy(buf, o + GENERIC_HEADER, o + len) });
    }
    o += len;
    last = type;
    type = next;
  }
  if (o !== end) return malformed(last, o, `${end - o} trailing bytes after the last payload`);
  return ok({ payloads });
}

/**
 * Decodes a decrypted inner payload chain (SK plaintext with padding removed, or a reassembled
 * fragmented message) given the SK/SKF payload's next-payload field. Offsets in errors are
 * relative to `plaintext`.
 */
export function decodePayloadChain(
  plaintext: Uint8Array,
  firstPayload: number,
  opts: ChainOptions = {},
): IkeResult<Payload[]> {
  const buf = Buffer.isBuffer(plaintext)
    ? plaintext
    : Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.length);
  const r = decodeChain(buf, 0, buf.length, firstPayload, false, opts);
  return r.ok ? ok(r.value.payloads) : r;
}

/** The ID payload body as AUTH signs it (RFC 7296 §2.15: RestOfInitIDPayload = type | 3 reserved | data). */
export function idPayloadBody(p: IdPayload): Buffer {
  return encodePayloadBody(p);
}

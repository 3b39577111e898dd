// Security Association payload body (RFC 7296 §3.3): proposals, transforms, attributes.
// The "last substructure" markers (0 last, 2 more proposals, 3 more transforms) follow from
// position, so they are checked on decode and derived on encode, never stored.
import { err, ok, type Result } from '../../base/result.js';
import {
  DhGroup,
  EncrId,
  EsnId,
  IntegId,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformAttr,
  TransformType,
} from './constants.js';
import { invalid, malformed, type IkeResult } from './errors.js';
import { bytes, copy, EMPTY, u16, u8 } from './wire.js';

/** A transform attribute: a number is TV format (AF=1, 16-bit value), a Buffer is TLV format. */
export interface TransformAttribute {
  type: number;
  value: number | Buffer;
}

export interface Transform {
  type: number;
  id: number;
  attributes: TransformAttribute[];
}

export interface Proposal {
  /** 1 for the first proposal and one more for each next; a reply echoes the chosen one's. */
  number: number;
  protocolId: number;
  /** Empty in IKE_SA_INIT; 8 bytes when rekeying an IKE SA; 4 bytes for ESP/AH. */
  spi: Buffer;
  transforms: Transform[];
}

const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;
const AF_TV = 0x8000;

// ---- decoding ----

/** Decodes the SA payload body buf[start, end); offsets in errors are absolute. */
export function decodeSaBody(buf: Buffer, start: number, end: number): IkeResult<Proposal[]> {
  const T = PayloadType.SA;
  const proposals: Proposal[] = [];
  let o = start;
  if (o === end) return malformed(T, o, 'no proposals');
  for (;;) {
    if (end - o < 8) return malformed(T, o, `proposal header needs 8 bytes, ${end - o} left`);
    const marker = buf[o];
    const len = buf.readUInt16BE(o + 2);
    const spiSize = buf[o + 6];
    const count = buf[o + 7];
    if (marker !== LAST && marker !== MORE_PROPOSALS)
      return malformed(T, o, `proposal marker ${marker} is neither 0 nor 2`);
    if (len < 8 + spiSize)
      return malformed(T, o + 2, `proposal length ${len} too short for header and ${spiSize}-byte SPI`);
    if (len > end - o) return malformed(T, o + 2, `proposal length ${len} exceeds the ${end - o} bytes left`);
    const pEnd = o + len;
    const spi = copy(buf, o + 8, o + 8 + spiSize);
    const transforms = decodeTransforms(buf, o + 8 + spiSize, pEnd, count);
    if (!transforms.ok) return transforms;
    proposals.push({ number: buf[o + 4], protocolId: buf[o + 5], spi, transforms: transforms.value });
    o = pEnd;
    if (marker === LAST) break;
    if (o === end) return malformed(T, o, 'proposal marked "more" but the SA ends');
  }
  if (o !== end) return malformed(T, o, `${end - o} bytes after the last proposal`);
  return ok(proposals);
}

function decodeTransforms(buf: Buffer, start: number, end: number, count: number): IkeResult<Transform[]> {
  const T = PayloadType.SA;
  const out: Transform[] = [];
  let o = start;
  for (let i = 0; i < count; i++) {
    if (end - o < 8)
      return malformed(T, o, `transform ${i + 1} of ${count} needs 8 bytes, ${end - o} left in the proposal`);
    const marker = buf[o];
    const len = buf.readUInt16BE(o + 2);
    const want = i === count - 1 ? LAST : MORE_TRANSFORMS;
    if (marker !== want)
      return malformed(T, o, `transform ${i + 1} of ${count} has marker ${marker}, expected ${want}`);
    if (len < 8) return malformed(T, o + 2, `transform length ${len} is below 8`);
    if (len > end - o)
      return malformed(T, o + 2, `transform length ${len} exceeds the ${end - o} bytes left in the proposal`);
    const attrs = decodeAttributes(buf, o + 8, o + len);
    if (!attrs.ok) return attrs;
    out.push({ type: buf[o + 4], id: buf.readUInt16BE(o + 6), attributes: attrs.value });
    o += len;
  }
  if (o !== end) return malformed(T, o, `${end - o} bytes after the last transform of the proposal`);
  return ok(out);
}

function decodeAttributes(buf: Buffer, start: number, end: number): IkeResult<TransformAttribute[]> {
  const out: TransformAttribute[] = [];
  let o = start;
  while (o < end) {
    if (end - o < 4) return malformed(PayloadType.SA, o, `attribute needs 4 bytes, ${end - o} left in the transform`);
    const word = buf.readUInt16BE(o);
    const type = word & 0x7fff;
    if (word & AF_TV) {
      out.push({ type, value: buf.readUInt16BE(o + 2) });
      o += 4;
    } else {
      const len = buf.readUInt16BE(o + 2);
      if (len > end - o - 4) return malformed(PayloadType.SA, o + 2, `attribute length ${len} exceeds the transform`);
      out.push({ type, value: copy(buf, o + 4, o + 4 + len) });
      o += 4 + len;
    }
  }
  return ok(out);
}

// ---- encoding ----

export function encodeSaBody(proposals: readonly Proposal[]): Buffer {
  if (proposals.length === 0) invalid('an SA payload needs at least one proposal');
  return Buffer.concat(proposals.map((p, i) => encodeProposal(p, i === proposals.length - 1)));
}

function encodeProposal(p: Proposal, last: boolean): Buffer {
  const spi = bytes(p.spi, 'proposal SPI');
  if (p.transforms.length > 255) invalid(`${p.transforms.length} transforms in one proposal, at most 255`);
  const transforms = p.transforms.map((t, i) => encodeTransform(t, i === p.transforms.length - 1));
  const head = Buffer.alloc(8 + spi.length);
  const len = head.length + transforms.reduce((n, t) => n + t.length, 0);
  head[0] = last ? LAST : MORE_PROPOSALS;
  head.writeUInt16BE(u16(len, 'proposal length'), 2);
  head[4] = u8(p.number, 'proposal number');
  head[5] = u8(p.protocolId, 'protocol ID');
  head[6] = u8(spi.length, 'SPI size');
  head[7] = transforms.length;
  head.set(spi, 8);
  return Buffer.concat([head, ...transforms]);
}

function encodeTransform(t: Transform, last: boolean): Buffer {
  const attrs = t.attributes.map(encodeAttribute);
  const head = Buffer.alloc(8);
  const len = 8 + attrs.reduce((n, a) => n + a.length, 0);
  head[0] = last ? LAST : MORE_TRANSFORMS;
  head.writeUInt16BE(u16(len, 'transform length'), 2);
  head[4] = u8(t.type, 'transform type');
  head.writeUInt16BE(u16(t.id, 'transform ID'), 6);
  return Buffer.concat([head, ...attrs]);
}

function encodeAttribute(a: TransformAttribute): Buffer {
  if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff) invalid(`attribute type ${a.type} is not 15 bits`);
  if (typeof a.value === 'number') {
    const out = Buffer.alloc(4);
    out.writeUInt16BE(AF_TV | a.type, 0);
    out.writeUInt16BE(u16(a.value, 'attribute value'), 2);
    return out;
  }
  const v = bytes(a.value, 'attribute value');
  const out = Buffer.alloc(4 + v.length);
  out.writeUInt16BE(a.type, 0);
  out.writeUInt16BE(u16(v.length, 'attribute length'), 2);
  out.set(v, 4);
  return out;
}

// ---- building ----

/** A transform, with the Key Length attribute when `keyLength` is given (AES needs it, §3.3.5). */
export function transform(type: number, id: number, keyLength?: number): Transform {
  return {
    type,
    id,
    attributes: keyLength === undefined ? [] : [{ type: TransformAttr.KEY_LENGTH, value: keyLength }],
  };
}

export function proposal(number: number, protocolId: number, transforms: Transform[], spi: Buffer = EMPTY): Proposal {
  return { number, protocolId, spi, transforms };
}

/** The Key Length attribute of a transform, if any. */
export function transformKeyLength(t: Transform): number | undefined {
  const a = t.attributes.find((x) => x.type === TransformAttr.KEY_LENGTH);
  return a && typeof a.value === 'number' ? a.value : undefined;
}

/** The transforms of one type in a proposal, in order. */
export function transformsOfType(p: Proposal, type: number): Transform[] {
  return p.transforms.filter((t) => t.type === type);
}

// Algorithm names as strongSwan writes them in its proposal strings, one transform each.
const TOKENS: Record<string, Transform> = {
  aes128: transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 128),
  aes192: transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 192),
  aes256: transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 256),
  aes128gcm8: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_8, 128),
  aes256gcm8: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_8, 256),
  aes128gcm12: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_12, 128),
  aes256gcm12: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_12, 256),
  aes128gcm16: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 128),
  aes192gcm16: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 192),
  aes256gcm16: transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 256),
  chacha20poly1305: transform(TransformType.ENCR, EncrId.ENCR_CHACHA20_POLY1305),
  sha1: transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA1_96),
  sha256: transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA2_256_128),
  sha384: transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA2_384_192),
  sha512: transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA2_512_256),
  prfsha1: transform(TransformType.PRF, PrfId.PRF_HMAC_SHA1),
  prfsha256: transform(TransformType.PRF, PrfId.PRF_HMAC_SHA2_256),
  prfsha384: transform(TransformType.PRF, PrfId.PRF_HMAC_SHA2_384),
  prfsha512: transform(TransformType.PRF, PrfId.PRF_HMAC_SHA2_512),
  modp2048: transform(TransformType.DH, DhGroup.MODP_2048),
  modp3072: transform(TransformType.DH, DhGroup.MODP_3072),
  modp4096: transform(TransformType.DH, DhGroup.MODP_4096),
  ecp256: transform(TransformType.DH, DhGroup.ECP_256),
  ecp384: transform(TransformType.DH, DhGroup.ECP_384),
  ecp521: transform(TransformType.DH, DhGroup.ECP_521),
  x25519: transform(TransformType.DH, DhGroup.CURVE25519),
  curve25519: transform(TransformType.DH, DhGroup.CURVE25519),
  x448: transform(TransformType.DH, DhGroup.CURVE448),
  esn: transform(TransformType.ESN, EsnId.ESN),
  noesn: transform(TransformType.ESN, EsnId.NO_ESN),
};

// strongSwan's rule for IKE proposals without a PRF: one PRF per integrity algorithm.
const PRF_FOR_INTEG: Record<number, number> = {
  [IntegId.AUTH_HMAC_SHA1_96]: PrfId.PRF_HMAC_SHA1,
  [IntegId.AUTH_HMAC_SHA2_256_128]: PrfId.PRF_HMAC_SHA2_256,
  [IntegId.AUTH_HMAC_SHA2_384_192]: PrfId.PRF_HMAC_SHA2_384,
  [IntegId.AUTH_HMAC_SHA2_512_256]: PrfId.PRF_HMAC_SHA2_512,
};

/**
 * A proposal from a strongSwan-style string such as "aes256gcm16-prfsha256-ecp256" (IKE) or
 * "aes256gcm16-noesn" (ESP). Each name is one transform; transforms come out ordered by type
 * (ENCR, PRF, INTEG, DH, ESN), names of one type in the order given. Two implied additions, as
 * strongSwan does: an IKE proposal without PRF gets the PRFs matching its integrity algorithms,
 * and an ESP/AH proposal without ESN gets NO_ESN.
 */
export function proposalFromString(
  text: string,
  protocolId: number,
  number = 1,
  spi: Buffer = EMPTY,
): Result<Proposal> {
  const names = text.trim().toLowerCase().split('-');
  const picked: Transform[] = [];
  for (const name of names) {
    const t = TOKENS[name];
    if (!t)
      return err('ike-bad-proposal', `unknown algorithm ${JSON.stringify(name)} in proposal ${JSON.stringify(text)}`);
    picked.push({ type: t.type, id: t.id, attributes: t.attributes.map((a) => ({ ...a })) });
  }
  const has = (type: number): boolean => picked.some((t) => t.type === type);
  if (!has(TransformType.ENCR))
    return err('ike-bad-proposal', `proposal ${JSON.stringify(text)} has no encryption algorithm`);
  if (protocolId === ProtocolId.IKE && !has(TransformType.PRF)) {
    for (const t of picked.filter((x) => x.type === TransformType.INTEG))
      picked.push(transform(TransformType.PRF, PRF_FOR_INTEG[t.id]));
    if (!has(TransformType.PRF)) return err('ike-bad-proposal', `IKE proposal ${JSON.stringify(text)} has no PRF`);
  }
  if (protocolId !== ProtocolId.IKE && !has(TransformType.ESN)) picked.push(transform(TransformType.ESN, EsnId.NO_ESN));
  picked.sort((a, b) => a.type - b.type); // stable: names of one type keep their order
  return ok(proposal(number, protocolId, picked, spi));
}

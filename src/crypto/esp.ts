// ESP (RFC 4303) with AES-256-GCM (RFC 4106) and 64-bit sequence numbers carried whole in the IV.
//
//   SPI (4) | seq low 32 (4) | IV (8) = full 64-bit seq, big-endian |
//   ciphertext of (payload | padding 1,2,3.. | pad length u8 | next header u8) | ICV (16)
//
//   nonce = salt (4) || IV (8)
//   AAD   = SPI || seq high 32 || seq low 32        (RFC 4106 section 5, extended sequence numbers)
//
// Using the sequence number as the IV is what RFC 4106 section 3.1 suggests; carrying all 64 bits
// lets a receiver that sees only a sparse subsequence of a group sender's packets recover the high
// half without inference. Sealing pads to the 4-byte alignment RFC 4303 requires (0..3 bytes);
// opening accepts any padding RFC 4303 allows (up to 255 bytes of 1, 2, 3, ...), like the native
// executor.
//
// This is the TypeScript reference executor's per-packet path: node:crypto cannot re-IV a GCM
// cipher, so each packet creates one. The native addon is the fast path (dataplane.md).

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { rd32, wr32 } from '../base/bytes.js';
import { err, ok, type Result, type WireError } from '../base/result.js';

export const ESP_HEADER_LENGTH = 16;
export const ESP_ICV_LENGTH = 16;
/** Header + the smallest ciphertext (empty payload: 2 padding bytes, pad length, next header) + ICV. */
export const ESP_MIN_LENGTH = ESP_HEADER_LENGTH + 4 + ESP_ICV_LENGTH;
/** Header (16) + ICV (16) + pad length and next header (2) + at most 3 bytes of padding. */
export const ESP_OVERHEAD_MAX = 37;

const SEQ_MAX = (1n << 64n) - 1n;
const U32 = 0x100000000;

export interface EspSealSa {
  spi: number;
  key: Uint8Array;
  salt: Uint8Array;
}

export interface EspOpenSa {
  key: Uint8Array;
  salt: Uint8Array;
}

export interface EspHeader {
  spi: number;
  seq: bigint;
}

export interface EspOpened extends EspHeader {
  nextHeader: number;
  payload: Uint8Array;
}

/** Padding bytes that make payload + padding + 2 a multiple of 4. */
function padLength(payloadLength: number): number {
  return (4 - ((payloadLength + 2) % 4)) % 4;
}

/** Exact growth of an IP payload of `payloadLength` bytes when sealed: 34..37. */
export function espOverhead(payloadLength: number): number {
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0)
    throw new TypeError(`espOverhead: bad length ${payloadLength}`);
  return ESP_HEADER_LENGTH + padLength(payloadLength) + 2 + ESP_ICV_LENGTH;
}

function be64(seq: bigint): Uint8Array {
  const b = new Uint8Array(8);
  wr32(b, 0, Number(seq >> 32n));
  wr32(b, 4, Number(seq & 0xffffffffn));
  return b;
}

function nonceOf(salt: Uint8Array, iv: Uint8Array): Uint8Array {
  const n = new Uint8Array(12);
  n.set(salt, 0);
  n.set(iv, 4);
  return n;
}

function checkSealSa(sa: EspSealSa): void {
  if (!Number.isInteger(sa.spi) || sa.spi < 0 || sa.spi >= U32)
    throw new TypeError(`esp: SPI must be a u32, got ${sa.spi}`);
  if (!(sa.key instanceof Uint8Array) || sa.key.length !== 32) throw new TypeError('esp: key must be 32 bytes');
  if (!(sa.salt instanceof Uint8Array) || sa.salt.length !== 4) throw new TypeError('esp: salt must be 4 bytes');
}

function checkSealArgs(seq: bigint, nextHeader: number, payload: Uint8Array): void {
  if (typeof seq !== 'bigint' || seq < 1n || seq > SEQ_MAX)
    throw new TypeError(`esp: sequence number must be in 1..2^64-1, got ${String(seq)}`);
  if (!Number.isInteger(nextHeader) || nextHeader < 0 || nextHeader > 255)
    throw new TypeError(`esp: bad next header ${nextHeader}`);
  if (!(payload instanceof Uint8Array)) throw new TypeError('esp: payload must be bytes');
}

/** The shared sealing step; header fields, IV and AAD are the caller's. */
function sealCore(
  sa: EspSealSa,
  seqLow: number,
  iv: Uint8Array,
  aad: Uint8Array,
  nextHeader: number,
  payload: Uint8Array,
): Uint8Array {
  const pad = padLength(payload.length);
  const ctLength = payload.length + pad + 2;
  const out = new Uint8Array(ESP_HEADER_LENGTH + ctLength + ESP_ICV_LENGTH);
  wr32(out, 0, sa.spi);
  wr32(out, 4, seqLow);
  out.set(iv, 8);
  const trailer = new Uint8Array(pad + 2);
  for (let i = 0; i < pad; i++) trailer[i] = i + 1;
  trailer[pad] = pad;
  trailer[pad + 1] = nextHeader;

  const c = createCipheriv('aes-256-gcm', sa.key, nonceOf(sa.salt, iv), { authTagLength: ESP_ICV_LENGTH });
  c.setAAD(aad);
  let pos = ESP_HEADER_LENGTH;
  for (const part of [c.update(payload), c.update(trailer), c.final()]) {
    out.set(part, pos);
    pos += part.length;
  }
  out.set(c.getAuthTag(), pos);
  return out;
}

/** Seals `payload` (an IP payload whose protocol was `nextHeader`) as one ESP packet with sequence number `seq`. */
export function espSeal(sa: EspSealSa, seq: bigint, nextHeader: number, payload: Uint8Array): Uint8Array {
  checkSealSa(sa);
  checkSealArgs(seq, nextHeader, payload);
  const iv = be64(seq);
  const aad = new Uint8Array(12);
  wr32(aad, 0, sa.spi);
  aad.set(iv, 4); // seq high || seq low is the IV itself
  return sealCore(sa, Number(seq & 0xffffffffn), iv, aad, nextHeader, payload);
}

export type EspAadForm = 'esn' | 'seq32';

/**
 * For known-answer tests only (never the data path: an IV that is not the sequence number breaks
 * the nonce argument of kdf.ts). Seals with an arbitrary 8-byte IV; the header carries the low 32
 * bits of `seq`; AAD is SPI || seq high || seq low ('esn') or SPI || seq ('seq32', seq < 2^32).
 */
export function espSealWithIv(
  sa: EspSealSa,
  seq: bigint,
  iv: Uint8Array,
  nextHeader: number,
  payload: Uint8Array,
  aadForm: EspAadForm = 'esn',
): Uint8Array {
  checkSealSa(sa);
  checkSealArgs(seq, nextHeader, payload);
  if (!(iv instanceof Uint8Array) || iv.length !== 8) throw new TypeError('esp: IV must be 8 bytes');
  if (aadForm === 'seq32' && seq >= 1n << 32n) throw new TypeError('esp: seq32 AAD needs a 32-bit sequence number');
  const aad = new Uint8Array(aadForm === 'esn' ? 12 : 8);
  wr32(aad, 0, sa.spi);
  if (aadForm === 'esn') aad.set(be64(seq), 4);
  else wr32(aad, 4, Number(seq));
  return sealCore(sa, Number(seq & 0xffffffffn), iv, aad, nextHeader, payload);
}

function lengthError(esp: Uint8Array): { ok: false; error: WireError } | undefined {
  if (!(esp instanceof Uint8Array)) return err('truncated', 'ESP packet is not bytes');
  if (esp.length < ESP_MIN_LENGTH)
    return err('truncated', `ESP packet of ${esp.length} bytes, at least ${ESP_MIN_LENGTH} needed`);
  if ((esp.length - ESP_HEADER_LENGTH - ESP_ICV_LENGTH) % 4 !== 0)
    return err('misaligned', 'ESP ciphertext is not a multiple of 4 bytes');
  return undefined;
}

/**
 * Header checks that need no key: length (at least ESP_MIN_LENGTH = 36 bytes, ciphertext a
 * multiple of 4: 'truncated' / 'misaligned'), sequence number not 0 ('invalid-seq'), the IV's low
 * 32 bits equal to the header's sequence number ('seq-mismatch'). Never throws.
 */
export function espPeek(esp: Uint8Array): Result<EspHeader> {
  const bad = lengthError(esp);
  if (bad) return bad;
  const high = rd32(esp, 8);
  const low = rd32(esp, 12);
  if (high === 0 && low === 0) return err('invalid-seq', 'ESP sequence number 0');
  if (low !== rd32(esp, 4)) return err('seq-mismatch', 'ESP IV does not carry the header sequence number');
  return ok({ spi: rd32(esp, 0), seq: (BigInt(high) << 32n) | BigInt(low) });
}

function checkOpenSa(sa: EspOpenSa): boolean {
  return (
    !!sa &&
    sa.key instanceof Uint8Array &&
    sa.key.length === 32 &&
    sa.salt instanceof Uint8Array &&
    sa.salt.length === 4
  );
}

/** The shared opening step for a packet whose length lengthError() accepted. */
function openCore(
  sa: EspOpenSa,
  esp: Uint8Array,
  aad: Uint8Array,
): Result<{ nextHeader: number; payload: Uint8Array }> {
  const ctEnd = esp.length - ESP_ICV_LENGTH;
  let pt: Uint8Array;
  try {
    const d = createDecipheriv('aes-256-gcm', sa.key, nonceOf(sa.salt, esp.subarray(8, 16)), {
      authTagLength: ESP_ICV_LENGTH,
    });
    d.setAAD(aad);
    d.setAuthTag(esp.subarray(ctEnd));
    pt = d.update(esp.subarray(ESP_HEADER_LENGTH, ctEnd));
    d.final(); // throws unless the ICV verifies; nothing of pt is used before this
  } catch {
    return err('auth-failed', 'ESP ICV does not verify');
  }
  const ctLength = pt.length;
  const pad = pt[ctLength - 2];
  if (pad + 2 > ctLength) return err('bad-pad-length', `ESP pad length ${pad} exceeds the ${ctLength}-byte ciphertext`);
  const start = ctLength - 2 - pad;
  for (let i = 0; i < pad; i++) {
    if (pt[start + i] !== i + 1) return err('bad-padding', 'ESP padding is not 1, 2, 3, ...');
  }
  return ok({ nextHeader: pt[ctLength - 1], payload: new Uint8Array(pt.buffer, pt.byteOffset, start) });
}

/**
 * Verifies and decrypts one ESP packet. Failures: the espPeek codes, 'invalid-sa' (malformed key
 * or salt), 'auth-failed', 'bad-pad-length', 'bad-padding'. Never throws.
 */
export function espOpen(sa: EspOpenSa, esp: Uint8Array): Result<EspOpened> {
  const head = espPeek(esp);
  if (!head.ok) return head;
  if (!checkOpenSa(sa)) return err('invalid-sa', 'ESP SA key must be 32 bytes and salt 4 bytes');
  const aad = new Uint8Array(12);
  aad.set(esp.subarray(0, 4), 0);
  aad.set(esp.subarray(8, 16), 4); // seq high || seq low, from the IV
  const body = openCore(sa, esp, aad);
  if (!body.ok) return body;
  return ok({
    spi: head.value.spi,
    seq: head.value.seq,
    nextHeader: body.value.nextHeader,
    payload: body.value.payload,
  });
}

/**
 * For known-answer tests only: opens a packet whose IV is not its sequence number. AAD is
 * SPI || seqHigh || header seq when `seqHigh` is given (ESN), else SPI || header seq. Never throws.
 */
export function espOpenWithIv(
  sa: EspOpenSa,
  esp: Uint8Array,
  seqHigh?: number,
): Result<{ spi: number; seqLow: number; iv: Uint8Array; nextHeader: number; payload: Uint8Array }> {
  const bad = lengthError(esp);
  if (bad) return bad;
  if (!checkOpenSa(sa)) return err('invalid-sa', 'ESP SA key must be 32 bytes and salt 4 bytes');
  if (seqHigh !== undefined && (!Number.isInteger(seqHigh) || seqHigh < 0 || seqHigh >= U32))
    return err('invalid-seq', 'bad seqHigh');
  const aad = new Uint8Array(seqHigh === undefined ? 8 : 12);
  aad.set(esp.subarray(0, 4), 0);
  if (seqHigh !== undefined) wr32(aad, 4, seqHigh);
  aad.set(esp.subarray(4, 8), aad.length - 4);
  const body = openCore(sa, esp, aad);
  if (!body.ok) return body;
  return ok({ spi: rd32(esp, 0), seqLow: rd32(esp, 4), iv: esp.slice(8, 16), ...body.value });
}

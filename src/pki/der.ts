// A strict DER walker for bytes that come from someone else (a peer's permit, an IKE ID, a CSR, a
// certificate from a peer authority) before any ASN.1 library sees them, and a byte-level
// comparison of distinguished names that needs no library at all.
//
// Why a walker of our own in front of asn1js: the library's decoding time is not bounded by the
// input in a way we can live with. A long BOOLEAN is decoded in quadratic time (64 KB: ~1 s of
// CPU), and every element costs microseconds, so a few kilobytes of tiny elements cost tens of
// milliseconds. checkDer() is linear, allocates nothing per element, and refuses what DER never
// contains (indefinite lengths, constructed strings, a BOOLEAN of more than one
// octet, unknown universal types) and anything over the caller's byte, element and depth bounds.
// src/pki/x509.ts also makes the library itself refuse long BOOLEANs, wherever they come from.
import { err, ok, type Result } from '../base/result.js';

export interface DerLimits {
  /** Largest input accepted. */
  maxBytes: number;
  /** Most TLV elements in the whole input (primitive contents are not looked into). */
  maxElements: number;
  /** Deepest nesting of constructed elements. */
  maxDepth: number;
}

/** Bounds for a certificate or an attribute certificate (ours have about 60 elements and depth 8). */
export const CERTIFICATE_LIMITS: DerLimits = { maxBytes: 16 * 1024, maxElements: 512, maxDepth: 16 };
/**
 * Bounds for a permit. Those a gateway verifies come from its own authority, which puts one group
 * in each (about 50 elements): 128 leaves room and keeps an authenticated peer's crafted permit to
 * a few milliseconds (the library spends some 30 µs per element here).
 */
export const PERMIT_LIMITS: DerLimits = { maxBytes: 16 * 1024, maxElements: 128, maxDepth: 16 };
/** Bounds for a distinguished name (an IKE ID of type ID_DER_ASN1_DN). */
export const NAME_LIMITS: DerLimits = { maxBytes: 2048, maxElements: 128, maxDepth: 6 };

/** Universal tag numbers DER may carry here, and whether each must be primitive. */
const UNIVERSAL: Record<number, 'primitive' | 'constructed'> = {
  1: 'primitive', // BOOLEAN
  2: 'primitive', // INTEGER
  3: 'primitive', // BIT STRING
  4: 'primitive', // OCTET STRING
  5: 'primitive', // NULL
  6: 'primitive', // OBJECT IDENTIFIER
  10: 'primitive', // ENUMERATED
  12: 'primitive', // UTF8String
  16: 'constructed', // SEQUENCE
  17: 'constructed', // SET
  18: 'primitive', // NumericString
  19: 'primitive', // PrintableString
  20: 'primitive', // TeletexString
  21: 'primitive', // VideotexString
  22: 'primitive', // IA5String
  23: 'primitive', // UTCTime
  24: 'primitive', // GeneralizedTime
  25: 'primitive', // GraphicString
  26: 'primitive', // VisibleString
  27: 'primitive', // GeneralString
  28: 'primitive', // UniversalString
  30: 'primitive', // BMPString
};

/** Longest OBJECT IDENTIFIER, INTEGER and time contents accepted (RSA moduli live inside BIT STRINGs). */
const MAX_OID = 64;
const MAX_INTEGER = 1024;
const MAX_TIME = 32;

/** One element: its identifier octet, where its contents are, and where it ends. */
export interface Tlv {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  tag: number;
  /** First content octet. */
  start: number;
  /** One past the last content octet. */
  end: number;
}

/**
 * Reads one TLV header at `at` (low tag numbers, definite lengths of at most 3 octets) that must
 * end by `limit`. Undefined when it is not one. Non-minimal length octets cost nothing to read and
 * are left to the caller's own canonical-DER check (a permit is re-encoded and compared).
 */
export function readTlv(b: Uint8Array, at: number, limit = b.length): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = b[at];
  if ((tag & 0x1f) === 0x1f) return undefined; // high tag numbers: never used in what we read
  let len = b[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) return undefined; // indefinite or huge
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i];
    start += n;
  }
  if (start + len > limit) return undefined;
  return { tag, start, end: start + len };
}

/** The elements directly inside a constructed element (or undefined when its contents are not a run of TLVs). */
export function childrenOf(b: Uint8Array, parent: Tlv): Tlv[] | undefined {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const t = readTlv(b, at, parent.end);
    if (!t) return undefined;
    out.push(t);
    at = t.end;
  }
  return out;
}

/**
 * Checks that `b` is exactly one DER element within `limits`, in linear time. The error says
 * what was wrong and where; nothing is decoded.
 */
export function checkDer(b: Uint8Array, limits: DerLimits): Result<void> {
  if (b.length > limits.maxBytes)
    return err('der-too-large', `${b.length} bytes of DER; at most ${limits.maxBytes} are accepted`);
  const top = readTlv(b, 0);
  if (!top) return err('der-not-an-element', 'not a DER element (bad tag or length at offset 0)');
  if (top.end !== b.length) return err('der-trailing-bytes', `${b.length - top.end} bytes follow the DER element`);
  let elements = 0;
  // An explicit stack of the constructed elements being walked: [next offset, end] pairs.
  const stack: [number, number][] = [];
  let at = 0;
  let end = b.length;
  for (;;) {
    if (at === end) {
      const up = stack.pop();
      if (!up) return ok(undefined);
      [at, end] = up;
      continue;
    }
    const t = readTlv(b, at, end);
    if (!t) return err('der-malformed', `bad tag or length at offset ${at}`);
    if (++elements > limits.maxElements)
      return err('der-too-many-elements', `more than ${limits.maxElements} ASN.1 elements`);
    const bad = checkElement(b, t);
    if (bad) return err('der-malformed', `${bad} at offset ${at}`);
    if (t.tag & 0x20) {
      if (stack.length + 1 >= limits.maxDepth)
        return err('der-too-deep', `ASN.1 nested deeper than ${limits.maxDepth}`);
      stack.push([t.end, end]);
      at = t.start;
      end = t.end;
    } else {
      at = t.end;
    }
  }
}

/** What is wrong with one element by the rules of its universal type, or undefined. */
function checkElement(b: Uint8Array, t: Tlv): string | undefined {
  if ((t.tag & 0xc0) !== 0) return undefined; // context, application, private: the schema decides
  const number = t.tag & 0x1f;
  const form = UNIVERSAL[number];
  const constructed = (t.tag & 0x20) !== 0;
  const len = t.end - t.start;
  if (!form) return `universal type ${number} is not accepted`;
  if ((form === 'constructed') !== constructed) return `universal type ${number} must be ${form} in DER`;
  switch (number) {
    case 1:
      return len === 1 && (b[t.start] === 0 || b[t.start] === 0xff) ? undefined : 'a BOOLEAN is one octet, 00 or FF';
    case 2:
    case 10:
      if (len === 0 || len > MAX_INTEGER) return `an INTEGER of ${len} octets`;
      if (len > 1 && ((b[t.start] === 0 && !(b[t.start + 1] & 0x80)) || (b[t.start] === 0xff && b[t.start + 1] & 0x80)))
        return 'an INTEGER that is not minimal';
      return undefined;
    case 3:
      return len >= 1 && b[t.start] <= 7 && (len > 1 || b[t.start] === 0) ? undefined : 'a malformed BIT STRING';
    case 5:
      return len === 0 ? undefined : 'a NULL with contents';
    case 6:
      if (len === 0 || len > MAX_OID) return `an OBJECT IDENTIFIER of ${len} octets`;
      return b[t.end - 1] & 0x80 ? 'an OBJECT IDENTIFIER with a cut sub-identifier' : undefined;
    case 23:
    case 24:
      return len > MAX_TIME ? `a time of ${len} octets` : undefined;
  }
  return undefined;
}

// --- distinguished names ---------------------------------------------------------------------

/**
 * Whether two DER distinguished names are the same name: byte-equal, or with the same attribute
 * types in the same order whose string values are the same text in different string types (a
 * peer that encodes a configured ID with its own choice of PrintableString or UTF8String).
 * Bounded and linear; never throws; false for anything that is not a name.
 */
export function sameName(a: Uint8Array, b: Uint8Array): boolean {
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)))
    return true;
  const x = nameAttributes(a);
  const y = nameAttributes(b);
  if (!x || !y || x.length !== y.length) return false;
  return x.every((v, i) => v === y[i]);
}

/** The attributes of a Name as "rdn#type=text" strings, in order; undefined when it is not a well-formed Name. */
function nameAttributes(d: Uint8Array): string[] | undefined {
  if (!checkDer(d, NAME_LIMITS).ok) return undefined;
  const seq = readTlv(d, 0)!;
  if (seq.tag !== 0x30) return undefined;
  const rdns = childrenOf(d, seq);
  if (!rdns) return undefined;
  const out: string[] = [];
  for (let i = 0; i < rdns.length; i++) {
    if (rdns[i].tag !== 0x31) return undefined;
    const atvs = childrenOf(d, rdns[i]);
    if (!atvs || atvs.length === 0) return undefined;
    const texts: string[] = [];
    for (const atv of atvs) {
      const parts = atv.tag === 0x30 ? childrenOf(d, atv) : undefined;
      if (!parts || parts.length !== 2 || parts[0].tag !== 0x06) return undefined;
      const text = stringValue(d, parts[1]);
      if (text === undefined) return undefined;
      texts.push(`${Buffer.from(d.subarray(parts[0].start, parts[0].end)).toString('hex')}=${text}`);
    }
    // A multi-valued RDN is a set: its order carries no meaning.
    out.push(`${i}#${texts.sort().join('+')}`);
  }
  return out;
}

/** The text of a directory string value; other types compare by their encoding. */
function stringValue(d: Uint8Array, t: Tlv): string | undefined {
  const body = Buffer.from(d.subarray(t.start, t.end));
  switch (t.tag) {
    case 0x0c: // UTF8String
      return `s:${body.toString('utf8')}`;
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString (ASCII in practice)
    case 0x1a: // VisibleString
      return `s:${body.toString('latin1')}`;
    case 0x1e: // BMPString: UTF-16BE
      if (body.length % 2) return undefined;
      return `s:${Buffer.from(body).swap16().toString('utf16le')}`;
    case 0x1c: {
      // UniversalString: UTF-32BE
      if (body.length % 4) return undefined;
      let s = '';
      for (let i = 0; i < body.length; i += 4) {
        const cp = body.readUInt32BE(i);
        if (cp > 0x10ffff) return undefined;
        s += String.fromCodePoint(cp);
      }
      return `s:${s}`;
    }
    default:
      return `x:${t.tag.toString(16)}:${body.toString('hex')}`;
  }
}

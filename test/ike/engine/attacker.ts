// An IKE peer that follows the protocol only as far as it must: it runs IKE_SA_INIT with a
// responder (echoing cookies when asked), so that its later messages decrypt, and then sends
// whatever it likes. Used by the flood and hostile-input tests and by bench/ike-hostile.ts.
import { randomBytes } from 'node:crypto';
import type { IkeEngine } from '../../../src/ike/engine/engine.js';
import { IkeSa } from '../../../src/ike/engine/ike-sa.js';
import { buildInitRequest, processInitResponse } from '../../../src/ike/engine/tasks/ike-init.js';
import {
  decodeMessage,
  encodeEncryptedPrefix,
  encodeMessage,
  ExchangeType,
  type Payload,
} from '../../../src/ike/message/index.js';
import { skBodyLength, skSeal, type SkIvCounter } from '../../../src/ike/crypto/aead.js';
import type { AeadKey } from '../../../src/ike/crypto/keys.js';
import type { Endpoint, IkeOutput } from '../../../src/ike/engine/types.js';

const random = (n: number) => new Uint8Array(randomBytes(n));

export interface Attacker {
  sa: IkeSa;
  /** Where its messages come from after IKE_SA_INIT (port 4500). */
  from: Endpoint;
}

export type InitOutcome =
  { kind: 'admitted'; attacker: Attacker } | { kind: 'cookie' } | { kind: 'silence'; events: IkeOutput['events'] };

/**
 * Runs IKE_SA_INIT from `address` against `victim` (at `victimAt`); with `echoCookies` a COOKIE
 * answer is followed by the same request with the cookie, as RFC 7296 §2.6 has an initiator do.
 */
export function initAgainst(
  victim: IkeEngine,
  victimAt: Endpoint,
  address: string,
  now: number,
  echoCookies = true,
): InitOutcome {
  const from = { address, port: 500 };
  const sa = new IkeSa('initiator', Buffer.from(random(8)), { ...victimAt }, now, 500);
  let req = buildInitRequest(sa, { endpoint: from, random });
  for (let round = 0; round < 2; round++) {
    const o = victim.receive(from, req, now, 500);
    const resp = o.send[0]?.bytes;
    if (!resp) return { kind: 'silence', events: o.events };
    const d = decodeMessage(resp);
    if (!d.ok) throw new Error(d.error.message);
    const r = processInitResponse(sa, resp, d.value.message.header.spiR, d.value.message.payloads, from);
    if (r.kind === 'cookie') {
      if (!echoCookies) return { kind: 'cookie' };
      sa.cookie = r.cookie;
      req = buildInitRequest(sa, { endpoint: from, random }, sa.dh?.group.id);
      continue;
    }
    if (r.kind !== 'done') throw new Error(`IKE_SA_INIT: ${JSON.stringify(r)}`);
    sa.localPort = 4500;
    sa.remote = { address: victimAt.address, port: 4500 };
    return { kind: 'admitted', attacker: { sa, from: { address, port: 4500 } } };
  }
  return { kind: 'cookie' };
}

/** initAgainst that must be admitted. */
export function handshake(victim: IkeEngine, victimAt: Endpoint, address: string, now: number): Attacker {
  const r = initAgainst(victim, victimAt, address, now);
  if (r.kind !== 'admitted') throw new Error(`IKE_SA_INIT from ${address} was not admitted: ${JSON.stringify(r)}`);
  return r.attacker;
}

/**
 * The datagrams of a request (message id 1 unless told) with these inner payloads, fragmented to fit `fragmentSize`.
 */
export function request(a: Attacker, exchange: number, inner: Payload[], fragmentSize = 1280, messageId = 1): Buffer[] {
  return a.sa.protect(exchange, false, messageId, inner, fragmentSize);
}

/**
 * One SKF fragment n/total of an IKE_AUTH request carrying `chunk`, sealed with the attacker's own SA keys (no size
 * limits: an attacker has none).
 */
export function sealFragment(sa: IkeSa, n: number, total: number, chunk: Buffer, messageId = 1): Buffer {
  const own = sa as unknown as { sk: { seal: AeadKey }; iv: SkIvCounter };
  const header = sa.header(ExchangeType.IKE_AUTH, false, messageId);
  const encrypted = { kind: 'SKF' as const, firstPayload: n === 1 ? 43 : 0, fragmentNumber: n, totalFragments: total };
  const ad = encodeEncryptedPrefix({ header, encrypted }, skBodyLength(own.sk.seal.encr, chunk.length));
  return encodeMessage({
    header,
    payloads: [],
    encrypted: { ...encrypted, body: skSeal(own.sk.seal, own.iv.next(), ad, chunk) },
  });
}

// --- DER the attacker makes -------------------------------------------------------------------

/** DER TLV: tag, definite length, contents. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const len =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

/**
 * A Name (SEQUENCE OF RDN) whose one attribute value is a BOOLEAN of `bytes` octets (asn1js decoded that in quadratic
 * time).
 */
export function booleanBombName(bytes: number): Buffer {
  const value = tlv(0x01, Buffer.alloc(bytes, 0xff));
  return tlv(0x30, tlv(0x31, tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from([0x55, 0x04, 0x03])), value]))));
}

function readTlv(b: Buffer): { tag: number; content: Buffer; size: number } {
  let len = b[1];
  let off = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i];
    off = 2 + n;
  }
  return { tag: b[0], content: b.subarray(off, off + len), size: off + len };
}

/** The elements directly inside a constructed DER element. */
export function derChildren(node: Buffer): Buffer[] {
  const content = readTlv(node).content;
  const out: Buffer[] = [];
  for (let o = 0; o < content.length;) {
    const t = readTlv(content.subarray(o));
    out.push(content.subarray(o, o + t.size));
    o += t.size;
  }
  return out;
}

/** Re-encodes `der` with the children of the element at `path` (child indexes) replaced by `edit`'s. */
export function rewriteDer(der: Uint8Array, path: number[], edit: (children: Buffer[]) => Buffer[]): Buffer {
  const node = Buffer.from(der);
  const kids = derChildren(node);
  if (path.length === 0) return tlv(node[0], Buffer.concat(edit(kids)));
  kids[path[0]] = rewriteDer(kids[path[0]], path.slice(1), edit);
  return tlv(node[0], Buffer.concat(kids));
}

/**
 * A permit whose last extension carries a critical flag that is a BOOLEAN of `bytes` octets (not signed again: parsing
 * comes first).
 */
export function booleanBombPermit(permit: Uint8Array, bytes: number): Buffer {
  // AttributeCertificate > acinfo (0) > extensions (its last child) > the last Extension: OID, [critical], OCTET
  // STRING.
  const acinfo = derChildren(Buffer.from(permit))[0];
  return rewriteDer(permit, [0, derChildren(acinfo).length - 1], (exts) => [
    ...exts.slice(0, -1),
    rewriteDer(exts[exts.length - 1], [], (parts) => [
      parts[0],
      tlv(0x01, Buffer.alloc(bytes, 0xff)),
      ...parts.slice(1),
    ]),
  ]);
}

/** A request whose SK payload carries exactly these plaintext bytes as its inner chain (well-formed or not). */
export function sealChain(
  sa: IkeSa,
  exchange: number,
  messageId: number,
  firstPayload: number,
  chain: Uint8Array,
): Buffer {
  const own = sa as unknown as { sk: { seal: AeadKey }; iv: SkIvCounter };
  const header = sa.header(exchange, false, messageId);
  const encrypted = { kind: 'SK' as const, firstPayload };
  const ad = encodeEncryptedPrefix({ header, encrypted }, skBodyLength(own.sk.seal.encr, chain.length));
  return encodeMessage({
    header,
    payloads: [],
    encrypted: { ...encrypted, body: skSeal(own.sk.seal, own.iv.next(), ad, chain) },
  });
}

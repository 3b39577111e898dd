// What the hostile end-to-end tests (hostile.test.ts over IPv4, hostile-ipv6.test.ts) forge: key-search
// replies raced against a genuine search, and ESP with made-up content.
import { randomBytes } from 'node:crypto';
import type { SearchEntry, SearchMessage } from '../../src/core/packet/search-message.js';

/** Polls `get` every 100 ms until it gives a value (not undefined or false). */
export async function until<T>(get: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * Five forged replies to the destination search `m` (whose last entry is the searching gateway's):
 * a peer's claim with made-up proofs, another gateway's, an unknown gateway's, the searcher's own
 * entry tampered with, and a transaction nobody started.
 */
export function forgedReplies(m: SearchMessage, peerAddress: string): SearchMessage[] {
  const mine = m.entries.at(-1);
  if (!mine) throw new Error('the search carries no entry');
  const forged = (gateway: string): SearchEntry => ({
    side: 'dst',
    gateway,
    address: peerAddress,
    vpns: mine.vpns.map((v) => ({ ...v, proof: randomBytes(16) })),
  });
  return [
    { ...m, entries: [...m.entries, forged('G1')] },
    { ...m, entries: [...m.entries, forged('G3')] },
    { ...m, entries: [...m.entries, forged('MALLORY')] },
    { ...m, entries: [{ ...mine, vpns: [] }, forged('G1')] },
    { ...m, txid: randomBytes(8), entries: [...m.entries, forged('G1')] },
  ];
}

/** A UDP header 4500 -> 4500 in front of `body` (ESP in UDP; the checksum left 0). */
export function inUdp(body: Uint8Array): Buffer {
  const u = Buffer.alloc(8 + body.length);
  u.writeUInt16BE(4500, 0);
  u.writeUInt16BE(4500, 2);
  u.writeUInt16BE(u.length, 4);
  Buffer.from(body).copy(u, 8);
  return u;
}

/** Well-formed ESP in kasane's framing (RFC 4303 with the 64-bit sequence number as the IV), made-up content. */
export function espLike(spi: number, seq: bigint, ctLength: number): Buffer {
  const b = Buffer.alloc(16 + ctLength + 16);
  b.writeUInt32BE(spi, 0);
  b.writeUInt32BE(Number(seq & 0xffffffffn), 4);
  b.writeBigUInt64BE(seq, 8);
  randomBytes(ctLength + 16).copy(b, 16);
  return b;
}

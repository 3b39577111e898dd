// IKE fragmentation (RFC 7383): an encrypted message too large for one datagram (IKE_AUTH with a
// certificate and a permit is ~1.4 KB) is sent as SKF fragments, each sealed on its own under the
// SA's key, and reassembled by the receiver only from fragments that authenticate. Used only when
// both peers announced FRAGMENTATION_SUPPORTED in IKE_SA_INIT.
import { err, ok, type Result } from '../../base/result.js';
import { encodeEncryptedPrefix, encodeMessage, type IkeHeader } from '../message/index.js';
import { skBodyLength, skOpen, skSeal, type SkIvCounter } from '../crypto/aead.js';
import type { AeadKey } from '../crypto/keys.js';

const IKE_HEADER = 28;
const SKF_HEADER = 8;
/** More fragments than this for one message is refused (a certificate chain is never that big). */
export const MAX_FRAGMENTS = 32;

/** The largest IKE message that fits a datagram of `fragmentSize` bytes (strongSwan's meaning: whole IP packet). */
export function maxMessageBytes(fragmentSize: number, ipv6: boolean, nonEspMarker: boolean): number {
  return fragmentSize - (ipv6 ? 40 : 20) - 8 - (nonEspMarker ? 4 : 0);
}

/** Seals `inner` (an encoded payload chain) into SKF messages of at most `maxBytes` each. */
export function sealFragments(
  header: IkeHeader,
  firstPayload: number,
  inner: Buffer,
  seal: AeadKey,
  iv: SkIvCounter,
  maxBytes: number,
): Buffer[] {
  const room = maxBytes - IKE_HEADER - SKF_HEADER - skBodyLength(seal.encr, 0);
  if (room < 64) throw new RangeError(`fragment size leaves ${room} bytes per fragment`);
  const total = Math.max(1, Math.ceil(inner.length / room));
  if (total > MAX_FRAGMENTS) throw new RangeError(`message of ${inner.length} bytes needs ${total} fragments`);
  const out: Buffer[] = [];
  for (let n = 1; n <= total; n++) {
    const chunk = inner.subarray((n - 1) * room, Math.min(inner.length, n * room));
    const encrypted = {
      kind: 'SKF' as const,
      firstPayload: n === 1 ? firstPayload : 0,
      fragmentNumber: n,
      totalFragments: total,
    };
    const ad = encodeEncryptedPrefix({ header, encrypted }, skBodyLength(seal.encr, chunk.length));
    out.push(
      encodeMessage({ header, payloads: [], encrypted: { ...encrypted, body: skSeal(seal, iv.next(), ad, chunk) } }),
    );
  }
  return out;
}

interface Pending {
  total: number;
  firstPayload?: number;
  parts: (Buffer | undefined)[];
  bytes: number;
  startedAt: number;
}

/**
 * The bytes every Reassembler of one engine holds, bounded per SA and in total (issue 11: before
 * this, one half-open SA could make the responder hold 31 fragments of 64 KB for 30 s). When the
 * total is reached, the SA holding the most gives way if it holds more than the one asking would;
 * legitimate messages are small, so it is the flooder's fragments that go.
 */
export class ReassemblyPool {
  used = 0;
  private readonly holders = new Set<Reassembler>();

  /** Defaults: those of the engine (maxFragmentBytesPerSa, maxFragmentBytesTotal in types.ts). */
  constructor(
    readonly perSa = 64 * 1024,
    readonly total = 16 * 1024 * 1024,
  ) {}

  /** Room for `n` more bytes in `r`, or the reason there is none. */
  reserve(r: Reassembler, n: number): string | undefined {
    if (r.bytes + n > this.perSa) return `${r.bytes + n} bytes of fragments for one IKE SA; at most ${this.perSa}`;
    while (this.used + n > this.total) {
      let largest: Reassembler | undefined;
      for (const h of this.holders) if (h !== r && (!largest || h.bytes > largest.bytes)) largest = h;
      if (!largest || largest.bytes <= r.bytes + n)
        return `${this.used} bytes of fragments held by all IKE SAs; at most ${this.total}`;
      largest.clear();
    }
    this.used += n;
    this.holders.add(r);
    return undefined;
  }

  release(r: Reassembler, n: number): void {
    this.used -= n;
    if (r.bytes === 0) this.holders.delete(r);
  }
}

/** A pool for an SA made outside an engine (tests, tools): the default bounds, shared by nobody. */
const standalone = (): ReassemblyPool => new ReassemblyPool();

/** Collects the fragments of one message (per message id and direction); authenticated fragments only. */
export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  /** Bytes of decrypted fragments held now. */
  bytes = 0;

  constructor(private readonly pool: ReassemblyPool = standalone()) {}

  /**
   * Adds one SKF fragment (its AAD as received). Returns the whole inner chain when the last
   * missing fragment arrives, undefined while fragments are missing, or an error for a fragment
   * that does not authenticate, does not fit the others, or would exceed the byte bounds.
   */
  add(
    key: string,
    f: { firstPayload: number; fragmentNumber: number; totalFragments: number; body: Buffer },
    ad: Buffer,
    open: AeadKey,
    now: number,
  ): Result<{ firstPayload: number; inner: Buffer } | undefined> {
    if (f.totalFragments > MAX_FRAGMENTS)
      return err('fragment-too-many', `${f.totalFragments} fragments announced, at most ${MAX_FRAGMENTS}`);
    const plain = skOpen(open, ad, f.body);
    if (!plain.ok) return plain;
    let p = this.pending.get(key);
    if (p && p.total !== f.totalFragments) {
      // RFC 7383 §2.6.2: a different total means the sender re-fragmented; start over with the new set.
      if (f.totalFragments < p.total)
        return err('fragment-stale', 'fragment of an older fragmentation of this message');
      this.drop(key);
      p = undefined;
    }
    if (!p) {
      p = { total: f.totalFragments, parts: new Array(f.totalFragments).fill(undefined), bytes: 0, startedAt: now };
      this.pending.set(key, p);
    }
    if (f.fragmentNumber === 1) p.firstPayload = f.firstPayload;
    if (p.parts[f.fragmentNumber - 1] === undefined) {
      const refused = this.pool.reserve(this, plain.value.length);
      if (refused) {
        // A message that cannot be held whole is not worth holding in part.
        this.drop(key);
        return err('fragment-too-large', refused);
      }
      p.parts[f.fragmentNumber - 1] = plain.value;
      p.bytes += plain.value.length;
      this.bytes += plain.value.length;
    }
    if (p.parts.some((x) => x === undefined) || p.firstPayload === undefined) return ok(undefined);
    this.drop(key);
    return ok({ firstPayload: p.firstPayload, inner: Buffer.concat(p.parts as Buffer[]) });
  }

  /** Forgets incomplete messages older than `maxAge` ms. */
  expire(now: number, maxAge: number): void {
    for (const [k, p] of this.pending) if (now - p.startedAt > maxAge) this.drop(k);
  }

  /** Forgets every incomplete message (the SA is gone, or the pool needs the room). */
  clear(): void {
    for (const k of [...this.pending.keys()]) this.drop(k);
  }

  private drop(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    this.bytes -= p.bytes;
    this.pool.release(this, p.bytes);
  }

  get size(): number {
    return this.pending.size;
  }
}

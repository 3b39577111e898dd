// Admission of new IKE SAs as a responder (issue 11): how many half-open SAs (IKE_SA_INIT
// answered, IKE_AUTH not yet) may exist in total, per source address and per source prefix, and
// when an initiator must first prove with a cookie (RFC 7296 §2.6) that it receives at its address.
//
// The rules, in the order they apply to an IKE_SA_INIT request:
//   - a cookie is required when `cookieThreshold` half-open SAs exist, or when the request's
//     address or prefix bucket is full (so a flood from one place meets cookies first);
//   - a full bucket (total, address or prefix) admits a request with a valid cookie only by
//     replacing the oldest half-open SA in that bucket that was made WITHOUT a cookie and is at
//     least EVICTABLE_AFTER old: such an SA may have been made by someone spoofing the address,
//     and the cookie proves this initiator is really there. Otherwise the request is dropped.
// So a flooder that echoes cookies from one address holds at most `perAddress` slots and everyone
// else is answered; a flooder spoofing a peer's address cannot lock that peer out for longer than
// EVICTABLE_AFTER. Addresses: IPv4 per /32 and per /24; IPv6 per /64 (one host may hold all of it)
// and per /48.
import { ipToBytes, parseIp } from '../../base/addr.js';

export interface HalfOpenLimits {
  /** From this many half-open SAs on, IKE_SA_INIT needs a cookie. */
  cookieThreshold: number;
  /** At most this many half-open SAs in all... */
  maxHalfOpen: number;
  /** ...from one address (IPv6: one /64)... */
  maxHalfOpenPerAddress: number;
  /** ...and from one prefix (IPv4 /24, IPv6 /48). */
  maxHalfOpenPerPrefix: number;
}

/** A half-open SA made without a cookie may be replaced by a cookie-proven one once it is this old (ms). */
export const EVICTABLE_AFTER = 1_000;

interface Entry {
  address: string;
  prefix: string;
  /** It came with a valid cookie. */
  proven: boolean;
  since: number;
}

interface Bucket<T> {
  what: string;
  members: Iterable<T>;
  holds: (e: Entry) => boolean;
}

export type Admission<T> =
  { kind: 'admit'; evict: T[] } | { kind: 'cookie'; reason: string } | { kind: 'drop'; reason: string };

/** Where a source address is counted: its address bucket and its prefix bucket. */
export function sourceBuckets(address: string): { address: string; prefix: string } {
  const ip = parseIp(address);
  if (!ip.ok) return { address, prefix: address };
  const b = ipToBytes(ip.value);
  const hex = Buffer.from(b).toString('hex');
  return b.length === 4
    ? { address: hex, prefix: hex.slice(0, 6) }
    : { address: hex.slice(0, 16), prefix: hex.slice(0, 12) };
}

/** The half-open SAs of one engine, counted per bucket. Oldest first in every bucket. */
export class HalfOpenTable<T> {
  private readonly all = new Map<T, Entry>();
  private readonly byAddress = new Map<string, Set<T>>();
  private readonly byPrefix = new Map<string, Set<T>>();

  constructor(private readonly limits: () => HalfOpenLimits) {}

  get size(): number {
    return this.all.size;
  }

  has(sa: T): boolean {
    return this.all.has(sa);
  }

  /** How many half-open SAs come from the address bucket and prefix bucket of `address`. */
  countFrom(address: string): { address: number; prefix: number } {
    const b = sourceBuckets(address);
    return { address: this.byAddress.get(b.address)?.size ?? 0, prefix: this.byPrefix.get(b.prefix)?.size ?? 0 };
  }

  /** Decides on a new IKE_SA_INIT from `address`; `cookie` says whether it carried a valid one. */
  admit(address: string, cookie: boolean, now: number): Admission<T> {
    const l = this.limits();
    const b = sourceBuckets(address);
    const fromAddress = this.byAddress.get(b.address);
    const fromPrefix = this.byPrefix.get(b.prefix);
    const full: Bucket<T>[] = [];
    if (this.all.size >= l.maxHalfOpen)
      full.push({ what: `${this.all.size} half-open IKE SAs in all`, members: this.all.keys(), holds: () => true });
    if (fromAddress && fromAddress.size >= l.maxHalfOpenPerAddress)
      full.push({
        what: `${fromAddress.size} half-open IKE SAs from ${address}`,
        members: fromAddress,
        holds: (e) => e.address === b.address,
      });
    if (fromPrefix && fromPrefix.size >= l.maxHalfOpenPerPrefix)
      full.push({
        what: `${fromPrefix.size} half-open IKE SAs from the prefix of ${address}`,
        members: fromPrefix,
        holds: (e) => e.prefix === b.prefix,
      });
    if (!cookie && (this.all.size >= l.cookieThreshold || full.length > 0))
      return { kind: 'cookie', reason: full[0]?.what ?? `${this.all.size} half-open IKE SAs` };
    const evict: T[] = [];
    for (const bucket of full) {
      if (evict.some((sa) => bucket.holds(this.all.get(sa)!))) continue; // an earlier replacement makes room here too
      const victim = this.oldestUnproven(bucket.members, now);
      if (victim === undefined) return { kind: 'drop', reason: `${bucket.what}, none of them replaceable` };
      evict.push(victim);
    }
    return { kind: 'admit', evict };
  }

  /** The oldest SA made without a cookie that is old enough to be replaced. */
  private oldestUnproven(members: Iterable<T>, now: number): T | undefined {
    for (const sa of members) {
      const e = this.all.get(sa)!;
      if (e.since > now - EVICTABLE_AFTER) return undefined; // oldest first: the rest are younger still
      if (!e.proven) return sa;
    }
    return undefined;
  }

  add(sa: T, address: string, proven: boolean, now: number): void {
    const b = sourceBuckets(address);
    this.all.set(sa, { address: b.address, prefix: b.prefix, proven, since: now });
    (this.byAddress.get(b.address) ?? this.byAddress.set(b.address, new Set()).get(b.address)!).add(sa);
    (this.byPrefix.get(b.prefix) ?? this.byPrefix.set(b.prefix, new Set()).get(b.prefix)!).add(sa);
  }

  /** The SA is no longer half-open (established, refused, expired, evicted). Idempotent. */
  remove(sa: T): void {
    const e = this.all.get(sa);
    if (!e) return;
    this.all.delete(sa);
    const drop = (m: Map<string, Set<T>>, k: string) => {
      const s = m.get(k);
      s?.delete(sa);
      if (s && s.size === 0) m.delete(k);
    };
    drop(this.byAddress, e.address);
    drop(this.byPrefix, e.prefix);
  }
}

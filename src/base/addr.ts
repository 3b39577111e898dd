// IP addresses and prefixes. Addresses are canonical strings (dotted quad for IPv4, RFC 5952
// for IPv6) so that they can key Maps directly; bytes are produced only where the wire needs them.
import { isIPv4, isIPv6 } from 'node:net';
import { err, ok, type Result } from './result.js';

/** Canonical textual IP address: "10.0.0.1" or "fd00::1". */
export type Ip = string;
export type IpFamily = 4 | 6;

export function ipFamily(ip: Ip): IpFamily {
  return ip.includes(':') ? 6 : 4;
}

/** Parses and canonicalises an address; rejects anything that is not a plain IPv4/IPv6 address. */
export function parseIp(text: string): Result<Ip> {
  const s = text.trim();
  if (isIPv4(s)) return ok(ipFromBytes(ipv4Bytes(s), 0, 4));
  if (isIPv6(s) && !s.includes('%')) return ok(ipFromBytes(ipv6Bytes(s), 0, 6));
  return err('bad-ip', `not an IP address: ${JSON.stringify(text)}`);
}

function ipv4Bytes(s: string): Uint8Array {
  // Hand-rolled (no split/map): this runs for every address the core encodes.
  const out = new Uint8Array(4);
  let part = 0;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      out[part++] = v;
      v = 0;
    } else v = v * 10 + (c - 48);
  }
  out[part] = v;
  return out;
}

function ipv6Bytes(s: string): Uint8Array {
  // Expand an embedded IPv4 tail, then "::".
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4Bytes(v4[1]);
    text = text.slice(0, v4.index) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** The 4 or 16 address bytes of a canonical address. */
export function ipToBytes(ip: Ip): Uint8Array {
  return ipFamily(ip) === 4 ? ipv4Bytes(ip) : ipv6Bytes(ip);
}

/** Canonical address from wire bytes (no allocation beyond the string). */
export function ipFromBytes(buf: Uint8Array, off: number, family: IpFamily): Ip {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + i * 2] << 8) | buf[off + i * 2 + 1]);
  // RFC 5952: compress the longest run (>= 2) of zero groups, first one on ties.
  const [bestStart, bestLen] = longestZeroRun(g);
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

/** [start, length] of the longest run (>= 2) of zero groups of an IPv6 address, the first on ties; [-1, 0] if none. */
export function longestZeroRun(g: ArrayLike<number>): [number, number] {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  return [bestStart, bestLen];
}

/** An IPv4 address as an unsigned 32-bit integer (for arithmetic in topology generators). */
export function ipv4ToInt(ip: Ip): number {
  const b = ipv4Bytes(ip);
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

export function intToIpv4(n: number): Ip {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A CIDR prefix. Host bits must be zero (a prefix with host bits set is refused as ambiguous). */
export class Prefix {
  private constructor(
    readonly family: IpFamily,
    readonly bytes: Uint8Array,
    readonly length: number,
  ) {}

  static parse(text: string): Result<Prefix> {
    const [addr, len, extra] = text.trim().split('/');
    if (extra !== undefined) return err('bad-cidr', `not a CIDR prefix: ${JSON.stringify(text)}`);
    const ip = parseIp(addr ?? '');
    if (!ip.ok) return err('bad-cidr', `not a CIDR prefix: ${JSON.stringify(text)}`);
    const family = ipFamily(ip.value);
    const max = family === 4 ? 32 : 128;
    const n = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > max)
      return err('bad-cidr', `bad prefix length in ${JSON.stringify(text)}`);
    const bytes = ipToBytes(ip.value);
    for (let bit = n; bit < max; bit++) {
      if (bytes[bit >> 3] & (0x80 >> (bit & 7))) {
        return err('bad-cidr', `${text} has host bits set (did you mean ${Prefix.of(ip.value, n).toString()}?)`);
      }
    }
    return ok(new Prefix(family, bytes, n));
  }

  /** Parses or throws: for literals in code and tests. */
  static from(text: string): Prefix {
    const r = Prefix.parse(text);
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  }

  /** The prefix of the given length that contains `ip` (host bits cleared). */
  static of(ip: Ip, length: number): Prefix {
    const family = ipFamily(ip);
    const bytes = ipToBytes(ip);
    for (let bit = length; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
    return new Prefix(family, bytes, length);
  }

  contains(ip: Ip): boolean {
    if (ipFamily(ip) !== this.family) return false;
    const b = ipToBytes(ip);
    return this.containsBytes(b);
  }

  containsBytes(b: Uint8Array): boolean {
    const full = this.length >> 3;
    for (let i = 0; i < full; i++) if (b[i] !== this.bytes[i]) return false;
    const rem = this.length & 7;
    if (rem === 0) return true;
    const mask = (0xff << (8 - rem)) & 0xff;
    return (b[full] & mask) === (this.bytes[full] & mask);
  }

  /** True when the two prefixes share any address. */
  overlaps(other: Prefix): boolean {
    if (other.family !== this.family) return false;
    const shorter = this.length <= other.length ? this : other;
    const longer = shorter === this ? other : this;
    return shorter.containsBytes(longer.bytes);
  }

  equals(other: Prefix): boolean {
    return this.family === other.family && this.length === other.length && this.containsBytes(other.bytes);
  }

  toString(): string {
    return `${ipFromBytes(this.bytes, 0, this.family)}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

interface TrieNode<T> {
  zero: TrieNode<T> | undefined;
  one: TrieNode<T> | undefined;
  value: T | undefined;
  has: boolean;
}

/** Every node is made with all four fields, in one order: one hidden class, so lookups stay monomorphic in V8. */
function trieNode<T>(): TrieNode<T> {
  return { zero: undefined, one: undefined, value: undefined, has: false };
}

/** Longest-prefix match over IPv4 and IPv6 prefixes: a binary trie, O(address bits) per lookup. */
export class PrefixTable<T> {
  private readonly roots: Record<IpFamily, TrieNode<T>> = { 4: trieNode(), 6: trieNode() };
  private count = 0;

  get size(): number {
    return this.count;
  }

  set(prefix: Prefix, value: T): void {
    let node = this.roots[prefix.family];
    for (let bit = 0; bit < prefix.length; bit++) {
      const one = (prefix.bytes[bit >> 3] & (0x80 >> (bit & 7))) !== 0;
      const next = one ? node.one : node.zero;
      if (next) node = next;
      else {
        const created = trieNode<T>();
        if (one) node.one = created;
        else node.zero = created;
        node = created;
      }
    }
    if (!node.has) this.count++;
    node.has = true;
    node.value = value;
  }

  /** The value of the longest prefix containing `ip`, with that prefix's length. */
  lookup(ip: Ip): { value: T; length: number } | undefined {
    return this.lookupBytes(ipToBytes(ip), ipFamily(ip));
  }

  lookupBytes(b: Uint8Array, family: IpFamily): { value: T; length: number } | undefined {
    let node: TrieNode<T> | undefined = this.roots[family];
    let best: { value: T; length: number } | undefined;
    const bits = family === 4 ? 32 : 128;
    for (let bit = 0; node; bit++) {
      if (node.has) best = { value: node.value as T, length: bit };
      if (bit === bits) break;
      node = b[bit >> 3] & (0x80 >> (bit & 7)) ? node.one : node.zero;
    }
    return best;
  }

  /** Every stored value whose prefix contains `ip`, shortest prefix first. */
  matches(ip: Ip): T[] {
    const b = ipToBytes(ip);
    const family = ipFamily(ip);
    const out: T[] = [];
    let node: TrieNode<T> | undefined = this.roots[family];
    const bits = family === 4 ? 32 : 128;
    for (let bit = 0; node; bit++) {
      if (node.has) out.push(node.value as T);
      if (bit === bits) break;
      node = b[bit >> 3] & (0x80 >> (bit & 7)) ? node.one : node.zero;
    }
    return out;
  }
}

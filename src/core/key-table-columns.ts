// Building blocks of the key table's compact store (key-table.ts): values shared by many paths
// interned to small integers, IPv4 and IPv6 addresses read from their canonical text as 32-bit
// words without allocating, and the open-addressed index from those words to a slot. Why compact: a
// gateway holds up to a million paths, and one object per path (with its key string and boxed
// timestamps) cost over 500 bytes each (docs/benchmarks.md, "Key table memory").
import { ipFromBytes, longestZeroRun } from '../base/addr.js';

/** Values shared by many entries (peers, reasons, layer lists) as small integers, reference-counted. Id 0 = none. */
export class Interner<T> {
  private readonly ids = new Map<string, number>();
  private readonly values: (T | undefined)[] = [undefined];
  private readonly keys: string[] = [''];
  private readonly refs: number[] = [0];
  private readonly free: number[] = [];

  constructor(private readonly keyOf: (v: T) => string) {}

  acquire(v: T): number {
    const key = this.keyOf(v);
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.free.pop() ?? this.values.length;
      this.values[id] = v;
      this.keys[id] = key;
      this.refs[id] = 0;
      this.ids.set(key, id);
    }
    this.refs[id]++;
    return id;
  }

  release(id: number): void {
    if (id === 0 || --this.refs[id] > 0) return;
    this.ids.delete(this.keys[id]);
    this.values[id] = undefined;
    this.keys[id] = '';
    this.free.push(id);
  }

  value(id: number): T | undefined {
    return this.values[id];
  }

  /** Distinct values held (for tests: nothing leaks). */
  get count(): number {
    return this.ids.size;
  }
}

/** A canonical dotted-quad IPv4 address (no leading zeros) as an unsigned integer; -1 for anything else. */
export function ipv4Word(ip: string): number {
  const n = ip.length;
  if (n < 7 || n > 15) return -1;
  let word = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      word = word * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero: not canonical
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return word * 256 + octet;
}

export function ipv4Text(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}`;
}

/**
 * A canonical (RFC 5952, as src/base/addr.ts writes it) IPv6 address into four 32-bit words at
 * `out[off..off+3]`; false for anything else (another spelling of an address included). Not a
 * second address parser: it only recognises addr.ts's own output (tested against parseIp), fast
 * enough for the two addresses of every lookup.
 */
export function ipv6Words(ip: string, out: Uint32Array, off: number): boolean {
  // Hand-rolled (no regex, no split): this runs for both addresses of every IPv6 lookup.
  const n = ip.length;
  if (n < 2 || n > 39) return false;
  const parsed = PARSED;
  let count = 0;
  let gap = -1; // where "::" stands, in groups parsed before it
  let value = 0;
  let digits = 0;
  let i = 0;
  if (ip.charCodeAt(0) === 58) {
    if (ip.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  for (; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 58) {
      if (digits === 0 || count === 8) return false;
      parsed[count++] = value;
      value = 0;
      digits = 0;
      if (i + 1 === n) return false; // a trailing single ':'
      if (ip.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return false;
        gap = count;
        i++;
      }
    } else {
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (d < 0 || digits === 4 || (digits > 0 && value === 0)) return false; // not hex, too long, leading zero
      value = value * 16 + d;
      digits++;
    }
  }
  if (digits > 0) {
    if (count === 8) return false;
    parsed[count++] = value;
  }
  const zeros = 8 - count;
  if (gap < 0 ? zeros !== 0 : zeros < 1) return false;
  const g = GROUPS;
  for (let k = 0, p = 0; k < 8; k++) g[k] = gap >= 0 && k >= gap && k < gap + zeros ? 0 : parsed[p++];
  // Canonical: "::" stands exactly for the longest run of two or more zero groups (the first on ties).
  const [start, len] = longestZeroRun(g);
  if (gap < 0 ? len > 0 : start !== gap || len !== zeros) return false;
  for (let w = 0; w < 4; w++) out[off + w] = ((g[w * 2] << 16) | g[w * 2 + 1]) >>> 0;
  return true;
}

const PARSED = new Int32Array(8);
const GROUPS = new Int32Array(8);

/** The canonical text of the IPv6 address in four words. */
export function ipv6Text(words: Uint32Array, off: number): string {
  for (let w = 0; w < 4; w++) {
    const v = words[off + w];
    TEXT_BYTES[w * 4] = v >>> 24;
    TEXT_BYTES[w * 4 + 1] = (v >>> 16) & 255;
    TEXT_BYTES[w * 4 + 2] = (v >>> 8) & 255;
    TEXT_BYTES[w * 4 + 3] = v & 255;
  }
  return ipFromBytes(TEXT_BYTES, 0, 6);
}

const TEXT_BYTES = new Uint8Array(16);

/**
 * Open-addressed (linear probing, load at most 1/2) index from a key of `width` 32-bit words to the
 * row holding it; the keys themselves live in the caller's column (`width` words per row), read
 * through `keys`. Deletion shifts the following run back, so there are no tombstones and lookups
 * stay O(1).
 */
export class WordsIndex {
  private cells = new Int32Array(16); // row + 1; 0 = empty
  private count = 0;
  private readonly seed = (Math.random() * 0x100000000) >>> 0;

  constructor(
    private readonly width: number,
    private readonly keys: () => Uint32Array,
  ) {}

  /** The row whose key equals probe[0..width-1], or -1. */
  find(probe: Uint32Array): number {
    const cells = this.cells;
    const mask = cells.length - 1;
    const keys = this.keys();
    const w = this.width;
    next: for (let i = this.hash(probe, 0) & mask; ; i = (i + 1) & mask) {
      const c = cells[i];
      if (c === 0) return -1;
      const base = (c - 1) * w;
      for (let k = 0; k < w; k++) if (keys[base + k] !== probe[k]) continue next;
      return c - 1;
    }
  }

  /** Adds a row whose key is already in the column and absent from the index. */
  add(row: number): void {
    if ((this.count + 1) * 2 > this.cells.length) this.grow();
    this.place(this.cells, row);
    this.count++;
  }

  remove(row: number): void {
    const cells = this.cells;
    const mask = cells.length - 1;
    const keys = this.keys();
    let i = this.hash(keys, row * this.width) & mask;
    while (cells[i] !== row + 1) {
      if (cells[i] === 0) return;
      i = (i + 1) & mask;
    }
    // Backward shift: move later members of the run into the hole when their home allows it.
    for (let j = (i + 1) & mask; cells[j] !== 0; j = (j + 1) & mask) {
      const home = this.hash(keys, (cells[j] - 1) * this.width) & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        cells[i] = cells[j];
        i = j;
      }
    }
    cells[i] = 0;
    this.count--;
  }

  private place(cells: Int32Array, row: number): void {
    const mask = cells.length - 1;
    let i = this.hash(this.keys(), row * this.width) & mask;
    while (cells[i] !== 0) i = (i + 1) & mask;
    cells[i] = row + 1;
  }

  private grow(): void {
    const old = this.cells;
    this.cells = new Int32Array(old.length * 2);
    for (const c of old) if (c !== 0) this.place(this.cells, c - 1);
  }

  private hash(words: Uint32Array, base: number): number {
    let h = this.seed;
    for (let k = 0; k < this.width; k++) {
      h = Math.imul(h ^ words[base + k], 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }
}

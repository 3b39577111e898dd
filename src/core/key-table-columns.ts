// Building blocks of the key table's compact store (key-table.ts): values shared by many paths
// interned to small integers, an IPv4 address read from its text without allocating, and the
// open-addressed index from (local, remote) as two 32-bit integers to a slot. Why compact: a
// gateway holds up to a million paths, and one object per path (with its key string and boxed
// timestamps) cost over 500 bytes each (docs/benchmarks.md, "Key table memory").

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
 * Open-addressed (linear probing, load at most 1/2) index from an (a, b) pair of 32-bit words to a
 * slot number; the words themselves live in the caller's columns, read back through `wordsOf`.
 * Deletion shifts the following run back, so there are no tombstones and lookups stay O(1).
 */
export class PairIndex {
  private cells = new Int32Array(16); // slot + 1; 0 = empty
  private count = 0;
  private readonly seed = (Math.random() * 0x100000000) >>> 0;

  constructor(private readonly a: () => Uint32Array, private readonly b: () => Uint32Array) {}

  find(x: number, y: number): number {
    const cells = this.cells;
    const mask = cells.length - 1;
    const a = this.a();
    const b = this.b();
    for (let i = this.hash(x, y) & mask; ; i = (i + 1) & mask) {
      const c = cells[i];
      if (c === 0) return -1;
      if (a[c - 1] === x && b[c - 1] === y) return c - 1;
    }
  }

  /** Adds a slot whose words are already in the columns and whose pair is absent. */
  add(slot: number): void {
    if ((this.count + 1) * 2 > this.cells.length) this.grow();
    this.place(this.cells, slot);
    this.count++;
  }

  remove(slot: number): void {
    const cells = this.cells;
    const mask = cells.length - 1;
    let i = this.hash(this.a()[slot], this.b()[slot]) & mask;
    while (cells[i] !== slot + 1) {
      if (cells[i] === 0) return;
      i = (i + 1) & mask;
    }
    // Backward shift: move later members of the run into the hole when their home allows it.
    for (let j = (i + 1) & mask; cells[j] !== 0; j = (j + 1) & mask) {
      const s = cells[j] - 1;
      const home = this.hash(this.a()[s], this.b()[s]) & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        cells[i] = cells[j];
        i = j;
      }
    }
    cells[i] = 0;
    this.count--;
  }

  private place(cells: Int32Array, slot: number): void {
    const mask = cells.length - 1;
    let i = this.hash(this.a()[slot], this.b()[slot]) & mask;
    while (cells[i] !== 0) i = (i + 1) & mask;
    cells[i] = slot + 1;
  }

  private grow(): void {
    const old = this.cells;
    this.cells = new Int32Array(old.length * 2);
    for (const c of old) if (c !== 0) this.place(this.cells, c - 1);
  }

  private hash(x: number, y: number): number {
    let h = Math.imul(x ^ this.seed, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ y, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }
}

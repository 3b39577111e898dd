// The anti-replay window (RFC 4303 §3.4.3 with 64-bit sequence numbers): order, reordering, jumps,
// the 2^32 boundary, window sizes, the receive floor a restarted receiver learns, and properties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplayWindow, SEQ_MAX, type ReplayVerdict } from '../../src/crypto/replay-window.js';

/** Receive path as the executor runs it: check, (authenticate), accept. */
function receive(w: ReplayWindow, seq: bigint): ReplayVerdict {
  const v = w.check(seq);
  if (v === 'ok') w.accept(seq);
  return v;
}

test('in order: every number once, then each is a replay or too old', () => {
  const w = new ReplayWindow(1024);
  assert.equal(w.highest, 0n);
  for (let s = 1n; s <= 3000n; s++) assert.equal(receive(w, s), 'ok');
  assert.equal(w.highest, 3000n);
  for (let s = 1n; s <= 3000n; s++) assert.equal(w.check(s), 3000n - s >= 1024n ? 'too-old' : 'replay', String(s));
});

test('out of order within the window, duplicates, and the window edge', () => {
  const w = new ReplayWindow(1024);
  assert.equal(receive(w, 5000n), 'ok');
  assert.equal(receive(w, 4990n), 'ok');
  assert.equal(receive(w, 4990n), 'replay');
  assert.equal(receive(w, 5000n), 'replay');
  assert.equal(receive(w, 3977n), 'ok'); // 5000 - 1023: the oldest still inside
  assert.equal(w.check(3976n), 'too-old'); // 5000 - 1024
  assert.equal(receive(w, 4999n), 'ok');
  assert.equal(receive(w, 5001n), 'ok');
  assert.equal(w.check(3977n), 'too-old'); // slid out
  assert.equal(w.check(3978n), 'ok');
  assert.equal(w.check(4990n), 'replay');
  assert.equal(w.highest, 5001n);
});

test('check does not change state; accept is idempotent and ignores numbers that fell out', () => {
  const w = new ReplayWindow(64);
  for (const s of [10n, 100n, 1000n]) assert.equal(w.check(s), 'ok');
  assert.equal(w.highest, 0n);
  w.accept(100n);
  w.accept(100n);
  assert.equal(w.check(100n), 'replay');
  w.accept(200n);
  w.accept(100n); // authenticated late, meanwhile too old: no effect
  assert.equal(w.check(100n), 'too-old');
  assert.equal(w.highest, 200n);
  assert.equal(w.check(137n), 'ok');
  assert.equal(w.check(136n), 'too-old');
});

test('jumps larger than the window clear all history', () => {
  const w = new ReplayWindow(128);
  for (let s = 1n; s <= 200n; s++) w.accept(s);
  assert.equal(receive(w, 1_000_000n), 'ok');
  assert.equal(w.check(200n), 'too-old');
  for (let s = 1_000_000n - 127n; s < 1_000_000n; s++) assert.equal(w.check(s), 'ok', String(s));
  assert.equal(w.check(1_000_000n - 128n), 'too-old');
  // Jumps of exactly one window and just under one window.
  const v = new ReplayWindow(128);
  for (let s = 1n; s <= 128n; s++) v.accept(s);
  v.accept(256n);
  for (let s = 129n; s < 256n; s++) assert.equal(v.check(s), 'ok', String(s));
  v.accept(256n + 127n);
  assert.equal(v.check(256n), 'replay');
  assert.equal(v.check(257n), 'ok');
});

test('across the 2^32 boundary', () => {
  const w = new ReplayWindow(1024);
  const b = 2n ** 32n;
  for (const s of [b - 3n, b - 1n, b, b + 2n]) assert.equal(receive(w, s), 'ok');
  assert.equal(receive(w, b - 2n), 'ok');
  assert.equal(receive(w, b + 1n), 'ok');
  for (let s = b - 3n; s <= b + 2n; s++) assert.equal(w.check(s), 'replay', String(s));
  // The low 32 bits alone would alias these: 5 and 2^32 + 5 are different packets.
  const v = new ReplayWindow(1024);
  v.accept(5n);
  v.accept(b + 5n);
  assert.equal(v.check(b + 4n), 'ok');
  assert.equal(v.check(5n), 'too-old');
  assert.equal(v.highest, b + 5n);
});

test('the top of the 64-bit range, 0 and out-of-range numbers', () => {
  const w = new ReplayWindow(1024);
  assert.equal(w.check(0n), 'invalid');
  assert.equal(w.check(-1n), 'invalid');
  assert.equal(w.check(SEQ_MAX + 1n), 'invalid');
  assert.equal(w.check(5 as unknown as bigint), 'invalid');
  assert.throws(() => w.accept(0n), TypeError);
  assert.throws(() => w.accept(SEQ_MAX + 1n), TypeError);
  assert.equal(receive(w, SEQ_MAX - 10n), 'ok');
  assert.equal(receive(w, SEQ_MAX), 'ok');
  assert.equal(w.check(SEQ_MAX), 'replay');
  assert.equal(w.check(SEQ_MAX - 10n), 'replay');
  assert.equal(w.check(SEQ_MAX - 1023n), 'ok');
  assert.equal(w.check(SEQ_MAX - 1024n), 'too-old');
  assert.equal(w.highest, SEQ_MAX);
});

test('window sizes: multiples of 32 in 64..32768 (a group SA: 32768)', () => {
  for (const s of [64, 96, 1024, 4096, 8192, 32768]) assert.equal(new ReplayWindow(s).size, s);
  assert.equal(new ReplayWindow().size, 1024);
  for (const s of [0, 32, 65, 100, 4100, 32800, 65536, 64.5])
    assert.throws(() => new ReplayWindow(s), TypeError, String(s));
  // A non-power-of-two size behaves exactly like its definition.
  const w = new ReplayWindow(96);
  w.accept(1000n);
  assert.equal(w.check(905n), 'ok');
  assert.equal(w.check(904n), 'too-old');
});

/** The definition, with no bitmap: accepted set + highest. */
class Model {
  private readonly seen = new Set<bigint>();
  private top = 0n;
  /** Every number below it counts as seen (raiseFloor). */
  private floor = 0n;
  constructor(private readonly size: bigint) {}
  check(seq: bigint): ReplayVerdict {
    if (seq <= 0n || seq > SEQ_MAX) return 'invalid';
    if (seq > this.top) return 'ok';
    if (this.top - seq >= this.size) return 'too-old';
    return this.seen.has(seq) || seq < this.floor ? 'replay' : 'ok';
  }
  accept(seq: bigint): void {
    if (seq > this.top) this.top = seq;
    this.seen.add(seq);
  }
  raiseFloor(floor: bigint): void {
    if (floor - 1n <= this.top) return;
    this.top = floor - 1n;
    this.floor = floor;
  }
}

test('matches the definition on arbitrary sequences (property)', () => {
  const bases = [0n, 2n ** 32n - 3000n, 2n ** 63n, SEQ_MAX - 20000n];
  fc.assert(
    fc.property(
      fc.constantFrom(64, 96, 256, 1024),
      fc.constantFrom(...bases),
      fc.array(fc.oneof(fc.integer({ min: -5, max: 400 }), fc.integer({ min: 0, max: 20000 })), {
        minLength: 1,
        maxLength: 300,
      }),
      fc.array(fc.boolean(), { minLength: 300, maxLength: 300 }),
      (size, base, offsets, authentic) => {
        const w = new ReplayWindow(size);
        const m = new Model(BigInt(size));
        offsets.forEach((o, i) => {
          const seq = base + BigInt(o);
          const v = w.check(seq);
          assert.equal(v, m.check(seq), `seq ${seq}`);
          // Packets that fail authentication are never accepted.
          if (v === 'ok' && authentic[i]) {
            w.accept(seq);
            m.accept(seq);
          }
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('a raised floor: everything below it is a replay or too old, everything from it on is new (the window a restarted receiver learns)', () => {
  const w = new ReplayWindow(1024);
  w.raiseFloor(5000n);
  assert.equal(w.highest, 4999n);
  assert.equal(w.check(4999n), 'replay');
  assert.equal(w.check(3976n), 'replay');
  assert.equal(w.check(3975n), 'too-old');
  assert.equal(receive(w, 5001n), 'ok');
  assert.equal(receive(w, 5000n), 'ok', 'the floor itself is new, also out of order');
  assert.equal(w.check(5000n), 'replay');
  w.raiseFloor(10n); // lower: nothing changes
  assert.equal(w.check(5002n), 'ok');
  assert.equal(w.highest, 5001n);
  w.raiseFloor(1n); // no floor at all
  w.raiseFloor(0n);
  assert.equal(w.highest, 5001n);
});

test('raiseFloor between receives matches the definition (property)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(64, 96, 1024),
      fc.constantFrom(0n, 2n ** 32n - 3000n, SEQ_MAX - 20000n),
      fc.array(
        fc.oneof(
          fc.integer({ min: 1, max: 3000 }).map((o) => ({ floor: o })),
          fc.integer({ min: 1, max: 3000 }).map((o) => ({ seq: o })),
        ),
        { minLength: 1, maxLength: 200 },
      ),
      (size, base, ops) => {
        const w = new ReplayWindow(size);
        const m = new Model(BigInt(size));
        for (const op of ops) {
          if ('floor' in op) {
            w.raiseFloor(base + BigInt(op.floor));
            m.raiseFloor(base + BigInt(op.floor));
            continue;
          }
          const seq = base + BigInt(op.seq);
          const v = w.check(seq);
          assert.equal(v, m.check(seq), `seq ${seq}`);
          if (v === 'ok') {
            w.accept(seq);
            m.accept(seq);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a window takes its ring with its first accepted number: 20,000 unused 32768-packet windows hold no ring', () => {
  const before = process.memoryUsage().arrayBuffers;
  const unused = Array.from({ length: 20_000 }, () => new ReplayWindow(32768));
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 1 << 20, `${grown} bytes of rings for ${unused.length} unused windows`);
  // Before its first number a window takes anything new; a floor counts everything below as received.
  const w = unused[0];
  assert.equal(w.check(1n), 'ok');
  w.raiseFloor(100n);
  assert.deepEqual([w.check(99n), w.check(100n)], ['replay', 'ok']);
  w.accept(150n);
  assert.deepEqual([w.check(99n), w.check(120n), w.check(150n), w.check(151n)], ['replay', 'ok', 'replay', 'ok']);
});

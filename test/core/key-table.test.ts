// The key table and its neighbours: O(1) lookup by (local, remote), bounded size with a stated
// eviction order, bounded pending buffers, and the core's timer queue (re-arm, cancel, typed timers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipFromBytes, parseIp } from '../../src/base/addr.js';
import { ipv6Text, ipv6Words } from '../../src/core/key-table-columns.js';
import { KeyTable, pathKey, PendingBuffers, type KeyTableEntry, type Layer } from '../../src/core/key-table.js';
import { TimerQueue } from '../../src/core/timer-queue.js';
import { timerId, type CoreTimer } from '../../src/core/timers.js';

function entry(
  local: string,
  remote: string,
  lastUsed: number,
  action: KeyTableEntry['action'] = 'encrypt',
): KeyTableEntry {
  return { local, remote, action, reason: 'test', installedAt: 0, lastUsed, expiresAt: 1e9, layers: [] };
}

test('key table: O(1) get/set/delete keyed by (local, remote)', () => {
  const t = new KeyTable(10);
  t.set(entry('10.0.0.1', '10.0.0.2', 0));
  assert.equal(t.get('10.0.0.1', '10.0.0.2')?.action, 'encrypt');
  assert.equal(t.get('10.0.0.2', '10.0.0.1'), undefined, 'direction matters');
  assert.equal(t.delete('10.0.0.1', '10.0.0.2')?.local, '10.0.0.1');
  assert.equal(t.size, 0);
});

test('key table: bounded; evicts the least recently used among the oldest installed, never a pending one first', () => {
  const t = new KeyTable(3);
  t.set(entry('a', 'x', 50, 'pending'));
  t.set(entry('b', 'x', 10));
  t.set(entry('c', 'x', 30));
  const evicted = t.set(entry('d', 'x', 99));
  assert.equal(evicted?.local, 'b');
  assert.equal(t.size, 3);
  assert.ok(t.get('a', 'x'), 'pending entry kept');
  // Refreshing an existing key never evicts.
  assert.equal(t.set(entry('c', 'x', 100)), undefined);
});

/** The key table as it was before its compact store: a Map in insertion order. The reference model. */
class MapKeyTable {
  private readonly map = new Map<string, KeyTableEntry>();
  constructor(readonly capacity: number) {}
  get size(): number {
    return this.map.size;
  }
  get(local: string, remote: string): KeyTableEntry | undefined {
    return this.map.get(pathKey(local, remote));
  }
  set(entry: KeyTableEntry): KeyTableEntry | undefined {
    const key = pathKey(entry.local, entry.remote);
    let evicted: KeyTableEntry | undefined;
    if (this.map.has(key)) this.map.delete(key);
    else if (this.map.size >= this.capacity) {
      let n = 0;
      const score = (e: KeyTableEntry) => (e.action === 'pending' ? Infinity : e.lastUsed);
      for (const e of this.map.values()) {
        if (!evicted || score(e) < score(evicted)) evicted = e;
        if (++n >= KeyTable.EVICTION_SAMPLE) break;
      }
      if (evicted) this.map.delete(pathKey(evicted.local, evicted.remote));
    }
    this.map.set(key, entry);
    return evicted;
  }
  replace(entry: KeyTableEntry): boolean {
    const key = pathKey(entry.local, entry.remote);
    if (!this.map.has(key)) return false;
    this.map.set(key, entry);
    return true;
  }
  delete(local: string, remote: string): KeyTableEntry | undefined {
    const key = pathKey(local, remote);
    const e = this.map.get(key);
    this.map.delete(key);
    return e;
  }
  values(): IterableIterator<KeyTableEntry> {
    return this.map.values();
  }
}

// Canonical IPv4 (the compact columns), IPv6 and other strings (kept as objects), few enough to collide.
const address = fc.constantFrom(
  ...['10.0.0.1', '10.0.0.2', '0.0.0.0', '255.255.255.255', '192.168.1.20', '10.0.0.01'],
  ...['2001:db8::1', 'fe80::2', '::', '::1', '2001:DB8::1', '2001:db8:0:0:0:0:0:1', 'a'],
);
const layerList = fc.constantFrom<Layer[][]>(
  [],
  [{ vpnId: 1, gateways: ['G1', 'G2'] as [string, string] }],
  [
    { vpnId: 1, gateways: ['G1', 'G2'] as [string, string] },
    { vpnId: 9, gateways: ['G3', 'G2'] as [string, string] },
  ],
);
const time = fc.oneof(
  fc.integer({ min: 0, max: 100 }),
  fc.constant(Number.MAX_SAFE_INTEGER),
  fc.double({ noNaN: true, min: 0, max: 1e13 }),
);
const anEntry: fc.Arbitrary<KeyTableEntry> = fc
  .record(
    {
      local: address,
      remote: address,
      action: fc.constantFrom('encrypt', 'plain', 'discard', 'pending'),
      vpnId: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(0xffffffff), fc.constant(-1)),
      peer: fc.constantFrom('G1', 'G2', 'G3'),
      mtuReserve: fc.oneof(fc.constantFrom(0, 45, 90), fc.constant(70_000)),
      mtu: fc.oneof(fc.integer({ min: 576, max: 1500 }), fc.constant(65535), fc.constant(65536), fc.constant(1400.5)),
      layers: layerList.map((l) => structuredClone(l)), // equal content, new objects: interned by content
      childSpi: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constant(2 ** 33)),
      reason: fc.constantFrom('search', 'no-common-vpn', 'ike', 'unprotected'),
      txid: fc.oneof(
        fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex')),
        fc.constant('ABCDEF0123456789'),
        fc.constant('12'),
      ),
      installedAt: time,
      lastUsed: time,
      expiresAt: time,
    },
    { requiredKeys: ['local', 'remote', 'action', 'reason', 'installedAt', 'lastUsed', 'expiresAt'] },
  )
  .map((e) => ({ ...e })); // plain objects, as the core makes them
type Op =
  | { op: 'set'; entry: KeyTableEntry }
  | { op: 'replace'; entry: KeyTableEntry }
  | { op: 'delete' | 'get'; local: string; remote: string }
  | { op: 'age'; now: number; idle: number };
const anOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: anEntry.map((entry) => ({ op: 'set' as const, entry })) },
  { weight: 1, arbitrary: anEntry.map((entry) => ({ op: 'replace' as const, entry })) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constantFrom('delete' as const, 'get' as const), local: address, remote: address }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('age' as const),
      now: fc.integer({ min: 0, max: 200 }),
      idle: fc.integer({ min: 1, max: 100 }),
    }),
  },
);

test('key table (property): the compact store behaves as the Map-based table under install, remove, replace and aging', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.array(anOp, { maxLength: 80 }), (capacity, ops) => {
      const t = new KeyTable(capacity);
      const m = new MapKeyTable(capacity);
      for (const o of ops) {
        if (o.op === 'set') assert.deepStrictEqual(t.set(o.entry), m.set(o.entry));
        else if (o.op === 'replace') assert.equal(t.replace(o.entry), m.replace(o.entry));
        else if (o.op === 'delete') assert.deepStrictEqual(t.delete(o.local, o.remote), m.delete(o.local, o.remote));
        else if (o.op === 'get') assert.deepStrictEqual(t.get(o.local, o.remote), m.get(o.local, o.remote));
        else if (o.op === 'age') {
          // The core's sweep: expired or idle entries go, pending ones stay.
          const gone = (e: KeyTableEntry) =>
            e.action !== 'pending' && (o.now >= e.expiresAt || o.now - e.lastUsed >= o.idle);
          for (const e of [...m.values()]) if (gone(e)) m.delete(e.local, e.remote);
          for (const e of [...t.values()]) if (gone(e)) t.delete(e.local, e.remote);
        }
        assert.equal(t.size, m.size);
        assert.deepStrictEqual([...t.values()], [...m.values()]);
      }
      for (const e of [...t.values()]) t.delete(e.local, e.remote);
      assert.equal(t.size, 0);
      assert.equal(t.internedCount, 0, 'interned peers, reasons and layer lists are released with their last path');
    }),
    { numRuns: 300 },
  );
});

test('key table: IPv6 keys as words: exactly the canonical spelling is accepted, and it reads back the same', () => {
  const groups = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  });
  fc.assert(
    fc.property(groups, (g) => {
      const bytes = new Uint8Array(g.flatMap((x) => [x >> 8, x & 255]));
      const text = ipFromBytes(bytes, 0, 6);
      const words = new Uint32Array(4);
      assert.ok(ipv6Words(text, words, 0), text);
      assert.equal(ipv6Text(words, 0), text);
      // Other spellings of the same address are not canonical: kept by their key string instead.
      const full = g.map((x) => x.toString(16)).join(':');
      assert.equal(ipv6Words(full, words, 0), full === text);
      assert.equal(ipv6Words(text.toUpperCase(), words, 0), text.toUpperCase() === text);
    }),
    { numRuns: 500 },
  );
  // Any string: accepted exactly when it is the canonical text of an address (src/base/addr.ts's).
  const text = fc.array(fc.constantFrom(...'0123456789abcdefA:.'), { maxLength: 24 }).map((c) => c.join(''));
  fc.assert(
    fc.property(fc.oneof(text, fc.constantFrom('1::', '::1', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '0:1::')), (s) => {
      const words = new Uint32Array(4);
      const parsed = s.includes(':') ? parseIp(s) : undefined;
      const canonical = parsed?.ok === true && parsed.value === s;
      assert.equal(ipv6Words(s, words, 0), canonical, s);
      if (canonical) assert.equal(ipv6Text(words, 0), s);
    }),
    { numRuns: 2000 },
  );
  for (const bad of [
    '',
    ':',
    ':::',
    '1::2::3',
    '::0:1',
    '1:0::',
    '01::1',
    '::ffff:10.0.0.1',
    '1:2:3:4:5:6:7:8:9',
    'g::1',
    '1::0',
  ]) {
    assert.equal(ipv6Words(bad, new Uint32Array(4), 0), false, bad);
  }
});

for (const family of [4, 6] as const) {
  const N = 20_000;
  test(`key table: O(1) index survives growth and removal at scale, IPv${family} (every path found, none after removal)`, () => {
    const t = new KeyTable(N);
    const ip = (n: number) => {
      const b = new Uint8Array(16);
      b.set([0x20, 0x01, 0x0d, 0xb8], 0);
      for (let k = 0; k < 4; k++) b[12 + k] = (n >>> (24 - 8 * k)) & 255;
      return family === 4 ? ipFromBytes(b, 12, 4) : ipFromBytes(b, 0, 6);
    };
    const e = (i: number): KeyTableEntry => ({
      ...entry(ip(0x0a000000 + (i >>> 4)), ip(0x0b000000 + i * 7), i),
      peer: 'G2',
      vpnId: 1,
    });
    for (let i = 0; i < N; i++) t.set(e(i));
    for (let i = 0; i < N; i += 2) t.delete(e(i).local, e(i).remote);
    for (let i = 0; i < N; i++) assert.equal(t.get(e(i).local, e(i).remote)?.lastUsed, i % 2 ? i : undefined);
    assert.equal(t.size, N / 2);
    assert.deepStrictEqual(t.get(e(1).local, e(1).remote), e(1));
    // Freed slots (and IPv6 rows) are used again.
    for (let i = 0; i < N; i += 2) t.set(e(i));
    assert.equal(t.size, N);
    assert.deepStrictEqual(t.get(e(N - 2).local, e(N - 2).remote), e(N - 2));
  });
}

test('key table: the entry just returned by values() may be deleted while iterating (aging does so)', () => {
  const t = new KeyTable(100);
  for (let i = 0; i < 50; i++) t.set(entry(`10.0.0.${i}`, '10.9.0.1', i));
  t.set(entry('fd00::1', 'fd00::2', 7));
  const seen: string[] = [];
  for (const e of t.values()) {
    seen.push(e.local);
    if (e.lastUsed % 2 === 1) t.delete(e.local, e.remote);
  }
  assert.equal(seen.length, 51);
  assert.deepStrictEqual(
    [...t.values()].map((e) => e.lastUsed),
    Array.from({ length: 25 }, (_, i) => i * 2),
  );
});

test('pending buffers: bounded per path and in total, packets and bytes', () => {
  const b = new PendingBuffers(2, 3, 1000);
  const p = new Uint8Array(100);
  assert.equal(b.push('p1', p), 'buffered');
  assert.equal(b.push('p1', p), 'buffered');
  assert.equal(b.push('p1', p), 'path-full');
  assert.equal(b.push('p2', p), 'buffered');
  assert.equal(b.push('p3', p), 'total-full');
  assert.equal(b.take('p1').length, 2);
  assert.equal(b.totalPacketCount, 1);
  assert.equal(b.push('p3', new Uint8Array(950)), 'total-full', 'byte bound');
  assert.equal(b.push('p3', new Uint8Array(900)), 'buffered');
  assert.equal(b.totalByteCount, 1000);
});

test('timer queue: earliest first, re-arm and cancel are honoured', () => {
  const q = new TimerQueue<string>((k) => k);
  q.set('a', 30);
  q.set('b', 10);
  q.set('c', 20);
  q.set('a', 5); // re-armed earlier
  q.cancel('c');
  assert.equal(q.peek(), 5);
  assert.deepEqual(q.popDue(25), ['a', 'b']);
  assert.equal(q.peek(), undefined);
  for (let i = 100; i > 0; i--) q.set(`k${i}`, i);
  const due = q.popDue(1000);
  assert.deepEqual(
    due,
    Array.from({ length: 100 }, (_, i) => `k${i + 1}`),
  );
});

test('core timers: equal values are one timer, every kind and field tells timers apart', () => {
  const q = new TimerQueue<CoreTimer>(timerId);
  q.set({ kind: 'ike', peer: 'g1', vpnId: 7 }, 50);
  q.set({ kind: 'ike', peer: 'g1', vpnId: 7 }, 40); // a new object for the same timer re-arms it
  q.set({ kind: 'ike', peer: 'g1', vpnId: 8 }, 45);
  q.set({ kind: 'relay', search: 'ab/source' }, 30);
  q.set({ kind: 'proxy', search: 'ab/source' }, 35);
  q.set({ kind: 'origin', tx: 'ab' }, 36);
  q.set({ kind: 'pmtu', path: 'g1/0' }, 37);
  q.set({ kind: 'sweep' }, 38);
  q.set({ kind: 'epoch' }, 39);
  assert.equal(q.size, 8);
  q.cancel({ kind: 'proxy', search: 'ab/source' });
  assert.ok(q.has({ kind: 'relay', search: 'ab/source' }));
  assert.deepEqual(q.popDue(100), [
    { kind: 'relay', search: 'ab/source' },
    { kind: 'origin', tx: 'ab' },
    { kind: 'pmtu', path: 'g1/0' },
    { kind: 'sweep' },
    { kind: 'epoch' },
    { kind: 'ike', peer: 'g1', vpnId: 7 },
    { kind: 'ike', peer: 'g1', vpnId: 8 },
  ]);
});

// The key table and its neighbours: O(1) lookup by (local, remote), bounded size with a stated
// eviction order, bounded pending buffers, and the core's timer queue (re-arm, cancel, typed timers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyTable, PendingBuffers, type KeyTableEntry } from '../../src/core/key-table.js';
import { TimerQueue } from '../../src/core/timer-queue.js';
import { timerId, type CoreTimer } from '../../src/core/timers.js';

function entry(local: string, remote: string, lastUsed: number, action: KeyTableEntry['action'] = 'encrypt'): KeyTableEntry {
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
  assert.deepEqual(due, Array.from({ length: 100 }, (_, i) => `k${i + 1}`));
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

// The admission table of half-open IKE SAs on its own: buckets per address and prefix (IPv4 /32
// and /24, IPv6 /64 and /48), cookies from the thresholds on, replacing only what came without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVICTABLE_AFTER, HalfOpenTable, sourceBuckets } from '../../../src/ike/engine/half-open.js';

const limits = { cookieThreshold: 100, maxHalfOpen: 100, maxHalfOpenPerAddress: 2, maxHalfOpenPerPrefix: 3 };

test('buckets: an IPv4 address and its /24; an IPv6 /64 (one host may hold all of it) and its /48', () => {
  assert.deepEqual(sourceBuckets('192.0.2.7'), { address: 'c0000207', prefix: 'c00002' });
  const a = sourceBuckets('2001:db8:1:2:aaaa::1');
  const b = sourceBuckets('2001:db8:1:2:bbbb::2');
  const c = sourceBuckets('2001:db8:1:3::1');
  assert.equal(a.address, b.address, 'one /64 is one address bucket');
  assert.notEqual(a.address, c.address);
  assert.equal(a.prefix, c.prefix, 'one /48 is one prefix bucket');
});

test('per address, per prefix: cookies first, then only SAs made without a cookie and old enough are replaced', () => {
  const t = new HalfOpenTable<string>(() => limits);
  assert.equal(t.admit('192.0.2.1', false, 0).kind, 'admit');
  t.add('x1', '192.0.2.1', false, 0);
  t.add('x2', '192.0.2.1', true, 0);
  assert.deepEqual(t.countFrom('192.0.2.1'), { address: 2, prefix: 2 });
  assert.equal(t.admit('192.0.2.1', false, 0).kind, 'cookie', 'the address is full: prove it');
  assert.equal(t.admit('192.0.2.1', true, 0).kind, 'drop', 'nothing old enough to replace');
  assert.deepEqual(
    t.admit('192.0.2.1', true, EVICTABLE_AFTER),
    { kind: 'admit', evict: ['x1'] },
    'the one made without a cookie goes',
  );
  t.add('y1', '192.0.2.9', true, 0);
  assert.equal(t.admit('192.0.2.200', false, 0).kind, 'cookie', 'the /24 is full');
  t.remove('x1');
  t.remove('x1');
  assert.equal(t.size, 2);
  assert.equal(t.admit('198.51.100.1', false, 0).kind, 'admit', 'another prefix is not concerned');
});

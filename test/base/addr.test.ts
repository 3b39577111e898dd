// IP addresses and prefixes: canonical parsing of IPv4 and IPv6, byte round trips, prefixes that
// refuse host bits, and longest-prefix match (the routing decisions of the core rest on these).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prefix, PrefixTable, ipFromBytes, ipToBytes, parseIp } from '../../src/base/addr.js';

test('parseIp canonicalises v4 and v6 and rejects junk', () => {
  assert.deepEqual(parseIp('10.0.0.1'), { ok: true, value: '10.0.0.1' });
  assert.deepEqual(parseIp('FD00:0:0:0:0:0:0:1'), { ok: true, value: 'fd00::1' });
  assert.deepEqual(parseIp('::ffff:1.2.3.4'), { ok: true, value: '::ffff:102:304' });
  for (const bad of ['', '10.0.0', '10.0.0.256', 'fe80::1%eth0', 'x']) assert.equal(parseIp(bad).ok, false, bad);
});

test('ip bytes round-trip (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      const ip = ipFromBytes(b, 0, 6);
      assert.deepEqual(ipToBytes(ip), b);
      assert.equal(parseIp(ip).ok && parseIp(ip).ok && (parseIp(ip) as { value: string }).value, ip);
      const v4 = ipFromBytes(b, 0, 4);
      assert.deepEqual(ipToBytes(v4), b.subarray(0, 4));
    }),
  );
});

test('Prefix parses, refuses host bits, contains and overlaps', () => {
  const p = Prefix.from('10.1.0.0/16');
  assert.ok(p.contains('10.1.200.3'));
  assert.ok(!p.contains('10.2.0.1'));
  assert.ok(!p.contains('fd00::1'));
  assert.equal(Prefix.parse('10.1.0.1/16').ok, false);
  assert.equal(Prefix.parse('10.1.0.0/33').ok, false);
  assert.equal(Prefix.parse('10.1.0.0/1x').ok, false);
  assert.ok(p.overlaps(Prefix.from('10.1.2.0/24')));
  assert.ok(!p.overlaps(Prefix.from('10.2.0.0/24')));
  assert.equal(Prefix.from('fd00:1::/32').toString(), 'fd00:1::/32');
  assert.equal(Prefix.from('10.0.0.7').toString(), '10.0.0.7/32');
});

test('PrefixTable does longest-prefix match', () => {
  const t = new PrefixTable<string>();
  t.set(Prefix.from('0.0.0.0/0'), 'default');
  t.set(Prefix.from('10.0.0.0/8'), 'ten');
  t.set(Prefix.from('10.1.0.0/16'), 'ten-one');
  t.set(Prefix.from('fd00::/8'), 'ula');
  assert.equal(t.lookup('10.1.2.3')?.value, 'ten-one');
  assert.equal(t.lookup('10.2.2.3')?.value, 'ten');
  assert.equal(t.lookup('192.0.2.1')?.value, 'default');
  assert.equal(t.lookup('fd00::5')?.value, 'ula');
  assert.equal(t.lookup('2001:db8::1'), undefined);
  assert.deepEqual(t.matches('10.1.0.9'), ['default', 'ten', 'ten-one']);
});

// NAT detection hashes (RFC 7296 §2.23) over IPv4 and IPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natDetectionHash, natDetectionMatches } from '../../../src/ike/crypto/natd.js';

const h = (s: string) => Buffer.from(s, 'hex');
const spiI = h('0102030405060708');

// Expected values computed outside node with `xxd -r -p | sha1sum` over the concatenations shown.
test('NAT-D over IPv4 in an IKE_SA_INIT request (SPIr zero): SHA-1(SPIi | SPIr | IP | port)', () => {
  // 0102030405060708 | 0000000000000000 | c0000201 (192.0.2.1) | 01f4 (500)
  const want = '644b4575455bd6fcc1efe2be8162a9218e448e5f';
  assert.equal(natDetectionHash(spiI, Buffer.alloc(8), '192.0.2.1', 500).toString('hex'), want);
  assert.equal(natDetectionHash(spiI, Buffer.alloc(8), h('c0000201'), 500).toString('hex'), want);
});

test('NAT-D over IPv6 with both SPIs', () => {
  // 0102030405060708 | 1112131415161718 | 20010db8000000000000000000000001 (2001:db8::1) | 1194 (4500)
  const want = '1ee24423bf8f59515e0265c6d0f08be3d038f7e5';
  const spiR = h('1112131415161718');
  assert.equal(natDetectionHash(spiI, spiR, '2001:db8::1', 4500).toString('hex'), want);
  assert.equal(natDetectionHash(spiI, spiR, '2001:0DB8:0:0::1', 4500).toString('hex'), want); // any spelling
  assert.ok(natDetectionMatches(h(want), spiI, spiR, '2001:db8::1', 4500));
  assert.ok(!natDetectionMatches(h(want), spiI, spiR, '2001:db8::1', 4501)); // a NAT changed the port
  assert.ok(!natDetectionMatches(h(want), spiI, spiR, '2001:db8::2', 4500));
  assert.ok(!natDetectionMatches(h(want).subarray(1), spiI, spiR, '2001:db8::1', 4500));
});

test('NAT-D rejects malformed local inputs', () => {
  assert.throws(() => natDetectionHash(spiI.subarray(1), Buffer.alloc(8), '192.0.2.1', 500), RangeError);
  assert.throws(() => natDetectionHash(spiI, Buffer.alloc(8), 'not-an-ip', 500), RangeError);
  assert.throws(() => natDetectionHash(spiI, Buffer.alloc(8), Buffer.alloc(5), 500), RangeError);
  assert.throws(() => natDetectionHash(spiI, Buffer.alloc(8), '192.0.2.1', 65536), RangeError);
});

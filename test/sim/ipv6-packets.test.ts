// The simulator's IPv6 packets: ICMPv6 echo with the pseudo-header checksum (checked here by an
// independent sum), the echo reply a v6 stack sends, TCP SYNs over v6, the hop limit, and the
// same trace kinds as IPv4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipToBytes } from '../../src/base/addr.js';
import { encodeSearchMessage } from '../../src/core/packet/search-message.js';
import { buildIcmpv6Echo } from '../../src/core/packet/icmpv6.js';
import { buildTcpSyn } from '../../src/core/packet/tcp.js';
import {
  buildEchoReply,
  buildEchoRequest,
  decrementTtl,
  describePacket,
  echoData,
  ipDestination,
  ipEndpoints,
  isSearchPacket,
} from '../../src/sim/packets.js';

/** RFC 8200 §8.1 written out plainly: sum of the pseudo-header and the upper-layer message. */
function v6Checksum(packet: Uint8Array, nextHeader: number): number {
  const upper = packet.subarray(40);
  const words: number[] = [];
  const pseudo = [...packet.subarray(8, 40), 0, 0, upper.length >> 8, upper.length & 0xff, 0, 0, 0, nextHeader];
  const all = [...pseudo, ...upper, ...(upper.length % 2 ? [0] : [])];
  for (let i = 0; i < all.length; i += 2) words.push((all[i] << 8) | all[i + 1]);
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum; // 0xffff when the stored checksum is right
}

const A = '2001:db8:1::10';
const B = '2001:db8:2::10';

test('an IPv6 echo request is ICMPv6 type 128 with a correct checksum, hop limit 64', () => {
  for (const size of [0, 1, 56, 1001]) {
    const p = buildEchoRequest({
      src: A,
      dst: B,
      id: 3,
      seq: 7,
      data: echoData(size, size > 4 ? 'mark' : undefined),
      ipId: 1,
    });
    assert.equal(p.length, 40 + 8 + size);
    assert.equal(p[0] >> 4, 6);
    assert.equal((p[4] << 8) | p[5], 8 + size);
    assert.equal(p[6], 58);
    assert.equal(p[7], 64);
    assert.deepEqual(p.subarray(8, 24), ipToBytes(A));
    assert.deepEqual(p.subarray(24, 40), ipToBytes(B));
    assert.equal(p[40], 128);
    assert.equal(v6Checksum(p, 58), 0xffff);
    assert.deepEqual(ipEndpoints(p), { src: A, dst: B });
    assert.equal(ipDestination(p), B);
    assert.deepEqual(describePacket(p), { src: A, dst: B, kind: 'data', icmp: { type: 8, id: 3, seq: 7 } });
  }
});

test('the echo reply swaps the addresses, keeps id, sequence and data; a bad checksum gets no reply', () => {
  const request = buildEchoRequest({ src: A, dst: B, id: 9, seq: 2, data: echoData(56, 'B-to-A'), ipId: 1 });
  const reply = buildEchoReply(request);
  assert.ok(reply);
  assert.equal(reply[40], 129);
  assert.deepEqual(ipEndpoints(reply), { src: B, dst: A });
  assert.deepEqual(reply.subarray(44), request.subarray(44));
  assert.equal(v6Checksum(reply, 58), 0xffff);
  assert.deepEqual(describePacket(reply), { src: B, dst: A, kind: 'data-reply', icmp: { type: 0, id: 9, seq: 2 } });
  const corrupt = request.slice();
  corrupt[60] ^= 1;
  assert.equal(buildEchoReply(corrupt), undefined);
  assert.equal(describePacket(corrupt).kind, 'icmp-malformed');
  // Truncated: the payload length runs past the bytes.
  assert.equal(buildEchoReply(request.subarray(0, 60)), undefined);
});

test('a TCP SYN over IPv6 carries its MSS and a checksum over the v6 pseudo-header', () => {
  const p = buildTcpSyn({ src: A, dst: B, srcPort: 40000, dstPort: 443, seq: 12345, mss: 1460 });
  assert.equal(p[6], 6);
  assert.equal(v6Checksum(p, 6), 0xffff);
  const d = describePacket(p);
  assert.equal(d.kind, 'tcp-syn');
  assert.deepEqual(d.tcp, { srcPort: 40000, dstPort: 443, seq: 12345, flags: 2, mss: 1460 });
});

test('forwarding decrements the hop limit (no header checksum in IPv6); at 1 the packet is not forwarded', () => {
  const p = buildIcmpv6Echo({ type: 128, src: A, dst: B, id: 1, seq: 1, data: new Uint8Array(8), hopLimit: 2 });
  const once = decrementTtl(p);
  assert.ok(once);
  assert.equal(once[7], 1);
  assert.equal(p[7], 2, 'the original is untouched');
  assert.deepEqual(once.subarray(8), p.subarray(8));
  assert.equal(decrementTtl(once), undefined);
  assert.equal(decrementTtl(p.subarray(0, 39)), undefined);
});

test('key-search messages over ICMPv6 are recognised and classified by phase, as over ICMP', () => {
  const data = encodeSearchMessage({
    phase: 'destination',
    proxied: false,
    txid: new Uint8Array(8).fill(1),
    pathSrc: A,
    pathDst: B,
    originator: 'G1',
    proxiedBy: '',
    entries: [],
  });
  const request = buildIcmpv6Echo({ type: 128, src: A, dst: B, id: 1, seq: 1, data });
  assert.equal(isSearchPacket(request), true);
  assert.equal(describePacket(request).kind, 'search-request(destination)');
  const reply = buildEchoReply(request);
  assert.ok(reply);
  assert.equal(describePacket(reply).kind, 'search-reply(destination)');
  assert.equal(isSearchPacket(buildEchoRequest({ src: A, dst: B, id: 1, seq: 1, data: echoData(56), ipId: 0 })), false);
});

test('malformed and unknown IPv6 packets are described, never thrown on', () => {
  assert.equal(describePacket(new Uint8Array(39).fill(0x60)).kind, 'malformed');
  assert.equal(ipEndpoints(Uint8Array.of(0x50, 0, 0, 0)), undefined);
  const p = buildIcmpv6Echo({ type: 128, src: A, dst: B, id: 1, seq: 1, data: new Uint8Array(4) });
  const other = p.slice();
  other[6] = 59; // no next header
  assert.equal(describePacket(other).kind, 'ipv6-next-59');
});

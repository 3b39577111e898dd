// TCP MSS clamping on SYNs: the MSS above the path's limit is lowered with a valid checksum, odd
// option offsets included, everything else is left alone, and garbage never breaks it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIpv4, PROTO_TCP, setHeaderChecksum } from '../../../src/core/packet/ipv4.js';
import {
  buildTcpSegment,
  buildTcpSyn,
  clampTcpMss,
  TCP_ACK,
  TCP_SYN,
  tcpChecksumOk,
  tcpMss,
  type TcpSegmentOptions,
} from '../../../src/core/packet/tcp.js';
import { ipv4, naiveChecksum } from './arbitraries.js';

const ends = { src: '10.1.0.5', dst: '10.2.0.9', srcPort: 40000, dstPort: 443, seq: 0x01020304 };

/** Independent check: pseudo-header + segment through the naive checksum. */
function naiveTcpOk(p: Uint8Array): boolean {
  const r = parseIpv4(p);
  if (!r.ok) return false;
  const seg = r.value.payload;
  const pseudo = [...p.subarray(12, 20), 0, PROTO_TCP, seg.length >> 8, seg.length & 0xff];
  return naiveChecksum([...pseudo, ...seg]) === 0;
}

test('buildTcpSyn lays out the header and a verifiable checksum', () => {
  const p = buildTcpSyn({ ...ends, mss: 1460 });
  const r = parseIpv4(p);
  assert.ok(r.ok);
  assert.equal(r.value.header.protocol, PROTO_TCP);
  const seg = r.value.payload;
  assert.equal(seg.length, 24);
  assert.deepEqual([...seg.subarray(0, 14)], [0x9c, 0x40, 0x01, 0xbb, 1, 2, 3, 4, 0, 0, 0, 0, 0x60, TCP_SYN]);
  assert.deepEqual([...seg.subarray(20)], [2, 4, 0x05, 0xb4]);
  assert.ok(tcpChecksumOk(p));
  assert.ok(naiveTcpOk(p));
  assert.equal(tcpMss(p), 1460);
  p[40] ^= 1;
  assert.equal(tcpChecksumOk(p), false);
});

test('clamps a larger MSS, leaves a smaller one, and keeps the checksum valid', () => {
  const p = buildTcpSyn({ ...ends, mss: 1460 });
  assert.equal(clampTcpMss(p, 1360), true);
  assert.equal(tcpMss(p), 1360);
  assert.ok(tcpChecksumOk(p) && naiveTcpOk(p));
  const again = p.slice();
  assert.equal(clampTcpMss(again, 1360), false);
  assert.equal(clampTcpMss(again, 1400), false);
  assert.deepEqual(again, p);
  // SYN-ACK is clamped too.
  const synAck = buildTcpSegment({ ...ends, flags: TCP_SYN | TCP_ACK, mss: 9000 });
  assert.equal(clampTcpMss(synAck, 1400), true);
  assert.equal(tcpMss(synAck), 1400);
  assert.ok(tcpChecksumOk(synAck));
});

test('an MSS option at an odd offset (after a NOP) is clamped with a correct checksum', () => {
  for (const payloadLength of [0, 1, 2, 3]) {
    const options = Uint8Array.of(1, 2, 4, 0x23, 0x28, 1, 1, 1);
    const p = buildTcpSegment({ ...ends, options, payload: new Uint8Array(payloadLength).fill(0xa5) });
    assert.equal(tcpMss(p), 9000);
    assert.equal(clampTcpMss(p, 1300), true);
    assert.equal(tcpMss(p), 1300);
    assert.ok(tcpChecksumOk(p) && naiveTcpOk(p), `payload ${payloadLength}`);
  }
});

test('leaves non-SYNs, fragments, non-TCP and malformed option lists alone', () => {
  const check = (p: Uint8Array, why: string) => {
    const before = p.slice();
    assert.equal(clampTcpMss(p, 536), false, why);
    assert.deepEqual(p, before, why);
  };
  check(buildTcpSegment({ ...ends, flags: TCP_ACK, mss: 1460 }), 'not a SYN');
  const frag = buildTcpSyn({ ...ends, mss: 1460 });
  frag[6] |= 0x20;
  setHeaderChecksum(frag);
  check(frag, 'MF set');
  const udp = buildTcpSyn({ ...ends, mss: 1460 });
  udp[9] = 17;
  check(udp, 'not TCP');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(3, 0, 2, 4, 0x05, 0xb4) }), 'zero option length');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(3, 1, 2, 4, 0x05, 0xb4) }), 'option length 1');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(1, 1, 1, 2) }), 'kind without a length byte');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(3, 9, 1, 1) }), 'option beyond the header');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(0, 0, 0, 0, 2, 4, 0x05, 0xb4) }), 'MSS after end of list');
  check(buildTcpSyn({ ...ends, options: Uint8Array.of(2, 3, 5, 1) }), 'MSS with a wrong length');
  const lying = buildTcpSyn({ ...ends, mss: 1460 });
  lying[20 + 12] = 0xf0; // data offset 60 > segment
  check(lying, 'data offset beyond the segment');
  const short = buildTcpSyn({ ...ends, mss: 1460 });
  check(short.subarray(0, 30), 'truncated buffer');
  assert.equal(clampTcpMss(buildTcpSyn({ ...ends, mss: 1460 }), Number.NaN), false);
});

// Option lists mixing NOP, MSS, window scale, SACK-permitted and timestamps in any order.
const option = fc.oneof(
  fc.constant([1]),
  fc.integer({ min: 0, max: 0xffff }).map((m) => [2, 4, m >> 8, m & 0xff]),
  fc.integer({ min: 0, max: 14 }).map((s) => [3, 3, s]),
  fc.constant([4, 2]),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((t) => [8, 10, ...t]),
);
const syn = fc.record({
  src: ipv4,
  dst: ipv4,
  srcPort: fc.integer({ min: 0, max: 0xffff }),
  dstPort: fc.integer({ min: 0, max: 0xffff }),
  seq: fc.nat(),
  flags: fc.integer({ min: 0, max: 255 }),
  options: fc.array(option, { maxLength: 8 }).map((os) => Uint8Array.from(os.flat().slice(0, 40))),
  payload: fc.uint8Array({ maxLength: 9 }),
});

/** Reference walk: the MSS values of every well-formed MSS option before the list ends or breaks. */
function allMss(options: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < options.length;) {
    if (options[i] === 0) break;
    if (options[i] === 1) i++;
    else if (i + 1 >= options.length || options[i + 1] < 2 || i + options[i + 1] > options.length) break;
    else {
      if (options[i] === 2 && options[i + 1] === 4) out.push((options[i + 2] << 8) | options[i + 3]);
      i += options[i + 1];
    }
  }
  return out;
}

function checkClamp(s: TcpSegmentOptions & { flags: number; options: Uint8Array }, max: number): void {
  const p = buildTcpSegment(s);
  const padded = new Uint8Array((s.options.length + 3) & ~3);
  padded.set(s.options);
  const mss = allMss(padded);
  const changed = clampTcpMss(p, max);
  assert.equal(changed, (s.flags & TCP_SYN) !== 0 && mss.some((m) => m > max));
  assert.ok(tcpChecksumOk(p) && naiveTcpOk(p));
  const after = allMss(p.subarray(40, 20 + (p[32] >> 4) * 4));
  assert.deepEqual(after, changed ? mss.map((m) => Math.min(m, max)) : mss);
}

test('clamping keeps the checksum valid and lowers exactly the MSS above the limit (property)', () => {
  fc.assert(fc.property(syn, fc.integer({ min: 0, max: 0xffff }), (s, max) => checkClamp(s, max)));
});

test('garbage option lists: clamping stays in bounds and keeps the checksum valid (property)', () => {
  // Well-formed options interleaved with random bytes: malformed tails, odd alignments, and MSS
  // options that the walker does or does not reach.
  const token = fc.oneof(
    { weight: 3, arbitrary: option },
    { weight: 1, arbitrary: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 3 }) },
  );
  const garbage = fc.record({ s: syn, tokens: fc.array(token, { maxLength: 10 }) }).map(({ s, tokens }) => ({
    ...s,
    flags: s.flags | TCP_SYN,
    options: Uint8Array.from(tokens.flat().slice(0, 40)),
  }));
  fc.assert(
    fc.property(garbage, fc.integer({ min: 0, max: 0xffff }), (s, max) => checkClamp(s, max)),
    { numRuns: 300 },
  );
});

test('clampTcpMss never throws on arbitrary bytes and never breaks a valid checksum (property)', () => {
  const ipLike = fc.uint8Array({ minLength: 0, maxLength: 90 }).map((b) => {
    // Steer toward IPv4/TCP SYNs with plausible lengths so the option walker runs.
    if (b.length >= 20) {
      b[0] = 0x45;
      b[2] = 0;
      b[3] = b.length;
      b[6] &= 0x40;
      b[7] = 0;
      b[9] = PROTO_TCP;
      if (b.length >= 40) b[33] |= TCP_SYN;
    }
    return b;
  });
  fc.assert(
    fc.property(ipLike, fc.integer({ min: -10, max: 70000 }), (b, max) => {
      const before = b.slice();
      const okBefore = tcpChecksumOk(b);
      const changed = clampTcpMss(b, max);
      if (!changed) assert.deepEqual(b, before);
      else {
        assert.equal(tcpChecksumOk(b), okBefore);
        let diff = 0;
        for (let i = 0; i < b.length; i++) if (b[i] !== before[i]) diff++;
        assert.ok(diff > 0 && diff <= 40);
      }
    }),
  );
});

// UDP GSO super-packets the datapath writes to its TUN (native/src/uso.c): runs of group ESP in UDP
// (written by the executor straight into the run: the slot) and runs of forwarded UDP datagrams
// (decrypted ones). Checked by the round trip through the datapath's own kernel-style
// segmentation (vnetFrame, checked against a model in gso.test.ts): what the kernel makes of the
// frames must be exactly the packets given, in order; for forwarded datagrams byte for byte, since
// they go on to the terminals as they are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { NativeBinding } from '../../src/native/binding.js';
import { checksum, hex, ipv4, nativeOrSkip, sum16, v4 } from './support.js';
import { ipv6, withChecksum6 } from './support6.js';

const A4 = '10.1.0.10';
const B4 = '10.2.0.10';
const A6 = '2001:db8:1::10';
const B6 = '2001:db8:2::10';

/** A UDP datagram, its checksum valid (or 0, or corrupt). */
function udp(
  family: 4 | 6,
  o: { sport: number; dport: number; size: number; id: number; fill: number; sum: 'ok' | 'zero' | 'bad' },
  frag = false,
): Uint8Array {
  const u = new Uint8Array(8 + o.size);
  u.set([o.sport >> 8, o.sport & 0xff, o.dport >> 8, o.dport & 0xff, u.length >> 8, u.length & 0xff]);
  for (let i = 8; i < u.length; i++) u[i] = (o.fill + i * 7) & 0xff;
  if (family === 6) {
    withChecksum6(A6, B6, 17, u, 6);
    // A computed 0 goes out as 0xffff (RFC 8200 8.1); 0 itself is "none", which IPv6 forbids.
    if (u[6] === 0 && u[7] === 0) u[6] = u[7] = 0xff;
    if (o.sum === 'zero') u[6] = u[7] = 0;
    if (o.sum === 'bad') u[8] ^= 1;
    return ipv6({ src: A6, dst: B6, proto: 17, payload: u });
  }
  if (o.sum !== 'zero') {
    const pseudo = new Uint8Array([...v4(A4), ...v4(B4), 0, 17, u.length >> 8, u.length & 0xff]);
    const c = checksum(u, 0, u.length, sum16(pseudo)) || 0xffff;
    u[6] = c >> 8;
    u[7] = c & 0xff;
    if (o.sum === 'bad') u[8] ^= 1;
  }
  return ipv4({ src: A4, dst: B4, proto: 17, payload: u, id: o.id & 0xffff, df: true, mf: frag });
}

/** What the kernel makes of the frames the datapath writes: every packet, in order. */
function expand(n: NativeBinding, frames: Uint8Array[]): Uint8Array[] {
  return frames.flatMap((f) => {
    if (f[1] === 0) return [f.subarray(10)];
    assert.equal(f[0], 1, 'NEEDS_CSUM');
    assert.equal(f[1], 5, 'GSO_UDP_L4');
    const segs = n.vnetFrame(f);
    assert.ok(segs, 'a frame the kernel can segment');
    return segs;
  });
}

describe('UDP GSO super-packets written to the TUN', () => {
  it('forwarded datagrams: the kernel gives back exactly the datagrams, in order; only whole runs coalesce', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const item = fc.record({
      flow: fc.integer({ min: 0, max: 1 }),
      short: fc.boolean(),
      sum: fc.constantFrom<'ok' | 'zero' | 'bad'>('ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'zero', 'bad'),
      idJump: fc.boolean(),
      frag: fc.integer({ min: 0, max: 15 }),
    });
    fc.assert(
      fc.property(
        fc.constantFrom<4 | 6>(4, 6),
        fc.integer({ min: 1, max: 1400 }),
        fc.array(item, { minLength: 1, maxLength: 90 }),
        (family, size, items) => {
          const ids = [100, 5000];
          const input = items.map((x, i) => {
            ids[x.flow] += x.idJump && i % 5 === 0 ? 3 : 1;
            return udp(
              family,
              {
                sport: 4000 + x.flow,
                dport: 53,
                size: x.short ? Math.max(1, size >> 1) : size,
                id: ids[x.flow],
                fill: i,
                sum: x.sum,
              },
              family === 4 && x.frag === 0,
            );
          });
          const frames = n.usoCoalesce(input, true);
          assert.deepEqual(expand(n, frames).map(hex), input.map(hex));
        },
      ),
      { numRuns: 150 },
    );
    // A clean stream of one flow: one super-packet per 64 datagrams.
    for (const family of [4, 6] as const) {
      const stream = Array.from({ length: 100 }, (_, i) =>
        udp(family, { sport: 4000, dport: 53, size: 36, id: 7 + i, fill: i, sum: 'ok' }),
      );
      const frames = n.usoCoalesce(stream, true);
      assert.deepEqual(
        frames.map((f) => f[1]),
        [5, 5],
      );
      assert.deepEqual(expand(n, frames).map(hex), stream.map(hex));
    }
    // IPv6 datagrams whose checksum computes to 0: sent as 0xffff they coalesce; sent as 0 ("none",
    // which IPv6 forbids) they pass alone, as they are, for the terminal to drop.
    for (const field of [0xffff, 0]) {
      const stream = Array.from({ length: 3 }, (_, i) => {
        const p = udp(6, { sport: 4000, dport: 53, size: 36, id: 0, fill: i, sum: 'ok' });
        const c = (p[46] << 8) | p[47];
        const w = ((p[48] << 8) | p[49]) + (c === 0xffff ? 0 : c); // the data now sums to 0xffff
        const word = (w & 0xffff) + (w >> 16);
        [p[48], p[49], p[46], p[47]] = [word >> 8, word & 0xff, field >> 8, field & 0xff];
        return p;
      });
      const frames = n.usoCoalesce(stream, true);
      assert.deepEqual(expand(n, frames).map(hex), stream.map(hex));
      assert.equal(frames.length, field === 0 ? 3 : 1);
    }
  });

  it('group ESP written at the slot: runs of equal sizes (tiny ones too) come back as given but id and checksum', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    // What the kernel rewrites in ESP runs: the IPv4 id and header checksum, the UDP checksum.
    const norm = (p: Uint8Array) => {
      const c = p.slice();
      if (c[0] >> 4 === 4) {
        c[4] = c[5] = c[10] = c[11] = 0;
        c[26] = c[27] = 0;
      } else {
        c[46] = c[47] = 0;
      }
      return hex(c);
    };
    fc.assert(
      fc.property(
        fc.constantFrom<4 | 6>(4, 6),
        fc.integer({ min: 1, max: 1500 }),
        fc.array(fc.record({ short: fc.boolean(), ttl: fc.integer({ min: 0, max: 6 }) }), {
          minLength: 1,
          maxLength: 140,
        }),
        (family, size, items) => {
          const input = items.map((x, i) => {
            const s = x.short ? Math.max(1, size >> 2) : size;
            const p = udp(family, { sport: 4500, dport: 4500, size: s, id: i, fill: i * 3, sum: 'zero' });
            if (x.ttl === 0) p[family === 4 ? 8 : 7] = 9; // another header ends a run
            return p;
          });
          const frames = n.usoCoalesce(input, false);
          assert.ok(frames.length <= input.length);
          assert.deepEqual(expand(n, frames).map(norm), input.map(norm));
        },
      ),
      { numRuns: 150 },
    );
  });
});

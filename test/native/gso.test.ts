// GSO segmentation and checksum completion of TUN frames (virtio_net_hdr + packet), through the
// addon's vnetFrame hook: the same code the datapath's reader threads run on every frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checksum, ipHeaderOk, nativeOrSkip, sum16, tcp, tcpOk, tcpPseudo } from './support.js';
import { ipv6, pseudo6, upperChecksumOk6 } from './support6.js';

const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;
const NEEDS_CSUM = 1;

function vnet(o: {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}): Uint8Array {
  const h = new Uint8Array(10);
  const dv = new DataView(h.buffer);
  h[0] = o.flags ?? 0;
  h[1] = o.gsoType ?? 0;
  // Legacy virtio_net_hdr: host byte order (little-endian on the machines we run on).
  dv.setUint16(2, o.hdrLen ?? 0, true);
  dv.setUint16(4, o.gsoSize ?? 0, true);
  dv.setUint16(6, o.csumStart ?? 0, true);
  dv.setUint16(8, o.csumOffset ?? 0, true);
  return h;
}

const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off);

/** A TCP/IPv4 super-packet as the kernel hands it over: checksum field = pseudo-header sum. */
function superV4(payloadLen: number, flags: number, options = new Uint8Array(0)): Uint8Array {
  const payload = new Uint8Array(payloadLen).map((_, i) => (i * 13 + 5) & 0xff);
  const p = tcp({
    src: '10.1.0.1',
    dst: '10.2.0.1',
    sport: 5001,
    dport: 40000,
    seq: 0xfffff000,
    ack: 99,
    flags,
    options,
    payload,
    id: 0xfff0,
  });
  const t = (p[0] & 15) * 4;
  const partial = tcpPseudo('10.1.0.1', '10.2.0.1', p.length - t);
  p[t + 16] = partial >> 8;
  p[t + 17] = partial & 0xff;
  return p;
}

function tcp6Ok(p: Uint8Array): boolean {
  const len = (p[4] << 8) | p[5];
  const ph = cat(p.subarray(8, 40), Uint8Array.of(0, 0, len >> 8, len & 0xff, 0, 0, 0, 6));
  return checksum(p, 40, len, sum16(ph)) === 0;
}

function superV6(payloadLen: number, flags: number): Uint8Array {
  const payload = new Uint8Array(payloadLen).map((_, i) => (i * 7) & 0xff);
  const t = new Uint8Array(20 + payloadLen);
  t[1] = 80;
  t[3] = 81;
  new DataView(t.buffer).setUint32(4, 1000);
  t[12] = 5 << 4;
  t[13] = flags;
  t.set(payload, 20);
  const ip = new Uint8Array(40);
  ip[0] = 0x60;
  ip[4] = t.length >> 8;
  ip[5] = t.length & 0xff;
  ip[6] = 6;
  ip[7] = 64;
  ip[8] = 0xfd;
  ip[23] = 1;
  ip[24] = 0xfd;
  ip[39] = 2;
  return cat(ip, t);
}

describe('native GSO segmentation', () => {
  it('segments a TCP/IPv4 super-packet into valid packets (property)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20000 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.constantFrom(0x10, 0x18, 0x19, 0x98, 0x11),
        fc.boolean(),
        (len, mss, flags, withOptions) => {
          const options = withOptions ? Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2) : new Uint8Array(0);
          const sp = superV4(len, flags, options);
          const hl = 20 + 20 + (withOptions ? 12 : 0);
          const segs = n.vnetFrame(
            cat(
              vnet({
                flags: NEEDS_CSUM,
                gsoType: GSO_TCPV4 | (flags & 0x80 ? GSO_ECN : 0),
                hdrLen: hl,
                gsoSize: mss,
                csumStart: 20,
                csumOffset: 16,
              }),
              sp,
            ),
          );
          assert.ok(segs);
          assert.equal(segs.length, len === 0 ? 1 : Math.ceil(len / mss));
          const payload: number[] = [];
          segs.forEach((s, i) => {
            const last = i === segs.length - 1;
            assert.ok(ipHeaderOk(s), `IP checksum of segment ${i}`);
            assert.ok(tcpOk(s), `TCP checksum of segment ${i}`);
            assert.equal((s[2] << 8) | s[3], s.length);
            assert.equal(s.length - hl, last ? len - i * mss : mss);
            assert.equal((s[4] << 8) | s[5], (0xfff0 + i) & 0xffff, 'IP id increments');
            assert.equal(u32(s, 24), (0xfffff000 + i * mss) >>> 0, 'TCP seq advances (and wraps)');
            const f = s[33];
            assert.equal(f & 0x09, last ? flags & 0x09 : 0, 'FIN/PSH only on the last segment');
            assert.equal(f & 0x80, i === 0 ? flags & 0x80 : 0, 'CWR only on the first');
            assert.equal(f & 0x10, flags & 0x10);
            assert.deepEqual(
              [...s.subarray(40, hl)],
              [...options, ...new Array((4 - (options.length % 4)) % 4).fill(0)],
            );
            payload.push(...s.subarray(hl));
          });
          assert.deepEqual(Uint8Array.from(payload), sp.subarray(hl));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('segments a TCP/IPv6 super-packet', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const sp = superV6(5000, 0x19);
    const segs = n.vnetFrame(cat(vnet({ gsoType: GSO_TCPV6, hdrLen: 60, gsoSize: 1400 }), sp));
    assert.ok(segs);
    assert.equal(segs.length, 4);
    segs.forEach((s, i) => {
      assert.ok(tcp6Ok(s), `segment ${i}`);
      assert.equal((s[4] << 8) | s[5], s.length - 40);
      assert.equal(u32(s, 44), 1000 + i * 1400);
    });
    assert.equal(segs[3][53] & 0x09, 0x09);
    assert.equal(segs[0][53] & 0x09, 0);
  });

  it('completes a partial checksum (NEEDS_CSUM) of a single packet', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const p = superV4(333, 0x18);
    assert.ok(!tcpOk(p));
    const out = n.vnetFrame(cat(vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 16 }), p));
    assert.ok(out && out.length === 1);
    assert.ok(tcpOk(out[0]));
    // Without the flag the packet passes unchanged.
    const same = n.vnetFrame(cat(vnet({}), p));
    assert.deepEqual([...same![0]], [...p]);
  });

  it('a UDP checksum that computes to 0 is completed as 0xffff, as the kernel does (0 means none)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    // An IPv6 UDP datagram from a terminal behind a veth (checksum offloaded), whose data is made
    // to sum to 0xffff: its checksum computes to 0, which IPv6 receivers would drop as "none".
    const u = new Uint8Array(40).map((_, i) => (i * 29 + 3) & 0xff);
    u.set([0x0f, 0xa0, 0, 53, 0, u.length, 0, 0]);
    const p = ipv6({ src: '2001:db8:1::10', dst: '2001:db8:2::10', proto: 17, payload: u });
    const partial = pseudo6(p, u.length, 17);
    const w = ((p[48] << 8) | p[49]) + checksum(p, 40, u.length, partial);
    const word = (w & 0xffff) + (w >> 16);
    [p[48], p[49], p[46], p[47]] = [word >> 8, word & 0xff, partial >> 8, partial & 0xff];
    const zeroed = p.slice();
    zeroed[46] = zeroed[47] = 0;
    assert.equal(checksum(zeroed, 40, u.length, partial), 0, 'the checksum computes to 0');
    const out = n.vnetFrame(cat(vnet({ flags: NEEDS_CSUM, csumStart: 40, csumOffset: 6 }), p));
    assert.ok(out && out.length === 1);
    assert.equal((out[0][46] << 8) | out[0][47], 0xffff);
    assert.ok(upperChecksumOk6(out[0], 40, 17));
  });

  it('sums like RFC 1071 over any length and alignment (the wide loop included; property)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 9000 }),
        fc.integer({ min: 0, max: 70 }),
        fc.integer({ min: 0, max: 0xffff }),
        (bytes, startPick, seed) => {
          // The field at csum_start + 0 holds a seed (as the pseudo-header sum would); the rest is summed.
          const start = Math.min(startPick, bytes.length - 2);
          const p = bytes.slice();
          p[start] = seed >> 8;
          p[start + 1] = seed & 0xff;
          const out = n.vnetFrame(cat(vnet({ flags: NEEDS_CSUM, csumStart: start, csumOffset: 0 }), p));
          assert.ok(out && out.length === 1);
          // A computed 0 is written as 0xffff (skb_checksum_help does the same).
          const want = checksum(p, start, p.length - start) || 0xffff;
          assert.equal((out[0][start] << 8) | out[0][start + 1], want);
        },
      ),
      { numRuns: 300, examples: [[Uint8Array.of(0, 0, 0xff, 0xff), 0, 0]] },
    );
  });

  it('rejects malformed frames without reading out of bounds (property)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    assert.equal(n.vnetFrame(new Uint8Array(5)), null);
    assert.equal(
      n.vnetFrame(cat(vnet({ flags: NEEDS_CSUM, csumStart: 100, csumOffset: 16 }), superV4(10, 0x10))),
      null,
    );
    assert.equal(n.vnetFrame(cat(vnet({ gsoType: GSO_TCPV4, gsoSize: 0 }), superV4(10, 0x10))), null);
    assert.equal(n.vnetFrame(cat(vnet({ gsoType: 3, gsoSize: 100 }), superV4(1000, 0x10))), null, 'UFO is not offered');
    const truncated = superV4(3000, 0x10).subarray(0, 2000);
    assert.equal(n.vnetFrame(cat(vnet({ gsoType: GSO_TCPV4, gsoSize: 500 }), truncated)), null, 'tot_len must match');
    fc.assert(
      fc.property(
        fc.record({
          flags: fc.integer({ min: 0, max: 3 }),
          gsoType: fc.constantFrom(0, 1, 3, 4, 0x81, 0x84, 5),
          gsoSize: fc.integer({ min: 0, max: 70000 }).map((x) => x & 0xffff),
          csumStart: fc.integer({ min: 0, max: 0xffff }),
          csumOffset: fc.integer({ min: 0, max: 0xffff }),
        }),
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.integer({ min: 0, max: 4000 }).map((l) => superV4(l, 0x10)),
        ),
        fc.integer({ min: 0, max: 64 }),
        (h, body, cut) => {
          const frame = cat(vnet(h), body.subarray(0, Math.max(0, body.length - cut)));
          const r = n.vnetFrame(frame);
          assert.ok(r === null || Array.isArray(r));
        },
      ),
      { numRuns: 1500 },
    );
  });
});

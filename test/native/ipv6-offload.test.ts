// The datapath's offloads over IPv6 (native/src/gro.c, uso.c, gso.c): userspace GRO of decrypted
// TCP/IPv6 segments into GSO_TCPV6 frames, coalescing of group ESP in UDP over IPv6 into
// GSO_UDP_L4 super-packets (the UDP checksum over the v6 pseudo-header left to the kernel), and
// the in-place split of such super-packets read from the outside. Each is checked by the round
// trip through the datapath's own kernel-style segmentation (vnetFrame, checked in gso.test.ts)
// or through the executor.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hex, nativeOrSkip, newExecutor, randomKey } from './support.js';
import { ipv6, upperChecksumOk6, withChecksum6 } from './support6.js';

const A = '2001:db8:1::10';
const B = '2001:db8:2::10';

/** The data segments of one TCP/IPv6 flow, mss bytes each (the last shorter), optional PSH/FIN, corrupt ones. */
function flow6(
  port: number,
  o: { mss: number; total: number; seq: number; psh: number[]; bad: number[]; fin: boolean },
): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < o.total; off += o.mss, i++) {
    const n = Math.min(o.mss, o.total - off);
    const t = new Uint8Array(32 + n);
    const seq = (o.seq + off) >>> 0;
    let flags = 0x10 | (o.psh.includes(i) ? 0x08 : 0);
    if (off + n >= o.total && o.fin) flags |= 0x01;
    t.set([
      port >> 8,
      port & 0xff,
      0x14,
      0x51,
      seq >>> 24,
      (seq >> 16) & 0xff,
      (seq >> 8) & 0xff,
      seq & 0xff,
      0,
      0,
      0,
      77,
      0x80,
      flags,
      1,
      0,
    ]);
    t.set([1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9], 20);
    for (let k = 0; k < n; k++) t[32 + k] = (off + k + port) & 0xff;
    const p = ipv6({ src: A, dst: B, proto: 6, payload: withChecksum6(A, B, 6, t, 16) });
    if (o.bad.includes(i)) p[p.length - 1] ^= 0xff;
    out.push(p);
  }
  return out;
}

describe('native offloads over IPv6', () => {
  it('GRO: TCP/IPv6 segments become GSO_TCPV6 frames that segment back into exactly the same packets (property)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const bulk = n.groCoalesce(flow6(40000, { mss: 1388, total: 100_000, seq: 1, psh: [], bad: [], fin: false }));
    assert.ok(bulk.length <= 3, `${bulk.length} frames`);
    assert.equal(bulk[0][0], 1, 'NEEDS_CSUM');
    assert.equal(bulk[0][1], 4, 'GSO_TCPV6');
    const flowArb = fc.record({
      mss: fc.integer({ min: 1, max: 1400 }),
      total: fc.integer({ min: 1, max: 12_000 }),
      seq: fc.integer({ min: 0, max: 0xffffffff }),
      psh: fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 2 }),
      bad: fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 2 }),
      fin: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(flowArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 300 }),
        (flows, picks) => {
          const queues = flows.map((f, i) => flow6(40000 + i, f));
          const input: Uint8Array[] = [];
          for (let k = 0; queues.some((q) => q.length); k++) {
            const live = queues.filter((q) => q.length);
            const next = live[(picks[k] ?? 0) % live.length].shift();
            if (next) input.push(next);
          }
          const out: Uint8Array[] = [];
          for (const f of n.groCoalesce(input)) {
            if (f[1] === 0) out.push(f.subarray(10));
            else {
              assert.equal(f[1], 4);
              const segs = n.vnetFrame(f);
              assert.ok(segs, 'the kernel would accept the frame');
              out.push(...segs);
            }
          }
          const byFlow = (list: Uint8Array[]) => {
            const m = new Map<number, string[]>();
            for (const p of list) m.set((p[40] << 8) | p[41], [...(m.get((p[40] << 8) | p[41]) ?? []), hex(p)]);
            return m;
          };
          assert.deepEqual(byFlow(out), byFlow(input));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('USO: the ESP of one TCP super-packet over IPv6 leaves as one GSO_UDP_L4 frame; the split reads it back', (t) => {
    const n = nativeOrSkip(t);
    const tx = newExecutor(t);
    const rx = newExecutor(t);
    if (!n || !tx || !rx) return;
    const K = randomKey(4);
    tx.installTxSa({ spi: 0x4444, vpnId: 1, epoch: 1, ...K, nextSeq: 1n });
    tx.installPath({ local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G2' });
    rx.installRxSa({ spi: 0x4444, vpnId: 1, epoch: 1, sender: 'G1', ...K });
    rx.installPath({ local: B, remote: A, action: 'encrypt', vpnId: 1, peer: 'G1' });
    const plain = flow6(40001, { mss: 1300, total: 1300 * 20 + 500, seq: 9, psh: [], bad: [], fin: false });
    const esp = plain.map((p) => {
      const v = tx.process('inside', p, 1);
      assert.equal(v.kind, 'forward');
      return v.kind === 'forward' ? v.bytes : new Uint8Array(0);
    });
    const frames = n.usoCoalesce(esp, false);
    assert.equal(frames.length, 1, 'one super-packet');
    const f = frames[0];
    assert.equal(f[0], 1, 'NEEDS_CSUM');
    assert.equal(f[1], 5, 'GSO_UDP_L4');
    const dv = new DataView(f.buffer, f.byteOffset);
    assert.equal(dv.getUint16(2, true), 48, 'hdr_len: IPv6 + UDP');
    assert.equal(dv.getUint16(4, true), esp[0].length - 48, 'gso_size: one ESP packet');
    assert.equal(dv.getUint16(6, true), 40, 'csum_start');
    // What the kernel makes of it: the ESP packets as the executor wrote them, UDP checksums included.
    const segs = n.vnetFrame(f);
    assert.ok(segs);
    assert.deepEqual(segs.map(hex), esp.map(hex));
    // The receiving gateway splits it where it lies and decrypts every segment.
    const split = n.espSplit(f);
    assert.ok(split);
    assert.equal(split.length, esp.length);
    split.forEach((s, i) => {
      const v = rx.process('outside', s, 2);
      assert.equal(v.kind === 'forward' && hex(v.bytes), hex(plain[i]), `segment ${i}`);
    });
    // Another header (here the hop limit) ends a run; a run of one is a plain frame.
    const other = tx.process('inside', ipv6({ src: A, dst: B, proto: 17, payload: new Uint8Array(10), hop: 5 }), 3);
    assert.equal(other.kind, 'forward');
    if (other.kind !== 'forward') return;
    const mixed = n.usoCoalesce([esp[0], esp[1], other.bytes, esp[2]], false);
    assert.deepEqual(
      mixed.map((m) => m[1]),
      [5, 0, 0],
    );
    assert.ok(upperChecksumOk6(mixed[1].subarray(10), 40, 17));
  });
});

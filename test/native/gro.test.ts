// Userspace GRO of forwarded TCP segments (native/src/gro.c), through the addon's groCoalesce
// hook: whatever it coalesces, the kernel's segmentation of the frames it writes (reproduced by
// vnetFrame, the datapath's own GSO code, checked in gso.test.ts) must give back exactly the
// packets that went in, in order within each flow; segments with bad checksums pass untouched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hex, nativeOrSkip, tcp, tcpOk } from './support.js';

interface Seg {
  flow: number;
  bytes: Uint8Array;
}

function flowSegments(
  flow: number,
  o: { mss: number; total: number; seq: number; psh: number[]; tsEvery: number; badAt: number[]; fin: boolean },
): Seg[] {
  const out: Seg[] = [];
  let off = 0;
  let i = 0;
  while (off < o.total || (o.total === 0 && i === 0)) {
    const n = Math.min(o.mss, o.total - off);
    const payload = new Uint8Array(n).map((_, k) => (off + k + flow * 7) & 0xff);
    // A timestamp option that changes every `tsEvery` segments (changed options stop a merge).
    const ts = Math.floor(i / o.tsEvery);
    const options = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, ts & 0xff, 0, 0, 0, 9);
    let flags = 0x10 | (o.psh.includes(i) ? 0x08 : 0);
    const last = off + n >= o.total;
    if (last && o.fin) flags |= 0x01;
    const p = tcp({
      src: '10.1.0.2',
      dst: '10.2.0.2',
      sport: 40000 + flow,
      dport: 5201,
      seq: (o.seq + off) >>> 0,
      ack: 77,
      flags,
      options,
      payload,
      id: (1000 * flow + i) & 0xffff,
    });
    if (o.badAt.includes(i)) p[p.length - 1] ^= 0xff; // payload changed after the checksum: invalid
    out.push({ flow, bytes: p });
    off += n;
    i++;
    if (o.total === 0) break;
  }
  return out;
}

describe('native GRO (coalescing forwarded TCP segments)', () => {
  it('coalesces a bulk flow into GSO frames of up to 64 KB', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const segs = flowSegments(0, { mss: 1388, total: 200_000, seq: 1, psh: [], tsEvery: 1000, badAt: [], fin: false });
    const frames = n.groCoalesce(segs.map((s) => s.bytes));
    assert.ok(frames.length <= 5, `${segs.length} segments -> ${frames.length} frames`);
    const f = frames[0];
    assert.equal(f[0], 1, 'NEEDS_CSUM');
    assert.equal(f[1], 1, 'GSO TCPV4');
    assert.equal(new DataView(f.buffer, f.byteOffset).getUint16(4, true), 1388, 'gso_size');
    assert.equal(new DataView(f.buffer, f.byteOffset).getUint16(2, true), 20 + 32, 'hdr_len');
  });

  it('round trip: GRO then the kernel-style segmentation gives back every packet, in order (property)', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    const flowArb = fc.record({
      mss: fc.integer({ min: 1, max: 1460 }),
      total: fc.integer({ min: 0, max: 20_000 }),
      seq: fc.integer({ min: 0, max: 0xffffffff }),
      psh: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 3 }),
      tsEvery: fc.integer({ min: 1, max: 50 }),
      badAt: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 2 }),
      fin: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(flowArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 400 }),
        (flows, picks) => {
          const queues = flows.map((f, i) => flowSegments(i, f));
          // Interleave the flows in a random order that keeps each flow's own order.
          const input: Seg[] = [];
          let k = 0;
          while (queues.some((q) => q.length)) {
            const live = queues.filter((q) => q.length);
            input.push(live[(picks[k++] ?? 0) % live.length].shift()!);
          }
          const frames = n.groCoalesce(input.map((s) => s.bytes));
          const out: Uint8Array[] = [];
          for (const f of frames) {
            if (f[1] === 0) {
              assert.equal(f[0], 0, 'a plain frame needs no checksum help');
              out.push(f.subarray(10));
            } else {
              const segs = n.vnetFrame(f);
              assert.ok(segs, 'the kernel would accept the frame');
              out.push(...segs);
            }
          }
          const byFlow = (list: Uint8Array[]) => {
            const m = new Map<number, string[]>();
            for (const p of list) {
              const port = (p[20] << 8) | p[21];
              m.set(port, [...(m.get(port) ?? []), hex(p)]);
            }
            return m;
          };
          assert.deepEqual(byFlow(out), byFlow(input.map((s) => s.bytes)));
          // Bad checksums stay bad: nothing was recomputed over a corrupt segment.
          const bad = input.filter((s) => !tcpOk(s.bytes)).length;
          assert.equal(out.filter((p) => !tcpOk(p)).length, bad);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('passes non-TCP, fragments and malformed packets through unchanged', (t) => {
    const n = nativeOrSkip(t);
    if (!n) return;
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 20 }), (pkts) => {
        const frames = n.groCoalesce(pkts);
        assert.deepEqual(
          frames.map((f) => hex(f)),
          pkts.map((p) => '00'.repeat(10) + hex(p)),
        );
      }),
      { numRuns: 300 },
    );
  });
});

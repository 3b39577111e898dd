// IPv4 fragmentation (RFC 791) of the reference executor: fragments reassemble to the packet,
// carry at most the data asked for at offsets of 8 bytes, and only copied options after the first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fragmentIpv4 } from '../../../src/core/packet/fragment.js';
import { parseIpv4 } from '../../../src/core/packet/ipv4.js';
import { ipv4, reassemble } from '../../native/support.js';

test('fragments reassemble to the packet, each within the size asked, at multiples of 8 (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.integer({ min: 1, max: 200 }).map((n) => n * 8),
      fc.boolean(),
      fc.integer({ min: 0, max: 100 }),
      (payload, maxData, df, startBlocks) => {
        // A whole datagram, or itself a fragment (MF, at an offset): the pieces continue its offsets.
        const whole = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, payload, df, id: 0x4242 });
        const p =
          startBlocks === 0
            ? whole
            : ipv4({
                src: '10.0.0.1',
                dst: '10.0.0.2',
                proto: 17,
                payload,
                df,
                id: 0x4242,
                mf: true,
                fragOffset: startBlocks,
              });
        const frags = fragmentIpv4(p, maxData);
        assert.equal(frags.length, Math.ceil(payload.length / maxData));
        for (const [i, f] of frags.entries()) {
          const h = parseIpv4(f);
          assert.ok(h.ok, 'a valid IPv4 packet');
          assert.ok(h.value.payload.length <= maxData);
          assert.equal(h.value.header.df, df);
          assert.equal(h.value.header.id, 0x4242);
          assert.equal(h.value.header.mf, i < frags.length - 1 || startBlocks > 0);
          assert.equal(h.value.header.fragmentOffset, startBlocks * 8 + i * maxData);
        }
        assert.deepEqual(reassemble(frags), p);
      },
    ),
    { numRuns: 300 },
  );
});

test('options: copied ones in every fragment, the others only in the first (NOPs after it)', () => {
  // Loose source route (0x83, copied) then record route (7, not copied), then EOL padding.
  const opts = Uint8Array.from([0x83, 7, 4, 10, 0, 0, 1, 7, 7, 4, 0, 0, 0, 0, 0, 0]);
  const p = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, payload: new Uint8Array(40).fill(3), options: opts });
  const [first, second] = fragmentIpv4(p, 24);
  assert.deepEqual([...first.subarray(20, 36)], [...opts]);
  assert.deepEqual([...second.subarray(20, 36)], [0x83, 7, 4, 10, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  assert.throws(() => fragmentIpv4(p, 12), RangeError);
});

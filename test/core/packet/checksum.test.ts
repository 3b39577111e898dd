// The Internet checksum (RFC 1071) and its incremental update (RFC 1624): a worked example, odd
// lengths, and agreement with a naive implementation on arbitrary data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checksumAdjust, internetChecksum, onesComplementSum } from '../../../src/core/packet/checksum.js';
import { hex, naiveChecksum } from './arbitraries.js';

test('RFC 1071 worked example: sum ddf2, checksum 220d', () => {
  const b = hex('0001 f203 f4f5 f6f7');
  assert.equal(onesComplementSum(b, 0, b.length), 0xddf2);
  assert.equal(internetChecksum(b, 0, b.length), 0x220d);
});

test('odd length pads with a zero byte; offset and initial are honoured', () => {
  const b = hex('ff 0102 03');
  assert.equal(onesComplementSum(b, 1, 3), 0x0402);
  assert.equal(onesComplementSum(b, 1, 3, 0x0100), 0x0502);
  assert.equal(internetChecksum(new Uint8Array(0), 0, 0), 0xffff);
});

test('matches a naive implementation, and data with its checksum sums to zero (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 3 }), (data, pad) => {
      const buf = new Uint8Array(pad + data.length);
      buf.set(data, pad);
      const c = internetChecksum(buf, pad, data.length);
      assert.equal(c, naiveChecksum(data));
      const withSum = new Uint8Array(((data.length + 1) & ~1) + 2);
      withSum.set(data);
      withSum[withSum.length - 2] = c >> 8;
      withSum[withSum.length - 1] = c & 0xff;
      assert.equal(internetChecksum(withSum, 0, withSum.length), 0);
    }),
  );
});

test('checksumAdjust agrees with recomputation (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4, maxLength: 64 }),
      fc.nat(),
      fc.integer({ min: 0, max: 0xffff }),
      (raw, at, word) => {
        const data = raw.subarray(0, raw.length & ~1);
        const i = (at % (data.length / 2)) * 2;
        const before = internetChecksum(data, 0, data.length);
        const old = (data[i] << 8) | data[i + 1];
        data[i] = word >> 8;
        data[i + 1] = word & 0xff;
        const after = internetChecksum(data, 0, data.length);
        const adjusted = checksumAdjust(before, old, word);
        // 0x0000 and 0xffff are the same one's complement value; both verify.
        assert.equal(adjusted % 0xffff, after % 0xffff);
      },
    ),
  );
});

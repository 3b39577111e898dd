// Hostile input: decode returns a Result, never throws, never loops, and whatever it accepts it
// can encode again (so nothing half-valid leaks to the state machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  encodePayloadChain,
  type IkeMessage,
} from '../../../src/ike/message/index.js';
import { buf, messageArb, payloadArb } from './arbitraries.js';

/** Decodes without throwing; if accepted, re-encoding and decoding again is stable. */
function checkDecode(bytes: Uint8Array): boolean {
  const r = decodeMessage(bytes);
  assert.equal(typeof r.ok, 'boolean');
  if (!r.ok) {
    assert.ok(['ike-malformed', 'ike-unsupported-critical', 'ike-bad-major-version'].includes(r.error.code));
    assert.ok(r.error.offset >= 0 && r.error.offset <= bytes.length, r.error.message);
    return false;
  }
  const again = encodeMessage(r.value.message);
  const r2 = decodeMessage(again);
  assert.ok(r2.ok);
  assert.deepStrictEqual(r2.value.message, r.value.message);
  return true;
}

/** Random bytes behind a plausible header, so the payload parsers are reached. */
const plausible = fc
  .record({ next: fc.integer({ min: 0, max: 60 }), rest: buf(0, 300), header: buf(28, 28) })
  .map(({ next, rest, header }) => {
    const out = Buffer.concat([header, rest]);
    out[16] = next;
    out[17] = 0x20;
    out.writeUInt32BE(out.length, 24);
    return out;
  });

test('random bytes, raw or behind a valid header: a Result, never an exception (property)', () => {
  fc.assert(
    fc.property(buf(0, 400), (b) => void checkDecode(b)),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(plausible, (b) => void checkDecode(b)),
    { numRuns: 5000 },
  );
});

test('every truncation of a valid message is refused, with or without the length field fixed (property)', () => {
  fc.assert(
    fc.property(messageArb, (m: IkeMessage) => {
      const bytes = encodeMessage(m);
      for (let k = 0; k < bytes.length; k++) {
        const cut = Buffer.from(bytes.subarray(0, k));
        assert.equal(checkDecode(cut), false, `accepted a truncation to ${k} of ${bytes.length}`);
        if (k >= 28) {
          cut.writeUInt32BE(k, 24); // consistent header: the chain itself must notice
          assert.equal(checkDecode(cut), false, `accepted a truncation to ${k} with a fixed length field`);
        }
      }
    }),
    { numRuns: 150 },
  );
});

test('single-byte mutations of valid messages never throw (property)', () => {
  fc.assert(
    fc.property(messageArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, at, xor) => {
      const bytes = encodeMessage(m);
      bytes[at % bytes.length] ^= xor;
      checkDecode(bytes);
    }),
    { numRuns: 3000 },
  );
});

test('inflated length fields: header length refused; a payload length reaching past the end refused (property)', () => {
  fc.assert(
    fc.property(messageArb, fc.integer({ min: 1, max: 0xffff }), fc.nat(), (m, delta, pick) => {
      const bytes = encodeMessage(m);
      const h = Buffer.from(bytes);
      h.writeUInt32BE(bytes.length + delta, 24);
      assert.equal(checkDecode(h), false);

      // Walk the generic headers to find the payloads, then inflate one of them.
      const starts: number[] = [];
      for (let o = 28; o < bytes.length; o += bytes.readUInt16BE(o + 2)) starts.push(o);
      if (starts.length === 0) return;
      const o = starts[pick % starts.length];
      const p = Buffer.from(bytes);
      const len = p.readUInt16BE(o + 2) + delta;
      if (len > 0xffff) return;
      p.writeUInt16BE(len, o + 2);
      const accepted = checkDecode(p);
      if (len > bytes.length - o) assert.equal(accepted, false);
    }),
    { numRuns: 1000 },
  );
});

test('inner chains: random bytes and mutations never throw (property)', () => {
  fc.assert(
    fc.property(buf(0, 300), fc.integer({ min: 0, max: 255 }), (b, first) => {
      const r = decodePayloadChain(b, first);
      if (r.ok)
        assert.deepStrictEqual(
          decodePayloadChain(encodePayloadChain(r.value).bytes, encodePayloadChain(r.value).firstPayload),
          r,
        );
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(
      fc.array(payloadArb, { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (ps, at, xor) => {
        const { firstPayload, bytes } = encodePayloadChain(ps);
        bytes[at % bytes.length] ^= xor;
        const r = decodePayloadChain(bytes, firstPayload);
        assert.equal(typeof r.ok, 'boolean');
      },
    ),
    { numRuns: 3000 },
  );
});

test('worst cases stay fast: 16,000 tiny payloads, a 64 KiB attribute storm', () => {
  // Many 4-byte unknown payloads: stopped at the payload bound, long before the end.
  const tiny = Buffer.alloc(28 + 4 * 16000);
  tiny.set([0, 0, 0, 0, 0, 0, 0, 1], 0);
  tiny[16] = 200;
  tiny[17] = 0x20;
  tiny.writeUInt32BE(tiny.length, 24);
  for (let o = 28; o < tiny.length; o += 4) tiny.set([200, 0, 0, 4], o);
  let t = process.hrtime.bigint();
  assert.match((decodeMessage(tiny) as { error: { message: string } }).error.message, /more than 64 payloads/);
  assert.ok(process.hrtime.bigint() - t < 50_000_000n);

  // One SA with a single transform full of 4-byte TV attributes (the most items per byte).
  const attrs = 16000;
  const sa = Buffer.alloc(4 + 8 + 8 + 4 * attrs);
  sa.writeUInt16BE(sa.length, 2); // SA generic header, last payload
  sa.writeUInt16BE(8 + 8 + 4 * attrs, 6); // proposal: last, length
  sa.set([1, 1, 0, 1], 8); // #1, IKE, no SPI, 1 transform
  sa.writeUInt16BE(8 + 4 * attrs, 14); // transform: last, length
  sa[16] = 1;
  for (let i = 0; i < attrs; i++) sa.writeUInt16BE(0x800e, 20 + 4 * i);
  const msg = Buffer.concat([Buffer.alloc(28), sa]);
  msg.set([0, 0, 0, 0, 0, 0, 0, 1], 0);
  msg[16] = 33;
  msg[17] = 0x20;
  msg.writeUInt32BE(msg.length, 24);
  t = process.hrtime.bigint();
  const d = decodeMessage(msg);
  assert.ok(d.ok);
  assert.equal(
    d.value.message.payloads[0].kind === 'SA' &&
      d.value.message.payloads[0].proposals[0].transforms[0].attributes.length,
    attrs,
  );
  assert.ok(process.hrtime.bigint() - t < 200_000_000n);
});

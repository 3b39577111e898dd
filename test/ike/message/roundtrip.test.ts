// The IKEv2 message codec round-trips: every payload kind, whole messages and inner payload chains
// decode to what was encoded and re-encode byte for byte (properties); decoded buffers are copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage,
  decodePayloadChain,
  encodeEncryptedPrefix,
  encodeMessage,
  encodePayloadChain,
  type IkeMessage,
  type Payload,
} from '../../../src/ike/message/index.js';
import { headerArb, messageArb, payloadArb, payloadArbs } from './arbitraries.js';

function decodeOk(bytes: Buffer): ReturnType<typeof decodeMessage> & { ok: true } {
  const r = decodeMessage(bytes);
  if (!r.ok) assert.fail(r.error.message);
  return r;
}

for (const [kind, arb] of Object.entries(payloadArbs)) {
  test(`${kind} payload: decode(encode(x)) = x, and re-encodes byte for byte (property)`, () => {
    fc.assert(
      fc.property(headerArb, fc.array(arb, { minLength: 1, maxLength: 3 }), (header, payloads) => {
        const bytes = encodeMessage({ header, payloads });
        const d = decodeOk(bytes);
        assert.deepStrictEqual(d.value.message, { header, payloads });
        assert.deepStrictEqual(encodeMessage(d.value.message), bytes);
      }),
      { numRuns: 150 },
    );
  });
}

test('whole messages, clear and protected: decode(encode(m)) = m, byte-identical re-encoding (property)', () => {
  fc.assert(
    fc.property(messageArb, (m: IkeMessage) => {
      const bytes = encodeMessage(m);
      const d = decodeOk(bytes);
      assert.deepStrictEqual(d.value.message, m);
      assert.deepStrictEqual(encodeMessage(d.value.message), bytes);
      assert.deepStrictEqual(d.value.headerBytes, bytes.subarray(0, 28));
      if (m.encrypted) {
        // The associated data is the message minus the body, and the prefix helper builds exactly it.
        const aad = d.value.associatedData;
        assert.ok(aad);
        assert.deepStrictEqual(Buffer.concat([aad, m.encrypted.body]), bytes);
        assert.deepStrictEqual(encodeEncryptedPrefix(m as Required<IkeMessage>, m.encrypted.body.length), aad);
      } else {
        assert.equal(d.value.associatedData, undefined);
      }
    }),
    { numRuns: 500 },
  );
});

test('inner payload chains: decodePayloadChain(encodePayloadChain(x)) = x (property)', () => {
  fc.assert(
    fc.property(fc.array(payloadArb, { maxLength: 10 }), (payloads: Payload[]) => {
      const { firstPayload, bytes } = encodePayloadChain(payloads);
      const d = decodePayloadChain(bytes, firstPayload);
      if (!d.ok) assert.fail(d.error.message);
      assert.deepStrictEqual(d.value, payloads);
      assert.deepStrictEqual(encodePayloadChain(d.value).bytes, bytes);
    }),
    { numRuns: 300 },
  );
});

test('decoded buffers are copies: changing the datagram afterwards changes nothing', () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const bytes = encodeMessage(m);
      const d = decodeOk(bytes);
      bytes.fill(0x5a);
      assert.deepStrictEqual(d.value.message, m);
    }),
    { numRuns: 100 },
  );
});

// Each refusal names the right notify, the payload and the offset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_MESSAGE_BYTES,
  MAX_PAYLOADS,
  NotifyType,
  PayloadType,
  decodeHeader,
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  notify,
  type IkeDecodeError,
  type IkeHeader,
} from '../../../src/ike/message/index.js';
import { hex } from './arbitraries.js';

const header: IkeHeader = {
  spiI: hex('0102030405060708'),
  spiR: hex('1112131415161718'),
  exchangeType: 37,
  initiator: true,
  response: false,
  higherVersion: false,
  messageId: 7,
};

/** A header for `len` bytes whose first payload is `next`, followed by `rest`. */
function message(next: number, rest: string): Buffer {
  const body = hex(rest);
  const out = encodeMessage({ header, payloads: [] });
  out[16] = next;
  out.writeUInt32BE(28 + body.length, 24);
  return Buffer.concat([out, body]);
}

function refused(r: ReturnType<typeof decodeMessage>): IkeDecodeError {
  if (r.ok) assert.fail('expected a refusal');
  return r.error;
}

test('wrong major version: INVALID_MAJOR_VERSION with the header, for IKEv1 and for v3', () => {
  for (const version of [0x10, 0x30, 0x00]) {
    const m = encodeMessage({ header, payloads: [notify(NotifyType.INITIAL_CONTACT)] });
    m[17] = version;
    const e = refused(decodeMessage(m));
    assert.equal(e.code, 'ike-bad-major-version');
    assert.equal(e.notify, NotifyType.INVALID_MAJOR_VERSION);
    assert.deepStrictEqual(e.header, header);
    assert.equal(e.offset, 17);
  }
});

test('minor version and reserved flag bits are ignored on receipt (RFC 7296 §2.5, §3.1)', () => {
  const m = encodeMessage({ header, payloads: [notify(NotifyType.INITIAL_CONTACT)] });
  m[17] = 0x21;
  m[19] |= 0x07 | 0xc0;
  const d = decodeMessage(m);
  assert.ok(d.ok);
  assert.deepStrictEqual(d.value.message.header, header);
  const h = decodeHeader(m);
  assert.ok(h.ok && h.value.minorVersion === 1 && h.value.nextPayload === PayloadType.N);
});

test('unknown payloads: skipped and kept when not critical, UNSUPPORTED_CRITICAL_PAYLOAD when critical', () => {
  const notCritical = message(200, '29 00 0006 beef | 00 00 0008 0000 4000');
  const d = decodeMessage(notCritical);
  if (!d.ok) assert.fail(d.error.message);
  assert.deepStrictEqual(d.value.message.payloads, [
    { kind: 'unknown', type: 200, critical: false, data: hex('beef') },
    notify(NotifyType.INITIAL_CONTACT),
  ]);
  const critical = message(41, 'c8 00 0008 0000 4000 | 00 80 0006 beef');
  const e = refused(decodeMessage(critical));
  assert.equal(e.code, 'ike-unsupported-critical');
  assert.equal(e.notify, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD);
  assert.equal(e.payloadType, 200); // the notify's data
  assert.equal(e.offset, 36);
  assert.deepStrictEqual(e.header, header);
});

test('the critical bit on a known payload is ignored', () => {
  const d = decodeMessage(message(41, '00 80 0008 0000 4000'));
  assert.ok(d.ok);
  assert.deepStrictEqual(d.value.message.payloads, [notify(NotifyType.INITIAL_CONTACT)]);
});

const malformedCases: [string, Buffer, number, RegExp][] = [
  ['short datagram', hex('0102'), 0, /needs 28/],
  [
    'header length below 28',
    (() => {
      const m = message(0, '');
      m.writeUInt32BE(20, 24);
      return m;
    })(),
    0,
    /shorter than the header/,
  ],
  ['header length != datagram', Buffer.concat([message(0, ''), hex('00')]), 0, /datagram has 29/],
  ['trailing bytes after the last payload', message(41, '00 00 0008 0000 4000 | 00'), 41, /1 trailing bytes/],
  ['payload length below 4', message(41, '00 00 0002 0000'), 41, /below 4/],
  ['payload length past the end', message(41, '00 00 0010 0000 4000'), 41, /exceeds/],
  ['next payload with no bytes left', message(41, '29 00 0008 0000 4000'), 41, /needs 4 bytes, 0 left/],
  ['notify SPI size past its payload', message(41, '00 00 0008 0004 4000'), 41, /SPI size 4/],
  ['nonce of 15 bytes', message(40, `00 00 0013 ${'aa'.repeat(15)}`), 40, /nonce of 15 bytes/],
  ['nonce of 257 bytes', message(40, `00 00 0105 ${'aa'.repeat(257)}`), 40, /nonce of 257/],
  ['KE body of 3 bytes', message(34, '00 00 0007 001300'), 34, /needs at least 4/],
  ['SA with no proposal', message(33, '00 00 0004'), 33, /no proposals/],
  ['proposal marker 1', message(33, '00 00 000c | 01 00 0008 01 01 00 00'), 33, /marker 1/],
  ['proposal says more, SA ends', message(33, '00 00 000c | 02 00 0008 01 01 00 00'), 33, /SA ends/],
  ['proposal length past the SA', message(33, '00 00 000c | 00 00 0010 01 01 00 00'), 33, /exceeds/],
  [
    'fewer transforms than counted',
    message(33, '00 00 0014 | 00 00 0010 01 01 00 02 | 00 00 0008 01 00 0014'),
    33,
    /transform 1 of 2 has marker 0/,
  ],
  [
    'transform marker 3 on the last',
    message(33, '00 00 0014 | 00 00 0010 01 01 00 01 | 03 00 0008 01 00 0014'),
    33,
    /expected 0/,
  ],
  [
    'attribute past its transform',
    message(33, '00 00 0018 | 00 00 0014 01 01 00 01 | 00 00 000c 01 00 0014 | 000e 0008'),
    33,
    /attribute length 8/,
  ],
  ['delete count inconsistent', message(42, '00 00 000c 03 04 0002 c0ffee01'), 42, /need 12 bytes/],
  ['delete with SPI size 0 but SPIs', message(42, '00 00 0008 01 00 0001'), 42, /SPIs of size 0/],
  [
    'TS type 7 claiming 40 bytes',
    message(44, `00 00 0030 01000000 | 07 00 0028 0000ffff ${'00'.repeat(32)}`),
    44,
    /must be 16 bytes/,
  ],
  [
    'TS count larger than the selectors',
    message(44, '00 00 0018 02000000 | 07 00 0010 0000ffff 0a000000 0a0000ff'),
    44,
    /selector 2 of 2/,
  ],
  ['EAP shorter than its header', message(48, '00 00 0006 0101'), 48, /needs at least 4/],
  ['SK not reaching the end', message(46, '23 00 0008 aabbccdd | 00 00 0004'), 46, /must be last/],
  ['SKF fragment 0', message(53, '23 00 000c 0000 0002 aabbccdd'), 53, /fragment number 0/],
  ['SKF fragment past total', message(53, '00 00 000c 0003 0002 aabbccdd'), 53, /fragment number 3 outside 1\.\.2/],
  ['SKF total 0', message(53, '00 00 000c 0000 0000 aabbccdd'), 53, /total fragments is 0/],
  ['SKF shorter than its header', message(53, '00 00 0006 0001'), 53, /needs 8/],
];

for (const [name, bytes, payloadType, why] of malformedCases) {
  test(`malformed → INVALID_SYNTAX: ${name}`, () => {
    const e = refused(decodeMessage(bytes));
    assert.equal(e.code, 'ike-malformed');
    assert.equal(e.notify, NotifyType.INVALID_SYNTAX);
    assert.equal(e.payloadType, payloadType, e.message);
    assert.match(e.message, why);
    if (bytes.length >= 28 && bytes[17] === 0x20) assert.deepStrictEqual(e.header, header);
  });
}

test('size bounds: more than MAX_PAYLOADS payloads, or a datagram over MAX_MESSAGE_BYTES', () => {
  const many = encodeMessage({
    header,
    payloads: Array.from({ length: MAX_PAYLOADS + 1 }, () => notify(NotifyType.INITIAL_CONTACT)),
  });
  assert.match(refused(decodeMessage(many)).message, /more than 64 payloads/);
  const exactly = encodeMessage({
    header,
    payloads: Array.from({ length: MAX_PAYLOADS }, () => notify(NotifyType.INITIAL_CONTACT)),
  });
  assert.ok(decodeMessage(exactly).ok);
  assert.ok(decodeMessage(many, { maxPayloads: 100 }).ok);

  const huge = message(43, `00 00 ffff ${'00'.repeat(0xffff - 4)}`);
  huge.writeUInt32BE(huge.length, 24);
  assert.ok(huge.length > MAX_MESSAGE_BYTES);
  assert.match(refused(decodeMessage(huge)).message, /exceeds 65535/);
  assert.throws(
    () => encodeMessage({ header, payloads: [{ kind: 'V', data: Buffer.alloc(0xffff - 4) }] }),
    /exceeds 65535/,
  );
});

test('decrypted inner chains: no SK/SKF inside, offsets relative to the plaintext', () => {
  const nested = decodePayloadChain(hex('00 00 0008 aabbccdd'), PayloadType.SK);
  assert.ok(!nested.ok && /inside an encrypted payload/.test(nested.error.message) && nested.error.offset === 0);
  const trailing = decodePayloadChain(hex('00 00 0008 0000 4000 | 0000'), PayloadType.N);
  assert.ok(!trailing.ok && trailing.error.offset === 8 && trailing.error.header === undefined);
  const critical = decodePayloadChain(hex('00 80 0004'), 250);
  assert.ok(
    !critical.ok &&
      critical.error.notify === NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD &&
      critical.error.payloadType === 250,
  );
});

test('encoders refuse out-of-range fields with a TypeError', () => {
  assert.throws(() => encodeMessage({ header: { ...header, spiI: Buffer.alloc(4) }, payloads: [] }), TypeError);
  assert.throws(() => encodeMessage({ header: { ...header, messageId: -1 }, payloads: [] }), TypeError);
  assert.throws(() => encodeMessage({ header, payloads: [{ kind: 'Nonce', data: Buffer.alloc(8) }] }), TypeError);
  assert.throws(() => encodeMessage({ header, payloads: [{ kind: 'SA', proposals: [] }] }), TypeError);
  assert.throws(
    () => encodeMessage({ header, payloads: [{ kind: 'KE', group: 70000, data: Buffer.alloc(0) }] }),
    TypeError,
  );
  assert.throws(
    () => encodeMessage({ header, payloads: [{ kind: 'D', protocolId: 3, spiSize: 4, spis: [Buffer.alloc(3)] }] }),
    TypeError,
  );
  assert.throws(
    () => encodeMessage({ header, payloads: [{ kind: 'unknown', type: 41, critical: false, data: Buffer.alloc(0) }] }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeMessage({
        header,
        payloads: [
          {
            kind: 'TSi',
            selectors: [
              { tsType: 7, ipProtocol: 0, startPort: 0, endPort: 1, startAddr: 'fd00::1', endAddr: '10.0.0.1' },
            ],
          },
        ],
      }),
    /not an IPv4 address/,
  );
  assert.throws(
    () =>
      encodeMessage({
        header,
        payloads: [],
        encrypted: { kind: 'SKF', firstPayload: 0, fragmentNumber: 3, totalFragments: 2, body: Buffer.alloc(0) },
      }),
    /fragment 3 of 2/,
  );
});

// Builders and port-4500 framing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prefix } from '../../../src/base/addr.js';
import {
  DhGroup,
  EncrId,
  EsnId,
  IntegId,
  NotifyType,
  PrfId,
  ProtocolId,
  TransformType,
  addNonEspMarker,
  classifyUdp4500,
  decodeHashAlgorithms,
  decodeMessage,
  encodeHashAlgorithms,
  encodeMessage,
  exchangeTypeName,
  findNotify,
  isErrorNotify,
  notify,
  notifyTypeName,
  payloadTypeName,
  proposalFromString,
  selectorFromPrefix,
  stripNonEspMarker,
  transform,
  transformKeyLength,
  transformsOfType,
} from '../../../src/ike/message/index.js';
import { buf, messageArb } from './arbitraries.js';

const ids = (s: string, protocolId: number): [number, number, number | undefined][] => {
  const p = proposalFromString(s, protocolId);
  if (!p.ok) assert.fail(p.error.message);
  return p.value.transforms.map((t) => [t.type, t.id, transformKeyLength(t)]);
};

test('proposalFromString: the proposals that negotiated with strongSwan 5.9.8', () => {
  const { ENCR, PRF, INTEG, DH, ESN } = TransformType;
  assert.deepStrictEqual(ids('aes256gcm16-prfsha256-x25519', ProtocolId.IKE), [
    [ENCR, EncrId.ENCR_AES_GCM_16, 256],
    [PRF, PrfId.PRF_HMAC_SHA2_256, undefined],
    [DH, DhGroup.CURVE25519, undefined],
  ]);
  // No PRF in an IKE proposal: one per integrity algorithm, as strongSwan does.
  assert.deepStrictEqual(ids('aes256-sha256-ecp256', ProtocolId.IKE), [
    [ENCR, EncrId.ENCR_AES_CBC, 256],
    [PRF, PrfId.PRF_HMAC_SHA2_256, undefined],
    [INTEG, IntegId.AUTH_HMAC_SHA2_256_128, undefined],
    [DH, DhGroup.ECP_256, undefined],
  ]);
  assert.deepStrictEqual(ids('chacha20poly1305-prfsha256-x25519', ProtocolId.IKE)[0], [
    ENCR,
    EncrId.ENCR_CHACHA20_POLY1305,
    undefined,
  ]);
  assert.deepStrictEqual(ids('aes256gcm16-prfsha384-ecp384', ProtocolId.IKE)[2], [DH, DhGroup.ECP_384, undefined]);
  // ESP: DH is the PFS group; ESN defaults to NO_ESN.
  assert.deepStrictEqual(ids('aes256gcm16-ecp256', ProtocolId.ESP), [
    [ENCR, EncrId.ENCR_AES_GCM_16, 256],
    [DH, DhGroup.ECP_256, undefined],
    [ESN, EsnId.NO_ESN, undefined],
  ]);
  assert.deepStrictEqual(ids('aes128gcm16-esn', ProtocolId.ESP).at(-1), [ESN, EsnId.ESN, undefined]);
  // Several of one type: an offer with alternatives, in the order given.
  const p = proposalFromString('aes256gcm16-aes128gcm16-prfsha256-ecp256-x25519', ProtocolId.IKE);
  assert.ok(p.ok);
  assert.deepStrictEqual(
    transformsOfType(p.value, DH).map((t) => t.id),
    [19, 31],
  );
  assert.deepStrictEqual(transformsOfType(p.value, ENCR).map(transformKeyLength), [256, 128]);
});

test('proposalFromString refuses unknown names and incomplete proposals', () => {
  assert.equal(proposalFromString('aes256gcm16-prfsha256-ecp999', ProtocolId.IKE).ok, false);
  assert.equal(proposalFromString('prfsha256-ecp256', ProtocolId.IKE).ok, false);
  assert.equal(proposalFromString('aes256gcm16-ecp256', ProtocolId.IKE).ok, false); // AEAD IKE needs a PRF
});

test('proposal strings survive the wire', () => {
  const p = proposalFromString('aes256-sha256-ecp256', ProtocolId.IKE);
  assert.ok(p.ok);
  const header = {
    spiI: Buffer.alloc(8, 1),
    spiR: Buffer.alloc(8),
    exchangeType: 34,
    initiator: true,
    response: false,
    higherVersion: false,
    messageId: 0,
  };
  const d = decodeMessage(encodeMessage({ header, payloads: [{ kind: 'SA', proposals: [p.value] }] }));
  assert.ok(d.ok);
  assert.deepStrictEqual(d.value.message.payloads[0], { kind: 'SA', proposals: [p.value] });
});

test('selectorFromPrefix covers the prefix with all ports and protocols', () => {
  assert.deepStrictEqual(selectorFromPrefix(Prefix.from('10.1.0.0/16')), {
    tsType: 7,
    ipProtocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: '10.1.0.0',
    endAddr: '10.1.255.255',
  });
  assert.deepStrictEqual(
    selectorFromPrefix(Prefix.from('192.0.2.7/32'), { ipProtocol: 17, startPort: 53, endPort: 53 }),
    {
      tsType: 7,
      ipProtocol: 17,
      startPort: 53,
      endPort: 53,
      startAddr: '192.0.2.7',
      endAddr: '192.0.2.7',
    },
  );
  const v6 = selectorFromPrefix(Prefix.from('fd00:1::/33'));
  assert.equal(v6.tsType, 8);
  assert.equal(v6.startAddr, 'fd00:1::');
  assert.equal(v6.endAddr, 'fd00:1:7fff:ffff:ffff:ffff:ffff:ffff');
  assert.equal(selectorFromPrefix(Prefix.from('0.0.0.0/0')).endAddr, '255.255.255.255');
});

test('notify helpers: findNotify, hash algorithm lists, names', () => {
  const payloads = [
    notify(NotifyType.COOKIE, Buffer.from('c')),
    notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeHashAlgorithms([2, 4])),
  ];
  assert.equal(findNotify(payloads, NotifyType.SIGNATURE_HASH_ALGORITHMS), payloads[1]);
  assert.equal(findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD), undefined);
  assert.deepStrictEqual(decodeHashAlgorithms(payloads[1].data), { ok: true, value: [2, 4] });
  assert.equal(decodeHashAlgorithms(Buffer.of(0, 2, 0)).ok, false);
  assert.equal(notifyTypeName(16430), 'FRAGMENTATION_SUPPORTED');
  assert.equal(notifyTypeName(9999), 'notify(9999)');
  assert.equal(payloadTypeName(53), 'SKF');
  assert.equal(exchangeTypeName(36), 'CREATE_CHILD_SA');
  assert.ok(isErrorNotify(NotifyType.AUTHENTICATION_FAILED) && !isErrorNotify(NotifyType.INITIAL_CONTACT));
  assert.deepStrictEqual(transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 128).attributes, [
    { type: 14, value: 128 },
  ]);
});

test('port 4500: marker added and stripped; IKE, ESP and keepalive told apart', () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const ike = encodeMessage(m);
      const framed = addNonEspMarker(ike);
      assert.deepStrictEqual(framed.subarray(0, 4), Buffer.alloc(4));
      assert.deepStrictEqual(stripNonEspMarker(framed), { ok: true, value: ike });
      const c = classifyUdp4500(framed);
      assert.ok(c.kind === 'ike');
      assert.deepStrictEqual(decodeMessage(c.message), decodeMessage(ike));
    }),
    { numRuns: 100 },
  );
  assert.deepStrictEqual(classifyUdp4500(Buffer.of(0xff)), { kind: 'keepalive' });
  const esp = Buffer.from('c0ffee01000000010102030405', 'hex');
  assert.deepStrictEqual(classifyUdp4500(esp), { kind: 'esp', spi: 0xc0ffee01, packet: esp });
  assert.equal(classifyUdp4500(Buffer.of(0xc0, 0xff, 0xee, 0x01, 0, 0)).kind, 'invalid'); // no room for a sequence number
  assert.equal(classifyUdp4500(Buffer.alloc(0)).kind, 'invalid');
  assert.equal(classifyUdp4500(Buffer.of(0xfe)).kind, 'invalid');
  assert.equal(stripNonEspMarker(esp).ok, false);
  assert.equal(stripNonEspMarker(Buffer.of(0, 0)).ok, false);
  fc.assert(
    fc.property(buf(0, 64), (b) => {
      const c = classifyUdp4500(b);
      if (c.kind === 'esp') assert.ok(b.length >= 8 && b.readUInt32BE(0) !== 0);
      if (c.kind === 'ike') assert.ok(b.readUInt32BE(0) === 0);
    }),
  );
});

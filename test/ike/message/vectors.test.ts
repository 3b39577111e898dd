// Byte-exact checks against encodings derived by hand from the RFC 7296 / 7383 / 7427 wire
// formats. The expected bytes are written field by field here, never produced by the encoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AuthMethod,
  CertEncoding,
  DhGroup,
  EncrId,
  ExchangeType,
  HashAlgorithm,
  IdType,
  NotifyType,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformType,
  decodeGroupData,
  decodeHashAlgorithms,
  encodeGroupData,
  decodeMessage,
  decodePayloadChain,
  encodeEncryptedPrefix,
  encodeHashAlgorithms,
  encodeMessage,
  encodePayloadChain,
  notify,
  proposal,
  proposalFromString,
  transform,
  type IkeHeader,
  type IkeMessage,
  type Payload,
} from '../../../src/ike/message/index.js';
import { hex } from './arbitraries.js';

const SPI_I = hex('0102030405060708');
const ZERO_SPI = Buffer.alloc(8);
const KE_DATA = Buffer.alloc(64, 0x41); // P-256 x | y, 32 bytes each
const NONCE = Buffer.alloc(32, 0x4e);
const NATD_SRC = Buffer.alloc(20, 0x53); // SHA-1 digests
const NATD_DST = Buffer.alloc(20, 0x44);

// IKE_SA_INIT request offering aes256gcm16-prfsha256-ecp256, as strongSwan's initiator sends it.
const SA_INIT_BYTES = hex(`
  0102030405060708 | 0000000000000000   # SPIi | SPIr
  21 | 20 | 22 | 08                      # next SA(33) | version 2.0 | IKE_SA_INIT(34) | flags I
  00000000 | 000000fe                    # message ID 0 | length 254

  22 | 00 | 0028                         # SA: next KE(34) | C=0 | length 40
    00 | 00 | 0024                       # proposal: last | reserved | length 36
    01 | 01 | 00 | 03                    # #1 | IKE | SPI size 0 | 3 transforms
      03 | 00 | 000c | 01 | 00 | 0014    # more | reserved | length 12 | ENCR | reserved | AES_GCM_16 (20)
        800e | 0100                      # AF=1, Key Length (14) | 256
      03 | 00 | 0008 | 02 | 00 | 0005    # more | length 8 | PRF | HMAC_SHA2_256 (5)
      00 | 00 | 0008 | 04 | 00 | 0013    # last | length 8 | DH | ECP_256 (19)

  28 | 00 | 0048                         # KE: next Nonce(40) | length 72
    0013 | 0000                          # group 19 | reserved
    ${'41'.repeat(64)}

  29 | 00 | 0024                         # Nonce: next N(41) | length 36
    ${'4e'.repeat(32)}

  29 | 00 | 001c                         # N: next N | length 28
    00 | 00 | 4004                       # protocol 0 | SPI size 0 | NAT_DETECTION_SOURCE_IP (16388)
    ${'53'.repeat(20)}

  29 | 00 | 001c                         # N: next N | length 28
    00 | 00 | 4005                       # NAT_DETECTION_DESTINATION_IP (16389)
    ${'44'.repeat(20)}

  29 | 00 | 0008                         # N: next N | length 8
    00 | 00 | 402e                       # IKEV2_FRAGMENTATION_SUPPORTED (16430), no data

  00 | 00 | 000e                         # N: last | length 14
    00 | 00 | 402f                       # SIGNATURE_HASH_ALGORITHMS (16431)
    0002 | 0003 | 0004                   # SHA2-256 | SHA2-384 | SHA2-512
`);

const SA_INIT_HEADER: IkeHeader = {
  spiI: SPI_I,
  spiR: ZERO_SPI,
  exchangeType: ExchangeType.IKE_SA_INIT,
  initiator: true,
  response: false,
  higherVersion: false,
  messageId: 0,
};

const SA_INIT: IkeMessage = {
  header: SA_INIT_HEADER,
  payloads: [
    {
      kind: 'SA',
      proposals: [
        proposal(1, ProtocolId.IKE, [
          transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 256),
          transform(TransformType.PRF, PrfId.PRF_HMAC_SHA2_256),
          transform(TransformType.DH, DhGroup.ECP_256),
        ]),
      ],
    },
    { kind: 'KE', group: DhGroup.ECP_256, data: KE_DATA },
    { kind: 'Nonce', data: NONCE },
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, NATD_SRC),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, NATD_DST),
    notify(NotifyType.FRAGMENTATION_SUPPORTED),
    notify(
      NotifyType.SIGNATURE_HASH_ALGORITHMS,
      encodeHashAlgorithms([HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512]),
    ),
  ],
};

test('IKE_SA_INIT request: hand-derived bytes decode to the typed message and encode back', () => {
  assert.equal(SA_INIT_BYTES.length, 254);
  assert.deepStrictEqual(encodeMessage(SA_INIT), SA_INIT_BYTES);
  const d = decodeMessage(SA_INIT_BYTES);
  if (!d.ok) assert.fail(d.error.message);
  assert.deepStrictEqual(d.value.message, SA_INIT);
  assert.deepStrictEqual(d.value.headerBytes, SA_INIT_BYTES.subarray(0, 28));
  const sha = d.value.message.payloads[6];
  assert.ok(sha.kind === 'N');
  assert.deepStrictEqual(decodeHashAlgorithms(sha.data), { ok: true, value: [2, 3, 4] });
});

test('proposalFromString builds the same IKE proposal as the explicit transforms', () => {
  const p = proposalFromString('aes256gcm16-prfsha256-ecp256', ProtocolId.IKE);
  assert.deepStrictEqual(p, { ok: true, value: (SA_INIT.payloads[0] as { proposals: unknown[] }).proposals[0] });
});

// IKE_SA_INIT response: SPIr set, R flag, a COOKIE request instead of the full answer.
test('IKE_SA_INIT response with COOKIE: flags R only, notify with data', () => {
  const bytes = hex(`
    0102030405060708 | 0000000000000000   # SPIs (a COOKIE reply keeps SPIr 0)
    29 | 20 | 22 | 20                      # next N(41) | 2.0 | IKE_SA_INIT | flags R
    00000000 | 00000030                    # message ID 0 | length 48
    00 | 00 | 0014                         # N: last | length 20
      00 | 00 | 4006                       # protocol 0 | SPI size 0 | COOKIE (16390)
      0a0b0c0d0e0f1011 12131415            # 12 bytes of cookie
  `);
  const m: IkeMessage = {
    header: { ...SA_INIT_HEADER, initiator: false, response: true },
    payloads: [notify(NotifyType.COOKIE, hex('0a0b0c0d0e0f101112131415'))],
  };
  assert.deepStrictEqual(encodeMessage(m), bytes);
  assert.deepStrictEqual(decodeMessage(bytes), { ok: true, value: { message: m, headerBytes: bytes.subarray(0, 28) } });
});

// IKE_AUTH request: everything after the header is one SK payload.
test('IKE_AUTH with SK: first inner type, opaque body, associated data = header + SK header', () => {
  const body = Buffer.alloc(40, 0xaa); // 8-byte IV | ciphertext | 16-byte ICV, opaque here
  const bytes = hex(`
    0102030405060708 | 1112131415161718   # SPIi | SPIr
    2e | 20 | 23 | 08                      # next SK(46) | 2.0 | IKE_AUTH(35) | flags I
    00000001 | 00000048                    # message ID 1 | length 72 = 28 + 4 + 40
    23 | 00 | 002c                         # SK: first inner IDi(35) | length 44
    ${'aa'.repeat(40)}
  `);
  const header: IkeHeader = {
    ...SA_INIT_HEADER,
    spiR: hex('1112131415161718'),
    exchangeType: ExchangeType.IKE_AUTH,
    messageId: 1,
  };
  const m: IkeMessage = { header, payloads: [], encrypted: { kind: 'SK', firstPayload: PayloadType.IDi, body } };
  assert.deepStrictEqual(encodeMessage(m), bytes);
  const d = decodeMessage(bytes);
  if (!d.ok) assert.fail(d.error.message);
  assert.deepStrictEqual(d.value.message, m);
  assert.deepStrictEqual(d.value.associatedData, bytes.subarray(0, 32));
  assert.deepStrictEqual(
    encodeEncryptedPrefix({ header, encrypted: { kind: 'SK', firstPayload: PayloadType.IDi } }, 40),
    bytes.subarray(0, 32),
  );
});

// RFC 7383 §2.5: the SKF header adds fragment number and total, both inside the associated data.
test('IKE_AUTH fragment 2 of 3 (SKF): numbers decoded, associated data covers the 8-byte SKF header', () => {
  const bytes = hex(`
    0102030405060708 | 1112131415161718
    35 | 20 | 23 | 08                      # next SKF(53) | 2.0 | IKE_AUTH | flags I
    00000001 | 00000034                    # message ID 1 | length 52 = 28 + 8 + 16
    00 | 00 | 0018                         # SKF: next 0 (not the first fragment) | length 24
      0002 | 0003                          # fragment 2 of 3
    ${'bb'.repeat(16)}
  `);
  const d = decodeMessage(bytes);
  if (!d.ok) assert.fail(d.error.message);
  assert.deepStrictEqual(d.value.message.encrypted, {
    kind: 'SKF',
    firstPayload: 0,
    fragmentNumber: 2,
    totalFragments: 3,
    body: Buffer.alloc(16, 0xbb),
  });
  assert.deepStrictEqual(d.value.associatedData, bytes.subarray(0, 36));
  assert.deepStrictEqual(encodeMessage(d.value.message), bytes);
});

// The plaintext of an IKE_AUTH request as the crypto layer would hand it back after decryption.
const INNER_BYTES = hex(`
  25 | 00 | 0014                           # IDi: next CERT(37) | length 20
    02 | 000000                           # ID_FQDN | reserved
    67772d612e6578616d706c65               # "gw-a.example" (12 bytes)
  25 | 00 | 0008                           # CERT: next CERT | length 8
    04 | 308203                           # X.509 signature (4) | first bytes of a DER cert
  27 | 00 | 0009                           # CERT: next AUTH(39) | length 9
    0a | 30820101                         # X.509 attribute (10) | first bytes of a permit
  21 | 00 | 000c                           # AUTH: next SA(33) | length 12
    0e | 000000                           # digital signature (14) | reserved
    aabbccdd                              # signature blob (shortened)
  2c | 00 | 0024                           # SA: next TSi(44) | length 36
    00 | 00 | 0020                         # proposal: last | length 32 = 8 + SPI 4 + 12 + 8
    01 | 03 | 04 | 02                      # #1 | ESP | SPI size 4 | 2 transforms
    c0ffee01                              # ESP SPI
      03 | 00 | 000c | 01 | 00 | 0014      # ENCR AES_GCM_16
        800e | 0100                        # key length 256
      00 | 00 | 0008 | 05 | 00 | 0000      # last | ESN | NO_ESN
  2d | 00 | 0028                           # TSi: next TSr(45) | length 40
    02 | 000000                           # 2 selectors | reserved
    07 | 00 | 0010 | 0000 | ffff           # IPv4 range | any protocol | length 16 | ports 0-65535
      0a000000 | 0a0000ff                 # 10.0.0.0 - 10.0.0.255
    07 | 06 | 0010 | 0050 | 0050           # TCP (6) | port 80 only
      c0000201 | c0000201                 # 192.0.2.1 - 192.0.2.1
  00 | 00 | 0030                           # TSr: last | length 48
    01 | 000000                           # 1 selector
    08 | 00 | 0028 | 0000 | ffff           # IPv6 range | length 40
      fd000000000000000000000000000000     # fd00::
      fd00000000000000ffffffffffffffff     # fd00::ffff:ffff:ffff:ffff
`);

const INNER: Payload[] = [
  { kind: 'IDi', idType: IdType.ID_FQDN, data: Buffer.from('gw-a.example') },
  { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: hex('308203') },
  { kind: 'CERT', encoding: CertEncoding.X509_ATTRIBUTE, data: hex('30820101') },
  { kind: 'AUTH', method: AuthMethod.DIGITAL_SIGNATURE, data: hex('aabbccdd') },
  {
    kind: 'SA',
    proposals: [
      proposal(
        1,
        ProtocolId.ESP,
        [transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 256), transform(TransformType.ESN, 0)],
        hex('c0ffee01'),
      ),
    ],
  },
  {
    kind: 'TSi',
    selectors: [
      { tsType: 7, ipProtocol: 0, startPort: 0, endPort: 65535, startAddr: '10.0.0.0', endAddr: '10.0.0.255' },
      { tsType: 7, ipProtocol: 6, startPort: 80, endPort: 80, startAddr: '192.0.2.1', endAddr: '192.0.2.1' },
    ],
  },
  {
    kind: 'TSr',
    selectors: [
      {
        tsType: 8,
        ipProtocol: 0,
        startPort: 0,
        endPort: 65535,
        startAddr: 'fd00::',
        endAddr: 'fd00::ffff:ffff:ffff:ffff',
      },
    ],
  },
];

test('decrypted IKE_AUTH inner chain: ID, two CERTs (4 and 10), AUTH 14, ESP SA, IPv4 and IPv6 TS', () => {
  assert.deepStrictEqual(decodePayloadChain(INNER_BYTES, PayloadType.IDi), { ok: true, value: INNER });
  assert.deepStrictEqual(encodePayloadChain(INNER), { firstPayload: PayloadType.IDi, bytes: INNER_BYTES });
  const esp = proposalFromString('aes256gcm16', ProtocolId.ESP, 1, hex('c0ffee01'));
  assert.deepStrictEqual(esp, { ok: true, value: (INNER[4] as { proposals: unknown[] }).proposals[0] });
});

test('INFORMATIONAL inner chain: Delete of two ESP SPIs, Delete of the IKE SA, empty liveness check', () => {
  const bytes = hex(`
    2a | 00 | 0010                         # D: next D(42) | length 16
      03 | 04 | 0002                       # ESP | SPI size 4 | 2 SPIs
      c0ffee01 | c0ffee02
    00 | 00 | 0008                         # D: last | length 8
      01 | 00 | 0000                       # IKE | SPI size 0 | no SPIs
  `);
  const payloads: Payload[] = [
    { kind: 'D', protocolId: ProtocolId.ESP, spiSize: 4, spis: [hex('c0ffee01'), hex('c0ffee02')] },
    { kind: 'D', protocolId: ProtocolId.IKE, spiSize: 0, spis: [] },
  ];
  assert.deepStrictEqual(decodePayloadChain(bytes, PayloadType.D), { ok: true, value: payloads });
  assert.deepStrictEqual(encodePayloadChain(payloads).bytes, bytes);
  // A liveness check is an SK payload with no inner payloads: first type 0, empty plaintext.
  assert.deepStrictEqual(encodePayloadChain([]), { firstPayload: 0, bytes: Buffer.alloc(0) });
  assert.deepStrictEqual(decodePayloadChain(Buffer.alloc(0), 0), { ok: true, value: [] });
});

test('REKEY_SA notify for an ESP SPI and INVALID_KE_PAYLOAD data', () => {
  const bytes = hex(`
    00 | 00 | 000c                         # N: last | length 12
      03 | 04 | 4009                       # ESP | SPI size 4 | REKEY_SA (16393)
      c0ffee01                            # SPI
    `);
  const rekey = notify(NotifyType.REKEY_SA, Buffer.alloc(0), { protocolId: ProtocolId.ESP, spi: hex('c0ffee01') });
  assert.deepStrictEqual(encodePayloadChain([rekey]).bytes, bytes);
  assert.deepStrictEqual(decodePayloadChain(bytes, PayloadType.N), { ok: true, value: [rekey] });

  const invalidKe = hex(`
    00 | 00 | 000a                         # N: last | length 10
      00 | 00 | 0011                       # protocol 0 | SPI size 0 | INVALID_KE_PAYLOAD (17)
      0013                                 # the group the responder wants: ECP_256
  `);
  const d = decodePayloadChain(invalidKe, PayloadType.N);
  if (!d.ok) assert.fail(d.error.message);
  const n = d.value[0];
  assert.ok(n.kind === 'N' && n.notifyType === NotifyType.INVALID_KE_PAYLOAD);
  assert.deepStrictEqual(decodeGroupData(n.data), { ok: true, value: DhGroup.ECP_256 });
  assert.deepStrictEqual(
    encodePayloadChain([notify(NotifyType.INVALID_KE_PAYLOAD, encodeGroupData(DhGroup.ECP_256))]).bytes,
    invalidKe,
  );
  assert.equal(decodeGroupData(hex('13')).ok, false);
});

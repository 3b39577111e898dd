// fast-check generators for IKEv2 payloads and messages, shared by the codec tests.
import fc from 'fast-check';
import { ipFromBytes } from '../../../src/base/addr.js';
import {
  PayloadType,
  type EncryptedPayload,
  type IkeHeader,
  type IkeMessage,
  type Payload,
  type Proposal,
  type TrafficSelector,
  type Transform,
} from '../../../src/ike/message/index.js';

export const buf = (min: number, max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b));

// Plain-prototype records, so decoded objects (ordinary literals) deep-equal the generated ones.
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });

export const transformArb: fc.Arbitrary<Transform> = rec({
  type: u8,
  id: u16,
  attributes: fc.array(rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: fc.oneof(u16, buf(0, 8)) }), {
    maxLength: 3,
  }),
});

export const proposalArb: fc.Arbitrary<Proposal> = rec({
  number: u8,
  protocolId: u8,
  spi: fc.oneof(buf(0, 0), buf(4, 4), buf(8, 8), buf(0, 12)),
  transforms: fc.array(transformArb, { maxLength: 6 }),
});

/** An address-range selector: TS_IPV4_ADDR_RANGE (7) or TS_IPV6_ADDR_RANGE (8). */
function addressRangeArb<T extends 7 | 8>(tsType: T) {
  const addr = tsType === 7 ? buf(4, 4).map((b) => ipFromBytes(b, 0, 4)) : buf(16, 16).map((b) => ipFromBytes(b, 0, 6));
  return rec({
    tsType: fc.constant(tsType),
    ipProtocol: u8,
    startPort: u16,
    endPort: u16,
    startAddr: addr,
    endAddr: addr,
  });
}

export const selectorArb: fc.Arbitrary<TrafficSelector> = fc.oneof(
  addressRangeArb(7),
  addressRangeArb(8),
  rec({ tsType: u8.filter((t) => t !== 7 && t !== 8), byte1: u8, data: buf(0, 12) }),
);

const KNOWN = new Set<number>([0, ...Object.values(PayloadType)]);

/** One arbitrary per payload kind, so tests can name the kind they exercise. */
export const payloadArbs: Record<Payload['kind'], fc.Arbitrary<Payload>> = {
  SA: rec({ kind: fc.constant('SA' as const), proposals: fc.array(proposalArb, { minLength: 1, maxLength: 4 }) }),
  KE: rec({ kind: fc.constant('KE' as const), group: u16, data: buf(0, 80) }),
  IDi: rec({ kind: fc.constant('IDi' as const), idType: u8, data: buf(0, 40) }),
  IDr: rec({ kind: fc.constant('IDr' as const), idType: u8, data: buf(0, 40) }),
  CERT: rec({ kind: fc.constant('CERT' as const), encoding: u8, data: buf(0, 120) }),
  CERTREQ: rec({ kind: fc.constant('CERTREQ' as const), encoding: u8, data: buf(0, 60) }),
  AUTH: rec({ kind: fc.constant('AUTH' as const), method: u8, data: buf(0, 80) }),
  Nonce: rec({ kind: fc.constant('Nonce' as const), data: buf(16, 256) }),
  N: rec({
    kind: fc.constant('N' as const),
    protocolId: u8,
    spi: fc.oneof(buf(0, 0), buf(4, 4), buf(0, 8)),
    notifyType: u16,
    data: buf(0, 40),
  }),
  D: fc.integer({ min: 0, max: 8 }).chain((spiSize) =>
    rec({
      kind: fc.constant('D' as const),
      protocolId: u8,
      spiSize: fc.constant(spiSize),
      spis: spiSize === 0 ? fc.constant<Buffer[]>([]) : fc.array(buf(spiSize, spiSize), { maxLength: 5 }),
    }),
  ),
  V: rec({ kind: fc.constant('V' as const), data: buf(0, 30) }),
  TSi: rec({ kind: fc.constant('TSi' as const), selectors: fc.array(selectorArb, { maxLength: 4 }) }),
  TSr: rec({ kind: fc.constant('TSr' as const), selectors: fc.array(selectorArb, { maxLength: 4 }) }),
  CP: rec({
    kind: fc.constant('CP' as const),
    cfgType: u8,
    attributes: fc.array(rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: buf(0, 20) }), { maxLength: 3 }),
  }),
  EAP: rec({ kind: fc.constant('EAP' as const), data: buf(4, 40) }),
  unknown: rec({
    kind: fc.constant('unknown' as const),
    type: u8.filter((t) => !KNOWN.has(t)),
    critical: fc.constant(false), // a critical unknown payload is refused on decode (tested apart)
    data: buf(0, 30),
  }),
};

export const payloadArb: fc.Arbitrary<Payload> = fc.oneof(...Object.values(payloadArbs));

export const headerArb: fc.Arbitrary<IkeHeader> = rec({
  spiI: buf(8, 8),
  spiR: buf(8, 8),
  exchangeType: u8,
  initiator: fc.boolean(),
  response: fc.boolean(),
  higherVersion: fc.boolean(),
  messageId: fc.integer({ min: 0, max: 0xffffffff }),
});

export const encryptedArb: fc.Arbitrary<EncryptedPayload> = fc.oneof(
  rec({ kind: fc.constant('SK' as const), firstPayload: u8, body: buf(0, 120) }),
  fc.integer({ min: 1, max: 0xffff }).chain((total) =>
    rec({
      kind: fc.constant('SKF' as const),
      firstPayload: u8,
      fragmentNumber: fc.integer({ min: 1, max: total }),
      totalFragments: fc.constant(total),
      body: buf(0, 120),
    }),
  ),
);

export const messageArb: fc.Arbitrary<IkeMessage> = fc
  .record({
    header: headerArb,
    payloads: fc.array(payloadArb, { maxLength: 8 }),
    encrypted: fc.option(encryptedArb, { nil: undefined }),
  })
  .map(({ header, payloads, encrypted }) => (encrypted ? { header, payloads, encrypted } : { header, payloads }));

/** Hex with layout: `|` and whitespace ignored, `#` starts a comment to the end of the line. */
export function hex(s: string): Buffer {
  const clean = s.replace(/#[^\n]*/g, '').replace(/[\s|]+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`not hex: ${clean}`);
  return Buffer.from(clean, 'hex');
}

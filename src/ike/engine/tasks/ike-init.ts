// IKE_SA_INIT (RFC 7296 §1.2): proposals, Diffie-Hellman, nonces, NAT detection, and the
// announcements the peers use later (IKE fragmentation, RFC 7383; signature hashes, RFC 7427).
// The request is built by the initiator and answered by the responder; both then derive SKEYSEED
// and the SK_* keys.
import {
  DhGroup as DhGroupIds,
  ExchangeType,
  NotifyType,
  ProtocolId,
  TransformType,
  decodeGroupData,
  encodeGroupData,
  encodeHashAlgorithms,
  encodeMessage,
  findNotify,
  notify,
  proposalFromString,
  transformKeyLength,
  type Payload,
  type Proposal,
  type SaPayload,
} from '../../message/index.js';
import { dhGenerate, dhSharedSecret } from '../../crypto/dh.js';
import { deriveIkeSaKeys } from '../../crypto/keys.js';
import { natDetectionHash, natDetectionMatches } from '../../crypto/natd.js';
import { aeadById, dhGroupById, prfById, type IkeSuite } from '../../crypto/transforms.js';
import type { IkeSa } from '../ike-sa.js';
import { certificateRequest } from '../authorize.js';
import type { Endpoint } from '../types.js';
import type { TaskContext } from './task.js';

/** What kasane offers and accepts, best first (the same names strongSwan uses). */
export const IKE_PROPOSALS = [
  'aes256gcm16-prfsha256-ecp256',
  'aes256gcm16-prfsha256-x25519',
  'aes128gcm16-prfsha256-ecp256',
];
const NONCE_BYTES = 32;
/** RFC 7427 hash algorithm identifiers we accept: SHA2-256, SHA2-384, SHA2-512. */
const HASHES = [2, 3, 4];

export function offeredIke(): Proposal[] {
  return IKE_PROPOSALS.map((p, i) => {
    const r = proposalFromString(p, ProtocolId.IKE, i + 1);
    if (!r.ok) throw new Error(`bad built-in proposal ${p}: ${r.error.message}`);
    return r.value;
  });
}

/** The suite of one proposal, if every transform in it is one we implement. */
export function suiteOf(p: Proposal): IkeSuite | undefined {
  if (p.protocolId !== ProtocolId.IKE) return undefined;
  const pick = <T>(type: number, map: (id: number, keyBits?: number) => T | undefined): T | undefined => {
    for (const t of p.transforms)
      if (t.type === type) {
        const v = map(t.id, transformKeyLength(t));
        if (v) return v;
      }
    return undefined;
  };
  const encr = pick(TransformType.ENCR, (id, bits) => aeadById(id, bits));
  const prf = pick(TransformType.PRF, (id) => prfById(id));
  const dh = pick(TransformType.DH, (id) => dhGroupById(id));
  return encr && prf && dh ? { encr, prf, dh } : undefined;
}

/** A proposal reduced to the one transform of each type we picked (what a responder answers with). */
export function chosenTransforms(p: Proposal): Proposal['transforms'] {
  return [TransformType.ENCR, TransformType.PRF, TransformType.DH].map((type) => {
    const t = p.transforms.find(
      (x) =>
        x.type === type &&
        (type !== TransformType.ENCR || aeadById(x.id, transformKeyLength(x))) &&
        (type !== TransformType.PRF || prfById(x.id)) &&
        (type !== TransformType.DH || dhGroupById(x.id)),
    )!;
    return { type: t.type, id: t.id, attributes: t.attributes.map((a) => ({ ...a })) };
  });
}

function natd(sa: IkeSa, local: Endpoint): Payload[] {
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, natDetectionHash(sa.spiI, sa.spiR, local.address, local.port)),
    notify(
      NotifyType.NAT_DETECTION_DESTINATION_IP,
      natDetectionHash(sa.spiI, sa.spiR, sa.remote.address, sa.remote.port),
    ),
  ];
}

/**
 * What the peer's NAT detection payloads say (RFC 7296 §2.23), over IPv4 or IPv6 alike: the peer
 * hashed the address and port it sent from (SOURCE) and the ones it sent to (DESTINATION). A
 * SOURCE hash that is not of the address the message came from: the peer is behind a NAT (or an
 * IPv6 prefix translator); a DESTINATION hash that is not of our own address: we are. Undefined
 * when the peer sent none (it does not do NAT detection). `spiR` is zero in the request's hashes.
 */
export function natDetection(
  payloads: Payload[],
  spiI: Buffer,
  spiR: Buffer,
  local: Endpoint,
  remote: Endpoint,
): { local: boolean; remote: boolean } | undefined {
  const of = (type: number) =>
    payloads
      .filter((p) => p.kind === 'N' && p.notifyType === type)
      .map((p) => (p.kind === 'N' ? p.data : Buffer.alloc(0)));
  const source = of(NotifyType.NAT_DETECTION_SOURCE_IP);
  const destination = of(NotifyType.NAT_DETECTION_DESTINATION_IP);
  if (source.length === 0 || destination.length === 0) return undefined;
  return {
    local: !destination.some((h) => natDetectionMatches(h, spiI, spiR, local.address, local.port)),
    remote: !source.some((h) => natDetectionMatches(h, spiI, spiR, remote.address, remote.port)),
  };
}

/** Initiator: the IKE_SA_INIT request (again with `group` after INVALID_KE_PAYLOAD). */
export function buildInitRequest(
  sa: IkeSa,
  ctx: Pick<TaskContext, 'endpoint' | 'random'>,
  group: number = DhGroupIds.ECP_256,
): Buffer {
  const random = ctx.random;
  const g = dhGroupById(group);
  if (!g) throw new Error(`DH group ${group} is not implemented`);
  if (sa.dh?.group !== g) sa.dh = dhGenerate(g, random); // a cookie retry keeps its KE
  sa.ni ??= Buffer.from(random(NONCE_BYTES));
  const payloads: Payload[] = [
    // §2.6: a cookie the responder asked for comes first, the rest of the request unchanged.
    ...(sa.cookie ? [notify(NotifyType.COOKIE, sa.cookie)] : []),
    { kind: 'SA', proposals: offeredIke() },
    { kind: 'KE', group, data: sa.dh.publicValue },
    { kind: 'Nonce', data: sa.ni },
    ...natd(sa, ctx.endpoint),
    notify(NotifyType.FRAGMENTATION_SUPPORTED),
    notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeHashAlgorithms(HASHES)),
  ];
  sa.initRequest = encodeMessage({ header: sa.header(ExchangeType.IKE_SA_INIT, false, 0), payloads });
  sa.nextRequestId = 1;
  return sa.initRequest;
}

export type InitAnswer = { ok: true; response: Buffer } | { ok: false; response?: Buffer; reason: string };

/**
 * Responder: chooses a proposal, answers, derives the keys. A refusal may still carry an answer (a
 * notify). The answer carries our CERTREQ payloads (RFC 7296 allows them in the IKE_SA_INIT response).
 */
export function answerInitRequest(
  sa: IkeSa,
  ctx: Pick<TaskContext, 'endpoint' | 'random' | 'local'>,
  request: Buffer,
  payloads: Payload[],
): InitAnswer {
  const random = ctx.random;
  const refuse = (type: number, reason: string, data?: Buffer): InitAnswer => ({
    ok: false,
    reason,
    response: encodeMessage({ header: sa.header(ExchangeType.IKE_SA_INIT, true, 0), payloads: [notify(type, data)] }),
  });
  const saP = payloads.find((p): p is SaPayload => p.kind === 'SA');
  const ke = payloads.find((p) => p.kind === 'KE');
  const nonce = payloads.find((p) => p.kind === 'Nonce');
  if (!saP || !ke || !nonce || ke.kind !== 'KE' || nonce.kind !== 'Nonce')
    return refuse(NotifyType.INVALID_SYNTAX, 'IKE_SA_INIT without SA, KE or Nonce');
  let chosen: { proposal: Proposal; suite: IkeSuite } | undefined;
  for (const p of saP.proposals) {
    const s = suiteOf(p);
    if (s) {
      chosen = { proposal: p, suite: s };
      break;
    }
  }
  if (!chosen) return refuse(NotifyType.NO_PROPOSAL_CHOSEN, 'no proposal with algorithms we implement');
  if (ke.group !== chosen.suite.dh.id) {
    // §1.2: tell the initiator which group we want; it retries.
    return refuse(
      NotifyType.INVALID_KE_PAYLOAD,
      `KE for group ${ke.group}, chose ${chosen.suite.dh.id}`,
      encodeGroupData(chosen.suite.dh.id),
    );
  }
  sa.suite = chosen.suite;
  sa.dh = dhGenerate(chosen.suite.dh, random);
  const shared = dhSharedSecret(sa.dh, ke.data);
  if (!shared.ok) return refuse(NotifyType.INVALID_SYNTAX, `bad KE: ${shared.error.message}`);
  sa.spiR = Buffer.from(random(8));
  sa.ni = nonce.data;
  sa.peerFragmentation = findNotify(payloads, NotifyType.FRAGMENTATION_SUPPORTED) !== undefined;
  sa.nr = Buffer.from(random(NONCE_BYTES));
  sa.initRequest = request;
  sa.nat = natDetection(payloads, sa.spiI, Buffer.alloc(8), ctx.endpoint, sa.remote);
  const answer: Proposal = {
    number: chosen.proposal.number,
    protocolId: ProtocolId.IKE,
    spi: Buffer.alloc(0),
    transforms: chosenTransforms(chosen.proposal),
  };
  sa.initResponse = encodeMessage({
    header: sa.header(ExchangeType.IKE_SA_INIT, true, 0),
    payloads: [
      { kind: 'SA', proposals: [answer] },
      { kind: 'KE', group: chosen.suite.dh.id, data: sa.dh.publicValue },
      { kind: 'Nonce', data: sa.nr },
      ...natd(sa, ctx.endpoint),
      ...certificateRequest(ctx.local.certificateAuthorities),
      notify(NotifyType.FRAGMENTATION_SUPPORTED),
      notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeHashAlgorithms(HASHES)),
    ],
  });
  sa.setKeys(
    deriveIkeSaKeys(sa.suite, { sharedSecret: shared.value, ni: sa.ni, nr: sa.nr, spiI: sa.spiI, spiR: sa.spiR }).keys,
  );
  sa.expectRequestId = 1;
  return { ok: true, response: sa.initResponse };
}

export type InitResult =
  | { kind: 'done' }
  | { kind: 'retry'; group: number }
  | { kind: 'cookie'; cookie: Buffer }
  | { kind: 'failed'; reason: string };

/** Initiator: the responder's answer. On success the SA has its keys. */
export function processInitResponse(
  sa: IkeSa,
  response: Buffer,
  spiR: Buffer,
  payloads: Payload[],
  local: Endpoint,
): InitResult {
  const cookie = findNotify(payloads, NotifyType.COOKIE);
  if (cookie) {
    if (cookie.data.length < 1 || cookie.data.length > 64)
      return { kind: 'failed', reason: `COOKIE of ${cookie.data.length} bytes` };
    if (sa.cookie?.equals(cookie.data))
      return { kind: 'failed', reason: 'the responder asked again for the cookie we sent' };
    return { kind: 'cookie', cookie: cookie.data };
  }
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    const g = decodeGroupData(invalidKe.data);
    if (!g.ok || !dhGroupById(g.value) || g.value === sa.dh?.group.id)
      return { kind: 'failed', reason: 'INVALID_KE_PAYLOAD for a group we do not offer' };
    return { kind: 'retry', group: g.value };
  }
  for (const p of payloads)
    if (p.kind === 'N' && p.notifyType < 16384)
      return { kind: 'failed', reason: `refused with notify ${p.notifyType}` };
  const saP = payloads.find((p): p is SaPayload => p.kind === 'SA');
  const ke = payloads.find((p) => p.kind === 'KE');
  const nonce = payloads.find((p) => p.kind === 'Nonce');
  if (!saP || saP.proposals.length !== 1 || !ke || ke.kind !== 'KE' || !nonce || nonce.kind !== 'Nonce')
    return { kind: 'failed', reason: 'IKE_SA_INIT response without one SA, a KE and a Nonce' };
  const suite = suiteOf(saP.proposals[0]);
  // The answer must be one of our own proposals, reduced to one transform of each type.
  const ours = offeredIke().map(suiteOf);
  if (!suite || !ours.some((s) => s && s.encr === suite.encr && s.prf === suite.prf && s.dh === suite.dh))
    return { kind: 'failed', reason: 'the responder chose a proposal we did not offer' };
  if (ke.group !== sa.dh!.group.id || suite.dh !== sa.dh!.group)
    return { kind: 'failed', reason: 'KE group differs from the chosen one' };
  const shared = dhSharedSecret(sa.dh!, ke.data);
  if (!shared.ok) return { kind: 'failed', reason: `bad KE: ${shared.error.message}` };
  sa.suite = suite;
  sa.spiR = spiR;
  sa.nr = nonce.data;
  sa.initResponse = response;
  sa.peerFragmentation = findNotify(payloads, NotifyType.FRAGMENTATION_SUPPORTED) !== undefined;
  sa.nat = natDetection(payloads, sa.spiI, spiR, local, sa.remote);
  sa.setKeys(
    deriveIkeSaKeys(suite, { sharedSecret: shared.value, ni: sa.ni!, nr: sa.nr, spiI: sa.spiI, spiR: sa.spiR }).keys,
  );
  sa.state = 'init-done';
  return { kind: 'done' };
}

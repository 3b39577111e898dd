// IKE_AUTH (RFC 7296 §1.2, §2.15) with the first Child SA (§1.3 in IKE_AUTH, no KE): identities,
// the certificate (CERT encoding 4) and the permit (encoding 10, seed 001), AUTH by digital
// signature (RFC 7427, method 14), and the ESP SA with its traffic selectors.
import type { Prefix } from '../../../core/addr.js';
import {
  AuthMethod,
  CertEncoding,
  ExchangeType,
  NotifyType,
  ProtocolId,
  TransformType,
  notify,
  proposalFromString,
  selectorFromPrefix,
  transformKeyLength,
  type Payload,
  type Proposal,
  type TrafficSelector,
} from '../../message/index.js';
import { authSignedOctets, idPayloadBody } from '../../crypto/auth.js';
import { deriveChildSaKeys } from '../../crypto/keys.js';
import { signAuth } from '../../crypto/signature.js';
import { aeadById } from '../../crypto/transforms.js';
import { authorizePeer, idOf, proofOf } from '../authorize.js';
import type { IkeSa } from '../ike-sa.js';
import type { ChildSaInstall, Endpoint, IkePeer, LocalIdentity } from '../types.js';

export const ESP_PROPOSALS = ['aes256gcm16', 'aes128gcm16'];

type Random = (n: number) => Uint8Array;

/** A fresh inbound SPI: 32 bits, above the range RFC 4303 reserves. */
export function newSpi(random: Random): number {
  for (;;) {
    const spi = Buffer.from(random(4)).readUInt32BE(0);
    if (spi > 255) return spi;
  }
}

function espProposals(spi: number): Proposal[] {
  const s = Buffer.alloc(4);
  s.writeUInt32BE(spi);
  return ESP_PROPOSALS.map((p, i) => {
    const r = proposalFromString(p, ProtocolId.ESP, i + 1, s);
    if (!r.ok) throw new Error(`bad built-in proposal ${p}`);
    return r.value;
  });
}

function selectors(prefixes: Prefix[]): TrafficSelector[] {
  return prefixes.map((p) => selectorFromPrefix(p));
}

/** Selectors equal to exactly these prefixes (any protocol and port): no narrowing in this version. */
function sameSelectors(got: TrafficSelector[], want: Prefix[]): boolean {
  const key = (t: TrafficSelector) => JSON.stringify(t);
  const a = got.map(key).sort();
  const b = selectors(want).map(key).sort();
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function ownAuth(sa: IkeSa, local: LocalIdentity, signer: 'initiator' | 'responder'): Promise<{ id: Payload; auth: Payload }> {
  const id = idOf(local.certificate);
  const octets = authSignedOctets(sa.suite!.prf, sa.keys!, signer, {
    realMessage: signer === 'initiator' ? sa.initRequest! : sa.initResponse!,
    peerNonce: signer === 'initiator' ? sa.nr! : sa.ni!,
    idBody: idPayloadBody(id.idType, id.data),
  });
  const auth = await signAuth(local.signer, 'ecdsa-with-SHA256', octets);
  return { id: { kind: signer === 'initiator' ? 'IDi' : 'IDr', idType: id.idType, data: id.data }, auth: { kind: 'AUTH', method: AuthMethod.DIGITAL_SIGNATURE, data: auth } };
}

function peerOctets(sa: IkeSa, peerRole: 'initiator' | 'responder', id: { idType: number; data: Buffer }): Buffer {
  return authSignedOctets(sa.suite!.prf, sa.keys!, peerRole, {
    realMessage: peerRole === 'initiator' ? sa.initRequest! : sa.initResponse!,
    peerNonce: peerRole === 'initiator' ? sa.nr! : sa.ni!,
    idBody: idPayloadBody(id.idType, id.data),
  });
}

/** Initiator: the IKE_AUTH request for `sa.peer`. */
export async function buildAuthRequest(sa: IkeSa, local: LocalIdentity, random: Random): Promise<Buffer> {
  const peer = sa.peer!;
  const { id, auth } = await ownAuth(sa, local, 'initiator');
  sa.childSpi = newSpi(random);
  const inner: Payload[] = [
    id,
    { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(local.certificate) },
    { kind: 'CERT', encoding: CertEncoding.X509_ATTRIBUTE, data: Buffer.from(peer.permit) },
    auth,
    { kind: 'SA', proposals: espProposals(sa.childSpi) },
    { kind: 'TSi', selectors: selectors(peer.localPrefixes) },
    { kind: 'TSr', selectors: selectors(peer.remotePrefixes) },
  ];
  sa.state = 'auth-sent';
  const id1 = sa.nextRequestId++;
  return sa.protect(ExchangeType.IKE_AUTH, false, id1, inner);
}

function chooseEsp(proposals: Proposal[]): { proposal: Proposal; encr: NonNullable<ReturnType<typeof aeadById>> } | undefined {
  for (const p of proposals) {
    if (p.protocolId !== ProtocolId.ESP || p.spi.length !== 4) continue;
    for (const t of p.transforms) {
      if (t.type !== TransformType.ENCR) continue;
      const encr = aeadById(t.id, transformKeyLength(t));
      if (encr) return { proposal: { ...p, transforms: [t, ...p.transforms.filter((x) => x.type === TransformType.ESN).slice(0, 1)] }, encr };
    }
  }
  return undefined;
}

function childInstall(sa: IkeSa, peer: IkePeer, local: Endpoint, encr: NonNullable<ReturnType<typeof aeadById>>, peerSpi: number): ChildSaInstall {
  const k = deriveChildSaKeys(sa.suite!.prf, sa.keys!.skD, { encr }, { ni: sa.ni!, nr: sa.nr! });
  const mine = sa.role === 'initiator' ? k.initiatorToResponder : k.responderToInitiator;
  const theirs = sa.role === 'initiator' ? k.responderToInitiator : k.initiatorToResponder;
  return {
    peer: peer.id,
    vpnId: peer.vpnId,
    inbound: { spi: sa.childSpi!, key: theirs },
    outbound: { spi: peerSpi, key: mine },
    local,
    remote: sa.remote,
    localPrefixes: peer.localPrefixes,
    remotePrefixes: peer.remotePrefixes,
  };
}

export type AuthAnswer = { ok: true; response: Buffer; child: ChildSaInstall } | { ok: false; response: Buffer; reason: string; code: string; peer?: string };

/**
 * Responder: identifies the peer among those our authority delivered (by the certificate it sent,
 * pinned), authorises it (AUTH, permit for the VPN), answers with our own proof and the Child SA.
 */
export async function answerAuthRequest(sa: IkeSa, messageId: number, inner: Payload[], candidates: IkePeer[], local: LocalIdentity, localEndpoint: Endpoint, random: Random, now: number): Promise<AuthAnswer> {
  const fail = (notifyType: number, code: string, reason: string, peer?: string): AuthAnswer => ({
    ok: false,
    code,
    reason,
    peer,
    response: sa.protect(ExchangeType.IKE_AUTH, true, messageId, [notify(notifyType)]),
  });
  const proof = proofOf(inner, 'IDi');
  if (!proof) return fail(NotifyType.AUTHENTICATION_FAILED, 'auth-no-id', 'IKE_AUTH without IDi');
  const sent = proof.certs[0];
  const mine = candidates.filter((p) => sent && Buffer.from(p.certificate).equals(sent));
  if (mine.length === 0) return fail(NotifyType.AUTHENTICATION_FAILED, 'auth-unknown-peer', 'the certificate sent is not one our authority delivered for any peer');
  const octets = peerOctets(sa, 'initiator', proof.id);
  let peer: IkePeer | undefined;
  let last = { code: 'auth-failed', reason: 'no candidate' };
  for (const p of mine) {
    const r = await authorizePeer(proof, p, octets, local.attributeAuthority, now);
    if (r.ok) {
      peer = p;
      break;
    }
    last = { code: r.error.code, reason: r.error.message };
  }
  if (!peer) return fail(NotifyType.AUTHENTICATION_FAILED, last.code, last.reason, mine[0].id);
  sa.peer = peer;
  const esp = inner.find((p) => p.kind === 'SA');
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  const chosen = esp?.kind === 'SA' ? chooseEsp(esp.proposals) : undefined;
  if (!chosen) return fail(NotifyType.NO_PROPOSAL_CHOSEN, 'child-no-proposal', 'no ESP proposal we implement', peer.id);
  // The initiator's TSi are its prefixes (the peer's, for us), TSr ours.
  if (tsi?.kind !== 'TSi' || tsr?.kind !== 'TSr' || !sameSelectors(tsi.selectors, peer.remotePrefixes) || !sameSelectors(tsr.selectors, peer.localPrefixes)) {
    return fail(NotifyType.TS_UNACCEPTABLE, 'child-ts-unacceptable', `traffic selectors are not VPN ${peer.vpnName}'s prefixes`, peer.id);
  }
  sa.childSpi = newSpi(random);
  const peerSpi = chosen.proposal.spi.readUInt32BE(0);
  const spi = Buffer.alloc(4);
  spi.writeUInt32BE(sa.childSpi);
  const { id, auth } = await ownAuth(sa, local, 'responder');
  const response = sa.protect(ExchangeType.IKE_AUTH, true, messageId, [
    id,
    { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(local.certificate) },
    { kind: 'CERT', encoding: CertEncoding.X509_ATTRIBUTE, data: Buffer.from(peer.permit) },
    auth,
    { kind: 'SA', proposals: [{ ...chosen.proposal, spi }] },
    { kind: 'TSi', selectors: tsi.selectors },
    { kind: 'TSr', selectors: tsr.selectors },
  ]);
  sa.state = 'established';
  return { ok: true, response, child: childInstall(sa, peer, localEndpoint, chosen.encr, peerSpi) };
}

export type AuthResult = { ok: true; child: ChildSaInstall } | { ok: false; code: string; reason: string };

/** Initiator: the responder's IKE_AUTH answer: its proof, its permit, the Child SA. */
export async function processAuthResponse(sa: IkeSa, inner: Payload[], local: LocalIdentity, localEndpoint: Endpoint, now: number): Promise<AuthResult> {
  const refused = inner.find((p) => p.kind === 'N' && p.notifyType < 16384);
  if (refused?.kind === 'N') return { ok: false, code: refused.notifyType === NotifyType.AUTHENTICATION_FAILED ? 'peer-refused-auth' : 'peer-refused', reason: `the responder refused with notify ${refused.notifyType}` };
  const peer = sa.peer!;
  const proof = proofOf(inner, 'IDr');
  if (!proof) return { ok: false, code: 'auth-no-id', reason: 'IKE_AUTH response without IDr' };
  const r = await authorizePeer(proof, peer, peerOctets(sa, 'responder', proof.id), local.attributeAuthority, now);
  if (!r.ok) return { ok: false, code: r.error.code, reason: r.error.message };
  const esp = inner.find((p) => p.kind === 'SA');
  if (esp?.kind !== 'SA' || esp.proposals.length !== 1) return { ok: false, code: 'child-no-proposal', reason: 'no ESP SA in the answer' };
  const offered = espProposals(sa.childSpi!);
  const chosen = chooseEsp(esp.proposals);
  if (!chosen || !offered.some((o) => o.transforms.some((t) => t.type === TransformType.ENCR && aeadById(t.id, transformKeyLength(t)) === chosen.encr))) {
    return { ok: false, code: 'child-not-offered', reason: 'the responder chose an ESP transform we did not offer' };
  }
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  if (tsi?.kind !== 'TSi' || tsr?.kind !== 'TSr' || !sameSelectors(tsi.selectors, peer.localPrefixes) || !sameSelectors(tsr.selectors, peer.remotePrefixes)) {
    return { ok: false, code: 'child-ts-narrowed', reason: 'the responder narrowed the traffic selectors' };
  }
  sa.state = 'established';
  return { ok: true, child: childInstall(sa, peer, localEndpoint, chosen.encr, chosen.proposal.spi.readUInt32BE(0)) };
}


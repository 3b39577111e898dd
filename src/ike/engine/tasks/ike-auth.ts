// IKE_AUTH (RFC 7296 §1.2, §2.15) with the first Child SA (§1.3 in IKE_AUTH, no KE): identities,
// the certificate (CERT encoding 4) and the permit (encoding 10, seed 001), AUTH by digital
// signature (RFC 7427, method 14), and the ESP SA with its traffic selectors.
import { AuthMethod, CertEncoding, NotifyType, type Payload } from '../../message/index.js';
import { authSignedOctets, idPayloadBody } from '../../crypto/auth.js';
import { signAuth } from '../../crypto/signature.js';
import {
  authenticatePeer,
  authorizePeer,
  certificateRequest,
  checkPermits,
  idOf,
  permitForVpn,
  proofOf,
} from '../authorize.js';
import type { ChildSa, IkeSa } from '../ike-sa.js';
import type { IkePeer, LocalIdentity } from '../types.js';
import type { TaskContext } from './task.js';
import {
  answerIsOffered,
  chooseEsp,
  coversPrefixes,
  espProposals,
  makeChild,
  newSpi,
  sameSelectors,
  selectors,
  spiBytes,
} from './child.js';

function ownAuth(sa: IkeSa, local: LocalIdentity, signer: 'initiator' | 'responder'): { id: Payload; auth: Payload } {
  const id = idOf(local.certificate);
  const octets = authSignedOctets(sa.suite!.prf, sa.keys!, signer, {
    realMessage: signer === 'initiator' ? sa.initRequest! : sa.initResponse!,
    peerNonce: signer === 'initiator' ? sa.nr! : sa.ni!,
    idBody: idPayloadBody(id.idType, id.data),
  });
  const auth = signAuth(local.signer, 'ecdsa-with-SHA256', octets);
  return {
    id: { kind: signer === 'initiator' ? 'IDi' : 'IDr', idType: id.idType, data: id.data },
    auth: { kind: 'AUTH', method: AuthMethod.DIGITAL_SIGNATURE, data: auth },
  };
}

function peerOctets(sa: IkeSa, peerRole: 'initiator' | 'responder', id: { idType: number; data: Buffer }): Buffer {
  return authSignedOctets(sa.suite!.prf, sa.keys!, peerRole, {
    realMessage: peerRole === 'initiator' ? sa.initRequest! : sa.initResponse!,
    peerNonce: peerRole === 'initiator' ? sa.nr! : sa.ni!,
    idBody: idPayloadBody(id.idType, id.data),
  });
}

function proofPayloads(local: LocalIdentity, permit: Uint8Array): Payload[] {
  return [
    { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(local.certificate) },
    { kind: 'CERT', encoding: CertEncoding.X509_ATTRIBUTE, data: Buffer.from(permit) },
  ];
}

/** Initiator: the inner payloads of the IKE_AUTH request for `sa.peer`. */
export function buildAuthRequest(sa: IkeSa, ctx: Pick<TaskContext, 'local' | 'random'>): Payload[] {
  const { local, random } = ctx;
  const peer = sa.peer!;
  const { id, auth } = ownAuth(sa, local, 'initiator');
  sa.childSpi = newSpi(random);
  sa.state = 'auth-sent';
  return [
    id,
    ...proofPayloads(local, peer.permit),
    ...certificateRequest(local.certificateAuthorities),
    auth,
    { kind: 'SA', proposals: espProposals(sa.childSpi) },
    { kind: 'TSi', selectors: selectors(peer.localPrefixes) },
    { kind: 'TSr', selectors: selectors(peer.remotePrefixes) },
  ];
}

export type AuthAnswer =
  | { ok: true; response: Payload[]; child: ChildSa; permitNotAfter: number }
  | { ok: false; response: Payload[]; reason: string; code: string; peer?: string };

/**
 * Responder: identifies the peer among those our authority delivered (by the certificate it sent,
 * pinned), authorises it (AUTH, permit for the VPN), answers with our own proof and the Child SA.
 */
export function answerAuthRequest(sa: IkeSa, ctx: TaskContext, inner: Payload[]): AuthAnswer {
  const { local, random, now, timers } = ctx;
  const candidates = ctx.peers();
  const fail = (notifyType: number, code: string, reason: string, peer?: string): AuthAnswer => ({
    ok: false,
    code,
    reason,
    peer,
    response: [{ kind: 'N', protocolId: 0, spi: Buffer.alloc(0), notifyType, data: Buffer.alloc(0) }],
  });
  const proof = proofOf(inner, 'IDi');
  if (!proof) return fail(NotifyType.AUTHENTICATION_FAILED, 'auth-no-id', 'IKE_AUTH without IDi');
  const sent = proof.certs[0];
  const mine = candidates.filter((p) => sent && Buffer.from(p.certificate).equals(sent));
  if (mine.length === 0)
    return fail(
      NotifyType.AUTHENTICATION_FAILED,
      'auth-unknown-peer',
      'the certificate sent is not one our authority delivered for any peer',
    );
  // Every candidate has this certificate: authenticate once (bytes and one signature, before any
  // of the peer's DER is decoded), then let the permits it sent pick the VPN.
  const authenticated = authenticatePeer(proof, mine[0].certificate, peerOctets(sa, 'initiator', proof.id), mine[0].id);
  if (!authenticated.ok)
    return fail(NotifyType.AUTHENTICATION_FAILED, authenticated.error.code, authenticated.error.message, mine[0].id);
  const permits = checkPermits(proof, mine[0].certificate, local.attributeAuthority, now);
  // One certificate may be a peer in several pairwise VPNs: the permit it sent decides which one
  // this IKE SA is for, and the traffic selectors must then be that VPN's prefixes.
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  let peer: IkePeer | undefined;
  let permitNotAfter = Infinity;
  let last = { code: 'auth-failed', reason: 'no candidate' };
  for (const p of mine) {
    const r = permitForVpn(permits, p);
    if (!r.ok) {
      last = { code: r.error.code, reason: r.error.message };
      continue;
    }
    const tsOk =
      tsi?.kind === 'TSi' &&
      tsr?.kind === 'TSr' &&
      coversPrefixes(tsi.selectors, p.remotePrefixes) &&
      coversPrefixes(tsr.selectors, p.localPrefixes);
    if (!peer || tsOk) {
      peer = p;
      permitNotAfter = r.value.notAfter;
    }
    if (tsOk) break;
  }
  if (!peer) return fail(NotifyType.AUTHENTICATION_FAILED, last.code, last.reason, mine[0].id);
  sa.peer = peer;
  sa.permitNotAfter = permitNotAfter;
  const esp = inner.find((p) => p.kind === 'SA');
  const chosen = esp?.kind === 'SA' ? chooseEsp(esp.proposals) : undefined;
  if (!chosen) return fail(NotifyType.NO_PROPOSAL_CHOSEN, 'child-no-proposal', 'no ESP proposal we implement', peer.id);
  // The initiator's TSi are its prefixes (the peer's, for us), TSr ours. A superset (a wider range,
  // both families, ranges that are not prefixes) is narrowed to the VPN's prefixes (§2.9); less
  // than them is refused: the SA must carry everything the VPN's path sends into it.
  if (
    tsi?.kind !== 'TSi' ||
    tsr?.kind !== 'TSr' ||
    !coversPrefixes(tsi.selectors, peer.remotePrefixes) ||
    !coversPrefixes(tsr.selectors, peer.localPrefixes)
  ) {
    return fail(
      NotifyType.TS_UNACCEPTABLE,
      'child-ts-unacceptable',
      `traffic selectors are not VPN ${peer.vpnName}'s prefixes`,
      peer.id,
    );
  }
  const inboundSpi = newSpi(random);
  const outboundSpi = chosen.proposal.spi.readUInt32BE(0);
  const { id, auth } = ownAuth(sa, local, 'responder');
  const child = makeChild(sa, {
    encr: chosen.encr,
    inboundSpi,
    outboundSpi,
    weInitiated: false,
    ni: sa.ni!,
    nr: sa.nr!,
    now,
    timers,
    random,
  });
  return {
    ok: true,
    permitNotAfter,
    child,
    response: [
      id,
      ...proofPayloads(local, peer.permit),
      auth,
      { kind: 'SA', proposals: [{ ...chosen.proposal, spi: spiBytes(inboundSpi) }] },
      { kind: 'TSi', selectors: selectors(peer.remotePrefixes) },
      { kind: 'TSr', selectors: selectors(peer.localPrefixes) },
    ],
  };
}

export type AuthResult =
  { ok: true; child: ChildSa; permitNotAfter: number } | { ok: false; code: string; reason: string };

/** Initiator: the responder's IKE_AUTH answer: its proof, its permit, the Child SA. */
export function processAuthResponse(
  sa: IkeSa,
  ctx: Pick<TaskContext, 'local' | 'now' | 'timers' | 'random'>,
  inner: Payload[],
): AuthResult {
  const { local, now, timers, random } = ctx;
  const refused = inner.find((p) => p.kind === 'N' && p.notifyType < 16384);
  if (refused?.kind === 'N')
    return {
      ok: false,
      code: refused.notifyType === NotifyType.AUTHENTICATION_FAILED ? 'peer-refused-auth' : 'peer-refused',
      reason: `the responder refused with notify ${refused.notifyType}`,
    };
  const peer = sa.peer!;
  const proof = proofOf(inner, 'IDr');
  if (!proof) return { ok: false, code: 'auth-no-id', reason: 'IKE_AUTH response without IDr' };
  const r = authorizePeer(proof, peer, peerOctets(sa, 'responder', proof.id), local.attributeAuthority, now);
  if (!r.ok) return { ok: false, code: r.error.code, reason: r.error.message };
  const esp = inner.find((p) => p.kind === 'SA');
  if (esp?.kind !== 'SA' || esp.proposals.length !== 1)
    return { ok: false, code: 'child-no-proposal', reason: 'no ESP SA in the answer' };
  const chosen = chooseEsp(esp.proposals);
  if (!chosen || !answerIsOffered(chosen, false))
    return { ok: false, code: 'child-not-offered', reason: 'the responder chose an ESP transform we did not offer' };
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  if (
    tsi?.kind !== 'TSi' ||
    tsr?.kind !== 'TSr' ||
    !sameSelectors(tsi.selectors, peer.localPrefixes) ||
    !sameSelectors(tsr.selectors, peer.remotePrefixes)
  ) {
    return { ok: false, code: 'child-ts-narrowed', reason: 'the responder narrowed the traffic selectors' };
  }
  const child = makeChild(sa, {
    encr: chosen.encr,
    inboundSpi: sa.childSpi!,
    outboundSpi: chosen.proposal.spi.readUInt32BE(0),
    weInitiated: true,
    ni: sa.ni!,
    nr: sa.nr!,
    now,
    timers,
    random,
  });
  return { ok: true, child, permitNotAfter: r.value.notAfter };
}

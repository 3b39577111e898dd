// CREATE_CHILD_SA rekeying a Child SA (RFC 7296 §1.3.3) with PFS (a KE pair in the exchange):
// REKEY_SA names the old SA by the SPI its sender receives with; the new SA replaces it, and the
// initiator then deletes the old one (INFORMATIONAL). When both sides rekey the same SA at once,
// the IKE SA's initiator refuses the other's request with TEMPORARY_FAILURE and its own wins (a
// simpler, deterministic variant of §2.8.1 that still ends with exactly one new SA).
import {
  decodeGroupData,
  DhGroup as DhGroupIds,
  encodeGroupData,
  findNotify,
  notify,
  NotifyType,
  ProtocolId,
  type Payload,
} from '../../message/index.js';
import { dhGenerate, dhSharedSecret, type DhKeyPair } from '../../crypto/dh.js';
import { dhGroupById } from '../../crypto/transforms.js';
import type { ChildSa, IkeSa } from '../ike-sa.js';
import type { TaskContext } from './task.js';
import {
  answerIsOffered,
  chooseEsp,
  coversPrefixes,
  createChildAnswer,
  espProposals,
  makeChild,
  newSpi,
  sameSelectors,
  selectors,
  spiBytes,
} from './child.js';

const NONCE_BYTES = 32;

export interface ChildRekeyState {
  old: ChildSa;
  inboundSpi: number;
  ni: Buffer;
  dh: DhKeyPair;
}

/** Initiator: the request rekeying `old`. */
export function buildChildRekey(
  old: ChildSa,
  ctx: Pick<TaskContext, 'random'>,
  group: number = DhGroupIds.ECP_256,
): { inner: Payload[]; state: ChildRekeyState } {
  const random = ctx.random;
  const g = dhGroupById(group)!;
  const state: ChildRekeyState = {
    old,
    inboundSpi: newSpi(random),
    ni: Buffer.from(random(NONCE_BYTES)),
    dh: dhGenerate(g, random),
  };
  old.state = 'rekeying';
  return {
    state,
    inner: [
      notify(NotifyType.REKEY_SA, undefined, { protocolId: ProtocolId.ESP, spi: spiBytes(old.inboundSpi) }),
      { kind: 'SA', proposals: espProposals(state.inboundSpi, true) },
      { kind: 'Nonce', data: state.ni },
      { kind: 'KE', group, data: state.dh.publicValue },
      { kind: 'TSi', selectors: selectors(old.localPrefixes) },
      { kind: 'TSr', selectors: selectors(old.remotePrefixes) },
    ],
  };
}

export type ChildRekeyResult =
  | { ok: true; child: ChildSa }
  | { ok: false; code: 'retry-later' | 'retry-group' | 'not-found' | 'failed'; reason: string; group?: number };

/** Initiator: the answer to our rekey request. */
export function processChildRekeyResponse(
  sa: IkeSa,
  ctx: Pick<TaskContext, 'now' | 'timers' | 'random'>,
  st: ChildRekeyState,
  inner: Payload[],
): ChildRekeyResult {
  const { now, timers, random } = ctx;
  const invalidKe = findNotify(inner, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    const g = decodeGroupData(invalidKe.data);
    if (g.ok && dhGroupById(g.value) && g.value !== st.dh.group.id)
      return { ok: false, code: 'retry-group', group: g.value, reason: `the peer wants DH group ${g.value}` };
    return { ok: false, code: 'failed', reason: 'INVALID_KE_PAYLOAD for a group we do not offer' };
  }
  if (findNotify(inner, NotifyType.TEMPORARY_FAILURE))
    return { ok: false, code: 'retry-later', reason: 'the peer is rekeying this SA itself' };
  if (findNotify(inner, NotifyType.CHILD_SA_NOT_FOUND))
    return { ok: false, code: 'not-found', reason: 'the peer has no such Child SA' };
  const answer = createChildAnswer(inner);
  if (!answer.ok) return answer;
  const { sa: saP, nonce, ke } = answer;
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  const chosen = chooseEsp(saP.proposals, true);
  if (!chosen || !answerIsOffered(chosen, true) || chosen.dh !== st.dh.group || ke.group !== st.dh.group.id)
    return { ok: false, code: 'failed', reason: 'the peer chose a proposal or group we did not offer' };
  if (
    tsi?.kind !== 'TSi' ||
    tsr?.kind !== 'TSr' ||
    !sameSelectors(tsi.selectors, st.old.localPrefixes) ||
    !sameSelectors(tsr.selectors, st.old.remotePrefixes)
  )
    return { ok: false, code: 'failed', reason: 'the peer narrowed the traffic selectors' };
  const shared = dhSharedSecret(st.dh, ke.data);
  if (!shared.ok) return { ok: false, code: 'failed', reason: `bad KE: ${shared.error.message}` };
  const child = makeChild(sa, {
    encr: chosen.encr,
    inboundSpi: st.inboundSpi,
    outboundSpi: chosen.proposal.spi.readUInt32BE(0),
    weInitiated: true,
    ni: st.ni,
    nr: nonce.data,
    sharedSecret: shared.value,
    now,
    timers,
    random,
  });
  st.old.state = 'rekeyed';
  return { ok: true, child };
}

export type ChildRekeyAnswer = { response: Payload[]; child?: ChildSa; old?: ChildSa; refused?: string };

/** Responder: a CREATE_CHILD_SA request. Only rekeys of existing Child SAs are accepted (one Child SA per IKE SA). */
export function answerChildRekey(
  sa: IkeSa,
  ctx: Pick<TaskContext, 'now' | 'timers' | 'random'>,
  inner: Payload[],
): ChildRekeyAnswer {
  const { now, timers, random } = ctx;
  const refuse = (
    type: number,
    reason: string,
    data?: Buffer,
    opts?: { protocolId?: number; spi?: Buffer },
  ): ChildRekeyAnswer => ({ response: [notify(type, data, opts)], refused: reason });
  const rekey = findNotify(inner, NotifyType.REKEY_SA);
  if (!rekey) return refuse(NotifyType.NO_ADDITIONAL_SAS, 'a new Child SA was asked for; kasane keeps one per IKE SA');
  if (rekey.protocolId !== ProtocolId.ESP || rekey.spi.length !== 4)
    return refuse(NotifyType.INVALID_SYNTAX, 'REKEY_SA without an ESP SPI');
  const spi = rekey.spi.readUInt32BE(0);
  const old = sa.children.find((c) => c.outboundSpi === spi && c.state !== 'rekeyed');
  if (!old)
    return refuse(NotifyType.CHILD_SA_NOT_FOUND, `no Child SA with SPI ${spi.toString(16)}`, undefined, {
      protocolId: ProtocolId.ESP,
      spi: rekey.spi,
    });
  if (old.state === 'rekeying' && sa.role === 'initiator')
    return refuse(NotifyType.TEMPORARY_FAILURE, 'both sides rekey this SA; ours wins');
  const saP = inner.find((p) => p.kind === 'SA');
  const nonce = inner.find((p) => p.kind === 'Nonce');
  const ke = inner.find((p) => p.kind === 'KE');
  const tsi = inner.find((p) => p.kind === 'TSi');
  const tsr = inner.find((p) => p.kind === 'TSr');
  if (saP?.kind !== 'SA' || nonce?.kind !== 'Nonce')
    return refuse(NotifyType.INVALID_SYNTAX, 'rekey without SA or Nonce');
  const chosen = chooseEsp(saP.proposals, true);
  if (!chosen || !chosen.dh) return refuse(NotifyType.NO_PROPOSAL_CHOSEN, 'no ESP proposal with PFS that we implement');
  if (ke?.kind !== 'KE' || ke.group !== chosen.dh.id)
    return refuse(
      NotifyType.INVALID_KE_PAYLOAD,
      `KE for another group than ${chosen.dh.id}`,
      encodeGroupData(chosen.dh.id),
    );
  if (
    tsi?.kind !== 'TSi' ||
    tsr?.kind !== 'TSr' ||
    !coversPrefixes(tsi.selectors, old.remotePrefixes) ||
    !coversPrefixes(tsr.selectors, old.localPrefixes)
  ) {
    return refuse(NotifyType.TS_UNACCEPTABLE, 'traffic selectors do not cover the SA being rekeyed');
  }
  const dh = dhGenerate(chosen.dh, random);
  const shared = dhSharedSecret(dh, ke.data);
  if (!shared.ok) return refuse(NotifyType.INVALID_SYNTAX, `bad KE: ${shared.error.message}`);
  const nr = Buffer.from(random(NONCE_BYTES));
  const inboundSpi = newSpi(random);
  const child = makeChild(sa, {
    encr: chosen.encr,
    inboundSpi,
    outboundSpi: chosen.proposal.spi.readUInt32BE(0),
    weInitiated: false,
    ni: nonce.data,
    nr,
    sharedSecret: shared.value,
    now,
    timers,
    random,
  });
  old.state = 'rekeyed';
  return {
    child,
    old,
    response: [
      { kind: 'SA', proposals: [{ ...chosen.proposal, spi: spiBytes(inboundSpi) }] },
      { kind: 'Nonce', data: nr },
      { kind: 'KE', group: chosen.dh.id, data: dh.publicValue },
      { kind: 'TSi', selectors: selectors(old.remotePrefixes) },
      { kind: 'TSr', selectors: selectors(old.localPrefixes) },
    ],
  };
}

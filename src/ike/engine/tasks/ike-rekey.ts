// CREATE_CHILD_SA rekeying the IKE SA itself (RFC 7296 §1.3.2, §2.18): new SPIs, nonces and a
// fresh Diffie-Hellman; SKEYSEED comes from the old SA's SK_d. The Child SAs move to the new SA,
// whose initiator is whoever started the rekey; that side then deletes the old IKE SA. Collisions
// are settled as for Child SAs: the IKE SA's initiator refuses the other's request with
// TEMPORARY_FAILURE.
import {
  DhGroup as DhGroupIds,
  encodeGroupData,
  findNotify,
  notify,
  NotifyType,
  ProtocolId,
  type Payload,
  type Proposal,
} from '../../message/index.js';
import { dhGenerate, dhSharedSecret, type DhKeyPair } from '../../crypto/dh.js';
import { deriveRekeyedIkeSaKeys } from '../../crypto/keys.js';
import { dhGroupById } from '../../crypto/transforms.js';
import { IkeSa } from '../ike-sa.js';
import { chosenTransforms, offeredIke, suiteOf } from './ike-init.js';
import type { TaskContext } from './task.js';
import { createChildAnswer } from './child.js';

const NONCE_BYTES = 32;

export interface IkeRekeyState {
  spi: Buffer;
  ni: Buffer;
  dh: DhKeyPair;
}

/** Is this CREATE_CHILD_SA request a rekey of the IKE SA (an SA payload with IKE proposals)? */
export function isIkeRekey(inner: Payload[]): boolean {
  const sa = inner.find((p) => p.kind === 'SA');
  return (
    sa?.kind === 'SA' &&
    sa.proposals.some((p) => p.protocolId === ProtocolId.IKE) &&
    !findNotify(inner, NotifyType.REKEY_SA)
  );
}

function withSpi(proposals: Proposal[], spi: Buffer): Proposal[] {
  return proposals.map((p) => ({ ...p, spi }));
}

export function buildIkeRekey(
  old: IkeSa,
  ctx: Pick<TaskContext, 'random'>,
): { inner: Payload[]; state: IkeRekeyState } {
  const random = ctx.random;
  const group = old.suite?.dh.id ?? DhGroupIds.ECP_256;
  const state: IkeRekeyState = {
    spi: Buffer.from(random(8)),
    ni: Buffer.from(random(NONCE_BYTES)),
    dh: dhGenerate(dhGroupById(group)!, random),
  };
  return {
    state,
    inner: [
      { kind: 'SA', proposals: withSpi(offeredIke(), state.spi) },
      { kind: 'Nonce', data: state.ni },
      { kind: 'KE', group, data: state.dh.publicValue },
    ],
  };
}

/** The new SA, inheriting what the old one had established. */
function successor(old: IkeSa, role: 'initiator' | 'responder', spiI: Buffer, spiR: Buffer, now: number): IkeSa {
  const sa = new IkeSa(role, spiI, { ...old.remote }, now, old.localPort, old.pool);
  sa.spiR = spiR;
  sa.peer = old.peer;
  sa.permitNotAfter = old.permitNotAfter;
  sa.peerFragmentation = old.peerFragmentation;
  sa.state = 'established';
  sa.establishedAt = now;
  sa.children.push(...old.children);
  old.children.length = 0;
  return sa;
}

export type IkeRekeyResult = { ok: true; sa: IkeSa } | { ok: false; code: 'retry-later' | 'failed'; reason: string };

export function processIkeRekeyResponse(
  old: IkeSa,
  ctx: Pick<TaskContext, 'now'>,
  st: IkeRekeyState,
  inner: Payload[],
): IkeRekeyResult {
  const now = ctx.now;
  if (findNotify(inner, NotifyType.TEMPORARY_FAILURE))
    return { ok: false, code: 'retry-later', reason: 'the peer is rekeying this IKE SA itself' };
  const answer = createChildAnswer(inner);
  if (!answer.ok) return answer;
  const { nonce, ke } = answer;
  const p = answer.sa.proposals[0];
  const suite = suiteOf(p);
  if (
    !suite ||
    p.spi.length !== 8 ||
    suite.dh !== st.dh.group ||
    ke.group !== st.dh.group.id ||
    !offeredIke()
      .map(suiteOf)
      .some((s) => s && s.encr === suite.encr && s.prf === suite.prf && s.dh === suite.dh)
  ) {
    return { ok: false, code: 'failed', reason: 'the peer chose a proposal we did not offer' };
  }
  const shared = dhSharedSecret(st.dh, ke.data);
  if (!shared.ok) return { ok: false, code: 'failed', reason: `bad KE: ${shared.error.message}` };
  const sa = successor(old, 'initiator', st.spi, p.spi, now);
  sa.suite = suite;
  sa.ni = st.ni;
  sa.nr = nonce.data;
  sa.setKeys(
    deriveRekeyedIkeSaKeys(old.suite!.prf, old.keys!.skD, suite, {
      sharedSecret: shared.value,
      ni: sa.ni,
      nr: sa.nr,
      spiI: sa.spiI,
      spiR: sa.spiR,
    }).keys,
  );
  return { ok: true, sa };
}

export type IkeRekeyAnswer = { response: Payload[]; sa?: IkeSa; refused?: string };

/** Responder: `rekeyInFlight` says whether our own rekey of this IKE SA is on its way (a collision). */
export function answerIkeRekey(
  old: IkeSa,
  ctx: Pick<TaskContext, 'random' | 'now'>,
  inner: Payload[],
  rekeyInFlight: boolean,
): IkeRekeyAnswer {
  const { random, now } = ctx;
  const refuse = (type: number, reason: string, data?: Buffer): IkeRekeyAnswer => ({
    response: [notify(type, data)],
    refused: reason,
  });
  if (rekeyInFlight && old.role === 'initiator')
    return refuse(NotifyType.TEMPORARY_FAILURE, 'both sides rekey the IKE SA; ours wins');
  const saP = inner.find((p) => p.kind === 'SA');
  const nonce = inner.find((p) => p.kind === 'Nonce');
  const ke = inner.find((p) => p.kind === 'KE');
  if (saP?.kind !== 'SA' || nonce?.kind !== 'Nonce')
    return refuse(NotifyType.INVALID_SYNTAX, 'IKE rekey without SA or Nonce');
  let chosen: { p: Proposal; suite: NonNullable<ReturnType<typeof suiteOf>> } | undefined;
  for (const p of saP.proposals) {
    const s = suiteOf(p);
    if (s && p.spi.length === 8) {
      chosen = { p, suite: s };
      break;
    }
  }
  if (!chosen) return refuse(NotifyType.NO_PROPOSAL_CHOSEN, 'no IKE proposal we implement');
  if (ke?.kind !== 'KE' || ke.group !== chosen.suite.dh.id)
    return refuse(
      NotifyType.INVALID_KE_PAYLOAD,
      `KE for another group than ${chosen.suite.dh.id}`,
      encodeGroupData(chosen.suite.dh.id),
    );
  const dh = dhGenerate(chosen.suite.dh, random);
  const shared = dhSharedSecret(dh, ke.data);
  if (!shared.ok) return refuse(NotifyType.INVALID_SYNTAX, `bad KE: ${shared.error.message}`);
  const spiR = Buffer.from(random(8));
  const sa = successor(old, 'responder', chosen.p.spi, spiR, now);
  sa.suite = chosen.suite;
  sa.ni = nonce.data;
  sa.nr = Buffer.from(random(NONCE_BYTES));
  sa.setKeys(
    deriveRekeyedIkeSaKeys(old.suite!.prf, old.keys!.skD, chosen.suite, {
      sharedSecret: shared.value,
      ni: sa.ni,
      nr: sa.nr,
      spiI: sa.spiI,
      spiR,
    }).keys,
  );
  const answer: Proposal = { ...chosen.p, spi: spiR, transforms: chosenTransforms(chosen.p) };
  return {
    sa,
    response: [
      { kind: 'SA', proposals: [answer] },
      { kind: 'Nonce', data: sa.nr },
      { kind: 'KE', group: chosen.suite.dh.id, data: dh.publicValue },
    ],
  };
}

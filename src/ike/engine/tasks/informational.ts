// INFORMATIONAL exchanges (RFC 7296 §1.4): deleting Child SAs and IKE SAs, and the empty request
// that checks the peer is alive (§2.4). A responder deletes the inbound halves the peer names and
// answers with the SPIs of its own halves of the same SAs (§1.4.1).
import { ProtocolId, type Payload } from '../../message/index.js';
import type { ChildSa, IkeSa } from '../ike-sa.js';
import { spiBytes } from './child.js';

export function deleteChildren(children: ChildSa[]): Payload[] {
  return [{ kind: 'D', protocolId: ProtocolId.ESP, spiSize: 4, spis: children.map((c) => spiBytes(c.inboundSpi)) }];
}

export function deleteIke(): Payload[] {
  return [{ kind: 'D', protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }];
}

export interface InformationalAnswer {
  response: Payload[];
  /** The Child SAs the peer deleted (ours to remove now). */
  children: ChildSa[];
  /** The peer deleted the IKE SA itself. */
  ike: boolean;
  /** An error notify that came with it (AUTHENTICATION_FAILED when the initiator refused our IKE_AUTH answer). */
  error?: number;
}

export function answerInformational(sa: IkeSa, inner: Payload[]): InformationalAnswer {
  const out: InformationalAnswer = { response: [], children: [], ike: false };
  for (const p of inner) {
    if (p.kind === 'N' && p.notifyType < 16384) out.error ??= p.notifyType;
    if (p.kind !== 'D') continue;
    if (p.protocolId === ProtocolId.IKE) out.ike = true;
    else if (p.protocolId === ProtocolId.ESP && p.spiSize === 4) {
      for (const spi of p.spis) {
        if (spi.length !== 4) continue;
        const c = sa.children.find((x) => x.outboundSpi === spi.readUInt32BE(0));
        if (c && !out.children.includes(c)) out.children.push(c);
      }
    }
  }
  if (out.ike) return { response: [], children: [...sa.children], ike: true, error: out.error };
  // A child we are rekeying ourselves or already deleting still answers with its SPI (§1.4.1).
  if (out.children.length > 0) out.response = deleteChildren(out.children);
  return out;
}

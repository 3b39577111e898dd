// Pairing: from the ordered chain of entries a key search collected, which gateways encrypt to
// which, in which VPN. Every gateway on the path computes this from the same chain, so the result
// must be a pure, direction-independent function of it.
//
// Rule (docs/protocol.md, "Pairing"): entries that protect their terminal (claim at least one VPN)
// form two lists, each ordered outermost (nearest the WAN) first: the source side's and the
// destination side's. Layers nest and never cross, and a gateway that protects its terminal must
// not relay that terminal's traffic in the clear, so the k-th outermost protecting gateway of one
// side pairs with the k-th outermost of the other. Unequal counts, or a pair without a common VPN,
// block the path. Among several common VPNs the lowest VPN id wins.
import type { SearchEntry } from '../packet/search-message.js';
import type { VpnId } from '../types.js';

export interface PairedLayer {
  vpnId: VpnId;
  /** Index in the chain of the source-side gateway and of the destination-side gateway. */
  src: number;
  dst: number;
}

export type Pairing =
  | { blocked: false; layers: PairedLayer[] }
  | { blocked: true; reason: 'unmatched-layer' | 'no-common-vpn' | 'bad-chain'; detail: string };

export function pairLayers(chain: readonly SearchEntry[]): Pairing {
  // Path order: every source-side entry precedes every destination-side entry.
  const firstDst = chain.findIndex((e) => e.side === 'dst');
  if (firstDst >= 0 && chain.slice(firstDst).some((e) => e.side === 'src')) {
    return { blocked: true, reason: 'bad-chain', detail: 'source-side entry after a destination-side entry' };
  }
  const srcSide: number[] = [];
  const dstSide: number[] = [];
  chain.forEach((e, i) => {
    if (e.vpns.length === 0) return;
    if (e.side === 'src')
      srcSide.unshift(i); // reverse: outermost first
    else dstSide.push(i);
  });
  if (srcSide.length !== dstSide.length) {
    return {
      blocked: true,
      reason: 'unmatched-layer',
      detail: `${srcSide.length} protecting gateway(s) on the source side, ${dstSide.length} on the destination side`,
    };
  }
  const layers: PairedLayer[] = [];
  for (let k = 0; k < srcSide.length; k++) {
    const a = chain[srcSide[k]];
    const b = chain[dstSide[k]];
    const theirs = new Set(b.vpns.map((v) => v.vpnId));
    const common = a.vpns.map((v) => v.vpnId).filter((id) => theirs.has(id));
    if (common.length === 0) {
      return { blocked: true, reason: 'no-common-vpn', detail: `${a.gateway} and ${b.gateway} share no VPN` };
    }
    layers.push({ vpnId: Math.min(...common), src: srcSide[k], dst: dstSide[k] });
  }
  return { blocked: false, layers };
}

/** The same chain seen from the other end (the reply of a search from the other terminal). */
export function reverseChain(chain: readonly SearchEntry[]): SearchEntry[] {
  return chain
    .slice()
    .reverse()
    .map((e) => ({ ...e, side: e.side === 'src' ? 'dst' : 'src' }));
}

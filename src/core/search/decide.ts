// What one gateway installs for a path once it holds the chain of a completed search.
import type { Ip } from '../../base/addr.js';
import type { CoreContext } from '../context.js';
import type { Layer } from '../key-table.js';
import type { SearchEntry } from '../packet/search-message.js';
import { GROUP_OVERHEAD_MAX } from '../executor.js';
import type { GatewayId, VpnId } from '../types.js';
import { pairLayers } from './pairing.js';

export interface Decision {
  action: 'encrypt' | 'plain' | 'discard';
  /** encrypt: the VPN's mode; a pairwise path needs an IKE Child SA with the peer before it carries traffic. */
  mode?: 'group' | 'pairwise';
  vpnId?: VpnId;
  peer?: GatewayId;
  /** encrypt: what the layers outside ours add on our side (see KeyTableEntry.mtuReserve). */
  mtuReserve?: number;
  layers: Layer[];
  reason: string;
}

export type DecisionResult =
  { ok: true; decision: Decision } | { ok: false; reason: 'stripped' | 'unverifiable'; detail: string };

export function decideOwn(
  ctx: Pick<CoreContext, 'ring' | 'config' | 'plainAllowed'>,
  chain: readonly SearchEntry[],
  myIndex: number,
  unverifiable: ReadonlySet<string>,
  pathSrc: Ip,
  pathDst: Ip,
): DecisionResult {
  const me = chain[myIndex];
  const remote = me.side === 'src' ? pathDst : pathSrc;
  const otherSide = me.side === 'src' ? 'dst' : 'src';

  // Downgrade prevention: the authority's directory says the remote terminal is protected, so some
  // gateway must have claimed it. If none did, entries were stripped (or its gateway is down).
  if (ctx.ring.isProtected(remote) && !chain.some((e) => e.side === otherSide && e.vpns.length > 0)) {
    return { ok: false, reason: 'stripped', detail: `${remote} is protected but no gateway on its side claimed it` };
  }

  const pairing = pairLayers(chain);
  if (pairing.blocked) {
    if (me.vpns.length === 0) return { ok: true, decision: { action: 'plain', layers: [], reason: 'unprotected' } };
    if (ctx.plainAllowed(remote) && !ctx.ring.isProtected(remote)) {
      return { ok: true, decision: { action: 'plain', layers: [], reason: 'allow-plain' } };
    }
    return { ok: true, decision: { action: 'discard', layers: [], reason: pairing.reason } };
  }

  const layers: Layer[] = pairing.layers.map((l) => ({
    vpnId: l.vpnId,
    gateways: [chain[l.src].gateway, chain[l.dst].gateway],
  }));
  const k = pairing.layers.findIndex((l) => l.src === myIndex || l.dst === myIndex);
  if (k < 0) return { ok: true, decision: { action: 'plain', layers, reason: 'unprotected' } };
  const mine = pairing.layers[k];
  const partner = mine.src === myIndex ? mine.dst : mine.src;
  if (unverifiable.has(`${partner}/${mine.vpnId}`)) {
    return {
      ok: false,
      reason: 'unverifiable',
      detail: `cannot verify ${chain[partner].gateway}'s claim for VPN ${mine.vpnId}`,
    };
  }
  const pairwise = ctx.ring.vpn(mine.vpnId)?.mode === 'pairwise';
  return {
    ok: true,
    decision: {
      action: 'encrypt',
      mode: pairwise ? 'pairwise' : 'group',
      vpnId: mine.vpnId,
      peer: chain[partner].gateway,
      // Layers outside this one (k of them, on this side) each add their ESP overhead. Our own
      // layer's (45 bytes in group mode, 65 in tunnel mode) is the executor's to count: the
      // path's mtu limits the packet it makes. Group ESP in UDP is the largest layer (raw ESP
      // grows 8 bytes less).
      mtuReserve: GROUP_OVERHEAD_MAX * k,
      layers,
      reason: 'search',
    },
  };
}

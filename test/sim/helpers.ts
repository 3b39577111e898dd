// Shared by the simulator tests: topologies from compact text, and gateway cores that stand in
// for the real one (so routing, TTL, link and observation tests do not depend on key search).
import assert from 'node:assert/strict';
import type { Side } from '../../src/core/executor.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import type { GatewayCoreOptions } from '../../src/core/gateway-core.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { buildIpv4, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { encodeSearchMessage } from '../../src/core/packet/search-message.js';
import type { SimCore } from '../../src/sim/gateway-node.js';
import { ipDestination } from '../../src/sim/packets.js';
import { loadTopology, type Topology } from '../../src/sim/topology.js';

export function topology(text: string): Topology {
  const r = loadTopology({ text });
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

/** Forwards everything plain, and remembers which side each packet came from. */
/** A chain A - R1 - ... - Rn - B: the routers' names, and its links as lines of a topology's `links:` list. */
export function routerChain(routers: number): { names: string[]; links: string } {
  const names = Array.from({ length: routers }, (_, i) => `R${i + 1}`);
  const links = [['A', 'R1'], ...names.slice(1).map((n, i) => [names[i], n]), [names.at(-1), 'B']];
  return { names, links: links.map(([a, b]) => `  - [${a}, ${b}]`).join('\n') };
}

export class PlainCore implements SimCore {
  readonly seen: { side: Side; dst: string; now: number }[] = [];
  constructor(readonly opts: GatewayCoreOptions) {}
  onPacket(side: Side, bytes: Uint8Array, now: number): CoreAction[] {
    this.seen.push({ side, dst: ipDestination(bytes) ?? '?', now });
    return [{ type: 'emit', bytes, note: { op: 'plain' }, origin: bytes }];
  }
  onTick(_now: number): CoreAction[] {
    return [];
  }
  nextDeadline(): number | undefined {
    return undefined;
  }
  applySnapshot(): CoreAction[] {
    return [];
  }
  paths() {
    return [];
  }
  stats() {
    return { seen: this.seen.length };
  }
}

/**
 * Pretends to encrypt with its (first) VPN going out and decrypt coming in, without touching the
 * bytes: enough to check the simulator's layer bookkeeping.
 */
export class LayeringCore extends PlainCore {
  override onPacket(side: Side, bytes: Uint8Array, now: number): CoreAction[] {
    super.onPacket(side, bytes, now);
    const vpnId = this.opts.snapshot.vpns[0].id;
    const seq = 1n;
    return [
      {
        type: 'emit',
        bytes,
        origin: bytes,
        note:
          side === 'inside'
            ? { op: 'encrypt', vpnId, spi: 0x100, seq }
            : { op: 'decrypt', vpnId, spi: 0x100, seq, sender: 'x' },
      },
    ];
  }
}

export function searchPacket(src: string, dst: string, phase: 'source' | 'destination', type: 0 | 8 = 8): Uint8Array {
  const data = encodeSearchMessage({
    phase,
    proxied: false,
    txid: new Uint8Array(8).fill(7),
    pathSrc: src,
    pathDst: dst,
    originator: 'G0',
    proxiedBy: '',
    entries: [],
  });
  return buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: buildIcmpEcho({ type, id: 1, seq: 1, data }), ttl: 64 });
}

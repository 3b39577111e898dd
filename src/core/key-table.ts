// The key table (paper: 通信鍵テーブル): (local terminal, remote terminal) → action, with aging,
// a hard lifetime, a bounded size, and the bounded buffers of paths whose search is under way.
import type { Ip } from '../base/addr.js';
import type { PathAction } from './executor.js';
import type { GatewayId, VpnId } from './types.js';

export interface Layer {
  vpnId: VpnId;
  /** The paired gateways of this layer: [the one serving the path's source, the one serving its destination]. */
  gateways: [GatewayId, GatewayId];
}

export interface KeyTableEntry {
  local: Ip;
  remote: Ip;
  action: PathAction;
  vpnId?: VpnId;
  peer?: GatewayId;
  /**
   * encrypt: bytes the layers outside ours add on our side (45 per outer group layer; a pairwise
   * VPN's tunnel mode adds its extra). The core sets `mtu` from it: the path MTU minus this,
   * or what ICMP from the path taught about that peer if smaller (src/core/pmtu.ts).
   */
  mtuReserve?: number;
  /** encrypt: the largest packet this gateway may send on the path after its own encryption. */
  mtu?: number;
  /** Every layer the search paired on this path, outermost first. */
  layers?: Layer[];
  /** Pairwise VPNs: the outbound SPI of the IKE Child SA that carries this path. */
  childSpi?: number;
  /** Why the entry exists (e.g. 'search', 'no-common-vpn', 'no-reply', 'learned-from-esp', 'unprotected', 'ike'). */
  reason: string;
  /** Transaction that produced the entry, hex. */
  txid?: string;
  installedAt: number;
  /** Last use known to the core (the executor's own last-used time is merged in at aging). */
  lastUsed: number;
  /** Hard expiry (hard lifetime for results, negative TTL for failures). */
  expiresAt: number;
}

export function pathKey(local: Ip, remote: Ip): string {
  return local + '>' + remote;
}

/**
 * Bounded map with O(1) lookup. Eviction rule when full: among the EVICTION_SAMPLE entries installed
 * longest ago (Map insertion order; a refreshed entry moves to the back), the least recently used
 * one goes. This approximates LRU at O(1) cost without touching the map on every packet.
 */
export class KeyTable {
  static readonly EVICTION_SAMPLE = 8;
  private readonly map = new Map<string, KeyTableEntry>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(local: Ip, remote: Ip): KeyTableEntry | undefined {
    return this.map.get(pathKey(local, remote));
  }

  /** Installs or refreshes an entry; returns the entry evicted to make room, if any. */
  set(entry: KeyTableEntry): KeyTableEntry | undefined {
    const key = pathKey(entry.local, entry.remote);
    let evicted: KeyTableEntry | undefined;
    if (this.map.has(key)) this.map.delete(key);
    else if (this.map.size >= this.capacity) {
      evicted = this.pickVictim();
      if (evicted) this.map.delete(pathKey(evicted.local, evicted.remote));
    }
    this.map.set(key, entry);
    return evicted;
  }

  delete(local: Ip, remote: Ip): KeyTableEntry | undefined {
    const key = pathKey(local, remote);
    const e = this.map.get(key);
    if (e) this.map.delete(key);
    return e;
  }

  values(): IterableIterator<KeyTableEntry> {
    return this.map.values();
  }

  private pickVictim(): KeyTableEntry | undefined {
    let victim: KeyTableEntry | undefined;
    let n = 0;
    for (const e of this.map.values()) {
      // Pending entries hold buffered packets and an active search: never the first choice.
      const score = e.action === 'pending' ? Infinity : e.lastUsed;
      if (!victim || score < (victim.action === 'pending' ? Infinity : victim.lastUsed)) victim = e;
      if (++n >= KeyTable.EVICTION_SAMPLE) break;
    }
    return victim;
  }
}

export type BufferResult = 'buffered' | 'path-full' | 'total-full';

/** Packets held while a path's search is under way: bounded per path and in total (packets and bytes). */
export class PendingBuffers {
  private readonly byPath = new Map<string, Uint8Array[]>();
  private packets = 0;
  private bytes = 0;

  constructor(
    private readonly perPath: number,
    private readonly totalPackets: number,
    private readonly totalBytes: number,
  ) {}

  push(key: string, packet: Uint8Array): BufferResult {
    const list = this.byPath.get(key) ?? [];
    if (list.length >= this.perPath) return 'path-full';
    if (this.packets + 1 > this.totalPackets || this.bytes + packet.length > this.totalBytes) return 'total-full';
    list.push(packet);
    if (list.length === 1) this.byPath.set(key, list);
    this.packets++;
    this.bytes += packet.length;
    return 'buffered';
  }

  /** Removes and returns the path's buffered packets, oldest first. */
  take(key: string): Uint8Array[] {
    const list = this.byPath.get(key);
    if (!list) return [];
    this.byPath.delete(key);
    this.packets -= list.length;
    for (const p of list) this.bytes -= p.length;
    return list;
  }

  count(key: string): number {
    return this.byPath.get(key)?.length ?? 0;
  }

  get totalPacketCount(): number {
    return this.packets;
  }

  get totalByteCount(): number {
    return this.bytes;
  }
}

// The key table (paper: 通信鍵テーブル): (local terminal, remote terminal) → action, with aging,
// a hard lifetime, a bounded size, and the bounded buffers of paths whose search is under way.
import type { Ip } from '../base/addr.js';
import type { PathAction } from './executor.js';
import type { GatewayId, VpnId } from './types.js';
import { Interner, ipv4Text, ipv4Word, ipv6Text, ipv6Words, WordsIndex } from './key-table-columns.js';

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

const ACTIONS: readonly PathAction[] = ['encrypt', 'plain', 'discard', 'pending'];
const ACTION_CODE: Record<PathAction, number> = { encrypt: 0, plain: 1, discard: 2, pending: 3 };
const PENDING = ACTION_CODE.pending;

// flags: which optional fields are present, and where the entry lives.
const HAS_VPN = 1;
const HAS_MTU = 2;
const HAS_RESERVE = 4;
const HAS_CHILD_SPI = 8;
const HAS_TXID = 16;
/** The whole entry is kept as an object (string-keyed, or a value the columns cannot hold). */
const BOXED = 32;
/** Indexed by its key string (addresses not both canonical IPv4 or both canonical IPv6); always boxed. */
const STRING_KEYED = 64;
/** Both addresses IPv6: key4[slot * 2] is the row of the IPv6 key store. */
const IPV6 = 128;
const KEY_KIND = STRING_KEYED | IPV6;

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isU16 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;
const TXID = /^[0-9a-f]{16}$/;

/**
 * Bounded map with O(1) lookup. Eviction rule when full: among the EVICTION_SAMPLE entries installed
 * longest ago (insertion order; a refreshed entry moves to the back), the least recently used
 * one goes. This approximates LRU at O(1) cost without touching the table on every packet.
 *
 * Storage: one slot per path in typed-array columns (addresses as integers, the three timestamps in
 * one Float64Array, peers, reasons and layer lists interned), an open-addressed index over the two
 * addresses, and a doubly linked list of slots for the insertion order: about 90 bytes per IPv4
 * path instead of an object, a key string and a Map slot (docs/benchmarks.md, "Key table memory").
 * IPv6 keys (eight words) live in a store of their own with its own index; anything else (an
 * address in another spelling, mixed families) is kept as an object behind its key string.
 * `get` and `values` return copies: change an entry with `set` (moves it to the back) or `replace`.
 */
export class KeyTable {
  static readonly EVICTION_SAMPLE = 8;
  private cap = 0;
  /** local, remote per slot (IPv4); for an IPv6 slot, its row in key6. */
  private key4 = new Uint32Array(0);
  /** IPv6 keys: local (4 words), remote (4 words) per row, and the slot owning each row. */
  private key6 = new Uint32Array(0);
  private owner6 = new Int32Array(0);
  private readonly free6: number[] = [];
  /** Rows of the IPv6 store ever used (the others are beyond it, unused). */
  private rows6 = 0;
  private readonly probe = new Uint32Array(8);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private flags = new Uint8Array(0);
  private action = new Uint8Array(0);
  private reason = new Uint32Array(0);
  private peer = new Uint32Array(0);
  private layers = new Uint32Array(0);
  private vpnId = new Uint32Array(0);
  private childSpi = new Uint32Array(0);
  private mtu = new Uint16Array(0);
  private mtuReserve = new Uint16Array(0);
  /** Two words per slot. */
  private txid = new Uint32Array(0);
  /** installedAt, lastUsed, expiresAt per slot. */
  private times = new Float64Array(0);
  private readonly index4 = new WordsIndex(2, () => this.key4);
  private readonly index6 = new WordsIndex(8, () => this.key6);
  private readonly byString = new Map<string, number>();
  private readonly boxed = new Map<number, KeyTableEntry>();
  private readonly peers = new Interner<GatewayId>((p) => p);
  private readonly reasons = new Interner<string>((r) => r);
  private readonly layerLists = new Interner<Layer[]>((l) => JSON.stringify(l));
  private head = -1;
  private tail = -1;
  private freeSlot = -1;
  private count = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  get(local: Ip, remote: Ip): KeyTableEntry | undefined {
    const slot = this.find(local, remote);
    return slot < 0 ? undefined : this.entryAt(slot);
  }

  /** Installs or refreshes an entry; returns the entry evicted to make room, if any. */
  set(entry: KeyTableEntry): KeyTableEntry | undefined {
    let slot = this.find(entry.local, entry.remote);
    let evicted: KeyTableEntry | undefined;
    if (slot >= 0) {
      this.unlink(slot);
      this.releaseValues(slot);
    } else {
      if (this.count >= this.capacity) {
        const victim = this.pickVictim();
        if (victim >= 0) {
          evicted = this.entryAt(victim);
          this.removeSlot(victim);
        }
      }
      slot = this.allocate(entry);
    }
    this.store(slot, entry);
    this.linkLast(slot);
    return evicted;
  }

  /** Overwrites an entry in place (its place in the eviction order kept); false if the path is not held. */
  replace(entry: KeyTableEntry): boolean {
    const slot = this.find(entry.local, entry.remote);
    if (slot < 0) return false;
    this.releaseValues(slot);
    this.store(slot, entry);
    return true;
  }

  delete(local: Ip, remote: Ip): KeyTableEntry | undefined {
    const slot = this.find(local, remote);
    if (slot < 0) return undefined;
    const e = this.entryAt(slot);
    this.removeSlot(slot);
    return e;
  }

  /**
   * Copies of the entries, oldest installed first, made one at a time (a million paths are not
   * copied at once). While iterating, deleting the entry just returned is allowed; to install,
   * refresh or delete others, iterate over a copy (`[...table.values()]`).
   */
  *values(): IterableIterator<KeyTableEntry> {
    for (let s = this.head; s >= 0;) {
      const next = this.next[s];
      yield this.entryAt(s);
      s = next;
    }
  }

  /** Distinct interned values held (peers, reasons, layer lists): for tests that nothing leaks. */
  get internedCount(): number {
    return this.peers.count + this.reasons.count + this.layerLists.count;
  }

  /** Writes the key into `probe`: 4 (two words), 6 (eight words), or 0 (kept by its key string). */
  private classify(local: Ip, remote: Ip): 0 | 4 | 6 {
    const p = this.probe;
    const l = ipv4Word(local);
    if (l >= 0) {
      const r = ipv4Word(remote);
      if (r < 0) return 0;
      p[0] = l;
      p[1] = r;
      return 4;
    }
    return ipv6Words(local, p, 0) && ipv6Words(remote, p, 4) ? 6 : 0;
  }

  private find(local: Ip, remote: Ip): number {
    const kind = this.classify(local, remote);
    if (kind === 4) return this.index4.find(this.probe);
    if (kind === 6) {
      const row = this.index6.find(this.probe);
      return row < 0 ? -1 : this.owner6[row];
    }
    return this.byString.get(pathKey(local, remote)) ?? -1;
  }

  private pickVictim(): number {
    let victim = -1;
    let best = Infinity;
    let n = 0;
    for (let s = this.head; s >= 0 && n < KeyTable.EVICTION_SAMPLE; s = this.next[s], n++) {
      // Pending entries hold buffered packets and an active search: never the first choice.
      const score = this.action[s] === PENDING ? Infinity : this.times[s * 3 + 1];
      if (victim < 0 || score < best) {
        victim = s;
        best = score;
      }
    }
    return victim;
  }

  /** A slot for a new path, its addresses written and indexed. */
  private allocate(entry: KeyTableEntry): number {
    if (this.freeSlot < 0) this.grow();
    const slot = this.freeSlot;
    this.freeSlot = this.next[slot];
    const kind = this.classify(entry.local, entry.remote);
    if (kind === 4) {
      this.key4.set(this.probe.subarray(0, 2), slot * 2);
      this.flags[slot] = 0;
      this.index4.add(slot);
    } else if (kind === 6) {
      const row = this.allocate6();
      this.key6.set(this.probe, row * 8);
      this.owner6[row] = slot;
      this.key4[slot * 2] = row;
      this.flags[slot] = IPV6;
      this.index6.add(row);
    } else {
      this.flags[slot] = STRING_KEYED;
      this.byString.set(pathKey(entry.local, entry.remote), slot);
    }
    this.count++;
    return slot;
  }

  private store(slot: number, e: KeyTableEntry): void {
    const kind = this.flags[slot] & KEY_KIND;
    const keyed = kind & STRING_KEYED;
    this.action[slot] = ACTION_CODE[e.action];
    this.times[slot * 3] = e.installedAt;
    this.times[slot * 3 + 1] = e.lastUsed;
    this.times[slot * 3 + 2] = e.expiresAt;
    const fits =
      !keyed &&
      (e.vpnId === undefined || isU32(e.vpnId)) &&
      (e.mtu === undefined || isU16(e.mtu)) &&
      (e.mtuReserve === undefined || isU16(e.mtuReserve)) &&
      (e.childSpi === undefined || isU32(e.childSpi)) &&
      (e.txid === undefined || TXID.test(e.txid)) &&
      typeof e.installedAt === 'number' &&
      typeof e.lastUsed === 'number' &&
      typeof e.expiresAt === 'number';
    if (!fits) {
      this.flags[slot] = kind | BOXED;
      this.boxed.set(slot, { ...e });
      return;
    }
    let f = 0;
    if (e.vpnId !== undefined) {
      f |= HAS_VPN;
      this.vpnId[slot] = e.vpnId;
    }
    if (e.mtu !== undefined) {
      f |= HAS_MTU;
      this.mtu[slot] = e.mtu;
    }
    if (e.mtuReserve !== undefined) {
      f |= HAS_RESERVE;
      this.mtuReserve[slot] = e.mtuReserve;
    }
    if (e.childSpi !== undefined) {
      f |= HAS_CHILD_SPI;
      this.childSpi[slot] = e.childSpi;
    }
    if (e.txid !== undefined) {
      f |= HAS_TXID;
      this.txid[slot * 2] = parseInt(e.txid.slice(0, 8), 16);
      this.txid[slot * 2 + 1] = parseInt(e.txid.slice(8), 16);
    }
    this.flags[slot] = kind | f;
    this.peer[slot] = e.peer === undefined ? 0 : this.peers.acquire(e.peer);
    this.reason[slot] = this.reasons.acquire(e.reason);
    this.layers[slot] = e.layers === undefined ? 0 : this.layerLists.acquire(e.layers);
  }

  private entryAt(slot: number): KeyTableEntry {
    const f = this.flags[slot];
    if (f & BOXED) return { ...(this.boxed.get(slot) as KeyTableEntry) };
    const row = this.key4[slot * 2];
    const e: KeyTableEntry = {
      local: f & IPV6 ? ipv6Text(this.key6, row * 8) : ipv4Text(row),
      remote: f & IPV6 ? ipv6Text(this.key6, row * 8 + 4) : ipv4Text(this.key4[slot * 2 + 1]),
      action: ACTIONS[this.action[slot]],
      reason: this.reasons.value(this.reason[slot]) as string,
      installedAt: this.times[slot * 3],
      lastUsed: this.times[slot * 3 + 1],
      expiresAt: this.times[slot * 3 + 2],
    };
    if (f & HAS_VPN) e.vpnId = this.vpnId[slot];
    if (this.peer[slot] !== 0) e.peer = this.peers.value(this.peer[slot]);
    if (f & HAS_RESERVE) e.mtuReserve = this.mtuReserve[slot];
    if (f & HAS_MTU) e.mtu = this.mtu[slot];
    if (this.layers[slot] !== 0) e.layers = this.layerLists.value(this.layers[slot]);
    if (f & HAS_CHILD_SPI) e.childSpi = this.childSpi[slot];
    if (f & HAS_TXID) e.txid = hex8(this.txid[slot * 2]) + hex8(this.txid[slot * 2 + 1]);
    return e;
  }

  private releaseValues(slot: number): void {
    const f = this.flags[slot];
    if (f & BOXED) {
      this.boxed.delete(slot);
      this.flags[slot] = f & KEY_KIND;
      return;
    }
    this.peers.release(this.peer[slot]);
    this.reasons.release(this.reason[slot]);
    this.layerLists.release(this.layers[slot]);
    this.peer[slot] = this.reason[slot] = this.layers[slot] = 0;
  }

  private removeSlot(slot: number): void {
    const f = this.flags[slot];
    if (f & STRING_KEYED) {
      const e = this.boxed.get(slot) as KeyTableEntry;
      this.byString.delete(pathKey(e.local, e.remote));
    } else if (f & IPV6) {
      const row = this.key4[slot * 2];
      this.index6.remove(row);
      this.free6.push(row);
    } else this.index4.remove(slot);
    this.releaseValues(slot);
    this.unlink(slot);
    this.flags[slot] = 0;
    this.next[slot] = this.freeSlot;
    this.freeSlot = slot;
    this.count--;
  }

  private linkLast(slot: number): void {
    this.prev[slot] = this.tail;
    this.next[slot] = -1;
    if (this.tail >= 0) this.next[this.tail] = slot;
    else this.head = slot;
    this.tail = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot];
    const n = this.next[slot];
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  /** Doubles the columns (up to the capacity when that is larger than what is held) and frees the new slots. */
  private grow(): void {
    const old = this.cap;
    const cap = Math.max(16, this.capacity > old ? Math.min(old * 2, this.capacity) : old * 2);
    const widen = <T extends Column>(a: T, per = 1) => widened(a, cap * per);
    this.key4 = widen(this.key4, 2);
    this.prev = widen(this.prev);
    this.next = widen(this.next);
    this.flags = widen(this.flags);
    this.action = widen(this.action);
    this.reason = widen(this.reason);
    this.peer = widen(this.peer);
    this.layers = widen(this.layers);
    this.vpnId = widen(this.vpnId);
    this.childSpi = widen(this.childSpi);
    this.mtu = widen(this.mtu);
    this.mtuReserve = widen(this.mtuReserve);
    this.txid = widen(this.txid, 2);
    this.times = widen(this.times, 3);
    for (let s = cap - 1; s >= old; s--) {
      this.next[s] = this.freeSlot;
      this.freeSlot = s;
    }
    this.cap = cap;
  }

  /** A row of the IPv6 key store (doubling it when full). */
  private allocate6(): number {
    const free = this.free6.pop();
    if (free !== undefined) return free;
    const rows = this.owner6.length;
    if (this.rows6 === rows) {
      const cap = Math.max(16, rows * 2);
      this.key6 = widened(this.key6, cap * 8);
      this.owner6 = widened(this.owner6, cap);
    }
    return this.rows6++;
  }
}

type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

function widened<T extends Column>(a: T, length: number): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  b.set(a);
  return b;
}

const hex8 = (w: number) => w.toString(16).padStart(8, '0');

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

// The sans-I/O gateway core's interface: events in (a packet from inside, a packet from outside,
// the clock advanced, a new authority snapshot), actions out (emit these bytes, drop with this
// reason, trace). The edge (simulator or daemon) routes emitted packets by their destination
// address, exactly as the kernel routes what the gateway writes to its TUN device.
import type { Ip, Prefix } from '../base/addr.js';
import type { ForwardNote } from './executor.js';
import type { GatewayId, VpnId } from './types.js';

export interface GatewayTimers {
  /** Source search: wait for the source terminal's echo before retrying/answering for it (ms). */
  sourceSearchTimeout: number;
  /** Destination search: wait for the reply before retrying (ms); doubles at each retry. */
  searchTimeout: number;
  /** Retries after the first attempt before a negative entry. */
  searchRetries: number;
  /** The first-stage gateway of a silent terminal answers for it after this wait (ms). */
  proxyAnswerDelay: number;
  /** A key-table entry unused this long ages out (ms). */
  idleTimeout: number;
  /** A key-table entry is re-searched after this long even if used (ms). */
  hardLifetime: number;
  /** A negative (failed search) entry lives this long before a new search is allowed (ms). */
  negativeTtl: number;
  /** How often the core sweeps aging (ms). */
  sweepInterval: number;
  /** Pairwise VPNs: how long a path waits for IKE to make its Child SA before it fails (ms). */
  ikeTimeout: number;
  /**
   * A path MTU learned from ICMP about our ESP is forgotten after this long, and tried larger (ms; RFC 1191: 10 min).
   */
  pathMtuTimeout: number;
}

export interface GatewayLimits {
  /** Key-table capacity; beyond it the stated eviction rule applies. */
  maxPaths: number;
  /** Packets buffered per pending path, and in total. */
  pendingPerPath: number;
  pendingTotal: number;
  /** Bytes buffered in total over all pending paths. */
  pendingBytes: number;
  /**
   * Searches this gateway originates at once, and searches it relays at once: each kind is bounded
   * by this (state kept per transaction). At the bound a new search of its own is refused (its
   * first packet dropped, `drop.search-limit`; the next packet of the path tries again) and a new
   * relayed one evicts the oldest relayed (`search.evicted`).
   */
  maxSearchesInFlight: number;
}

export interface GatewayConfig {
  id: GatewayId;
  /** The gateway's outside (WAN) address. */
  address: Ip;
  /**
   * The gateway's outside IPv6 address, the source of the ICMPv6 Packet Too Big it sends to IPv6
   * terminals. Default: `address` when that is IPv6. Without one, IPv6 packets too big for the
   * path are dropped (counted `drop.too-big`) without an answer.
   */
  address6?: Ip;
  /**
   * The LANs directly on this gateway's inside interfaces: it is the first-stage gateway of the
   * terminals in them (and answers key searches for them when they stay silent).
   */
  attached: Prefix[];
  /** Remote prefixes that protected local terminals may reach in plain (default: none). */
  allowPlain?: Prefix[];
  /**
   * MTU of the path between gateways: the largest packet its outside may carry (default 1500). The
   * gateway daemon passes the smallest MTU of its outside interfaces (or a configured value below
   * it); smaller MTUs further along are learned from ICMP (src/core/pmtu.ts).
   */
  pathMtu?: number;
  /**
   * Group VPNs whose ESP this gateway sends raw (IP protocol 50) instead of in UDP 4500, the default
   * (docs/executor.md, "ESP format"). Receivers take both; raw ESP cannot be batched by the kernel.
   */
  rawEspVpns?: VpnId[];
  timers?: Partial<GatewayTimers>;
  limits?: Partial<GatewayLimits>;
}

/** Why a packet was emitted: the executor's forward note, or a core-made packet. */
export type EmitNote =
  | ForwardNote
  | { op: 'search-request'; phase: 'source' | 'destination'; txid: string }
  | { op: 'search-relay'; phase: 'source' | 'destination'; txid: string; direction: 'request' | 'reply' }
  | { op: 'search-proxy-reply'; phase: 'source' | 'destination'; txid: string }
  | { op: 'icmp-error'; type: number; code: number };

/** One step of the protocol, for traces (simulator output, logs). `step` numbers Figure 4. */
export interface TraceEvent {
  event: string;
  kind: string;
  step?: number;
  detail?: Record<string, unknown>;
}

export type CoreAction =
  /**
   * `origin`: the packet this one was made from, exactly as the core received it (the event's
   * packet, or one it buffered and flushes now); one packet may give several (fragments). Absent for
   * packets the core makes itself (search requests, ICMP errors). Observers (the simulator) follow
   * one packet across gateways by it; the wire never sees it.
   */
  | { type: 'emit'; bytes: Uint8Array; note: EmitNote; origin?: Uint8Array }
  | { type: 'drop'; reason: string; bytes: Uint8Array }
  | { type: 'trace'; event: TraceEvent }
  /**
   * Pairwise VPNs (seed 001): a path needs a Child SA with `peer` for `vpnId`. The edge asks its
   * IKE engine for one (at the address the authority delivered) and answers with
   * GatewayCore.onChildSaUp or onChildSaDown. Asked once per (peer, VPN) until answered.
   */
  | { type: 'ike-request'; peer: GatewayId; vpnId: VpnId; address: Ip };

/** A key-table entry for status views. */
export interface PathView {
  local: Ip;
  remote: Ip;
  action: 'encrypt' | 'plain' | 'discard' | 'pending';
  vpnId?: VpnId;
  vpnName?: string;
  peer?: GatewayId;
  /** Layers of this path as the search paired them, outermost first, e.g. [{vpnId, a, b}]. */
  layers?: { vpnId: VpnId; gateways: [GatewayId, GatewayId] }[];
  reason?: string;
  /** encrypt: the largest packet this gateway sends on the path after its own encryption. */
  mtu?: number;
  installedAt: number;
  lastUsed: number;
  expiresAt: number;
  packets: number;
  bytes: number;
}

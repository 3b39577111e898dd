// What the parts of the core (inside, outside, search originator, search relay, aging) share:
// configuration, the key ring, the key table, the executor, timers, and the action sink of the
// event being handled. The gateway core (gateway-core.ts) implements it.
import type { Ip, Prefix } from '../base/addr.js';
import type { Executor, PuntReason, Side } from './executor.js';
import type { CoreAction, EmitNote, GatewayLimits, GatewayTimers, TraceEvent } from './gateway-api.js';
import type { KeyRing } from './key-ring.js';
import type { EspFragNeeded } from './pmtu.js';
import type { KeyTable, KeyTableEntry, PendingBuffers } from './key-table.js';
import type { ReceiveFloors } from './rx-floors.js';
import type { TimerQueue } from './timer-queue.js';
import type { CoreTimer } from './timers.js';
import type { GatewayId, VpnId } from './types.js';
import { packetDst, packetSrc } from './packet/ip.js';

export interface ResolvedConfig {
  id: GatewayId;
  address: Ip;
  /** The outside IPv6 address (GatewayConfig.address6), if the gateway has one. */
  address6?: Ip;
  attached: Prefix[];
  allowPlain: Prefix[];
  /** The path MTU toward other gateways now (GatewayCore.setPathMtu changes it). */
  pathMtu: number;
  /** Group VPNs whose ESP this gateway sends raw (protocol 50) instead of in UDP 4500. */
  rawEspVpns: VpnId[];
  timers: GatewayTimers;
  limits: GatewayLimits;
}

export const DEFAULT_TIMERS: GatewayTimers = {
  sourceSearchTimeout: 250,
  searchTimeout: 1000,
  searchRetries: 3,
  proxyAnswerDelay: 300,
  idleTimeout: 60_000,
  hardLifetime: 3_600_000,
  negativeTtl: 10_000,
  sweepInterval: 1000,
  ikeTimeout: 30_000,
  pathMtuTimeout: 600_000,
};

export const DEFAULT_LIMITS: GatewayLimits = {
  maxPaths: 1_000_000,
  pendingPerPath: 64,
  pendingTotal: 16_384,
  pendingBytes: 16 * 1024 * 1024,
  maxSearchesInFlight: 65_536,
};

export interface CoreContext {
  readonly config: ResolvedConfig;
  readonly ring: KeyRing;
  readonly table: KeyTable;
  readonly pending: PendingBuffers;
  readonly executor: Executor;
  readonly timers: TimerQueue<CoreTimer>;
  /** Receiving SAs that wait for a floor after a restart (docs/protocol.md §3.2). */
  readonly floors: ReceiveFloors;
  /** The next sequence number this gateway sends under (vpnId, epoch); 0 when it has no such sending SA. */
  sendingSeq(vpnId: VpnId, epoch: number, now: number): bigint;
  random(n: number): Uint8Array;
  count(name: string, n?: number): void;
  /** An action to send bytes; `origin` is the received packet they were made from (see CoreAction). */
  emit(bytes: Uint8Array, note: EmitNote, origin?: Uint8Array): void;
  drop(reason: string, bytes: Uint8Array): void;
  trace(event: TraceEvent): void;
  /** Installs (or refreshes) an entry in the table and the executor; flushes buffered packets of the path. */
  install(entry: KeyTableEntry, now: number): void;
  /**
   * Runs a packet through the executor and carries out its verdict: forwards are emitted, drops
   * counted and reported; a punt is returned for the caller to decide. `recheck` for a packet that
   * was punted once already (its punt is counted, see Executor.process).
   */
  execute(from: Side, packet: Uint8Array, now: number, recheck: boolean): PuntReason | undefined;
  /** An ICMP "fragmentation needed" about ESP a protected terminal of ours sent (src/core/pmtu.ts). */
  onEspFragNeeded(f: EspFragNeeded, packet: Uint8Array, now: number): void;
  /** Removes an entry from the table and the executor. */
  remove(local: Ip, remote: Ip): void;
  isAttached(terminal: Ip): boolean;
  /** Remote terminals that protected local terminals may reach in plain (policy). */
  plainAllowed(remote: Ip): boolean;
  /** The actions of the event being handled. */
  readonly out: CoreAction[];
}

/**
 * Relays a packet in plain: installs a plain entry for its path (the local terminal is the one on the side it came
 * from) and runs it through the executor again; a second punt is dropped.
 */
export function forwardPlain(ctx: CoreContext, from: Side, packet: Uint8Array, now: number, reason: string): void {
  const local = from === 'inside' ? packetSrc(packet) : packetDst(packet);
  const remote = from === 'inside' ? packetDst(packet) : packetSrc(packet);
  ctx.install(
    {
      local,
      remote,
      action: 'plain',
      layers: [],
      reason,
      installedAt: now,
      lastUsed: now,
      expiresAt: now + ctx.config.timers.hardLifetime,
    },
    now,
  );
  const punt = ctx.execute(from, packet, now, true);
  if (punt !== undefined) ctx.drop(`punt-${punt}`, packet);
}

// The edge between the sans-I/O core and the real world: it feeds packets and the wall clock into
// the core, keeps exactly one timer armed for the core's next deadline, and hands every action to
// the caller's sinks (the datapath for emits, the logger and counters for drops and traces).
import type { CoreAction } from '../core/gateway-api.js';
import type { GatewayCore } from '../core/gateway-core.js';
import type { Side } from '../core/executor.js';
import type { AuthoritySnapshot } from '../core/types.js';

export interface DriverSinks {
  emit(bytes: Uint8Array, action: Extract<CoreAction, { type: 'emit' }>): void;
  drop?(reason: string, bytes: Uint8Array): void;
  trace?(event: Extract<CoreAction, { type: 'trace' }>['event']): void;
  /** A pairwise path needs a Child SA (the IKE engine answers through the core's onChildSaUp/Down). */
  ikeRequest?(request: Extract<CoreAction, { type: 'ike-request' }>): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class CoreDriver {
  private timer: unknown;
  private armedFor: number | undefined;
  private stopped = false;

  constructor(
    readonly core: GatewayCore,
    private readonly sinks: DriverSinks,
    private readonly clock: Clock = systemClock,
  ) {
    this.rearm();
  }

  /** A packet for the core; `punted` when the datapath's executor punted it (its punt is counted there). */
  packet(from: Side, bytes: Uint8Array, punted = false): void {
    this.dispatch(this.core.onPacket(from, bytes, this.clock.now(), punted));
  }

  snapshot(s: AuthoritySnapshot): void {
    this.dispatch(this.core.applySnapshot(s, this.clock.now()));
  }

  /** The path MTU toward other gateways changed (the outside interfaces' MTU). */
  pathMtu(mtu: number): void {
    this.dispatch(this.core.setPathMtu(mtu));
  }

  /** Pairwise VPNs: the kernel's path MTU toward a peer's tunnel address. */
  tunnelPathMtu(peer: string, mtu: number | undefined): void {
    this.dispatch(this.core.setTunnelPathMtu(peer, mtu));
  }

  /** Pairwise VPNs: the IKE engine made (or rekeyed) the Child SA with `peer` for `vpnId`. */
  childSaUp(peer: string, vpnId: number, outboundSpi: number): void {
    this.dispatch(this.core.onChildSaUp(peer, vpnId, outboundSpi, this.clock.now()));
  }

  /** Pairwise VPNs: no Child SA with `peer` for `vpnId` (refused, failed, deleted). */
  childSaDown(peer: string, vpnId: number, reason: string): void {
    this.dispatch(this.core.onChildSaDown(peer, vpnId, reason, this.clock.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private tick = (): void => {
    this.timer = undefined;
    this.armedFor = undefined;
    this.dispatch(this.core.onTick(this.clock.now()));
  };

  private dispatch(actions: CoreAction[]): void {
    for (const a of actions) {
      if (a.type === 'emit') this.sinks.emit(a.bytes, a);
      else if (a.type === 'drop') this.sinks.drop?.(a.reason, a.bytes);
      else if (a.type === 'ike-request') this.sinks.ikeRequest?.(a);
      else this.sinks.trace?.(a.event);
    }
    this.rearm();
  }

  /**
   * One timer, for the earliest deadline; re-armed only when that deadline comes earlier. A later
   * (or no) deadline leaves the armed timer alone: it fires, finds nothing due and re-arms. On the
   * search path nearly every packet pushes the deadline, and moving a Node timer each time was a
   * measurable part of a hop's JavaScript.
   */
  private rearm(): void {
    if (this.stopped) return;
    const next = this.core.nextDeadline();
    if (next === undefined || (this.armedFor !== undefined && next >= this.armedFor)) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.armedFor = next;
    this.timer = this.clock.setTimeout(this.tick, Math.max(0, next - this.clock.now()));
  }
}

// The gateways' change stream: a resumable long poll. A gateway asks for what changed after its
// cursor (a version); the answer is the complete current delivery and the events since, at once
// if anything it receives changed, otherwise after waiting up to a minute for such a change.
//
// Wake-ups all arrive here: `published()` after each commit of this process (the gateways the
// change touched, or everybody for a directory change), and the store's `onRemoteChange` when
// another replica committed (PostgreSQL NOTIFY), which costs one read of who changed since the
// oldest cursor anyone waits with.
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import type { Delivery } from './delivery.js';
import { forbidden } from './errors.js';
import { ChangeHub } from './hub.js';
import type { GatewayChanges } from './wire.js';

export const MAX_WAIT_MS = 60_000;
/** Events per answer; a gateway further behind gets the full delivery anyway (eventsTruncated). */
const EVENTS_LIMIT = 500;
/** Another replica's commits within this window cost one read together. */
const REMOTE_CHECK_DELAY_MS = 20;

export class ChangeStream {
  private readonly hub = new ChangeHub();
  private stopping = false;
  private remoteCheck: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: { delivery: Delivery },
  ) {
    ctx.store.onRemoteChange(() => this.scheduleRemoteCheck());
  }

  /** Gateways waiting right now (on this process). */
  get waiting(): number {
    return this.hub.size;
  }

  /** After a commit of this process: wakes the gateways whose delivery it changed. */
  published(change: Change): void {
    if (change.all) this.hub.notify('all');
    else if (change.touched.size) this.hub.notify(change.touched);
  }

  /**
   * Answers at once when anything `gateway` receives changed after `since` (with the complete
   * current delivery and the events since), otherwise waits up to `waitMs` for such a change.
   */
  async changes(gateway: string, since: number, waitMs: number, signal?: AbortSignal): Promise<GatewayChanges> {
    const deadline = this.ctx.now() + Math.min(Math.max(waitMs, 0), MAX_WAIT_MS);
    // Subscribed before the first read: a change committed between the read and the wait still wakes it.
    const waiter = waitMs > 0 ? this.hub.subscribe(gateway, since) : undefined;
    try {
      for (;;) {
        const now = this.ctx.now();
        const answer = await this.ctx.store.read(async (tx) => {
          const g = await tx.getGateway(gateway);
          if (!g || g.status !== 'active') throw forbidden('gateway-revoked', `gateway ${gateway} is not active`);
          const state = await tx.state();
          const reset = since > state.version;
          if (!reset && g.changedVersion <= since && state.directoryVersion <= since) return { version: state.version, changed: false } as const;
          const delivery = await this.o.delivery.at(tx, state, gateway, now);
          const vpnIds = delivery.vpns.map((v) => v.id);
          // A first sync (since 0) or a reset carries the whole state: no event list.
          const rows = reset || since === 0 ? [] : await tx.eventsFor(gateway, vpnIds, since, EVENTS_LIMIT + 1);
          return { version: state.version, changed: true, reset, delivery, rows } as const;
        });
        if (answer.changed) {
          const rows = answer.rows.slice(0, EVENTS_LIMIT);
          return {
            version: answer.version,
            changed: true,
            reset: answer.reset,
            delivery: answer.delivery,
            events: rows.map((r) => ({ version: r.version, at: r.at, action: r.action, vpn: r.vpn, gateway: r.gateway })),
            eventsTruncated: answer.rows.length > EVENTS_LIMIT,
          };
        }
        const left = deadline - this.ctx.now();
        if (!waiter || left <= 0 || signal?.aborted || this.stopping) return { version: answer.version, changed: false, reset: false, events: [], eventsTruncated: false };
        const outcome = await waiter.wait(left, signal);
        if (outcome !== 'notified') return { version: answer.version, changed: false, reset: false, events: [], eventsTruncated: false };
      }
    } finally {
      waiter?.cancel();
    }
  }

  /** Ends every waiting stream (answered "unchanged") and refuses to wait from now on. */
  stop(): void {
    this.stopping = true;
    if (this.remoteCheck) clearTimeout(this.remoteCheck);
    this.hub.notify('all');
  }

  private scheduleRemoteCheck(): void {
    if (this.remoteCheck) return;
    this.remoteCheck = setTimeout(() => {
      this.remoteCheck = undefined;
      const since = this.hub.minSince();
      if (since === undefined) return;
      this.ctx.store
        .read(async (tx) => ({ state: await tx.state(), rows: await tx.gatewaysChangedAfter(since) }))
        .then(({ state, rows }) => this.hub.notify(state.directoryVersion > since ? 'all' : rows.map((r) => r.name)))
        .catch((e) => this.ctx.log?.warn({ err: e }, 'checking remote changes failed'));
    }, REMOTE_CHECK_DELAY_MS);
  }
}

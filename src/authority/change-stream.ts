// The gateways' change stream: a resumable long poll. A gateway asks for what changed after its
// cursor (a version); the answer is the complete current delivery and the events since, at once
// if anything it receives changed, otherwise after waiting up to a minute for such a change.
//
// Wake-ups all arrive here: `published()` after each commit of this process (the gateways the
// change touched, or everybody for a directory change), and other replicas' commits. Those are
// found by version, never trusted to a notification alone: the store's `onRemoteChange`
// (PostgreSQL NOTIFY) asks for a check at once, and a poll of the version every half second
// catches a notification that was lost (a listener reconnecting, a database failover). A check
// reads which gateways changed after the last version checked and wakes them; a revocation there
// also rebuilds this replica's CRLs.
//
// Reads are batched: the gateways that ask (or are woken) while a read is under way are answered
// together from the next snapshot, so that a change waking thousands of gateways costs a few
// queries, not a few per gateway.
import { pushTo } from '../base/maps.js';
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import type { Delivery } from './delivery.js';
import { forbidden } from './errors.js';
import { ChangeHub, type WaitStop } from './hub.js';
import type { AuditRow, StateRow, StoreOps } from './storage/types.js';
import type { GatewayChanges, GatewayDelivery } from './wire.js';

export const MAX_WAIT_MS = 60_000;
/** Events per answer; a gateway further behind gets the full delivery anyway (eventsTruncated). */
const EVENTS_LIMIT = 500;
/** Another replica's commits within this window cost one check together. */
const REMOTE_CHECK_DELAY_MS = 5;
/** How often a replica looks at the version itself, in case a notification was lost. */
export const VERSION_POLL_MS = 500;
/** Gateways answered from one snapshot at most. */
const BATCH = 1000;
/** Events read for a whole batch at once; a gateway whose events may lie beyond them reads its own. */
const BATCH_EVENTS = 5000;

type Answer =
  | { version: number; changed: false }
  | { version: number; changed: true; reset: boolean; delivery: GatewayDelivery; rows: AuditRow[] };

interface Ask {
  gateway: string;
  since: number;
  resolve(a: Answer): void;
  reject(e: unknown): void;
}

export class ChangeStream {
  private readonly hub = new ChangeHub();
  private stopping = false;
  private remoteCheck: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  /** Every change up to this version has woken its gateways here. */
  private checkedVersion = 0;
  private crlVersion = 0;
  private checking: Promise<void> | undefined;
  private queue: Ask[] = [];
  private reading = false;
  private readonly wakeListeners: ((target: Iterable<string> | 'all', version: number) => void)[] = [];

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      delivery: Delivery;
      /** Another replica revoked a certificate: rebuild the CRLs. */
      onCrlChange?: () => Promise<void>;
    },
  ) {
    ctx.store.onRemoteChange((version) => {
      if (version === undefined || version > this.checkedVersion) this.scheduleRemoteCheck();
    });
  }

  /** Starts following other replicas' commits (PostgreSQL): from the current version on. */
  async start(): Promise<void> {
    const state = await this.ctx.store.read((tx) => tx.state());
    this.checkedVersion = state.version;
    this.crlVersion = state.crlVersion;
    if (this.ctx.store.kind !== 'postgres' || this.stopping) return;
    this.poll = setInterval(() => this.scheduleRemoteCheck(), VERSION_POLL_MS);
    this.poll.unref();
  }

  /** Gateways waiting right now (on this process). */
  get waiting(): number {
    return this.hub.size;
  }

  /** Waits on the hub's timer wheel right now (each ended wait leaves it). */
  get pendingWaits(): number {
    return this.hub.pendingWaits;
  }

  /**
   * Also tells `listener` of every wake-up (the wake-up channel, push.ts): the gateways a change
   * at `version` concerns, or everybody.
   */
  onWake(listener: (target: Iterable<string> | 'all', version: number) => void): void {
    this.wakeListeners.push(listener);
  }

  /** After a commit of this process: wakes the gateways whose delivery it changed. */
  published(change: Change): void {
    if (change.all) this.wake('all', change.version);
    else if (change.touched.size) this.wake(change.touched, change.version);
  }

  private wake(target: Iterable<string> | 'all', version: number): void {
    this.hub.notify(target);
    for (const l of this.wakeListeners) l(target, version);
  }

  /**
   * Answers at once when anything `gateway` receives changed after `since` (with the complete
   * current delivery and the events since), otherwise waits up to `waitMs` for such a change.
   * `stop` (the request's connection closing) ends the wait at once and releases it.
   */
  async changes(gateway: string, since: number, waitMs: number, stop?: WaitStop): Promise<GatewayChanges> {
    const deadline = this.ctx.now() + Math.min(Math.max(waitMs, 0), MAX_WAIT_MS);
    // Subscribed before the first read: a change committed between the read and the wait still wakes it.
    const waiter = waitMs > 0 ? this.hub.subscribe(gateway, since) : undefined;
    try {
      for (;;) {
        const answer = await this.ask(gateway, since);
        if (answer.changed) {
          const rows = answer.rows.slice(0, EVENTS_LIMIT);
          return {
            version: answer.version,
            changed: true,
            reset: answer.reset,
            delivery: answer.delivery,
            events: rows.map((r) => ({
              version: r.version,
              at: r.at,
              action: r.action,
              vpn: r.vpn,
              gateway: r.gateway,
            })),
            eventsTruncated: answer.rows.length > EVENTS_LIMIT,
          };
        }
        const left = deadline - this.ctx.now();
        if (!waiter || left <= 0 || stop?.aborted || this.stopping) return unchanged(answer.version);
        const outcome = await waiter.wait(left, stop);
        if (outcome !== 'notified' || this.stopping) return unchanged(answer.version);
      }
    } finally {
      waiter?.cancel();
    }
  }

  /** Ends every waiting stream (answered "unchanged") and refuses to wait from now on. */
  stop(): void {
    this.stopping = true;
    if (this.remoteCheck) clearTimeout(this.remoteCheck);
    if (this.poll) clearInterval(this.poll);
    this.hub.notify('all');
  }

  // --- batched reads

  private ask(gateway: string, since: number): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.queue.push({ gateway, since, resolve, reject });
      if (!this.reading) {
        this.reading = true;
        // Asks made in this same turn (a wake-up of many gateways) join the first batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, BATCH);
        try {
          const answers = await this.ctx.store.read((tx) => this.readBatch(tx, batch));
          batch.forEach((a, i) => {
            const r = answers[i];
            if (r instanceof Error) a.reject(r);
            else a.resolve(r);
          });
        } catch (e) {
          for (const a of batch) a.reject(e);
        }
      }
    } finally {
      this.reading = false;
    }
  }

  /** Answers a batch from one snapshot: an Answer, or the error for a gateway that is refused. */
  private async readBatch(tx: StoreOps, batch: Ask[]): Promise<(Answer | Error)[]> {
    const state = await tx.state();
    const gateways = new Map((await tx.getGateways(batch.map((a) => a.gateway))).map((g) => [g.name, g]));
    const out: (Answer | Error)[] = new Array(batch.length);
    const behind: number[] = [];
    batch.forEach((a, i) => {
      const g = gateways.get(a.gateway);
      if (!g || g.status !== 'active') out[i] = forbidden('gateway-revoked', `gateway ${a.gateway} is not active`);
      else if (a.since > state.version || g.changedVersion > a.since || state.directoryVersion > a.since)
        behind.push(i);
      else out[i] = { version: state.version, changed: false };
    });
    if (behind.length === 0) return out;
    const now = this.ctx.now();
    const deliveries = await this.o.delivery.many(tx, state, [...new Set(behind.map((i) => batch[i].gateway))], now);
    // A first sync (since 0) or a reset carries the whole state: no event list.
    const wantEvents = behind.filter((i) => batch[i].since > 0 && batch[i].since <= state.version);
    const events = await this.events(
      tx,
      state,
      wantEvents.map((i) => ({
        gateway: batch[i].gateway,
        since: batch[i].since,
        vpnIds: deliveries.get(batch[i].gateway)!.vpns.map((v) => v.id),
      })),
    );
    for (const i of behind) {
      const a = batch[i];
      const reset = a.since > state.version;
      out[i] = {
        version: state.version,
        changed: true,
        reset,
        delivery: deliveries.get(a.gateway)!,
        rows: events.get(`${a.gateway}\u0000${a.since}`) ?? [],
      };
    }
    return out;
  }

  /** The events each asker should hear of after its cursor: one read for the batch, its own read for one far behind. */
  private async events(
    tx: StoreOps,
    state: StateRow,
    askers: { gateway: string; since: number; vpnIds: number[] }[],
  ): Promise<Map<string, AuditRow[]>> {
    const out = new Map<string, AuditRow[]>();
    if (askers.length === 0) return out;
    const oldest = Math.min(...askers.map((a) => a.since));
    const rows = await tx.eventsSince(oldest, BATCH_EVENTS);
    // The batch read covers every version up to `complete` (all of them when it was not cut short).
    const complete = rows.length < BATCH_EVENTS ? state.version : rows[rows.length - 1].version - 1;
    // Whom each row concerns (indices into rows, oldest first): every gateway, one gateway, one VPN's members.
    const forAll: number[] = [];
    const byGateway = new Map<string, number[]>();
    const byVpn = new Map<number, number[]>();
    rows.forEach((r, i) => {
      if (r.scope === 'all') return void forAll.push(i);
      if (r.gateway !== null) pushTo(byGateway, r.gateway, i);
      if (r.scope === 'vpn' && r.vpnId !== null) pushTo(byVpn, r.vpnId, i);
    });
    for (const a of askers) {
      const key = `${a.gateway}\u0000${a.since}`;
      if (out.has(key)) continue;
      const concerns = new Set([
        ...forAll,
        ...(byGateway.get(a.gateway) ?? []),
        ...a.vpnIds.flatMap((v) => byVpn.get(v) ?? []),
      ]);
      const mine = [...concerns]
        .sort((x, y) => x - y)
        .map((i) => rows[i])
        .filter((r) => r.version > a.since);
      if (mine.length > EVENTS_LIMIT || complete >= state.version) out.set(key, mine.slice(0, EVENTS_LIMIT + 1));
      else out.set(key, await tx.eventsFor(a.gateway, a.vpnIds, a.since, EVENTS_LIMIT + 1));
    }
    return out;
  }

  // --- other replicas' commits

  private scheduleRemoteCheck(): void {
    if (this.remoteCheck || this.stopping) return;
    this.remoteCheck = setTimeout(() => {
      this.remoteCheck = undefined;
      // One check at a time; a request during one runs after it.
      if (this.checking) {
        void this.checking.then(() => this.scheduleRemoteCheck());
        return;
      }
      this.checking = this.checkRemote()
        .catch((e) =>
          this.ctx.log?.warn({ err: (e as Error).message }, 'checking other replicas’ changes failed; trying again'),
        )
        .finally(() => (this.checking = undefined));
    }, REMOTE_CHECK_DELAY_MS);
  }

  /** Wakes the gateways that changed after the last version checked (whoever committed it). */
  private async checkRemote(): Promise<void> {
    const since = this.checkedVersion;
    const r = await this.ctx.store.read(async (tx) => {
      const state = await tx.state();
      if (state.version <= since) return { state, changed: [] };
      return { state, changed: await tx.gatewaysChangedAfter(since) };
    });
    if (r.state.version <= since) return;
    if (r.state.directoryVersion > since) this.wake('all', r.state.version);
    else {
      // Each gateway by the version it changed at, not the newest: one whose cursor already holds
      // its change (a DELIVER of this replica, read after that commit) is not woken for nothing.
      const byVersion = new Map<number, string[]>();
      for (const g of r.changed) pushTo(byVersion, g.changedVersion, g.name);
      for (const [version, names] of byVersion) this.wake(names, version);
      this.wake([], r.state.version); // the newest version, to the listeners that track it
    }
    this.checkedVersion = Math.max(this.checkedVersion, r.state.version);
    if (r.state.crlVersion > this.crlVersion) {
      this.crlVersion = r.state.crlVersion;
      await this.o.onCrlChange?.();
    }
  }
}

function unchanged(version: number): GatewayChanges {
  return { version, changed: false, reset: false, events: [], eventsTruncated: false };
}

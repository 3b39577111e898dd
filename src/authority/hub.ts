// Wakes gateways waiting on the change stream. A waiter subscribes BEFORE it checks the database,
// so a change committed between the check and the wait still wakes it (the flag is kept).
//
// Memory per waiting gateway is what limits how many one authority process holds (docs/authority.md,
// "Memory per gateway"), so a wait keeps little: its promise's resolver and a place in one shared
// timer wheel (no timer, AbortController or closure of its own). A wait ends when the waiter is
// notified, when its deadline tick passes, or when its request's connection closes (`Hangup`).

export type WaitOutcome = 'notified' | 'timeout' | 'aborted';

/** Deadlines are rounded up to a tick of the hub's one timer: a wait lasts up to this much longer. */
export const WAIT_TICK_MS = 250;

/**
 * The end of a request's connection, as the change stream sees it: `fire` (called when the
 * connection closes) ends the wait under way at once, so that a gateway that went away costs
 * nothing until its deadline. Lighter than an AbortController with its listener.
 */
export class Hangup {
  private waiter: Waiter | undefined;
  private hungUp = false;

  get aborted(): boolean {
    return this.hungUp;
  }

  /** The connection closed. */
  readonly fire = (): void => {
    this.hungUp = true;
    this.waiter?.abort();
  };

  /** @internal the waiter whose wait this ends (undefined: none). */
  attach(w: Waiter | undefined): void {
    this.waiter = w;
  }
}

/** What ends a wait early: a hangup, or a standard AbortSignal (library callers, tests). */
export type WaitStop = Hangup | AbortSignal;

export class Waiter {
  private notified = false;
  private wake: ((o: WaitOutcome) => void) | undefined;
  private stop: WaitStop | undefined;
  /** The tick the pending wait ends at (its slot in the hub's wheel), or 0. */
  tick = 0;

  constructor(
    readonly gateway: string,
    readonly since: number,
    private readonly hub: ChangeHub,
  ) {}

  /** Marks the waiter notified; resolves a pending wait. */
  notify(): void {
    this.notified = true;
    this.finish('notified');
  }

  /** Waits for a notification (returns at once if one came already), the timeout or the stop. */
  wait(ms: number, stop?: WaitStop): Promise<WaitOutcome> {
    if (this.notified) {
      this.notified = false;
      return Promise.resolve('notified');
    }
    if (stop?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => {
      this.wake = resolve;
      this.stop = stop;
      if (stop instanceof Hangup) stop.attach(this);
      else stop?.addEventListener('abort', this.abort, { once: true });
      this.hub.schedule(this, ms);
    });
  }

  /** Ends a pending wait: 'aborted'. */
  readonly abort = (): void => this.finish('aborted');

  /** Ends a pending wait with `o` (called by the hub's timer with 'timeout'). */
  finish(o: WaitOutcome): void {
    const wake = this.wake;
    if (!wake) return;
    this.wake = undefined;
    this.hub.unschedule(this);
    const stop = this.stop;
    this.stop = undefined;
    if (stop instanceof Hangup) stop.attach(undefined);
    else stop?.removeEventListener('abort', this.abort);
    if (o === 'notified') this.notified = false;
    wake(o);
  }

  /** Unsubscribes; a pending wait ends 'aborted'. */
  cancel(): void {
    this.finish('aborted');
    this.hub.remove(this);
  }
}

export class ChangeHub {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private count = 0;
  /** Pending waits by the tick their deadline falls in. */
  private readonly wheel = new Map<number, Set<Waiter>>();
  private scheduled = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  subscribe(gateway: string, since: number): Waiter {
    const w = new Waiter(gateway, since, this);
    let set = this.waiters.get(gateway);
    if (!set) {
      set = new Set();
      this.waiters.set(gateway, set);
    }
    set.add(w);
    this.count++;
    return w;
  }

  /** @internal */
  remove(w: Waiter): void {
    const set = this.waiters.get(w.gateway);
    if (set?.delete(w)) {
      this.count--;
      if (set.size === 0) this.waiters.delete(w.gateway);
    }
  }

  /** @internal puts a pending wait on the wheel, `ms` from now. */
  schedule(w: Waiter, ms: number): void {
    const tick = Math.ceil((this.clock() + Math.max(ms, 0)) / WAIT_TICK_MS);
    let slot = this.wheel.get(tick);
    if (!slot) {
      slot = new Set();
      this.wheel.set(tick, slot);
    }
    slot.add(w);
    w.tick = tick;
    if (this.scheduled++ === 0) {
      this.timer = setInterval(() => this.expire(), WAIT_TICK_MS);
      this.timer.unref();
    }
  }

  /** @internal takes a wait off the wheel (it ended). */
  unschedule(w: Waiter): void {
    const tick = w.tick;
    w.tick = 0;
    const slot = this.wheel.get(tick);
    if (!slot?.delete(w)) return;
    if (slot.size === 0) this.wheel.delete(tick);
    if (--this.scheduled === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Ends the waits whose deadline passed ('timeout'). */
  private expire(): void {
    const now = Math.floor(this.clock() / WAIT_TICK_MS);
    for (const [tick, slot] of this.wheel) {
      if (tick > now) continue;
      for (const w of [...slot]) w.finish('timeout');
    }
  }

  /** Wakes the waiters of these gateways, or everybody. */
  notify(target: Iterable<string> | 'all'): void {
    if (target === 'all') {
      for (const set of this.waiters.values()) for (const w of [...set]) w.notify();
      return;
    }
    for (const g of target) for (const w of [...(this.waiters.get(g) ?? [])]) w.notify();
  }

  get size(): number {
    return this.count;
  }

  /** Waits on the wheel now (for tests: every ended wait leaves it). */
  get pendingWaits(): number {
    return this.scheduled;
  }
}

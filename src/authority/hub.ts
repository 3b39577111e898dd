// Wakes gateways waiting on the change stream. A waiter subscribes BEFORE it checks the database,
// so a change committed between the check and the wait still wakes it (the flag is kept).

export type WaitOutcome = 'notified' | 'timeout' | 'aborted';

export class Waiter {
  private notified = false;
  private wake: ((o: WaitOutcome) => void) | undefined;

  constructor(
    readonly gateway: string,
    readonly since: number,
    private readonly release: (w: Waiter) => void,
  ) {}

  /** Marks the waiter notified; resolves a pending wait. */
  notify(): void {
    this.notified = true;
    const w = this.wake;
    this.wake = undefined;
    w?.('notified');
  }

  /** Waits for a notification (returns at once if one came already), the timeout or the signal. */
  wait(ms: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (this.notified) {
      this.notified = false;
      return Promise.resolve('notified');
    }
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => {
      const timer = setTimeout(() => finish('timeout'), ms);
      const onAbort = (): void => finish('aborted');
      const finish = (o: WaitOutcome): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.wake = undefined;
        if (o === 'notified') this.notified = false;
        resolve(o);
      };
      this.wake = finish;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  cancel(): void {
    this.release(this);
  }
}

export class ChangeHub {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private count = 0;

  subscribe(gateway: string, since: number): Waiter {
    const w = new Waiter(gateway, since, (x) => this.remove(x));
    let set = this.waiters.get(gateway);
    if (!set) {
      set = new Set();
      this.waiters.set(gateway, set);
    }
    set.add(w);
    this.count++;
    return w;
  }

  private remove(w: Waiter): void {
    const set = this.waiters.get(w.gateway);
    if (set?.delete(w)) {
      this.count--;
      if (set.size === 0) this.waiters.delete(w.gateway);
    }
  }

  /** Wakes the waiters of these gateways, or everybody. */
  notify(target: Iterable<string> | 'all'): void {
    if (target === 'all') {
      for (const set of this.waiters.values()) for (const w of set) w.notify();
      return;
    }
    for (const g of target) for (const w of this.waiters.get(g) ?? []) w.notify();
  }

  get size(): number {
    return this.count;
  }
}

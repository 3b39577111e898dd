// A min-heap of deadlines with lazy cancellation: the core has many concurrent timers (one per
// search in flight) and the edge asks for the next deadline after every event, so both must be cheap.
// Timers are values (e.g. the core's CoreTimer union); `idOf` says which of them are the same timer.

interface Timer<K> {
  at: number;
  key: K;
  id: string;
  gen: number;
}

export class TimerQueue<K> {
  private heap: Timer<K>[] = [];
  /** Live generation per timer id: a popped timer whose generation is stale was cancelled or re-armed. */
  private live = new Map<string, number>();
  private gen = 0;

  constructor(private readonly idOf: (key: K) => string) {}

  /** Arms (or re-arms) the timer `key`. */
  set(key: K, at: number): void {
    const g = ++this.gen;
    const id = this.idOf(key);
    this.live.set(id, g);
    this.push({ at, key, id, gen: g });
  }

  cancel(key: K): void {
    this.live.delete(this.idOf(key));
  }

  has(key: K): boolean {
    return this.live.has(this.idOf(key));
  }

  get size(): number {
    return this.live.size;
  }

  /** The earliest live deadline. */
  peek(): number | undefined {
    this.prune();
    return this.heap[0]?.at;
  }

  /** Removes and returns the keys of every live timer due at or before `now`, earliest first. */
  popDue(now: number): K[] {
    const out: K[] = [];
    for (;;) {
      this.prune();
      const top = this.heap[0];
      if (!top || top.at > now) return out;
      this.pop();
      this.live.delete(top.id);
      out.push(top.key);
    }
  }

  private prune(): void {
    while (this.heap.length > 0) {
      const top = this.heap[0];
      if (this.live.get(top.id) === top.gen) return;
      this.pop();
    }
  }

  private push(t: Timer<K>): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= t.at) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Timer<K>;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r].at < h[l].at ? r : l;
      if (h[c].at >= last.at) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
  }
}

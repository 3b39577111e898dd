// The simulator's virtual clock and event queue. Events run in (time, insertion order): two
// events at the same virtual time run in the order they were scheduled, which is what makes a
// run reproducible byte for byte. Nothing here reads the wall clock or uses real timers.

export type EventHandler = () => void;

interface ScheduledEvent {
  at: number;
  seq: number;
  run: EventHandler;
}

/** A binary min-heap ordered by (at, seq). */
export class EventQueue {
  private readonly heap: ScheduledEvent[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, run: EventHandler): void {
    const event: ScheduledEvent = { at, seq: this.nextSeq++, run };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = event;
  }

  /** The time of the earliest event. */
  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }

  pop(): ScheduledEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as ScheduledEvent;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && before(heap[right], heap[left]) ? right : left;
        if (!before(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** The virtual clock (ms) driving an event queue. */
export class Engine {
  private readonly queue = new EventQueue();
  private clock = 0;
  private executed = 0;

  /** Current virtual time in ms. */
  get now(): number {
    return this.clock;
  }

  /** Events run so far. */
  get eventsRun(): number {
    return this.executed;
  }

  get pending(): number {
    return this.queue.size;
  }

  /** Runs `handler` at virtual time `at` (never in the past: earlier times run now). */
  at(at: number, handler: EventHandler): void {
    if (!Number.isFinite(at)) throw new RangeError(`cannot schedule an event at ${at}`);
    this.queue.push(Math.max(at, this.clock), handler);
  }

  /** Runs `handler` `delay` ms from now. */
  after(delay: number, handler: EventHandler): void {
    this.at(this.clock + delay, handler);
  }

  /**
   * Runs every event due at or before `until`, in order, then leaves the clock at `until`.
   * `stop` is checked between events and ends the run early (the clock stays at the last event).
   */
  runUntil(until: number, stop?: () => boolean): void {
    for (;;) {
      const next = this.queue.peekTime();
      if (next === undefined || next > until) break;
      if (stop?.()) return;
      const event = this.queue.pop() as ScheduledEvent;
      this.clock = event.at;
      this.executed++;
      event.run();
    }
    if (until > this.clock) this.clock = until;
  }
}

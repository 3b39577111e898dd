// Seals many group keys at once (a rotation of many VPNs: one seal per member and VPN) in worker
// threads, so that the public-key work uses the machine's cores and the main thread keeps serving
// gateways meanwhile. A few seals (one VPN's rotation, a new member) are made in the calling thread:
// starting a worker costs more. Workers start on first use and stop when idle for a while.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { sealBase } from './hpke-seal.js';
import type { SealedKey } from './group-keys.js';

/** One seal: `key` to the gateway key `recipient` (SPKI DER), bound to `context` (info and aad). */
export interface SealJob {
  key: Uint8Array;
  recipient: Uint8Array;
  context: Uint8Array;
}

/** Worker messages. */
export interface SealBatch {
  id: number;
  jobs: SealJob[];
}
export type SealBatchResult = { id: number; sealed: SealedKey[] } | { id: number; error: string };

/** Fewer seals than this are made in the calling thread (~0.17 ms each). */
const IN_THREAD_BELOW = 64;
/** Workers idle this long stop (each holds a few MB). */
const IDLE_MS = 30_000;

interface PoolWorker {
  worker: Worker;
  pending: Map<number, { resolve: (s: SealedKey[]) => void; reject: (e: Error) => void }>;
}

export class SealPool {
  private readonly workers = new Map<number, PoolWorker>();
  private nextId = 0;
  private idle: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /** Seals every job; the result is in the jobs' order. Rejects if a seal fails (a bad gateway key). */
  async seal(jobs: readonly SealJob[]): Promise<SealedKey[]> {
    if (jobs.length < IN_THREAD_BELOW || this.closed)
      return jobs.map((j) => sealBase(j.recipient, j.context, j.context, j.key));
    this.keepWorkers();
    const n = this.workersFor(jobs.length);
    const per = Math.ceil(jobs.length / n);
    try {
      const parts = await Promise.all(
        Array.from({ length: n }, (_, i) => this.run(i, jobs.slice(i * per, (i + 1) * per))),
      );
      return parts.flat();
    } finally {
      this.idleWhenDone();
    }
  }

  /**
   * Starts the workers a batch of at least `seals` seals will use, if it is one for workers: a
   * rotation of many VPNs calls it before reading its members, so that the workers boot (~0.3 s)
   * during that read rather than after it.
   */
  warm(seals: number): void {
    if (seals < IN_THREAD_BELOW || this.closed) return;
    this.keepWorkers();
    for (let i = 0; i < this.workersFor(seals); i++) if (!this.workers.has(i)) this.workers.set(i, this.start(i));
    this.idleWhenDone();
  }

  /** Workers running now. */
  get running(): number {
    return this.workers.size;
  }

  /** Stops the workers; later seals are made in the calling thread. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idle) clearTimeout(this.idle);
    await this.stopWorkers();
  }

  private workersFor(seals: number): number {
    return Math.min(this.size, Math.ceil(seals / IN_THREAD_BELOW));
  }

  /** Work is coming: the workers are not to stop when idle. */
  private keepWorkers(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
  }

  /** Workers with nothing to do stop after IDLE_MS (a seal in between clears the timer). */
  private idleWhenDone(): void {
    if (this.closed || this.idle || ![...this.workers.values()].every((w) => w.pending.size === 0)) return;
    this.idle = setTimeout(() => void this.stopWorkers(), IDLE_MS);
    this.idle.unref();
  }

  private run(i: number, jobs: SealJob[]): Promise<SealedKey[]> {
    const w = this.workers.get(i) ?? this.start(i);
    this.workers.set(i, w);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject });
      w.worker.postMessage({ id, jobs } satisfies SealBatch);
    });
  }

  private start(i: number): PoolWorker {
    const worker = new Worker(new URL('./seal-worker.js', import.meta.url));
    // Idle workers do not keep the process alive.
    worker.unref();
    const w: PoolWorker = { worker, pending: new Map() };
    worker.on('message', (m: SealBatchResult) => {
      const p = w.pending.get(m.id);
      if (!p) return;
      w.pending.delete(m.id);
      if ('error' in m) p.reject(new Error(`sealing a group key failed: ${m.error}`));
      else p.resolve(m.sealed.map((s) => ({ enc: new Uint8Array(s.enc), ct: new Uint8Array(s.ct) })));
    });
    const fail = (e: Error): void => {
      // A worker that died takes its batches with it; the next seal starts another.
      if (this.workers.get(i) === w) this.workers.delete(i);
      for (const p of w.pending.values()) p.reject(e);
      w.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`a sealing worker stopped (exit code ${code})`)));
    return w;
  }

  private async stopWorkers(): Promise<void> {
    const all = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(all.map((w) => w.worker.terminate()));
  }
}

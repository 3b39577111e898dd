// The receiving side's mirror of seq-reservation.ts. Anti-replay windows live in memory, so a
// restarted gateway does not know which ESP an earlier run already accepted. The journal records,
// on disk (fsync) and BEFORE any packet can be accepted, every (VPN, epoch) this gateway receives
// under. At the next start, a receiving SA of a recorded epoch needs a floor learned from its
// sender before it takes ESP (src/core/rx-floors.ts, docs/protocol.md §3.2); an epoch no earlier
// run received under (the first start, a key that became active while running) starts with an
// empty window, as nothing of it can have been delivered before.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from './durable-file.js';

export class ReceiveJournal {
  /** Epochs some run received under, this one included: what the file says. */
  private readonly used = new Set<string>();
  /** Epochs an earlier run received under (read at start). */
  private readonly earlier = new Set<string>();
  /** Set when the file could not be read: then every epoch counts as used before (the safe side). */
  readonly damaged?: string;

  constructor(private readonly file: string) {
    if (!existsSync(file)) return;
    try {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as { epochs?: unknown };
      if (!Array.isArray(doc.epochs) || !doc.epochs.every((k) => typeof k === 'string' && /^\d+\/\d+$/.test(k)))
        throw new Error('no list of "vpnId/epoch" in "epochs"');
      for (const k of doc.epochs as string[]) {
        this.used.add(k);
        this.earlier.add(k);
      }
    } catch (e) {
      this.damaged = `${file}: ${(e as Error).message}`;
    }
  }

  /**
   * Records that this run receives under (vpnId, epoch), durably, and says whether an earlier run
   * did (its window is lost: the SA needs a floor before it takes ESP).
   */
  begin(vpnId: number, epoch: number): boolean {
    const key = `${vpnId}/${epoch}`;
    if (!this.used.has(key)) {
      this.used.add(key);
      this.save();
    }
    return this.damaged !== undefined || this.earlier.has(key);
  }

  /** Forgets epochs no longer held (their keys are gone: their packets cannot be accepted again). */
  retain(inUse: Iterable<{ vpnId: number; epoch: number }>): void {
    const keep = new Set([...inUse].map((s) => `${s.vpnId}/${s.epoch}`));
    let changed = false;
    for (const k of this.used) if (!keep.has(k)) changed = this.used.delete(k) || changed;
    if (changed) this.save();
  }

  private save(): void {
    writeFileDurably(this.file, JSON.stringify({ epochs: [...this.used].sort() }) + '\n');
  }
}

// Sending sequence numbers survive restarts. Within one key epoch a gateway's ESP sequence number is
// also its AES-GCM nonce, so after a restart it must never reuse one. The gateway reserves numbers
// in blocks and writes the end of the reservation to disk (fsync) BEFORE using them; after a
// restart it resumes above the reservation. (Receivers refuse old numbers only while they keep
// their windows: a restarted receiver relies on its mirror, rx-journal.ts, and on the sequence
// number a sender claims in the key search, docs/protocol.md §3.2.)
// A block is 2^26 numbers and the reservation is extended every second once half of it is used,
// so a gateway would have to send over 33 million packets per second under one VPN to outrun it.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from './durable-file.js';

export const SEQ_BLOCK = 1n << 26n;

export class SeqReservations {
  private readonly reserved = new Map<string, bigint>();

  constructor(private readonly file: string) {
    if (!existsSync(file)) return;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    for (const [k, v] of Object.entries(doc)) if (/^\d+$/.test(v)) this.reserved.set(k, BigInt(v));
  }

  /** Where a sending SA (re)starts: above everything reserved before, with a new block reserved. */
  begin(vpnId: number, epoch: number): bigint {
    const key = `${vpnId}/${epoch}`;
    const start = (this.reserved.get(key) ?? 0n) + 1n;
    this.reserved.set(key, start + SEQ_BLOCK);
    this.save();
    return start;
  }

  /** Extends the reservation when the SA has used half of it. */
  ensure(vpnId: number, epoch: number, nextSeq: bigint): void {
    const key = `${vpnId}/${epoch}`;
    const end = this.reserved.get(key) ?? 0n;
    if (nextSeq + SEQ_BLOCK / 2n < end) return;
    this.reserved.set(key, nextSeq + SEQ_BLOCK);
    this.save();
  }

  /** Drops epochs no longer in use (their keys are gone: their numbers cannot collide again). */
  retain(inUse: { vpnId: number; epoch: number }[]): void {
    const keep = new Set(inUse.map((s) => `${s.vpnId}/${s.epoch}`));
    let changed = false;
    for (const k of this.reserved.keys()) if (!keep.has(k)) changed = this.reserved.delete(k) || changed;
    if (changed) this.save();
  }

  private save(): void {
    writeFileDurably(
      this.file,
      JSON.stringify(Object.fromEntries([...this.reserved].map(([k, v]) => [k, v.toString()]))) + '\n',
    );
  }
}

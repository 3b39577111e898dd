// Anti-replay for ESP with 64-bit sequence numbers (RFC 4303 section 3.4.3, RFC 4304): a packet is
// accepted once, if it is newer than the highest seen, or within `size` of it and not seen yet.
//
// Bitmap: a ring of size/32 + 1 32-bit blocks, block b holding sequence numbers 32b..32b+31
// (the layout of RFC 6479). The extra block lets the window slide by clearing whole words, never
// by shifting bits: the `size` numbers below and including the highest span at most size/32 + 1
// blocks, so live blocks never share a ring slot.
//
// The ring (4 KB for a group SA's 32768 packets) is allocated with the first number accepted: a
// gateway holds a receiving SA for every other member of its VPNs, and most never send to it.
// Without a ring every number up to the highest counts as received (the state after construction,
// and after a floor), as in the native executor (native/src/replay.h).

export type ReplayVerdict = 'ok' | 'replay' | 'too-old' | 'invalid';

export const SEQ_MAX = (1n << 64n) - 1n;

/** The widest window: a group SA's (core/executor.ts, GROUP_REPLAY_WINDOW); the native bitmap holds as many. */
export const REPLAY_WINDOW_MAX = 32768;

function validSeq(seq: bigint): boolean {
  return typeof seq === 'bigint' && seq > 0n && seq <= SEQ_MAX;
}

export class ReplayWindow {
  readonly size: number;
  private readonly sizeN: bigint;
  private ring: Uint32Array | undefined;
  private readonly blocks: bigint;
  private top = 0n;

  /** size: how many numbers below the highest are still accepted; a multiple of 32 in 64..REPLAY_WINDOW_MAX. */
  constructor(size = 1024) {
    if (!Number.isInteger(size) || size % 32 !== 0 || size < 64 || size > REPLAY_WINDOW_MAX) {
      throw new TypeError(`ReplayWindow: size must be a multiple of 32 in 64..${REPLAY_WINDOW_MAX}, got ${size}`);
    }
    this.size = size;
    this.sizeN = BigInt(size);
    this.blocks = BigInt(size / 32 + 1);
  }

  /** The highest accepted sequence number, 0n before the first. */
  get highest(): bigint {
    return this.top;
  }

  /** Verdict for a sequence number, before authentication. Does not change the window. */
  check(seq: bigint): ReplayVerdict {
    if (!validSeq(seq)) return 'invalid';
    if (seq > this.top) return 'ok';
    if (this.top - seq >= this.sizeN) return 'too-old';
    if (!this.ring) return 'replay';
    return this.ring[this.slot(seq)] & this.mask(seq) ? 'replay' : 'ok';
  }

  /**
   * Records a sequence number whose ICV verified. Idempotent; a number that has meanwhile fallen
   * out of the window is ignored. Throws TypeError for a sequence number outside 1..2^64-1.
   */
  accept(seq: bigint): void {
    if (!validSeq(seq)) throw new TypeError(`ReplayWindow: invalid sequence number ${String(seq)}`);
    if (!this.ring) {
      if (seq <= this.top) return; // counted as received already
      this.ring = this.allSeen();
    }
    const ring = this.ring;
    if (seq > this.top) {
      const from = this.top >> 5n;
      const to = seq >> 5n;
      if (to - from >= this.blocks) {
        ring.fill(0);
      } else {
        for (let b = from + 1n; b <= to; b++) ring[Number(b % this.blocks)] = 0;
      }
      this.top = seq;
    } else if (this.top - seq >= this.sizeN) {
      return;
    }
    ring[this.slot(seq)] |= this.mask(seq);
  }

  /**
   * Counts every sequence number below `floor` as already received (a receiver that lost its
   * window learned that the sender has not sent `floor` yet: docs/protocol.md §3.2). Only ever
   * raises the window: a floor at or below the highest accepted number changes nothing.
   */
  raiseFloor(floor: bigint): void {
    if (!validSeq(floor) || floor - 1n <= this.top) return;
    this.top = floor - 1n;
    this.ring = undefined;
  }

  /** A ring with every number up to the highest received (above it in its block: clear, as accept() leaves them). */
  private allSeen(): Uint32Array {
    const ring = new Uint32Array(Number(this.blocks)).fill(0xffffffff);
    const below = Number(this.top & 31n);
    ring[this.slot(this.top)] = below === 31 ? 0xffffffff : (2 ** (below + 1) - 1) >>> 0;
    return ring;
  }

  private slot(seq: bigint): number {
    return Number((seq >> 5n) % this.blocks);
  }

  private mask(seq: bigint): number {
    return 1 << Number(seq & 31n);
  }
}

// Randomness as an injected function, so that sans-I/O code never reaches for the OS itself and
// simulations and tests can run deterministically. The one RandomSource of the code base and the
// one place that reaches the OS CSPRNG for it.

import { createHash, randomFillSync } from 'node:crypto';

/** Returns n fresh random bytes. */
export type RandomSource = (n: number) => Uint8Array;

function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) throw new TypeError(`random: bad byte count ${n}`);
}

/** The OS CSPRNG (node:crypto). Use this for every real key, nonce and identifier. */
export const cryptoRandom: RandomSource = (n) => {
  checkCount(n);
  return randomFillSync(new Uint8Array(n));
};

const SEEDED_LABEL = 'kasane seeded random v1\0';

/**
 * A deterministic byte stream for the simulator and tests. NOT FOR PRODUCTION KEYS: anyone who
 * knows or guesses the seed can reproduce every byte.
 *
 * Block i (i = 0, 1, ...) = SHA-256(label || seed || u64be i), where seed is the UTF-8 of
 * "n:" + String(seed) for numbers and "s:" + seed for strings (so 1 and "1" differ). Calls read
 * the stream consecutively: r(3) followed by r(5) returns the same bytes as one r(8).
 */
export function seededRandom(seed: number | string): RandomSource {
  if (typeof seed !== 'number' && typeof seed !== 'string')
    throw new TypeError('seededRandom: seed must be a number or string');
  const prefix = Buffer.from(SEEDED_LABEL + (typeof seed === 'number' ? `n:${String(seed)}` : `s:${seed}`), 'utf8');
  const ctr = Buffer.alloc(8);
  let counter = 0n;
  let block = new Uint8Array(0);
  let used = 0;
  return (n) => {
    checkCount(n);
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (used === block.length) {
        ctr.writeBigUInt64BE(counter++);
        block = createHash('sha256').update(prefix).update(ctr).digest();
        used = 0;
      }
      const take = Math.min(n - filled, block.length - used);
      out.set(block.subarray(used, used + take), filled);
      used += take;
      filled += take;
    }
    return out;
  };
}

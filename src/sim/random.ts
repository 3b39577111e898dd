// Seeded randomness for the simulator. Each consumer (authority keys, each gateway core, each
// link's loss) draws from its own stream derived from (seed, label), so adding a link or a
// traffic item never changes the keys or another link's losses.
import { seededRandom, type RandomSource } from '../base/random.js';

export type RandomBytes = RandomSource;

/** The deterministic stream of one consumer of a run with this seed. */
export function randomStream(seed: number, label: string): RandomBytes {
  return seededRandom(`sim:${seed}:${label}`);
}

/** A uniform float in [0, 1) from 48 bits of the stream. */
export function uniform(random: RandomBytes): number {
  const b = random(6);
  return (b[0] * 2 ** 40 + b[1] * 2 ** 32 + b[2] * 2 ** 24 + b[3] * 2 ** 16 + b[4] * 2 ** 8 + b[5]) / 2 ** 48;
}

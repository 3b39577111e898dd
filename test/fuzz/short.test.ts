// The short fuzz run that is part of every test run (docs/fuzzing.md): every parser of untrusted
// input, 10,000 inputs each (KASANE_FUZZ_COUNT to change it), from a seed printed on failure.
// Any finding fails the test with the input in hex; `npm run fuzz` runs 1,000,000 per target and
// saves what it finds under test/fuzz/regressions/.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz } from '../../fuzz/harness.js';
import { TARGETS } from '../../fuzz/targets/index.js';

const COUNT = Number(process.env.KASANE_FUZZ_COUNT ?? 10_000);
const SEED = Number(process.env.KASANE_FUZZ_SEED ?? Date.now() % 0x7fffffff);
/**
 * CPU per input that counts as slow here. `npm run fuzz` reports 10 ms; this run shares two cores
 * with the rest of the suite (performance is for benchmarks, not timed tests), so only what is
 * several times too slow fails it: the blow-ups slowness stands for are far beyond (a quadratic
 * decoder took 650 ms).
 */
const SLOW_MS = Number(process.env.KASANE_FUZZ_SLOW_MS ?? 50);

describe(`fuzz, ${COUNT} inputs per parser (seed ${SEED})`, () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${target.description}`, async () => {
      const r = await fuzz(target, { count: COUNT, seed: SEED, slowMs: SLOW_MS });
      assert.equal(r.inputs, COUNT, `stopped after ${r.inputs} inputs`);
      assert.deepEqual(
        r.findings.map((f) => `${f.kind}: ${f.message}\n  input (hex): ${f.input.slice(0, 4000)}`),
        [],
        `reproduce with: npm run fuzz -- --seed ${SEED} --count ${COUNT} --slow-ms ${SLOW_MS} ${target.name}`,
      );
    });
  }
});

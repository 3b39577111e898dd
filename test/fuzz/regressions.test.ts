// Every input the fuzzer ever found a problem with (test/fuzz/regressions/<target>/*.json), run
// through its target again: each must now pass the oracle (no exception, typed errors, agreement,
// within the time bound).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { check } from '../../fuzz/harness.js';
import { TARGETS } from '../../fuzz/targets/index.js';

const DIR = fileURLToPath(new URL('./regressions/', import.meta.url));

describe('fuzz findings stay fixed', () => {
  const dirs = existsSync(DIR) ? readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()) : [];
  it('every saved finding names a known target', () => {
    for (const d of dirs)
      assert.ok(
        TARGETS.some((t) => t.name === d.name),
        `test/fuzz/regressions/${d.name}: no such fuzz target`,
      );
  });
  for (const d of dirs) {
    const target = TARGETS.find((t) => t.name === d.name);
    if (!target) continue;
    it(`${d.name}: ${readdirSync(`${DIR}${d.name}`).length} saved inputs`, async () => {
      const instance = await target.setup();
      try {
        for (const f of readdirSync(`${DIR}${d.name}`).filter((x) => x.endsWith('.json'))) {
          const saved = JSON.parse(readFileSync(`${DIR}${d.name}/${f}`, 'utf8')) as {
            kind: string;
            message: string;
            input: string;
          };
          const input = new Uint8Array(Buffer.from(saved.input, 'hex'));
          const started = process.cpuUsage();
          const bad = await check(instance, input);
          const used = process.cpuUsage(started);
          assert.equal(
            bad,
            undefined,
            `${d.name}/${f} (found as ${saved.kind}: ${saved.message}) still fails: ${bad?.kind}: ${bad?.message}`,
          );
          if (saved.kind === 'slow')
            assert.ok((used.user + used.system) / 1000 < 10 + input.length / 100, `${d.name}/${f} is still slow`);
        }
      } finally {
        await instance.close?.();
      }
    });
  }
});

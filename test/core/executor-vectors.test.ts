// The shared executor vectors (test/vectors/executor.json) on the TypeScript reference executor.
// The same file is replayed against the native executor in test/native/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { generateExecutorVectors, replayScenario, type VectorScenario } from '../support/executor-vectors.js';

const file = JSON.parse(readFileSync(new URL('../vectors/executor.json', import.meta.url), 'utf8')) as { scenarios: VectorScenario[] };

test('the committed vectors are what the reference executor produces (regenerate deliberately with scripts/gen-executor-vectors.ts)', () => {
  assert.deepEqual(generateExecutorVectors(() => new TsExecutor()), file.scenarios);
});

for (const scenario of file.scenarios) {
  test(`TS executor replays vector scenario "${scenario.name}"`, () => {
    for (const r of replayScenario(new TsExecutor(), scenario)) assert.deepEqual(r.actual, r.expected, `step ${r.step} (${r.name})`);
  });
}

test('the vectors cover every verdict the executor can give', () => {
  const seen = new Set<string>();
  for (const s of file.scenarios) for (const st of s.steps) if (st.op === 'process') seen.add(st.expect.kind === 'forward' ? `forward.${st.expect.note.op}` : `${st.expect.kind}.${st.expect.reason}`);
  for (const v of [
    'forward.encrypt',
    'forward.decrypt',
    'forward.plain',
    'drop.discard',
    'drop.replay',
    'drop.auth-failed',
    'drop.vpn-mismatch',
    'drop.peer-mismatch',
    'drop.unsolicited-plain',
    'drop.fragment',
    'drop.malformed',
    'drop.no-sa',
    'punt.search',
    'punt.miss',
    'punt.pending',
    'punt.too-big',
  ]) {
    assert.ok(seen.has(v), `no vector gives ${v}`);
  }
});

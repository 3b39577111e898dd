// The IKE test world is reproducible: engines built from one seed send the same bytes (SPIs,
// nonces, key exchange) and install the same Child SA SPIs, and another seed changes them, so a
// failure found with KASANE_TEST_SEED repeats with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World } from './net.js';

async function run(seed: string): Promise<{ init: string; spis: number[] }> {
  const w = await World.make({ seed });
  await w.connect('a');
  return { init: w.log.a.sent[0].bytes.toString('hex'), spis: w.installed('a') };
}

test('one seed, the same IKE_SA_INIT and Child SA SPIs; another seed, others', async () => {
  const first = await run('seed-1');
  const again = await run('seed-1');
  const other = await run('seed-2');
  assert.ok(first.spis.length > 0, 'a Child SA was installed');
  assert.deepEqual(again, first);
  assert.notEqual(other.init, first.init);
  assert.notDeepEqual(other.spis, first.spis);
});

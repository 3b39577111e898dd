// The background warm-up of the key-search code runs real searches between two private cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warmUpSearchPath } from '../../src/gateway/warmup.js';
import { NativeExecutor } from '../../src/native/native-executor.js';
import { nativeOrSkip } from '../native/support.js';

test('warm-up: every synthetic search completes (the code it warms is the live search path)', async () => {
  const w = await warmUpSearchPath({ searches: 250, slice: 50 });
  assert.equal(w.searches, 250);
  assert.equal(w.completed, 250);
  assert.ok(w.ms > 0);
});

test('warm-up with the native executor (as the daemon runs it) and wall-clock times: every search completes', async (t) => {
  const binding = nativeOrSkip(t);
  if (!binding) return;
  const made: NativeExecutor[] = [];
  const w = await warmUpSearchPath({
    searches: 250,
    slice: 50,
    now: Date.now(),
    executor: () => {
      const e = NativeExecutor.create();
      assert.ok(e.ok);
      made.push(e.value);
      return e.value;
    },
  });
  assert.equal(w.completed, 250);
  assert.equal(made.length, 2, 'one private executor per core');
  // The searches installed their paths in the private native executors, which then carried the data.
  for (const x of made)
    assert.equal(
      x.allPathStats().filter((p) => p.action === 'encrypt').length,
      250,
      'every search installed its path at both ends',
    );
});

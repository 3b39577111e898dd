// The background warm-up of the key-search code runs real searches between two private cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warmUpSearchPath } from '../../src/gateway/warmup.js';

test('warm-up: every synthetic search completes (the code it warms is the live search path)', async () => {
  const w = await warmUpSearchPath(250, 50);
  assert.equal(w.searches, 250);
  assert.equal(w.completed, 250);
  assert.ok(w.ms > 0);
});

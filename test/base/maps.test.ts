// pushTo: the one-key-many-values index the authority, the simulator and the topology checks build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pushTo } from '../../src/base/maps.js';

test('pushTo makes the list on first use and appends in order after', () => {
  const m = new Map<string, number[]>();
  const first = pushTo(m, 'a', 1);
  assert.deepEqual(first, [1]);
  assert.equal(m.get('a'), first);
  const again = pushTo(m, 'a', 2);
  assert.equal(again, first, 'the same list, not a copy');
  pushTo(m, 'b', 3);
  pushTo(m, 'a', 4);
  assert.deepEqual(
    [...m],
    [
      ['a', [1, 2, 4]],
      ['b', [3]],
    ],
  );
});

test('pushTo keeps a list that was already in the map and keys by identity', () => {
  const existing = [10];
  const k1 = { id: 1 };
  const k2 = { id: 1 };
  const m = new Map<object, number[]>([[k1, existing]]);
  assert.equal(pushTo(m, k1, 11), existing);
  assert.deepEqual(existing, [10, 11]);
  assert.deepEqual(pushTo(m, k2, 12), [12], 'an equal-looking key is another key');
  assert.equal(m.size, 2);
});

test('pushTo stores falsy values and falsy keys like any other', () => {
  const m = new Map<number, (number | undefined)[]>();
  pushTo(m, 0, undefined);
  pushTo(m, 0, 0);
  assert.deepEqual(m.get(0), [undefined, 0]);
});

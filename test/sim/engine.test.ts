// The simulator's event engine: events run by time then insertion order, runUntil stops at its bound,
// and the same schedule always gives the same run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine, EventQueue } from '../../src/sim/engine.js';

test('events run by time, then in the order they were scheduled', () => {
  const engine = new Engine();
  const ran: string[] = [];
  engine.at(5, () => ran.push('5a'));
  engine.at(1, () => ran.push('1'));
  engine.at(5, () => ran.push('5b'));
  engine.at(3, () => {
    ran.push('3');
    engine.at(3, () => ran.push('3-later')); // same instant, scheduled later: runs after 3
    engine.after(2, () => ran.push('5c')); // at 5, after 5a and 5b
  });
  engine.runUntil(10);
  assert.deepEqual(ran, ['1', '3', '3-later', '5a', '5b', '5c']);
  assert.equal(engine.now, 10);
  assert.equal(engine.eventsRun, 6);
});

test('runUntil stops at the bound and leaves later events queued; the past is clamped to now', () => {
  const engine = new Engine();
  const ran: number[] = [];
  engine.at(2, () => ran.push(engine.now));
  engine.at(7, () => ran.push(engine.now));
  engine.runUntil(5);
  assert.deepEqual(ran, [2]);
  assert.equal(engine.now, 5);
  assert.equal(engine.pending, 1);
  engine.at(1, () => ran.push(engine.now)); // in the past: runs at the current time
  engine.runUntil(7);
  assert.deepEqual(ran, [2, 5, 7]);
  assert.throws(() => engine.at(Number.NaN, () => {}), RangeError);
});

test('the queue pops in (time, insertion) order for any schedule (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
      const q = new EventQueue();
      const popped: number[] = [];
      times.forEach((t, i) => q.push(t, () => popped.push(i)));
      for (let e = q.pop(); e !== undefined; e = q.pop()) e.run();
      const expected = times
        .map((t, i) => ({ t, i }))
        .sort((a, b) => a.t - b.t || a.i - b.i)
        .map((x) => x.i);
      assert.deepEqual(popped, expected);
    }),
  );
});

test('the same schedule gives the same run (determinism)', () => {
  const runOnce = () => {
    const engine = new Engine();
    const log: string[] = [];
    for (let i = 0; i < 50; i++) engine.at((i * 7) % 11, () => log.push(`${engine.now}:${i}`));
    engine.runUntil(100);
    return log.join(',');
  };
  assert.equal(runOnce(), runOnce());
});

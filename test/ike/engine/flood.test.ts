// IKE stays available to legitimate peers under floods of IKE_SA_INIT (issue 11): half-open SAs
// are limited per source address and per prefix as well as in total, cookies are asked for from
// the threshold on, and a spoofer cannot lock a peer out by using its address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVICTABLE_AFTER } from '../../../src/ike/engine/half-open.js';
import { assertPaired, IP_A, IP_B, World } from './net.js';
import { initAgainst } from './attacker.js';

const B_AT = { address: IP_B, port: 500 };
/** Small limits so that a flood fills them quickly; the rules are those of the defaults. */
const LIMITS = { cookieThreshold: 16, maxHalfOpen: 256, maxHalfOpenPerAddress: 8, maxHalfOpenPerPrefix: 32 };

test('a legitimate peer establishes while one address floods IKE_SA_INIT and echoes every cookie', async () => {
  const w = await World.make({ timers: LIMITS });
  const outcomes = { admitted: 0, cookie: 0, silence: 0 };
  for (let i = 0; i < 1000; i++) outcomes[initAgainst(w.b, B_AT, '203.0.113.66', w.now).kind]++;
  // The flooder holds its own address's share and no more; everyone else is below the cookie threshold.
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerAddress, JSON.stringify(outcomes));
  assert.equal(outcomes.admitted, LIMITS.maxHalfOpenPerAddress);
  w.connect('a');
  assert.equal(w.events('a', 'ike-up').length, 1, JSON.stringify(w.log.a.events));
  assertPaired(w);
  // Once its slots are old enough, the flooder's own cookie-proven requests replace only what it made without one.
  w.now += EVICTABLE_AFTER;
  for (let i = 0; i < 100; i++) initAgainst(w.b, B_AT, '203.0.113.66', w.now);
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerAddress);
});

test('a flood from a whole /24 is held to the prefix limit; a peer elsewhere still establishes', async () => {
  const w = await World.make({ timers: LIMITS });
  for (let host = 1; host <= 200; host++)
    for (let i = 0; i < 3; i++) initAgainst(w.b, B_AT, `203.0.113.${host}`, w.now);
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerPrefix);
  w.connect('a');
  assert.equal(w.events('a', 'ike-up').length, 1);
  assertPaired(w);
});

test("a spoofer using the peer's own address cannot lock it out: the peer's cookie replaces the spoofed half-open SAs", async () => {
  const w = await World.make({ timers: LIMITS });
  // Requests that claim IP_A but never see an answer (no cookie echo): they fill A's address bucket.
  for (let i = 0; i < 50; i++) initAgainst(w.b, B_AT, IP_A, w.now, false);
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerAddress);
  w.now += EVICTABLE_AFTER;
  w.connect('a');
  assert.deepEqual(
    w.events('a').map((e) => e.event),
    ['cookie-sent', 'ike-up', 'child-up'],
    JSON.stringify(w.log.b.events.slice(-3)),
  );
  assertPaired(w);
  assert.ok(w.events('b', 'dropped').some((e) => /made without a cookie replaced/.test(e.reason ?? '')));
});

test('cookieThreshold: exactly that many half-open SAs are made without a cookie, the next request gets one', async () => {
  const w = await World.make({ timers: { ...LIMITS, cookieThreshold: 5 } });
  for (let i = 1; i <= 5; i++) {
    const r = initAgainst(w.b, B_AT, `198.18.${i}.1`, w.now, false);
    assert.equal(r.kind, 'admitted', `request ${i}`);
  }
  assert.equal(w.b.load().halfOpen, 5);
  const r = initAgainst(w.b, B_AT, '198.18.6.1', w.now, false);
  assert.equal(r.kind, 'cookie');
  assert.equal(w.b.load().halfOpen, 5, 'no state for a request without its cookie');
  assert.equal(initAgainst(w.b, B_AT, '198.18.6.1', w.now, true).kind, 'admitted');
});

test('maxHalfOpen: a cookie-proven request replaces an old SA made without one, and is dropped when all are proven', async () => {
  const limits = { cookieThreshold: 4, maxHalfOpen: 4, maxHalfOpenPerAddress: 100, maxHalfOpenPerPrefix: 100 };
  const w = await World.make({ timers: limits });
  for (let i = 1; i <= 4; i++) assert.equal(initAgainst(w.b, B_AT, `198.18.${i}.1`, w.now, false).kind, 'admitted');
  // Too young to be replaced: dropped even with a cookie.
  const young = initAgainst(w.b, B_AT, '198.18.9.1', w.now);
  assert.equal(young.kind, 'silence');
  w.now += EVICTABLE_AFTER;
  for (let i = 0; i < 4; i++) assert.equal(initAgainst(w.b, B_AT, `198.18.${10 + i}.1`, w.now).kind, 'admitted');
  assert.equal(w.b.load().halfOpen, 4);
  w.now += EVICTABLE_AFTER;
  const full = initAgainst(w.b, B_AT, '198.18.20.1', w.now);
  assert.equal(full.kind, 'silence');
  if (full.kind === 'silence') assert.match(full.events.at(-1)!.reason!, /none of them replaceable/);
});

test('half-open SAs leave the count when they complete, fail or time out', async () => {
  const w = await World.make({ timers: LIMITS });
  w.connect('a');
  assert.equal(w.b.load().halfOpen, 0, 'established');
  initAgainst(w.b, B_AT, '203.0.113.7', w.now);
  assert.equal(w.b.load().halfOpen, 1);
  w.advance(w.now + 31_000);
  assert.equal(w.b.load().halfOpen, 0, 'timed out');
});

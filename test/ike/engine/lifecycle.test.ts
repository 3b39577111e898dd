// What happens to IKE and Child SAs after they are up: CREATE_CHILD_SA rekeys of both with PFS,
// INFORMATIONAL deletes and liveness checks, lifetimes, simultaneous starts, permits that end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, ExchangeType } from '../../../src/ike/message/index.js';
import { permitFor } from './peers.js';
import { assertPaired, HOUR, T0, World } from './net.js';

const CHILD = 600_000;
const IKE = 1_800_000;

test('Child SA rekey (CREATE_CHILD_SA with KE): new keys on both sides, the old SA deleted, not the last', async () => {
  const w = await World.make({ timers: { childLifetime: CHILD, ikeLifetime: 10 * HOUR, dpdDelay: HOUR } });
  w.connect('a');
  const before = w.current('a')!;
  w.reset();
  w.advance(T0 + 0.95 * CHILD);
  const rekeys = w.log.a.sent
    .map((d) => decodeMessage(d.bytes))
    .filter((m) => m.ok && m.value.message.header.exchangeType === ExchangeType.CREATE_CHILD_SA);
  assert.equal(rekeys.length, 1, 'the IKE SA initiator rekeyed (once)');
  assert.equal(w.events('a', 'child-rekeyed').length, 1);
  assert.equal(w.events('b', 'child-rekeyed').length, 1);
  assertPaired(w);
  const after = w.current('a')!;
  assert.notEqual(after.inbound.spi, before.inbound.spi);
  assert.ok(!after.outbound.key.key.equals(before.outbound.key.key));
  // The old SA went on both sides, and the core is not told the peer is down.
  assert.deepEqual(
    w.log.a.removes.map((r) => [r.inboundSpi, r.last]),
    [[before.inbound.spi, false]],
  );
  assert.deepEqual(
    w.log.b.removes.map((r) => [r.inboundSpi, r.last]),
    [[before.outbound.spi, false]],
  );
  assert.deepEqual(w.installed('a'), [after.inbound.spi]);
  // And again at the next lifetime.
  w.advance(T0 + 1.9 * CHILD);
  assert.equal(w.events('a', 'child-rekeyed').length, 2);
  assertPaired(w);
});

test('simultaneous Child SA rekeys: the IKE initiator wins, one new SA results', async () => {
  const w = await World.make({ timers: { childLifetime: CHILD, ikeLifetime: 10 * HOUR, dpdDelay: HOUR } });
  w.connect('a');
  // Both sides' rekey timers fire in the same instant (B's would normally come later).
  w.reset();
  const sa = (w.b as unknown as { sas: Map<string, { children: { rekeyAt: number }[] }> }).sas;
  for (const s of sa.values()) for (const c of s.children) c.rekeyAt = T0 + 0.85 * CHILD;
  const sa2 = (w.a as unknown as { sas: Map<string, { children: { rekeyAt: number }[] }> }).sas;
  for (const s of sa2.values()) for (const c of s.children) c.rekeyAt = T0 + 0.85 * CHILD;
  w.now = T0 + 0.85 * CHILD;
  w.take('a', w.a.tick(w.now));
  w.take('b', w.b.tick(w.now));
  w.settle();
  assert.equal(w.events('a', 'child-rekeyed').length, 1);
  assert.equal(w.events('b', 'child-rekeyed').length, 1);
  assert.ok(
    w.events('b', 'dropped').some((e) => /child rekey/.test(e.reason ?? '')),
    'B was told to wait',
  );
  assertPaired(w);
  assert.equal(w.installed('a').length, 1);
  assert.equal(w.installed('b').length, 1);
});

test('IKE SA rekey: new SPIs and keys, Child SAs carried over, the old IKE SA deleted, later exchanges on the new one', async () => {
  const w = await World.make({
    timers: { childLifetime: 10 * HOUR, ikeLifetime: IKE, dpdDelay: HOUR },
    permitHours: 24,
  });
  w.connect('a');
  const [oldA] = w.a.status(w.now);
  const child = w.current('a')!;
  w.reset();
  w.advance(T0 + 0.95 * IKE);
  assert.equal(w.events('a', 'ike-rekeyed').length, 1);
  assert.equal(w.events('b', 'ike-rekeyed').length, 1);
  const [newA] = w.a.status(w.now);
  const [newB] = w.b.status(w.now);
  assert.equal(w.a.status(w.now).length, 1, 'the old IKE SA is gone on A');
  assert.equal(w.b.status(w.now).length, 1, 'the old IKE SA is gone on B');
  assert.notEqual(newA.spiI, oldA.spiI);
  assert.equal(newA.spiI, newB.spiI);
  assert.equal(newA.spiR, newB.spiR);
  assert.deepEqual(
    newA.children.map((c) => c.inboundSpi),
    [child.inbound.spi],
  );
  assert.deepEqual(w.log.a.removes, [], 'no Child SA was touched');
  assert.deepEqual(w.log.b.removes, []);
  // The new SA works: a liveness check goes and comes back on it.
  w.reset();
  w.advance(w.now + HOUR + 1000);
  const informational = w.log.a.sent
    .concat(w.log.b.sent)
    .map((d) => decodeMessage(d.bytes))
    .filter((m) => m.ok && m.value.message.header.exchangeType === ExchangeType.INFORMATIONAL);
  assert.ok(informational.length >= 2);
  assert.deepEqual(w.events('a', 'ike-down'), []);
});

test('liveness: an idle SA is checked; a peer that stopped answering is declared dead and its Child SA removed (last)', async () => {
  const w = await World.make({
    timers: { dpdDelay: 30_000, retransmitTries: 2, childLifetime: 10 * HOUR, ikeLifetime: 10 * HOUR },
  });
  w.connect('a');
  w.reset();
  w.advance(T0 + 31_000);
  assert.ok(w.log.a.sent.length + w.log.b.sent.length >= 2, 'an INFORMATIONAL went and came back');
  assert.deepEqual(w.events('a', 'ike-down'), []);
  w.filter = () => false; // B is gone
  w.advance(T0 + 200_000);
  const down = w.events('a', 'ike-down');
  assert.equal(down.length, 1);
  assert.match(down[0].reason!, /peer-unresponsive/);
  assert.equal(w.log.a.removes.length, 1);
  assert.equal(w.log.a.removes[0].last, true);
  assert.deepEqual(w.a.status(w.now), []);
});

test('close(): the IKE SA is deleted with INFORMATIONAL; both sides remove the Child SA and tell their cores', async () => {
  const w = await World.make();
  w.connect('a');
  const c = w.current('a')!;
  w.reset();
  w.take('a', w.a.close('gb', 7, w.now, 'idle'));
  w.settle();
  assert.deepEqual(
    w.log.a.removes.map((r) => [r.inboundSpi, r.last, r.reason]),
    [[c.inbound.spi, true, 'idle']],
  );
  assert.deepEqual(
    w.log.b.removes.map((r) => [r.inboundSpi, r.last]),
    [[c.outbound.spi, true]],
  );
  assert.deepEqual(w.a.status(w.now), []);
  assert.deepEqual(w.b.status(w.now), []);
  // The next ike-request starts over.
  w.reset();
  w.connect('a');
  assert.equal(w.events('a', 'child-up').length, 1);
  assertPaired(w);
});

test('a Child SA past its hard lifetime is removed even if its rekey failed', async () => {
  const w = await World.make({
    timers: { childLifetime: CHILD, ikeLifetime: 10 * HOUR, dpdDelay: HOUR, retransmitTries: 1 },
  });
  w.connect('a');
  w.reset();
  // Rekeys are lost (and the resulting dead-peer handling removes it too): either way it goes by its lifetime.
  w.filter = (d) => {
    const m = decodeMessage(d.bytes);
    return !(m.ok && m.value.message.header.exchangeType === ExchangeType.CREATE_CHILD_SA);
  };
  w.advance(T0 + CHILD + 1);
  assert.ok(w.log.a.removes.length >= 1);
  assert.deepEqual(w.installed('a'), []);
});

test('both gateways asked at once: the one with the higher address waits for the other, one IKE SA, nothing to undo', async () => {
  const w = await World.make();
  w.take('a', w.a.initiate('gb', 7, w.now));
  w.take('b', w.b.initiate('ga', 7, w.now));
  assert.equal(w.log.b.sent.length, 0, 'B (198.51.100.2) holds back for A (192.0.2.1)');
  w.settle();
  w.advance(w.now + 2000);
  assert.equal(w.a.status(w.now).length, 1);
  assert.equal(w.b.status(w.now).length, 1);
  assert.deepEqual(w.log.a.removes.concat(w.log.b.removes), []);
  assertPaired(w);
  // Alone, B starts after the delay.
  const w2 = await World.make();
  w2.take('b', w2.b.initiate('ga', 7, w2.now));
  assert.equal(w2.log.b.sent.length, 0);
  w2.advance(w2.now + 1000);
  assert.equal(w2.events('b', 'child-up').length, 1);
});

test('simultaneous initiation (no hold-back): both gateways start IKE at once and end with one IKE SA and one Child SA pair', async () => {
  for (let round = 0; round < 5; round++) {
    const w = await World.make({ timers: { collisionDelay: 0 } });
    w.take('a', w.a.initiate('gb', 7, w.now));
    w.take('b', w.b.initiate('ga', 7, w.now));
    w.settle();
    w.advance(w.now + 100);
    assert.equal(
      w.a.status(w.now).filter((s) => s.state === 'established').length,
      1,
      `round ${round}: A has one IKE SA`,
    );
    assert.equal(
      w.b.status(w.now).filter((s) => s.state === 'established').length,
      1,
      `round ${round}: B has one IKE SA`,
    );
    assert.equal(w.a.status(w.now)[0].spiI, w.b.status(w.now)[0].spiI, 'the same one');
    assertPaired(w);
    assert.equal(w.installed('a').length, 1);
    assert.equal(w.installed('b').length, 1);
    assert.ok(
      w.log.a.removes.concat(w.log.b.removes).every((r) => !r.last),
      'the cores never saw the peer go down',
    );
  }
});

test('permits that end: the SA initiator reauthenticates with the renewed permit before, and the old SA goes; without renewal, the SA ends', async () => {
  const w = await World.make({ timers: { childLifetime: 10 * HOUR, ikeLifetime: 10 * HOUR, dpdDelay: 10 * HOUR } });
  w.connect('a');
  const first = w.current('a')!;
  // The authorities renew both permits (seed 001: before they expire) and deliver them.
  w.peersOfA = [w.entry('a', await permitFor(w.B, w.ga, 'shared', T0, T0 + 3 * HOUR))];
  w.peersOfB = [w.entry('b', await permitFor(w.A, w.gb, 'shared', T0, T0 + 3 * HOUR))];
  w.reset();
  w.advance(T0 + HOUR - 60_000);
  assert.equal(w.events('a', 'ike-up').length, 1, 'a new IKE SA, authenticated with the new permits');
  assert.equal(w.a.status(w.now).length, 1);
  assert.equal(w.b.status(w.now).length, 1);
  assertPaired(w);
  assert.notEqual(w.current('a')!.inbound.spi, first.inbound.spi);
  assert.ok(w.log.a.removes.every((r) => !r.last));
  // No renewal this time: past the permit's end (and a grace period) the SA is deleted, and the
  // next attempt is refused.
  w.reset();
  w.advance(T0 + 3 * HOUR + 60_000);
  assert.ok(w.events('a', 'ike-down').length + w.events('b', 'ike-down').length >= 1);
  assert.deepEqual(w.installed('a'), []);
  w.reset();
  w.connect('a');
  assert.equal(w.events('b', 'auth-failed').length, 1);
  assert.match(w.events('b', 'auth-failed')[0].reason!, /permit-expired/);
});

test('refresh(): a peer our authority no longer delivers (membership ended, permit withdrawn) is deleted', async () => {
  const w = await World.make();
  w.connect('a');
  w.reset();
  w.peersOfA = [];
  w.take('a', w.a.refresh(w.now));
  w.settle();
  assert.equal(w.log.a.removes[0]?.last, true);
  assert.equal(w.log.a.removes[0]?.reason, 'peer-withdrawn');
  assert.deepEqual(w.b.status(w.now), []);
  // And no new SA starts toward it.
  w.reset();
  w.take('a', w.a.initiate('gb', 7, w.now));
  assert.match(w.events('a', 'failed')[0].reason!, /peer-unknown/);
  assert.equal(w.log.a.removes[0].last, true);
});

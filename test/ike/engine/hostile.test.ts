// Hostile and malformed IKE messages: garbage, truncations, bit flips, wrong SPIs, replays. Each
// is a counted drop or a refusal; none throws, none installs anything, none disturbs the SAs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, ExchangeType } from '../../../src/ike/message/index.js';
import { assertPaired, HOUR, IP_A, IP_B, T0, World, type Datagram } from './net.js';

/** A complete exchange with every datagram recorded, for replaying and mutating. */
async function recorded(): Promise<{ w: World; wire: Datagram[] }> {
  const w = await World.make({ timers: { childLifetime: 600_000, ikeLifetime: 10 * HOUR, dpdDelay: 10 * HOUR }, permitHours: 48 });
  const wire: Datagram[] = [];
  w.filter = (d) => (wire.push(d), true);
  await w.connect('a');
  await w.advance(T0 + 560_000); // one Child SA rekey and its delete
  w.filter = () => true;
  return { w, wire };
}

function exchangeOf(d: Datagram): number | undefined {
  const m = decodeMessage(d.bytes);
  return m.ok ? m.value.message.header.exchangeType : undefined;
}

test('random datagrams: never a throw, never an install, the SAs stay', async () => {
  const { w } = await recorded();
  const before = JSON.stringify(w.a.status(w.now));
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), async (bytes, toNat) => {
      const o = await w.a.receive({ address: IP_B, port: toNat ? 4500 : 500 }, bytes, w.now, toNat ? 4500 : 500);
      assert.deepEqual(o.install, []);
      assert.deepEqual(o.remove, []);
    }),
    { numRuns: 400 },
  );
  assert.equal(JSON.stringify(w.a.status(w.now)), before);
});

test('every truncation and random bit flips of every recorded message: dropped or refused, nothing installed', async () => {
  const { w, wire } = await recorded();
  const installed = [w.installed('a'), w.installed('b')];
  for (const d of wire) {
    const target = d.to.address === IP_A ? w.a : w.b;
    for (let n = 0; n < d.bytes.length; n += Math.max(1, Math.floor(d.bytes.length / 64))) {
      const o = await target.receive(d.from, d.bytes.subarray(0, n), w.now, d.to.port);
      assert.deepEqual(o.install, []);
    }
  }
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: wire.length - 1 }), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), async (i, flips) => {
      const d = wire[i];
      const bytes = Buffer.from(d.bytes);
      for (const f of flips) bytes[f % bytes.length] ^= 1 << (f % 8);
      if (bytes.equals(d.bytes)) return;
      const target = d.to.address === IP_A ? w.a : w.b;
      const o = await target.receive(d.from, bytes, w.now, d.to.port);
      assert.deepEqual(o.install, [], `a flipped message installed a Child SA (message ${i})`);
      assert.deepEqual(o.remove, []);
    }),
    { numRuns: 300 },
  );
  assert.deepEqual([w.installed('a'), w.installed('b')], installed);
  // Still working: a liveness check comes back.
  w.reset();
  await w.advance(w.now + 10 * HOUR + 1000);
  assert.deepEqual(w.events('a', 'ike-down'), []);
});

test('replays: old IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL messages change nothing', async () => {
  const { w, wire } = await recorded();
  const installs = [w.log.a.installs.length, w.log.b.installs.length];
  const status = [JSON.stringify(w.a.status(w.now)), JSON.stringify(w.b.status(w.now))];
  for (const d of wire) {
    const side = d.to.address === IP_A ? 'a' : 'b';
    const o = await w.engine(side).receive(d.from, d.bytes, w.now, d.to.port);
    assert.deepEqual(o.install, [], `replayed exchange ${exchangeOf(d)} installed`);
    assert.deepEqual(o.remove, []);
    // A replayed request at most brings back the cached answer to the last one.
    for (const s of o.send) assert.ok(w.log[side].sent.some((x) => x.bytes.equals(s.bytes)), 'only cached answers are resent');
  }
  assert.deepEqual([w.log.a.installs.length, w.log.b.installs.length], installs);
  assert.deepEqual([JSON.stringify(w.a.status(w.now)), JSON.stringify(w.b.status(w.now))], status);
  assertPaired(w);
});

test('wrong SPIs and a message from another address find no SA', async () => {
  const { w, wire } = await recorded();
  const auth = wire.find((d) => exchangeOf(d) === ExchangeType.IKE_AUTH && d.to.address === IP_B)!;
  const wrongR = Buffer.from(auth.bytes);
  wrongR[8] ^= 0xff; // responder SPI
  let o = await w.b.receive(auth.from, wrongR, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  const wrongI = Buffer.from(auth.bytes);
  wrongI[0] ^= 0xff;
  o = await w.b.receive(auth.from, wrongI, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  o = await w.b.receive({ address: '203.0.113.66', port: 4500 }, auth.bytes, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  // The I flag flipped: a "response" from the initiator is not the responder's.
  const flag = Buffer.from(auth.bytes);
  flag[19] ^= 0x08;
  o = await w.b.receive(auth.from, flag, w.now, 4500);
  assert.equal(o.install.length, 0);
});

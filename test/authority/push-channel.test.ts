// The authority's subscription table (push.ts) on its own, with an injected clock, datagram sink
// and database check: a SUBSCRIBE is ACKed once the gateway is found active, and a gateway behind
// is woken at once; a change wakes the subscribed gateways it concerns, WAKEs are resent until a
// SUBSCRIBE shows the version, a revoked gateway's next SUBSCRIBE is dropped, a cursor ahead of the
// authority gets a reset WAKE, and a gateway that stops refreshing is forgotten.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeDatagram, parseDatagram, pushKey, type PushDatagram } from '../../src/authority/push-datagram.js';
import { PushChannel, type PushCheck } from '../../src/authority/push.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secret = new Uint8Array(32).fill(3);

function channel(
  db: { version: number; directoryVersion: number; gateways: Record<string, [boolean, number]> },
  maxWaking?: number,
) {
  let now = 1_800_000_000_000;
  const sent: PushDatagram[] = [];
  const c = new PushChannel({
    secret,
    now: () => now,
    send: (b) => {
      const p = parseDatagram(b);
      assert.ok(p.ok);
      sent.push(p.value.datagram);
    },
    check: async (names): Promise<PushCheck> => ({
      version: db.version,
      directoryVersion: db.directoryVersion,
      gateways: new Map(
        names
          .filter((n) => db.gateways[n])
          .map((n) => [n, { active: db.gateways[n][0], changedVersion: db.gateways[n][1] }]),
      ),
    }),
    refreshSeconds: 1,
    port: 9,
    maxWaking,
  });
  let seq = now;
  const subscribe = (gateway: string, cursor: number): void => {
    const keyId = Math.floor(now / 1000);
    seq = Math.max(seq + 1, now);
    c.receive(
      encodeDatagram({ type: 'subscribe', keyId, seq, cursor, gateway }, pushKey(secret, gateway, keyId)),
      '192.0.2.1',
      4000,
    );
  };
  return { c, sent, subscribe, advance: (ms: number) => (now += ms) };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('push subscription table', () => {
  it('ACKs an active gateway, WAKEs it when behind, and resends until a SUBSCRIBE shows the version', async () => {
    const db = { version: 10, directoryVersion: 2, gateways: { g: [true, 8] as [boolean, number] } };
    const { c, sent, subscribe } = channel(db);
    try {
      subscribe('g', 10);
      await settle();
      assert.deepEqual(
        sent.map((d) => d.type),
        ['ack'],
      );
      assert.equal(c.size, 1);
      // A change at 11 concerning g: WAKE at once, again after ~1 s, not once acknowledged.
      db.version = 12;
      db.gateways.g = [true, 11];
      c.notify(['g'], 11);
      assert.deepEqual(sent.at(-1), {
        type: 'wake',
        keyId: sent[0].keyId,
        seq: sent[0].seq,
        version: 11,
        reset: false,
      });
      await sleep(1700);
      assert.equal(sent.filter((d) => d.type === 'wake').length, 2, 'resent after 1 to 1.5 s');
      assert.equal(c.status().resends, 1);
      // A change to another gateway or one it already has does not wake it.
      c.notify(['other'], 12);
      subscribe('g', 11); // fetched: the SUBSCRIBE is the acknowledgement (its record was marked for a check)
      await settle();
      const wakes = sent.filter((d) => d.type === 'wake').length;
      await sleep(2300);
      assert.equal(sent.filter((d) => d.type === 'wake').length, wakes, 'no resend after the acknowledgement');
      assert.equal(c.status().pendingWakes, 0);

      // Behind at SUBSCRIBE (a change this process was not told of): ACK naming the version, and WAKE.
      (db.gateways as Record<string, [boolean, number]>).k = [true, 13];
      db.version = 13;
      subscribe('k', 11);
      await settle();
      assert.deepEqual(
        sent.slice(-2).map((d) => [d.type, d.type === 'subscribe' ? 0 : d.version]),
        [
          ['ack', 13],
          ['wake', 13],
        ],
      );
    } finally {
      c.close();
    }
  });

  it('wakes at most maxWaking gateways at once; the next when one acknowledges', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const db = {
      version: 5,
      directoryVersion: 1,
      gateways: Object.fromEntries(names.map((n) => [n, [true, 1] as [boolean, number]])),
    };
    const { c, sent, subscribe } = channel(db, 2);
    try {
      for (const n of names) subscribe(n, 5);
      await settle();
      db.version = 6;
      c.notify('all', 6);
      const wakes = (): number => sent.filter((d) => d.type === 'wake').length;
      assert.equal(wakes(), 2, 'two in flight');
      assert.equal(c.status().pendingWakes, 5);
      subscribe('a', 6); // a fetched: its slot goes to the next
      await settle();
      assert.equal(wakes(), 3);
      // Without acknowledgements, the slots free at the first resends (~1 s): everybody is woken.
      await sleep(1700);
      assert.ok(wakes() >= 5 + 2, `${wakes()} WAKEs`);
    } finally {
      c.close();
    }
  });

  it("drops a revoked gateway's next SUBSCRIBE, resets a cursor ahead, forgets a gateway gone quiet", async () => {
    const db = {
      version: 20,
      directoryVersion: 1,
      gateways: { g: [true, 5] as [boolean, number], h: [true, 5] as [boolean, number] },
    };
    const { c, sent, subscribe, advance } = channel(db);
    try {
      subscribe('g', 20);
      subscribe('h', 25); // ahead of the authority (a restored database)
      await settle();
      const reset = sent.find((d) => d.type === 'wake');
      assert.ok(reset && reset.type === 'wake' && reset.reset && reset.version === 20, JSON.stringify(sent));
      subscribe('nobody', 0);
      await settle();
      assert.equal(c.status().drops.inactive, 1, 'an unknown gateway');
      assert.equal(c.size, 2);

      // g is revoked: the change touches it, its next SUBSCRIBE is checked and dropped.
      db.gateways.g = [false, 21];
      c.notify(['g'], 21);
      const before = sent.length;
      subscribe('g', 21);
      await settle();
      assert.equal(c.status().drops.inactive, 2);
      assert.equal(sent.length, before, 'no answer');
      assert.equal(c.size, 1);

      // h stops refreshing: forgotten after three refresh periods.
      advance(4500);
      await sleep(1300);
      assert.equal(c.size, 0);
      assert.equal(c.status().pendingWakes, 0);
    } finally {
      c.close();
    }
  });
});

// The authority's subscription table (push.ts) on its own, with an injected clock, datagram sink
// and database check: a SUBSCRIBE is ACKed once the gateway is found active, and a gateway behind
// is woken at once; a change wakes the subscribed gateways it concerns, WAKEs are resent until a
// SUBSCRIBE shows the version, a revoked gateway's next SUBSCRIBE is dropped, a cursor ahead of the
// authority gets a reset WAKE, and a gateway that stops refreshing is forgotten. A protocol-2
// gateway is sent the answer itself (DELIVER) when it fits, resent until acknowledged and read again
// for a new cursor; a WAKE when it is too large or cannot be read. A protocol-3 SUBSCRIBE that
// acknowledges a DELIVER gets no ACK unless more is due.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  encodeDatagram,
  parseDatagram,
  pushKey,
  type PushDatagram,
  type PushProtocol,
} from '../../src/authority/push-datagram.js';
import { readDelivered } from '../../src/authority/push-subscriber.js';
import { PushChannel, type PushChannelOptions, type PushCheck } from '../../src/authority/push.js';
import type { GatewayChanges } from '../../src/authority/wire.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secret = new Uint8Array(32).fill(3);

function channel(
  db: { version: number; directoryVersion: number; gateways: Record<string, [boolean, number]> },
  maxWaking?: number,
  answer?: PushChannelOptions['answer'],
  maxDelivering?: number,
) {
  let now = 1_800_000_000_000;
  const sent: PushDatagram[] = [];
  const protocols: PushProtocol[] = [];
  const c = new PushChannel({
    secret,
    now: () => now,
    send: (b) => {
      const p = parseDatagram(b);
      assert.ok(p.ok);
      sent.push(p.value.datagram);
      protocols.push(p.value.protocol);
    },
    answer,
    maxDelivering,
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
  const subscribe = (gateway: string, cursor: number, protocol: PushProtocol = 1, acknowledges = false): void => {
    const keyId = Math.floor(now / 1000);
    seq = Math.max(seq + 1, now);
    const d = { type: 'subscribe', keyId, seq, cursor, gateway, ...(acknowledges && { acknowledges }) } as const;
    c.receive(encodeDatagram(d, pushKey(secret, gateway, keyId), protocol), '192.0.2.1', 4000);
  };
  const key = (gateway: string): Buffer => pushKey(secret, gateway, Math.floor(now / 1000));
  return { c, sent, protocols, subscribe, key, advance: (ms: number) => (now += ms) };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A database of active gateways, each last changed at the version given. */
function database(version: number, gateways: Record<string, number>) {
  const rows = Object.entries(gateways).map(([n, v]) => [n, [true, v] as [boolean, number]]);
  return { version, directoryVersion: 1, gateways: Object.fromEntries(rows) as Record<string, [boolean, number]> };
}

/** Change stream answers from `db`: the gateway's name (and `extra`) as its delivery, at db's version. */
function answers(db: { version: number }, extra: (gateway: string) => object = () => ({})) {
  return async (gateway: string, since: number): Promise<GatewayChanges> => ({
    version: db.version,
    changed: db.version > since,
    reset: false,
    delivery: { gateway, ...extra(gateway) } as unknown as GatewayChanges['delivery'],
    events: [],
    eventsTruncated: false,
  });
}

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

  it('holds DELIVERs to maxDelivering unacknowledged, and a queued one gives way to a newer answer', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const db = database(5, Object.fromEntries(names.map((n) => [n, 1])));
    const { c, sent, subscribe } = channel(db, 1, answers(db), 2);
    try {
      for (const n of names) subscribe(n, 5, 2);
      await settle();
      db.version = 6;
      c.notify('all', 6);
      await settle();
      await settle();
      const delivers = () => sent.filter((d) => d.type === 'deliver');
      assert.equal(delivers().length, 2, 'two in flight');
      assert.equal(c.status().pendingWakes, 5);
      // A newer change while three wait: they will carry it.
      db.version = 7;
      c.notify(['e'], 7);
      await settle();
      await settle();
      subscribe('a', 6, 2);
      subscribe('b', 6, 2);
      await settle();
      await settle();
      assert.equal(delivers().length, 4, 'c and d in turn');
      subscribe('c', 6, 2);
      await settle();
      // e's turn: its DELIVER carries version 7; the one for 6 it waited with was never sent.
      assert.deepEqual(
        delivers().map((d) => d.type === 'deliver' && d.version),
        [6, 6, 6, 6, 7],
      );
      assert.equal(c.status().delivers, 5);
      assert.equal(c.status().wakes, 0);
    } finally {
      c.close();
    }
  });

  it('a DELIVER unacknowledged keeps its slot until its second resend (a WAKE: its first)', async () => {
    const db = database(5, { a: 1, b: 1 });
    const { c, sent, subscribe } = channel(db, 1, answers(db), 1);
    try {
      subscribe('a', 5, 2);
      subscribe('b', 5, 2);
      await settle();
      db.version = 6;
      c.notify(['a', 'b'], 6);
      await settle();
      await settle();
      const delivers = (): number => sent.filter((d) => d.type === 'deliver').length;
      const start = performance.now();
      assert.equal(delivers(), 1, "a's");
      const until = async (n: number): Promise<number> => {
        while (delivers() < n && performance.now() - start < 8000) await sleep(20);
        return performance.now() - start;
      };
      assert.ok((await until(2)) >= 900, "a's first resend after ~1 s");
      await sleep(300);
      assert.equal(delivers(), 2, 'b still waits');
      // a's second resend (~2 s later) frees the slot: b's goes right after it.
      assert.ok((await until(4)) >= 2700, `${Math.round(performance.now() - start)} ms`);
      assert.equal(delivers(), 4);
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

  it('DELIVERs the answer to a protocol-2 gateway, resends it until acknowledged, WAKEs when it does not fit', async () => {
    const db = database(10, { g: 5, big: 5 });
    const asked: [string, number][] = [];
    // Sealed keys do not compress: 2,000 random bytes cannot fit a datagram.
    const read = answers(db, (g) => ({ filler: g === 'big' ? [randomBytes(2000).toString('base64')] : [] }));
    const answer = (gateway: string, since: number): Promise<GatewayChanges> => {
      asked.push([gateway, since]);
      return read(gateway, since);
    };
    const { c, sent, protocols, subscribe, key } = channel(db, undefined, answer);
    try {
      assert.equal(c.offer('g').protocol, 3);
      subscribe('g', 10, 2);
      subscribe('big', 10, 2);
      await settle();
      assert.deepEqual(protocols, [2, 2], 'answered in the protocol of the SUBSCRIBE');
      db.version = 11;
      c.notify(['g', 'big'], 11);
      await settle();
      await settle();
      assert.deepEqual(asked, [
        ['g', 10],
        ['big', 10],
      ]);
      const d = sent.find((x) => x.type === 'deliver');
      assert.ok(d && d.type === 'deliver' && d.version === 11 && d.since === 10, JSON.stringify(sent));
      assert.deepEqual(readDelivered(d, key('g'))?.delivery, { gateway: 'g', filler: [] });
      // Too large for a datagram: a WAKE (the gateway fetches over TLS).
      const w = sent.find((x) => x.type === 'wake');
      assert.ok(w && w.type === 'wake' && w.version === 11);
      assert.equal(c.status().delivers, 1);
      assert.equal(c.status().tooLarge, 1);
      // Resent as it is until a SUBSCRIBE shows the version.
      await sleep(1700);
      const delivers = sent.filter((x) => x.type === 'deliver');
      assert.equal(delivers.length, 2);
      assert.deepEqual(delivers[1], delivers[0]);
      subscribe('g', 11, 2);
      subscribe('big', 11, 2);
      await settle();
      assert.equal(c.status().pendingWakes, 0);
      // That acknowledgement took ~1.7 s (one resend): the timeout grew, the next DELIVER is not resent at 1 s.
      const resends = c.status().resends;
      db.version = 12;
      c.notify(['g'], 12);
      await sleep(2000);
      assert.equal(c.status().resends, resends, 'not resent after 2 s');
      subscribe('g', 12, 2);
      await settle();

      const reads = asked.length;
      db.version = 14;
      c.notify(['big'], 14);
      await settle();
      assert.equal(asked.length, reads);
      const woken = sent.at(-1);
      assert.ok(woken?.type === 'wake' && woken.version === 14, JSON.stringify(woken));
      subscribe('big', 14, 2);
      await settle();

      // A gateway that moved (fetched) to a version short of the DELIVER's: the answer is read again.
      db.version = 16;
      c.notify(['g'], 16);
      await settle();
      await settle();
      subscribe('g', 15, 2);
      await settle();
      await settle();
      assert.deepEqual(asked.at(-1), ['g', 15]);
      const last = sent.filter((x) => x.type === 'deliver').at(-1)!;
      assert.ok(last.type === 'deliver' && last.since === 15 && last.version === 16, JSON.stringify(last));

      // An answer that cannot be read (a revoked gateway: the fetch is refused): a WAKE.
      subscribe('g', 16, 2);
      await settle();
      asked.length = 0;
      /** What a gateway of `protocol` is sent for a change, with answers read by `read`. */
      const sentFor = async (read: PushChannelOptions['answer'], protocol: PushProtocol) => {
        const other = channel(db, undefined, read);
        try {
          other.subscribe('g', 10, protocol);
          await settle();
          other.c.notify(['g'], 13);
          await settle();
          await settle();
          return { types: other.sent.map((x) => x.type), protocols: other.protocols };
        } finally {
          other.c.close();
        }
      };
      const refused = async (): Promise<GatewayChanges> => {
        throw new Error('gateway g is not active');
      };
      assert.deepEqual((await sentFor(refused, 2)).types, ['ack', 'wake']);
      // Protocol 1 gateways are only ever WAKEd.
      assert.deepEqual(await sentFor(answer, 1), { types: ['ack', 'wake'], protocols: [1, 1] });
    } finally {
      c.close();
    }
  });

  it('sends no ACK for a protocol-3 SUBSCRIBE that acknowledges a DELIVER, unless more is due', async () => {
    const db = database(10, { g: 1, h: 1 });
    const { c, sent, protocols, subscribe } = channel(db, undefined, answers(db));
    const acks = (): number => sent.filter((x) => x.type === 'ack').length;
    try {
      subscribe('g', 10, 3);
      subscribe('h', 10, 2);
      await settle();
      assert.equal(acks(), 2, 'every first SUBSCRIBE is ACKed');
      db.version = 11;
      c.notify(['g', 'h'], 11);
      await settle();
      await settle();
      assert.equal(sent.filter((x) => x.type === 'deliver').length, 2);
      assert.deepEqual(protocols.slice(-2), [3, 2], 'each in the protocol of its SUBSCRIBE');
      subscribe('g', 11, 3, true);
      subscribe('h', 11, 2);
      await settle();
      assert.equal(acks(), 3, "h (protocol 2) is ACKed, g's acknowledgement is not");
      assert.equal(c.status().pendingWakes, 0, 'both acknowledged: no resend');
      // More due when it acknowledges: the ACK names it (and the next DELIVER follows).
      db.version = 12;
      c.notify(['g'], 12);
      await settle();
      await settle();
      db.version = 13;
      c.notify(['g'], 13);
      subscribe('g', 12, 3, true);
      await settle();
      const last = sent.filter((x) => x.type === 'ack').at(-1);
      assert.ok(last && last.type === 'ack' && last.version === 13, JSON.stringify(last));
      // A plain SUBSCRIBE (a refresh) is always ACKed.
      const before = acks();
      subscribe('h', 11, 3);
      await settle();
      assert.equal(acks(), before + 1);
    } finally {
      c.close();
    }
  });
});

// The gateway's side of the wake-up channel (push-subscriber.ts) against an authority played by a
// UDP socket on 127.0.0.1: it SUBSCRIBEs in protocol 2 or 3 only when offered; an authentic DELIVER for
// its cursor is applied without a fetch and acknowledged by the next SUBSCRIBE (in protocol 3 one
// that says so and waits for no ACK); a DELIVER for another
// cursor, one that does not decrypt to an answer, or one whose apply fails is taken as a WAKE
// (fetched); forged ones are counted drops.
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { describe, it } from 'node:test';
import {
  encodeDatagram,
  packAnswer,
  parseDatagram,
  sealAnswer,
  type PushProtocol,
  type Subscribe,
} from '../../src/authority/push-datagram.js';
import { runPushSession, type PushSessionEnd } from '../../src/authority/push-subscriber.js';
import type { GatewayChanges, PushOffer } from '../../src/authority/wire.js';

const key = Buffer.alloc(32, 9);

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const answer = (version: number): GatewayChanges => ({
  version,
  changed: true,
  reset: false,
  delivery: { version } as unknown as GatewayChanges['delivery'],
  events: [],
  eventsTruncated: false,
});

/** A session against a socket that records SUBSCRIBEs; `apply` fails for the versions in `failing`. */
async function session(protocol: number | undefined, failing: number[] = []) {
  const authority = createSocket('udp4');
  const subs: { d: Subscribe; p: PushProtocol; from: RemoteInfo }[] = [];
  authority.on('message', (b, from) => {
    const p = parseDatagram(b);
    if (p.ok && p.value.datagram.type === 'subscribe') subs.push({ d: p.value.datagram, p: p.value.protocol, from });
  });
  await new Promise<void>((r) => authority.bind(0, '127.0.0.1', () => r()));
  const now = Date.now();
  const offer: PushOffer = {
    gateway: 'gw',
    keyId: Math.floor(now / 1000),
    key: key.toString('base64'),
    expiresAt: now + 86_400_000,
    port: authority.address().port,
    refreshSeconds: 25,
    now,
    ...(protocol && { protocol }),
  };
  const fetched: number[] = [];
  const applied: number[] = [];
  const abort = new AbortController();
  const done: Promise<PushSessionEnd> = runPushSession({
    host: '127.0.0.1',
    offer,
    cursor: 10,
    signal: abort.signal,
    fetch: async (cursor) => {
      fetched.push(cursor);
      return 20;
    },
    apply: async (c) => {
      if (failing.includes(c.version)) throw new Error('does not open');
      applied.push(c.version);
      return c.version;
    },
  });
  const send = (b: Buffer): void => {
    const to = subs[0].from;
    authority.send(b, to.port, to.address);
  };
  const deliver = (
    version: number,
    since: number,
    plain = packAnswer(JSON.stringify(answer(version))),
    seq = subs.at(-1)!.d.seq,
  ) =>
    encodeDatagram(
      { type: 'deliver', keyId: offer.keyId, seq, version, since, sealed: sealAnswer(plain, key) },
      key,
      2,
    );
  const ack = (version: number): Buffer =>
    encodeDatagram({ type: 'ack', keyId: offer.keyId, seq: subs.at(-1)!.d.seq, version }, key, 2);
  return {
    subs,
    fetched,
    applied,
    send,
    deliver,
    ack,
    async stop() {
      abort.abort();
      const end = await done;
      authority.close();
      return end;
    },
  };
}

describe('wake-up channel, the gateway side', () => {
  it('applies a DELIVER for its cursor without fetching, and acknowledges it', async () => {
    const s = await session(2);
    try {
      await until(() => s.subs.length === 1, 'the SUBSCRIBE');
      assert.equal(s.subs[0].p, 2, 'protocol 2 when offered');
      // Authentic, but echoing a SUBSCRIBE from before this session (a replay): dropped.
      s.send(s.deliver(11, 10, undefined, s.subs[0].d.seq - 60_000));
      s.send(s.deliver(12, 10));
      await until(() => s.subs.length === 2, 'the acknowledging SUBSCRIBE');
      assert.deepEqual(s.applied, [12]);
      assert.deepEqual(s.fetched, []);
      assert.equal(s.subs[1].d.cursor, 12);
      // Its resend (the acknowledgement was lost) is not applied twice.
      s.send(s.deliver(12, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(s.applied, [12]);
    } finally {
      const end = await s.stop();
      assert.equal(end.delivered, 1);
      assert.equal(end.dropped, 1, 'the replay');
    }
  });

  it('fetches instead when a DELIVER is for another cursor, is not an answer, or does not apply', async () => {
    for (const [what, make, failing] of [
      ['another cursor', (s: Awaited<ReturnType<typeof session>>) => s.deliver(12, 9), []],
      ['not an answer', (s: Awaited<ReturnType<typeof session>>) => s.deliver(12, 10, packAnswer('[]')), []],
      ['does not apply', (s: Awaited<ReturnType<typeof session>>) => s.deliver(12, 10), [12]],
    ] as const) {
      const s = await session(2, [...failing]);
      try {
        await until(() => s.subs.length === 1, 'the SUBSCRIBE');
        s.send(make(s));
        await until(() => s.fetched.length === 1, `${what}: the fetch`);
        assert.deepEqual(s.fetched, [10], what);
        assert.deepEqual(s.applied, [], what);
        await until(() => s.subs.length === 2, `${what}: the SUBSCRIBE after the fetch`);
        assert.equal(s.subs[1].d.cursor, 20, what);
      } finally {
        await s.stop();
      }
    }
  });

  it('speaks protocol 1 to an authority that does not offer 2, and drops a forged DELIVER', async () => {
    const s = await session(undefined);
    try {
      await until(() => s.subs.length === 1, 'the SUBSCRIBE');
      assert.equal(s.subs[0].p, 1);
      const forged = s.deliver(12, 10);
      forged[40] ^= 1;
      s.send(forged);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual([s.applied, s.fetched], [[], []]);
    } finally {
      const end = await s.stop();
      assert.equal(end.dropped, 1);
    }
  });

  it('after an ACK naming a newer version waits for the DELIVER, and fetches only if none comes', async () => {
    const s = await session(2);
    try {
      await until(() => s.subs.length === 1, 'the SUBSCRIBE');
      s.send(s.ack(12));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(s.fetched, [], 'no fetch at once');
      s.send(s.deliver(12, 10));
      await until(() => s.applied.length === 1, 'the DELIVER applied');
      s.send(s.ack(14)); // and this time nothing follows
      const at = performance.now();
      await until(() => s.fetched.length === 1, 'the fetch after the grace period');
      assert.ok(performance.now() - at >= 1500, `fetched after ${Math.round(performance.now() - at)} ms`);
      assert.deepEqual(s.fetched, [12]);
    } finally {
      await s.stop();
    }
  });

  it('in protocol 3 says its SUBSCRIBE acknowledges the DELIVER and waits for no ACK; in 2 it waits', async () => {
    for (const protocol of [3, 2] as const) {
      const s = await session(protocol);
      try {
        await until(() => s.subs.length === 1, 'the SUBSCRIBE');
        assert.equal(s.subs[0].p, protocol);
        assert.equal(s.subs[0].d.acknowledges, undefined, 'a first SUBSCRIBE acknowledges nothing');
        s.send(s.deliver(12, 10));
        await until(() => s.subs.length === 2, 'the acknowledging SUBSCRIBE');
        assert.equal(s.subs[1].d.acknowledges, protocol === 3 ? true : undefined);
        // No ACK comes: protocol 2 SUBSCRIBEs again after the ACK timeout (1 s), protocol 3 does not.
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(s.subs.length, protocol === 3 ? 2 : 3, `protocol ${protocol}`);
        // A resend of the DELIVER (the acknowledgement was lost) is acknowledged again, as such.
        s.send(s.deliver(12, 10));
        await until(() => s.subs.length === (protocol === 3 ? 3 : 4), 'the SUBSCRIBE after the resend');
        assert.equal(s.subs.at(-1)!.d.acknowledges, protocol === 3 ? true : undefined);
        assert.deepEqual(s.applied, [12]);
      } finally {
        await s.stop();
      }
    }
  });
});

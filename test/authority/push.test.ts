// The wake-up channel (issue 15, memory per gateway), on a real authority over real HTTPS and real
// UDP on 127.0.0.1: a subscribed gateway gets a change within 1 s without holding a connection
// open; forged, replayed, wrong-key, truncated, stale, expired and revoked gateways' datagrams are
// counted drops that get no answer; a lost WAKE is recovered by the resend; with the channel off
// (or on an authority without it) the gateway follows the long poll; a stopping authority tells
// its gateways, which subscribe again as soon as it is back, resuming their TLS sessions with it;
// authority.json's `push` section is checked like the rest.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { GatewayChanges, PushOffer } from '../../src/authority/client.js';
import { parseAuthorityConfig } from '../../src/authority/config.js';
import { encodeDatagram, parseDatagram, pushKey, verifyDatagram } from '../../src/authority/push-datagram.js';
import {
  apiError,
  bundleGateway,
  freePort,
  gatewayOf,
  startTestAuthority,
  type TestAuthority,
  type TestGateway,
} from './helpers/authority.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

/** A gateway following the change stream with `watch`, recording when each answer arrived. */
function follow(
  gw: TestGateway,
  since: number,
  push: Parameters<TestGateway['client']['watch']>[0]['push'] = {},
): {
  answers: { at: number; c: GatewayChanges }[];
  states: string[];
  stop(): Promise<void>;
} {
  const abort = new AbortController();
  const answers: { at: number; c: GatewayChanges }[] = [];
  const states: string[] = [];
  const running = gw.client.watch({
    since,
    waitSeconds: 20,
    signal: abort.signal,
    backoffMs: { min: 50, max: 500 },
    push: { ...push, onState: (e) => states.push(e.state) },
    onChanges: (c) => void answers.push({ at: performance.now(), c }),
  });
  return {
    answers,
    states,
    async stop() {
      abort.abort();
      await running;
    },
  };
}

/** A raw UDP socket on 127.0.0.1 that records whatever it receives. */
async function rawSocket(): Promise<{ socket: Socket; received: Buffer[] }> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (b) => received.push(b));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { socket, received };
}

describe('wake-up channel', () => {
  let t: TestAuthority;
  let gw: TestGateway;
  let version: number;

  before(async () => {
    t = await startTestAuthority({ push: { refreshSeconds: 2 } });
    await t.admin.createVpn({ name: 'V', id: 10 });
    gw = await bundleGateway(t, 'gw-1', '198.18.0.1');
    await t.admin.addMember('V', 'gw-1', ['10.1.0.0/24']);
    version = (await gw.client.changes(0, { waitSeconds: 0 })).version;
  });
  after(() => t.close());

  it('brings a change to a subscribed gateway within 1 s, with no connection or wait held for it', async () => {
    const f = follow(gw, version);
    try {
      await until(() => f.states.includes('subscribed'), 'the gateway is subscribed');
      const push = t.running.push!;
      assert.equal(push.size, 1);
      assert.equal(t.running.service.changeStream.waiting, 0, 'no long poll is waiting');
      const start = performance.now();
      await t.admin.rotateVpn('V', true);
      await until(() => f.answers.some((a) => a.c.delivery?.vpns[0].epochs.some((e) => e.epoch === 2)), 'epoch 2');
      const got = f.answers.find((a) => a.c.delivery?.vpns[0].epochs.some((e) => e.epoch === 2))!;
      assert.ok(got.at - start < 1000, `delivered after ${Math.round(got.at - start)} ms`);
      // The fetch's connection was closed after its answer: nothing waits for this gateway.
      assert.equal(t.running.service.changeStream.waiting, 0);
      const status = await t.admin.status();
      assert.equal(status.push?.subscriptions, 1);
      // The answer came in the datagram (protocol 2): no WAKE, so no fetch and no TLS handshake.
      assert.ok(status.push!.delivers >= 1, `${status.push!.delivers} DELIVERs`);
      assert.equal(status.push!.wakes, 0);
    } finally {
      await f.stop();
    }
    version = (await gw.client.changes(0, { waitSeconds: 0 })).version;
  });

  it('a gateway with the channel turned off (authorityPush: false) long-polls instead', async () => {
    const acks = t.running.push!.status().acks;
    const f = follow(gw, version, { enabled: false });
    try {
      await until(() => t.running.service.changeStream.waiting === 1, 'its long poll');
      await t.admin.rotateVpn('V', true);
      await until(() => f.answers.length > 0, 'the change, on the long poll');
      assert.deepEqual(f.states, [], 'never subscribed');
      assert.equal(t.running.push!.status().acks, acks, 'no SUBSCRIBE answered');
    } finally {
      await f.stop();
    }
    version = (await gw.client.changes(0, { waitSeconds: 0 })).version;
  });

  it('drops forged, replayed, wrong-key, truncated, stale and expired datagrams without answering', async () => {
    const push = t.running.push!;
    const port = push.port;
    const offer: PushOffer = await gw.client.pushOffer();
    const key = Buffer.from(offer.key, 'base64');
    // The key is HKDF of the secret in the keystore (any replica derives the same).
    const secret = Buffer.from(readFileSync(join(t.dir, 'a', 'keystore', 'push'), 'utf8').trim(), 'base64');
    assert.equal(secret.length, 32);
    assert.deepEqual(key, pushKey(secret, 'gw-1', offer.keyId));
    const { socket, received } = await rawSocket();
    const send = (b: Buffer): Promise<void> => new Promise((r) => socket.send(b, port, '127.0.0.1', () => r()));
    try {
      const now = Date.now();
      const sub = (o: Partial<{ seq: number; keyId: number; gateway: string; cursor: number }>, k: Uint8Array) =>
        encodeDatagram({ type: 'subscribe', keyId: offer.keyId, seq: now, cursor: version, gateway: 'gw-1', ...o }, k);
      const before = { ...push.status().drops };
      const cases: [string, Buffer][] = [
        ['malformed', sub({}, key).subarray(0, 30)],
        ['malformed', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
        ['bad-mac', sub({}, randomBytes(32))],
        ['bad-mac', sub({ gateway: 'gw-other' }, key)],
        ['stale', sub({ seq: now - 10 * 60_000 }, key)],
        ['expired-key', sub({ keyId: offer.keyId - 25 * 3600 }, pushKey(randomBytes(32), 'gw-1', 1))],
        ['unexpected-type', encodeDatagram({ type: 'ack', keyId: offer.keyId, seq: now, version: 1 }, key)],
      ];
      for (const [, b] of cases) await send(b);
      // A flipped bit anywhere in an authentic datagram.
      const good = sub({ seq: now + 1 }, key);
      for (let i = 0; i < good.length; i += 7) {
        const bad = Buffer.from(good);
        bad[i] ^= 0x10;
        await send(bad);
      }
      await sleep(300);
      assert.equal(received.length, 0, 'nothing answered');
      const drops = push.status().drops;
      for (const reason of new Set(cases.map(([r]) => r)))
        assert.ok(
          drops[reason] >= before[reason] + cases.filter(([r]) => r === reason).length,
          `${reason}: ${drops[reason]}`,
        );
      const flipped =
        Object.values(drops).reduce((a, b) => a + b, 0) - Object.values(before).reduce((a, b) => a + b, 0);
      assert.ok(flipped >= cases.length + Math.ceil(good.length / 7), `${flipped} drops in all`);

      // The authentic one is answered with an ACK under the gateway's key; sent again, it is a replay.
      await send(good);
      await until(() => received.length >= 1, 'the ACK');
      const ack = parseDatagram(received[0]);
      assert.ok(ack.ok && ack.value.datagram.type === 'ack' && verifyDatagram(ack.value, key));
      assert.equal(ack.value.datagram.seq, now + 1);
      const replays = push.status().drops.replay;
      await send(good);
      await sleep(300);
      assert.equal(push.status().drops.replay, replays + 1);
      assert.equal(received.length, 1, 'the replay got no answer');
    } finally {
      socket.close();
    }
  });

  it('exports its subscriptions and drops to Prometheus (administrators only)', async () => {
    const get = (token?: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(
          new URL('/v1/metrics', t.url),
          { ca: t.ca, headers: token ? { authorization: `Bearer ${token}` } : {} },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const m = await get(t.adminToken);
    assert.equal(m.status, 200);
    assert.match(m.text, /^kasane_authority_push_subscriptions \d+$/m);
    assert.match(m.text, /^kasane_authority_push_drops_total\{reason="bad-mac"\} [1-9]\d*$/m);
    assert.match(m.text, /^kasane_authority_push_sent_total\{kind="deliver"\} [1-9]\d*$/m);
    assert.match(m.text, /^kasane_authority_push_sent_total\{kind="wake"\} \d+$/m);
    assert.match(m.text, /^kasane_authority_push_too_large_total \d+$/m);
    assert.match(m.text, /^kasane_authority_waiting_gateways 0$/m);
    assert.equal((await get()).status, 401);
  });

  it('drops the SUBSCRIBEs of a revoked gateway, authentic or not', async () => {
    const gw2 = await bundleGateway(t, 'gw-2', '198.18.0.2');
    const offer = await gw2.client.pushOffer();
    await t.admin.revokeGateway('gw-2');
    assert.equal((await apiError(gw2.client.pushOffer())).status, 403);
    const push = t.running.push!;
    const { socket, received } = await rawSocket();
    try {
      const inactive = push.status().drops.inactive;
      const b = encodeDatagram(
        { type: 'subscribe', keyId: offer.keyId, seq: Date.now(), cursor: 0, gateway: 'gw-2' },
        Buffer.from(offer.key, 'base64'),
      );
      socket.send(b, push.port, '127.0.0.1');
      await until(() => push.status().drops.inactive > inactive, 'the drop');
      await sleep(200);
      assert.equal(received.length, 0);
    } finally {
      socket.close();
      gw2.client.close();
    }
  });

  it('recovers a lost WAKE by its resend', async () => {
    const reused: boolean[] = [];
    const onTls = (s: TLSSocket): void => void reused.push(s.isSessionReused());
    t.running.app.server.on('secureConnection', onTls);
    await gw.client.changes(version, { waitSeconds: 0, fresh: true }); // a session to resume
    let ignored = 0;
    const f = follow(gw, version, { session: { dropWake: () => ignored++ === 0 } });
    try {
      await until(() => f.states.includes('subscribed'), 'the gateway is subscribed');
      const resends = t.running.push!.status().resends;
      const start = performance.now();
      await t.admin.addDirectory('203.0.113.0/24', 'push test');
      await until(
        () => f.answers.some((a) => a.c.delivery?.protectedPrefixes.includes('203.0.113.0/24')),
        'the change',
      );
      const took = f.answers.at(-1)!.at - start;
      assert.equal(ignored >= 1, true);
      assert.ok(took >= 700 && took < 3000, `delivered after ${Math.round(took)} ms (the resend comes after ~1 s)`);
      assert.ok(t.running.push!.status().resends > resends);
      // The woken gateway's fetch resumed the TLS session of an earlier one (no full handshake).
      assert.equal(reused.at(-1), true, `session reuse of the connections: ${reused.join(', ')}`);
      version = f.answers.at(-1)!.c.version;
    } finally {
      t.running.app.server.off('secureConnection', onTls);
      await f.stop();
    }
  });
});

describe('wake-up channel across an authority restart', () => {
  it('a stopping authority tells its gateways, which subscribe again once it is back', async () => {
    const port = await freePort();
    const listen = { host: '127.0.0.1', port };
    const t1 = await startTestAuthority({ listen, push: { refreshSeconds: 25 } });
    let t2: TestAuthority | undefined;
    const gw = await bundleGateway(t1, 'gw-1', '198.18.0.1');
    await t1.admin.createVpn({ name: 'V', id: 10 });
    await t1.admin.addMember('V', 'gw-1', ['10.1.0.0/24']);
    const { version } = await gw.client.changes(0);
    const f = follow(gw, version);
    const probe = gatewayOf(gw.bundle);
    try {
      await until(() => f.states.includes('subscribed'), 'subscribed');
      await probe.client.changes(0, { waitSeconds: 0, fresh: true });
      t1.admin.close();
      await t1.running.close();
      await until(() => f.states.includes('ended'), 'the gateway heard the authority stop', 2000);
      t2 = await startTestAuthority({ dir: t1.dir, listen, push: { refreshSeconds: 25 } });
      const reused: boolean[] = [];
      t2.running.app.server.on('secureConnection', (sock: TLSSocket) => reused.push(sock.isSessionReused()));
      // A session from before the restart resumes (ticket keys from the push secret, as on every replica).
      await probe.client.changes(0, { waitSeconds: 0, fresh: true });
      assert.equal(reused[0], true, 'resumed across the restart');
      // Well before its next refresh (25 s), it is subscribed to the new process.
      await until(() => f.states.filter((s) => s === 'subscribed').length === 2, 'subscribed again', 8000);
      assert.equal(t2.running.push!.size, 1);
      const start = performance.now();
      await t2.admin.rotateVpn('V', true);
      await until(() => f.answers.length > 0, 'the change');
      assert.ok(f.answers[0].at - start < 1000);
    } finally {
      await f.stop();
      gw.client.close();
      probe.client.close();
      await t2?.close();
      rmSync(t1.dir, { recursive: true, force: true });
    }
  });
});

describe('wake-up channel off', () => {
  let t: TestAuthority;
  before(async () => {
    t = await startTestAuthority({ push: false });
  });
  after(() => t.close());

  it('answers 404 for the key, and gateways follow the long poll', async () => {
    assert.equal(t.running.push, undefined);
    await t.admin.createVpn({ name: 'V', id: 10 });
    const gw = await bundleGateway(t, 'gw-1', '198.18.0.1');
    await t.admin.addMember('V', 'gw-1', ['10.1.0.0/24']);
    const e = await apiError(gw.client.pushOffer());
    assert.deepEqual([e.status, e.code], [404, 'push-off']);
    const { version } = await gw.client.changes(0);
    const f = follow(gw, version);
    try {
      await until(() => f.states.includes('fallback'), 'the fallback');
      await until(() => t.running.service.changeStream.waiting === 1, 'the long poll waits');
      const start = performance.now();
      await t.admin.rotateVpn('V', true);
      await until(() => f.answers.length > 0, 'the change');
      assert.ok(f.answers[0].at - start < 1000);
      assert.equal((await t.admin.status()).push, undefined);
    } finally {
      await f.stop();
      gw.client.close();
    }
  });
});

describe('authority.json push section', () => {
  const base = {
    format: 'kasane-authority/1',
    name: 'a',
    listen: { host: '127.0.0.1', port: 7443 },
    url: 'https://127.0.0.1:7443',
    sans: [],
    enrollment: { tokenTtlMs: 1, certificateDays: 1 },
  };
  const parse = (push: unknown) => parseAuthorityConfig(JSON.stringify({ ...base, push }, null, 2), 'authority.json');
  it('accepts off, a port, a refresh period; refuses the rest with the field', () => {
    assert.ok(parse(false).ok);
    assert.ok(parse({}).ok);
    assert.ok(parse({ port: 7444, refreshSeconds: 10 }).ok);
    for (const bad of [
      true,
      7444,
      { port: 0 },
      { port: 70000 },
      { refreshSeconds: 0 },
      { port: '7444' },
      { ports: 1 },
    ]) {
      const r = parse(bad);
      assert.ok(!r.ok, JSON.stringify(bad));
      assert.match(r.error.message, /push/);
    }
  });
});

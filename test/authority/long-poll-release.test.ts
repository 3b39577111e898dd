// What a waiting gateway costs the authority, over real HTTPS with mutual TLS (SQLite): a long
// poll whose gateway goes away (its connection closed) is released at once, not at its deadline —
// no waiter, no place on the hub's timer wheel — while the connection's authentication stays per
// connection; a wait that runs out leaves nothing behind either; and a thousand waits on one
// process share the hub's single timer. docs/authority.md ("Memory per gateway") says why.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { parseAuthorityConfig } from '../../src/authority/config.js';
import { ChangeHub } from '../../src/authority/hub.js';
import { bundleGateway, startTestAuthority, type TestAuthority, type TestGateway } from './helpers/authority.js';

/** Polls `check` until it holds or `ms` pass (the waits in question last 60 s: a release is long before). */
async function until(check: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe('a waiting gateway on the authority', () => {
  let t: TestAuthority;
  let gws: TestGateway[];
  before(async () => {
    t = await startTestAuthority();
    await t.admin.createVpn({ name: 'corp' });
    gws = [];
    for (let i = 1; i <= 3; i++) {
      const g = await bundleGateway(t, `gw${i}`, `192.0.2.${i}`);
      await t.admin.addMember('corp', g.name, [`10.${i}.0.0/16`]);
      gws.push(g);
    }
  });
  after(async () => {
    for (const g of gws ?? []) g.client.close();
    await t?.close();
  });

  const stream = () => t.running.service.changeStream;

  it('is released as soon as its connection closes, long before its deadline', async () => {
    const first = await gws[0].client.changes(0, { waitSeconds: 0 });
    const stop = new AbortController();
    const poll = gws[0].client.changes(first.version, { waitSeconds: 60, signal: stop.signal });
    assert.ok(await until(() => stream().waiting === 1 && stream().pendingWaits === 1), 'the gateway waits');
    stop.abort();
    await assert.rejects(poll);
    assert.ok(
      await until(() => stream().waiting === 0 && stream().pendingWaits === 0),
      `the wait of a gateway that went away is released (waiting ${stream().waiting}, on the wheel ${stream().pendingWaits})`,
    );
  });

  it('a wait that runs out answers "unchanged" and leaves nothing behind', async () => {
    const first = await gws[1].client.changes(0, { waitSeconds: 0 });
    const c = await gws[1].client.changes(first.version, { waitSeconds: 1 });
    assert.deepEqual([c.changed, c.version], [false, first.version]);
    assert.deepEqual([stream().waiting, stream().pendingWaits], [0, 0]);
  });

  it('a change wakes its gateways; a closed connection ends only its own wait', async () => {
    const versions = await Promise.all(gws.map(async (g) => (await g.client.changes(0, { waitSeconds: 0 })).version));
    const stops = gws.map(() => new AbortController());
    const polls = gws.map((g, i) => g.client.changes(versions[i], { waitSeconds: 60, signal: stops[i].signal }));
    assert.ok(await until(() => stream().waiting === 3 && stream().pendingWaits === 3), 'three gateways wait');
    stops[2].abort();
    await assert.rejects(polls[2]);
    assert.ok(await until(() => stream().waiting === 2), 'only the gateway that went away left');
    await t.admin.rotateVpn('corp');
    const woken = await Promise.all(polls.slice(0, 2));
    assert.deepEqual(
      woken.map((c) => c.changed),
      [true, true],
      'the others are woken by the rotation on the same connections, authenticated per connection',
    );
    assert.deepEqual([stream().waiting, stream().pendingWaits], [0, 0]);
  });
});

describe('the change hub', () => {
  it('keeps no timer of its own per wait: a thousand waits share one, released when they end', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const hub = new ChangeHub();
    const before = timers();
    const waiters = Array.from({ length: 1000 }, (_, i) => hub.subscribe(`gw${i}`, 1));
    const ends = waiters.map((w) => w.wait(60_000));
    assert.equal(hub.pendingWaits, 1000);
    assert.ok(timers() <= before + 1, `${timers() - before} timers for 1000 waits`);
    hub.notify(['gw0', 'gw1']);
    waiters[2].abort();
    assert.deepEqual((await Promise.all(ends.slice(0, 3))).slice(0, 3), ['notified', 'notified', 'aborted']);
    for (const w of waiters) w.cancel();
    assert.deepEqual(await Promise.all(ends.slice(3, 5)), ['aborted', 'aborted']);
    assert.deepEqual([hub.size, hub.pendingWaits, timers()], [0, 0, before]);
  });

  it('ends a wait whose deadline passed with "timeout"', async () => {
    const hub = new ChangeHub();
    const w = hub.subscribe('gw1', 1);
    assert.equal(await w.wait(10), 'timeout');
    assert.equal(hub.pendingWaits, 0);
    w.cancel();
    assert.equal(hub.size, 0);
  });
});

describe('tls.groups in authority.json', () => {
  it('is checked when the file is read: OpenSSL must know every group', () => {
    const base = { format: 'kasane-authority/1', name: 'a', listen: { host: '127.0.0.1', port: 7443 } };
    const doc = (groups: unknown): string =>
      JSON.stringify({ ...base, url: 'https://127.0.0.1:7443', sans: ['127.0.0.1'], enrollment, tls: { groups } });
    const enrollment = { tokenTtlMs: 1000, certificateDays: 1 };
    assert.equal(parseAuthorityConfig(doc('X25519:P-256'), 'authority.json').ok, true);
    const bad = parseAuthorityConfig(doc('X25519:no-such-group'), 'authority.json');
    assert.ok(!bad.ok && /tls\.groups/.test(bad.error.message), bad.ok ? '' : bad.error.message);
    assert.equal(parseAuthorityConfig(doc(7), 'authority.json').ok, false);
  });

  it('the server then negotiates a group of that list with a client offering the default ones', async () => {
    const first = await startTestAuthority();
    const dir = first.dir;
    first.admin.close();
    await first.running.close();
    const file = join(dir, 'a', 'authority.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), tls: { groups: 'X25519:P-256' } }));
    const t = await startTestAuthority({ dir });
    try {
      const url = new URL(t.url);
      const group = await new Promise<string | undefined>((resolve, reject) => {
        const s = connect({ host: url.hostname, port: Number(url.port), ca: t.ca }, () => {
          resolve((s.getEphemeralKeyInfo() as { name?: string } | null)?.name);
          s.destroy();
        });
        s.on('error', reject);
      });
      assert.equal(group, 'X25519');
      assert.equal(typeof (await t.admin.status()).waitingGateways, 'number', 'the API answers');
    } finally {
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The same scenarios on PostgreSQL, on a private server this file starts and removes. Outside CI a
// machine without PostgreSQL skips them (saying why); with CI=true that is a failure.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { postgresForTests } from './helpers/postgres.js';
import { authorityScenarios } from './helpers/scenarios.js';
import { bundleGateway, startTestAuthority } from './helpers/authority.js';
import { createServer, connect, type Server } from 'node:net';

const pg = await postgresForTests();

if (pg.skip) {
  describe('authority on postgres', () => {
    it('needs PostgreSQL', { skip: pg.skip }, () => undefined);
  });
} else {
  const server = pg.server!;
  after(() => server.stop());
  authorityScenarios({ kind: 'postgres', database: () => server.createDatabase() });

  describe('authority replicas on one PostgreSQL database', () => {
    it('a change made through one replica wakes gateways waiting on another within a second', async () => {
      const a = await startTestAuthority({ database: await server.createDatabase() });
      const b = await startTestAuthority({ dir: a.dir });
      try {
        await a.admin.createVpn({ name: 'corp' });
        const g = await bundleGateway(a, 'gw1', '192.0.2.1');
        await a.admin.addMember('corp', 'gw1', ['10.1.0.0/16']);
        // The same gateway talks to replica b (same CA, same database).
        const { gatewayClient } = await import('../../src/authority/client.js');
        const viaB = gatewayClient({ ...g.bundle, authority: { ...g.bundle.authority, url: b.url } });
        const first = await viaB.changes(0);
        const waiting = viaB.changes(first.version, { waitSeconds: 10 });
        await new Promise((r) => setTimeout(r, 100));
        const t0 = Date.now();
        await a.admin.rotateVpn('corp');
        const c = await waiting;
        assert.ok(c.changed);
        assert.ok(Date.now() - t0 < 1000, `woken after ${Date.now() - t0} ms`);
        const s = await g.snapshot(c);
        assert.deepEqual(
          s.vpns[0].epochs.map((e) => e.epoch),
          [1, 2],
        );
        viaB.close();
        g.client.close();
      } finally {
        await b.close();
        await a.close();
      }
    });
  });

  describe('PostgreSQL over IPv6', () => {
    it('a database URL with IPv6 hosts ([::1]:port,[::1]:port) works: the host that does not answer is skipped, the next one used', async () => {
      // The test server listens on 127.0.0.1 only: a relay on [::1] carries the connections to it,
      // so that what the authority opens is a TCP connection to an IPv6 address.
      const db = new URL(await server.createDatabase());
      let relayed = 0;
      const relay = createServer((c) => {
        relayed++;
        const up = connect(Number(db.port), '127.0.0.1');
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
        c.pipe(up).pipe(c);
      });
      const listen = (s: Server): Promise<number> =>
        new Promise((resolve) => s.listen(0, '::1', () => resolve((s.address() as { port: number }).port)));
      const relayPort = await listen(relay);
      const gone = createServer();
      const deadPort = await listen(gone);
      await new Promise((r) => gone.close(r));
      const url = `postgres://kasane@[::1]:${deadPort},[::1]:${relayPort}${db.pathname}?target_session_attrs=read-write&connect_timeout=5`;
      const t = await startTestAuthority({ database: url });
      try {
        await t.admin.createVpn({ name: 'six' });
        await t.admin.addGateway('gw6', '2001:db8::6');
        await t.admin.addMember('six', 'gw6', ['2001:db8:6::/48']);
        assert.deepEqual(
          (await t.admin.listMembers('six')).map((m) => [m.address, m.prefixes]),
          [['2001:db8::6', ['2001:db8:6::/48']]],
        );
        assert.equal((await t.admin.status()).store, 'postgres');
        assert.ok(relayed > 0, 'the connections went to [::1]');
      } finally {
        await t.close();
        relay.close();
      }
    });
  });
}

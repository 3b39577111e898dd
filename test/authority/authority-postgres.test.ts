// The same scenarios on PostgreSQL, on a private server this file starts and removes. Outside CI a
// machine without PostgreSQL skips them (saying why); with CI=true that is a failure.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { postgresForTests } from './helpers/postgres.js';
import { authorityScenarios } from './helpers/scenarios.js';
import { bundleGateway, startTestAuthority } from './helpers/authority.js';

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
        assert.deepEqual(s.vpns[0].epochs.map((e) => e.epoch), [1, 2]);
        viaB.close();
        g.client.close();
      } finally {
        await b.close();
        await a.close();
      }
    });
  });
}

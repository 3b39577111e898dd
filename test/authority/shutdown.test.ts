// Stopping an authority (AuthorityService.stop, what `kasane authority serve` does on SIGTERM
// before it closes its store), driven directly over SQLite and PostgreSQL. It proves: every
// waiting change stream ends at once, answered "unchanged"; a federation round under way (it reads
// and writes the store) has ended when stop resolves, so the store can close after it; and no
// round starts once stopped, not even one chained before the stop — it would find the store closed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testStores, version, withAuthority } from './helpers/direct.js';

for (const store of await testStores()) {
  describe(`stopping an authority on ${store.kind}`, { skip: store.skip }, () => {
    it('ends the waiting change streams and outlasts a federation round under way; no round starts after it', () =>
      withAuthority(
        store,
        async (a) => {
          const { service } = a;
          const federation = service.federation!;
          await a.addVpn('p2p', { mode: 'pairwise' });
          await a.enrolled('gw1', '192.0.2.1');
          await a.enrolled('gw2', '192.0.2.2');
          await a.addMember('p2p', 'gw1', '10.1.0.0/16');
          await a.addMember('p2p', 'gw2', '10.4.0.0/16');
          const waiting = service.changeStream.changes('gw1', await version(a), 30_000);
          await new Promise((r) => setTimeout(r, 50)); // it has read its state and waits
          // A round (local permits for the two members) and one chained behind it.
          let ended = false;
          const round = federation.syncAll().then(() => (ended = true));
          const chained = federation.syncAll();
          await service.stop();
          assert.ok(ended, 'the round under way ended before stop resolved');
          await round;
          assert.equal((await waiting).changed, false);
          await a.close();
          // The store is closed: a round now would fail on it.
          await chained;
          await federation.syncAll();
        },
        { federation: true },
      ));
  });
}

// The references of sealed keys and SPIs (foreign keys on both backends), now that a rotation
// writes them as one statement per table (PostgreSQL: INSERT ... SELECT FROM unnest of arrays): a
// sealed key or SPI names a gateway and an epoch that exist, whether it comes alone or among
// thousands (one bad row refuses the statement, nothing is written); a gateway or epoch that still
// has them is neither deleted nor renamed; on PostgreSQL the epochs and gateways a transaction
// references stay locked until it ends.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { PostgresStore } from '../../src/authority/storage/postgres.js';
import { SqliteStore } from '../../src/authority/storage/sqlite.js';
import type { SealedKeyRow, SpiRow, Store } from '../../src/authority/storage/types.js';
import { postgresForTests } from './helpers/postgres.js';

interface Backend {
  store: Store;
  /** Runs one statement on a connection of its own, outside the store (what an operator's SQL client does). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

const pgServer = await postgresForTests();
after(() => pgServer.server?.stop());

const backends: { kind: 'sqlite' | 'postgres'; skip: string | false; open: () => Promise<Backend> }[] = [
  {
    kind: 'sqlite',
    skip: false,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kasane-refs-'));
      const file = join(dir, 'authority.db');
      const store = SqliteStore.open(file);
      const raw = new Database(file);
      raw.pragma('foreign_keys = ON');
      return {
        store,
        exec: async (sql) => void raw.exec(sql),
        close: async () => {
          raw.close();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    kind: 'postgres',
    skip: pgServer.skip ?? false,
    open: async () => {
      const url = await pgServer.server!.createDatabase();
      const store = await PostgresStore.open(url);
      const raw = new pg.Client(url);
      await raw.connect();
      return {
        store,
        exec: async (sql) => void (await raw.query(sql)),
        close: async () => {
          await raw.end();
          await store.close();
        },
      };
    },
  },
];

const NOW = 1_800_000_000_000;
/** Gateways of the test with thousands of rows (two epochs each). */
const GATEWAYS = 1500;

const sealed = (vpnId: number, epoch: number, gateway: string): SealedKeyRow => ({
  vpnId,
  epoch,
  gateway,
  enc: new Uint8Array(65).fill(4),
  ct: new Uint8Array(48).fill(7),
});

/** VPN 1 with epochs 1 and 2; gateways gw-0 … gw-(n-1). */
async function populate(store: Store, gateways = 3): Promise<void> {
  await store.write(async (tx) => {
    await tx.initState('refs', NOW);
    await tx.insertVpn({
      id: 1,
      name: 'corp',
      mode: 'group',
      rotationPeriodMs: 0,
      nextRotationAt: null,
      lastEpoch: 2,
      changedVersion: 1,
      createdAt: NOW,
    });
    for (let i = 0; i < gateways; i++)
      await tx.insertGateway({
        name: `gw-${i}`,
        address: '192.0.2.1',
        status: 'active',
        certSerial: null,
        publicKey: new Uint8Array(91).fill(i & 255),
        changedVersion: 1,
        createdAt: NOW,
        enrolledAt: NOW,
        revokedAt: null,
        revokeReason: null,
      });
    for (const epoch of [1, 2])
      await tx.insertEpoch({
        vpnId: 1,
        epoch,
        wrappedKey: new Uint8Array(60).fill(epoch),
        activeFrom: NOW,
        expiresAt: NOW + 1000,
        createdAt: NOW,
      });
  });
}

/** A statement refused as a foreign key refuses it. */
async function refused(kind: 'sqlite' | 'postgres', p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    if (kind === 'postgres') assert.equal(e.code, '23503', e.message);
    else assert.match(e.message, /FOREIGN KEY constraint failed/);
    return true;
  });
}

async function counts(store: Store): Promise<{ sealed: number; spis: number }> {
  return store.read(async (tx) => ({
    sealed: (await tx.listSealedKeysOf((await tx.listGateways()).map((g) => g.name))).length,
    spis: (await tx.listSpis(1)).length,
  }));
}

for (const backend of backends) {
  describe(`references of sealed keys and SPIs on ${backend.kind}`, { skip: backend.skip }, () => {
    it('a sealed key or SPI of an unknown gateway or epoch is refused, alone or as one row among thousands', async () => {
      const b = await backend.open();
      try {
        await populate(b.store, GATEWAYS);
        const { store } = b;
        const kind = backend.kind;
        await refused(
          kind,
          store.write((tx) => tx.insertSealedKeys([sealed(1, 1, 'nobody')])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSealedKeys([sealed(1, 3, 'gw-0')])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSealedKeys([sealed(2, 1, 'gw-0')])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSpis([{ spi: 300, vpnId: 1, gateway: 'nobody', epoch: 1 }])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSpis([{ spi: 300, vpnId: 1, gateway: 'gw-0', epoch: 7 }])),
        );
        // Thousands of good rows and one bad one, first or last: nothing is written.
        const many: SealedKeyRow[] = [];
        const spis: SpiRow[] = [];
        for (let i = 0; i < GATEWAYS; i++)
          for (const epoch of [1, 2]) {
            many.push(sealed(1, epoch, `gw-${i}`));
            spis.push({ spi: 1000 + spis.length, vpnId: 1, gateway: `gw-${i}`, epoch });
          }
        await refused(
          kind,
          store.write((tx) => tx.insertSealedKeys([...many, sealed(1, 2, 'nobody')])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSealedKeys([sealed(1, 9, 'gw-1'), ...many])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSpis([...spis, { spi: 99_999, vpnId: 1, gateway: 'gw-0', epoch: 3 }])),
        );
        await refused(
          kind,
          store.write((tx) => tx.insertSpis([{ spi: 99_999, vpnId: 1, gateway: 'x', epoch: 1 }, ...spis])),
        );
        assert.deepEqual(await counts(store), { sealed: 0, spis: 0 });
        await store.write(async (tx) => {
          await tx.insertSealedKeys(many);
          await tx.insertSpis(spis);
        });
        assert.deepEqual(await counts(store), { sealed: 2 * GATEWAYS, spis: 2 * GATEWAYS });
      } finally {
        await b.close();
      }
    });

    it('an epoch or gateway that still has sealed keys or SPIs is neither deleted nor renamed', async () => {
      const b = await backend.open();
      try {
        await populate(b.store);
        const { store, exec } = b;
        const kind = backend.kind;
        await store.write(async (tx) => {
          await tx.insertSealedKeys([sealed(1, 1, 'gw-0')]);
          await tx.insertSpis([{ spi: 300, vpnId: 1, gateway: 'gw-1', epoch: 2 }]);
        });
        await refused(kind, exec('DELETE FROM key_epochs WHERE vpn_id = 1 AND epoch = 1'));
        await refused(kind, exec('DELETE FROM key_epochs WHERE vpn_id = 1'));
        await refused(kind, exec('UPDATE key_epochs SET epoch = 5 WHERE vpn_id = 1 AND epoch = 2'));
        await refused(kind, exec("DELETE FROM gateways WHERE name = 'gw-0'"));
        await refused(kind, exec("DELETE FROM gateways WHERE name IN ('gw-1', 'gw-2')"));
        await refused(kind, exec("UPDATE gateways SET name = 'gw-7' WHERE name = 'gw-1'"));
        // What nothing references may go; the rest once its sealed keys and SPIs are gone.
        await exec("DELETE FROM gateways WHERE name = 'gw-2'");
        await exec('UPDATE key_epochs SET expires_at = 5 WHERE vpn_id = 1');
        await store.write(async (tx) => {
          await tx.deleteSealedKeys({ vpnId: 1 });
          await tx.deleteSpis({ vpnId: 1 });
        });
        await exec('DELETE FROM key_epochs WHERE vpn_id = 1');
        await exec("DELETE FROM gateways WHERE name IN ('gw-0', 'gw-1')");
      } finally {
        await b.close();
      }
    });

    if (backend.kind === 'postgres')
      it('the epochs and gateways a transaction references stay locked until it ends, as with a foreign key', async () => {
        const b = await backend.open();
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let writing: Promise<void> | undefined;
        try {
          await populate(b.store);
          let inserted!: () => void;
          const ready = new Promise<void>((r) => (inserted = r));
          writing = b.store.write(async (tx) => {
            await tx.insertSealedKeys([sealed(1, 1, 'gw-0'), sealed(1, 1, 'gw-1')]);
            inserted();
            await held;
          });
          await ready;
          // Until that transaction ends, deleting what it references waits (and times out here).
          await b.exec("SET lock_timeout = '300ms'");
          for (const sql of [
            'DELETE FROM key_epochs WHERE vpn_id = 1 AND epoch = 1',
            "DELETE FROM gateways WHERE name = 'gw-1'",
          ])
            await assert.rejects(b.exec(sql), (e: Error & { code?: string }) => e.code === '55P03');
          // What it does not reference is free.
          await b.exec('DELETE FROM key_epochs WHERE vpn_id = 1 AND epoch = 2');
          release();
          await writing;
          await refused('postgres', b.exec('DELETE FROM key_epochs WHERE vpn_id = 1 AND epoch = 1'));
        } finally {
          release();
          await writing?.catch(() => undefined);
          await b.close();
        }
      });
  });
}

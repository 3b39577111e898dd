// PostgreSQL store (pg): the same SQL as SQLite, for authorities that share one database between
// replicas. Writers serialise on the state row (every change first bumps the version), reads run in
// REPEATABLE READ snapshots, and each commit NOTIFYs the other replicas so that their waiting
// gateways hear about the change at once. Writes have their own small pool, so that a change never
// queues behind a burst of gateway deliveries for a connection.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { LATEST_SCHEMA, MIGRATIONS, MIGRATIONS_TABLE } from './migrations.js';
import { SqlOps, type SqlExec } from './sql.js';
import type { Store, StoreOps } from './types.js';

const CHANNEL = 'kasane_changes';
/** Arbitrary constant for the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x6b6173616e65;

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    // BIGINT columns hold ms timestamps, versions, VPN ids, SPIs: all below 2^53.
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

function bind(params: readonly unknown[]): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p === undefined ? null : p));
}

class PgExec implements SqlExec {
  constructor(private readonly client: pg.PoolClient) {}

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.client.query(numbered(sql), bind(params))).rows as T[];
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return (await this.client.query(numbered(sql), bind(params))).rows[0] as T | undefined;
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.client.query(numbered(sql), bind(params))).rowCount ?? 0;
  }
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private readonly instance = randomUUID();
  private readonly listeners: (() => void)[] = [];
  private listener: pg.Client | undefined;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly writers: pg.Pool,
    private readonly url: string,
  ) {}

  /** Connects, applies pending migrations and starts listening for other replicas' changes. */
  static async open(url: string, opts: { readPoolSize?: number; writePoolSize?: number } = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: opts.readPoolSize ?? 10, types });
    const writers = new pg.Pool({ connectionString: url, max: opts.writePoolSize ?? 3, types });
    for (const p of [pool, writers]) {
      p.on('error', () => {
        // An idle client lost its connection; the pool replaces it on the next query.
      });
    }
    const store = new PostgresStore(pool, writers, url);
    try {
      await store.migrate();
      await store.listen();
    } catch (e) {
      await pool.end().catch(() => undefined);
      await writers.end().catch(() => undefined);
      throw e;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const c = await this.writers.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(MIGRATIONS_TABLE('postgres'));
      const applied = Number((await c.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v ?? 0);
      if (applied > LATEST_SCHEMA) throw new Error(`the database schema is version ${applied}, newer than this kasane (${LATEST_SCHEMA}); upgrade kasane`);
      for (const m of MIGRATIONS) {
        if (m.version <= applied) continue;
        for (const s of m.statements('postgres')) await c.query(s);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
      }
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url, types });
    client.on('notification', (n) => {
      if (n.payload !== this.instance) for (const l of this.listeners) l();
    });
    client.on('error', () => {
      // Reconnect; changes made meanwhile are picked up because listeners re-check on reconnect.
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (!this.closed) setTimeout(() => void this.listen().then(() => this.listeners.forEach((l) => l())).catch(() => undefined), 1000).unref();
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.listener = client;
  }

  async write<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    const c = await this.writers.connect();
    try {
      await c.query('BEGIN');
      const r = await fn(new SqlOps(new PgExec(c)));
      await c.query('SELECT pg_notify($1, $2)', [CHANNEL, this.instance]);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  async read<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const r = await fn(new SqlOps(new PgExec(c)));
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  onRemoteChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async schemaVersion(): Promise<number> {
    return Number((await this.pool.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v ?? 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listener?.end().catch(() => undefined);
    await this.pool.end();
    await this.writers.end();
  }
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//.test(s);
}

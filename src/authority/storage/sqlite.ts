// SQLite store (better-sqlite3): the embedded default, one file in the data directory.
// WAL journal with synchronous=FULL, so a committed change survives the process being killed.
// One connection writes (transactions serialised by a mutex, BEGIN IMMEDIATE), another reads
// snapshots without waiting for writers.
import Database from 'better-sqlite3';
import { Mutex } from '../mutex.js';
import { LATEST_SCHEMA, MIGRATIONS, MIGRATIONS_TABLE } from './migrations.js';
import { SqlOps, type SqlExec } from './sql.js';
import type { Store, StoreOps } from './types.js';

function bind(params: readonly unknown[]): unknown[] {
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p)
      ? Buffer.from(p.buffer, p.byteOffset, p.byteLength)
      : typeof p === 'boolean'
        ? p
          ? 1
          : 0
        : p === undefined
          ? null
          : p,
  );
}

class SqliteExec implements SqlExec {
  readonly dialect = 'sqlite' as const;
  private readonly cache = new Map<string, Database.Statement>();
  constructor(private readonly db: Database.Database) {}

  private stmt(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (this.cache.size > 500) this.cache.clear();
      this.cache.set(sql, s);
    }
    return s;
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.stmt(sql).all(...bind(params)) as T[];
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return this.stmt(sql).get(...bind(params)) as T | undefined;
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return this.stmt(sql).run(...bind(params)).changes;
  }
}

function openConnection(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 10000');
  return db;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly writeLock = new Mutex();
  private readonly readLock = new Mutex();
  private readonly writeOps: StoreOps;
  private readonly readOps: StoreOps;

  private constructor(
    private readonly writer: Database.Database,
    private readonly reader: Database.Database,
  ) {
    this.writeOps = new SqlOps(new SqliteExec(writer));
    this.readOps = new SqlOps(new SqliteExec(reader));
  }

  /** Opens (creating if needed) the database file and applies pending migrations. */
  static open(file: string): SqliteStore {
    const writer = openConnection(file);
    migrate(writer);
    const reader = openConnection(file);
    return new SqliteStore(writer, reader);
  }

  write<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.writeLock.run(async () => {
      this.writer.exec('BEGIN IMMEDIATE');
      try {
        const r = await fn(this.writeOps);
        this.writer.exec('COMMIT');
        return r;
      } catch (e) {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
        throw e;
      }
    });
  }

  read<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.readLock.run(async () => {
      this.reader.exec('BEGIN');
      try {
        return await fn(this.readOps);
      } finally {
        if (this.reader.inTransaction) this.reader.exec('COMMIT');
      }
    });
  }

  onRemoteChange(): void {
    // One process owns a SQLite database: there are no remote changes.
  }

  async schemaVersion(): Promise<number> {
    const r = this.reader.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    return r.v ?? 0;
  }

  async close(): Promise<void> {
    await this.writeLock.run(async () => {
      this.reader.close();
      this.writer.close();
    });
  }
}

function migrate(db: Database.Database): void {
  db.exec(MIGRATIONS_TABLE('sqlite'));
  const applied = (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  if (applied > LATEST_SCHEMA)
    throw new Error(
      `the database schema is version ${applied}, newer than this kasane (${LATEST_SCHEMA}); upgrade kasane`,
    );
  for (const m of MIGRATIONS) {
    if (m.version <= applied) continue;
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const s of m.statements('sqlite')) db.exec(s);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
      db.exec('COMMIT');
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
  }
}

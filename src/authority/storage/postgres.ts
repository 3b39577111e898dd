// PostgreSQL store (pg): the same SQL as SQLite, for authorities that share one database between
// replicas. Writers serialise on the state row (every change first bumps the version), reads run in
// REPEATABLE READ snapshots, and each commit of a change NOTIFYs the other replicas so that their
// waiting gateways hear about it at once (the version is the truth: a notification lost is caught
// by the replicas' own polling, change-stream.ts). Writes have their own small pool, so that a
// change never queues behind a burst of gateway deliveries for a connection.
//
// Failover (docs/authority.md, "PostgreSQL failover"): the URL may name several hosts with
// target_session_attrs=read-write (pg-hosts.ts). When a connection fails or finds a read-only
// server, the store searches the hosts again and moves its pools to the one that matches, so a
// promoted standby is found without a restart; meanwhile calls fail fast with 503.
//
// Durability: a change (a transaction that took a version) commits with synchronous_commit on (or
// the server's remote_apply): with synchronous_standby_names set, it is on the synchronous standby
// before the API answers. Leases and heartbeats commit locally only: losing one at a failover loses
// nothing (the lease expires and is taken again).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { ApiError } from '../errors.js';
import { LATEST_SCHEMA, MIGRATIONS, MIGRATIONS_TABLE } from './migrations.js';
import { findServer, isConnectionError, parsePostgresUrl, type PostgresTarget } from './pg-hosts.js';
import { SqlOps, type SqlExec } from './sql.js';
import type { ChangeHint, Store, StoreOps } from './types.js';

const CHANNEL = 'kasane_changes';
/** Arbitrary constant for the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x6b6173616e65;
/** How soon the listener tries again after losing its connection. */
const LISTEN_RETRY_MS = 1000;

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
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p)
      ? Buffer.from(p.buffer, p.byteOffset, p.byteLength)
      : p === undefined
        ? null
        : p,
  );
}

class PgExec implements SqlExec {
  readonly dialect = 'postgres' as const;
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

interface Pools {
  /** Index of the host in the URL. */
  host: number;
  reads: pg.Pool;
  writes: pg.Pool;
  /** False once a connection failed: the next call searches the hosts again. */
  healthy: boolean;
}

export interface PostgresOptions {
  readPoolSize?: number;
  writePoolSize?: number;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private readonly instance = randomUUID();
  private readonly listeners: ((version?: number, hint?: ChangeHint) => void)[] = [];
  private listener: pg.Client | undefined;
  private listenRetry: NodeJS.Timeout | undefined;
  private pools: Pools | undefined;
  private locating: Promise<Pools> | undefined;
  /** SET LOCAL for a change's commit (undefined: the server's own setting is already at least as strong). */
  private changeCommit: string | undefined = 'on';
  private closed = false;

  private constructor(
    private readonly target: PostgresTarget,
    private readonly o: PostgresOptions,
  ) {}

  /**
   * Connects (to the first host that matches target_session_attrs), applies pending migrations, listens for other
   * replicas' changes.
   */
  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(parsePostgresUrl(url), opts);
    try {
      await store.use();
      await store.migrate();
      await store.listen();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** The host the store uses now (its label as the URL gives it). */
  get currentHost(): string | undefined {
    return this.pools ? this.target.hosts[this.pools.host].label : undefined;
  }

  /** The pools of the server to use, searching the hosts first if there is none or it failed. */
  private use(): Promise<Pools> {
    if (this.pools?.healthy) return Promise.resolve(this.pools);
    this.locating ??= (async () => {
      try {
        if (this.closed) throw new Error('the store is closed');
        const host = await findServer(this.target);
        const old = this.pools;
        const pool = (max: number): pg.Pool => {
          const p = new pg.Pool({
            connectionString: this.target.hosts[host].url,
            max,
            types,
            connectionTimeoutMillis: this.target.connectTimeoutMs,
          });
          // An idle client lost its connection: the server may be gone, look again before the next call.
          p.on('error', () => this.suspect(next));
          // Every client hears its errors from the moment it is handed out. The pool stops listening when it hands a
          // client out, and the caller's own listener comes a turn later: a session the server ends in that moment
          // (57P01, its FATAL message in the same read as the ReadyForQuery) would be an unheard 'error' event, which
          // ends the process.
          p.on('connect', (client) => client.on('error', () => this.suspect(next)));
          return p;
        };
        const next: Pools = {
          host,
          reads: pool(this.o.readPoolSize ?? 10),
          writes: pool(this.o.writePoolSize ?? 3),
          healthy: true,
        };
        this.pools = next;
        if (old) void Promise.all([old.reads.end(), old.writes.end()]).catch(() => undefined);
        await this.readCommitSetting(next);
        return next;
      } finally {
        this.locating = undefined;
      }
    })();
    return this.locating;
  }

  private suspect(p: Pools | undefined): void {
    if (p) p.healthy = false;
  }

  private async readCommitSetting(p: Pools): Promise<void> {
    const setting = String((await p.writes.query('SHOW synchronous_commit')).rows[0].synchronous_commit);
    this.changeCommit = setting === 'remote_apply' ? undefined : 'on';
  }

  /** A connection from the current server's pool; a failure to connect searches the hosts once more. */
  private async connection(kind: 'reads' | 'writes'): Promise<{ client: pg.PoolClient; pools: Pools }> {
    for (let attempt = 0; ; attempt++) {
      let pools: Pools;
      try {
        pools = await this.use();
      } catch (e) {
        throw unavailable(e, false);
      }
      try {
        const client = await pools[kind].connect();
        // A server that goes away while the client is checked out: the query in flight fails; this
        // keeps the client's 'error' event from going unheard (which would end the process).
        const onError = (): void => this.suspect(pools);
        client.on('error', onError);
        const release = client.release.bind(client);
        client.release = (err?: Error | boolean) => {
          client.off('error', onError);
          release(err);
        };
        return { client, pools };
      } catch (e) {
        this.suspect(pools);
        if (attempt >= 1 || !isConnectionError(e)) throw isConnectionError(e) ? unavailable(e, false) : e;
      }
    }
  }

  private async migrate(): Promise<void> {
    const { client: c } = await this.connection('writes');
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(MIGRATIONS_TABLE('postgres'));
      const applied = Number((await c.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v ?? 0);
      if (applied > LATEST_SCHEMA)
        throw new Error(
          `the database schema is version ${applied}, newer than this kasane (${LATEST_SCHEMA}); upgrade kasane`,
        );
      for (const m of MIGRATIONS) {
        if (m.version <= applied) continue;
        for (const s of m.statements('postgres')) await c.query(s);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          Date.now(),
        ]);
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
    const pools = await this.use();
    const client = new pg.Client({
      connectionString: this.target.hosts[pools.host].url,
      types,
      connectionTimeoutMillis: this.target.connectTimeoutMs,
    });
    client.on('notification', (n) => {
      const [from, version, flags] = (n.payload ?? '').split(':');
      if (from !== this.instance)
        for (const l of this.listeners) l(version ? Number(version) : undefined, { peers: flags?.includes('p') });
    });
    client.on('error', () => {
      // The server is gone or was replaced: listen again (on whichever server is found), then let
      // the listeners re-check, since changes made meanwhile were not notified.
      if (this.listener === client) this.listener = undefined;
      this.suspect(pools);
      client.end().catch(() => undefined);
      this.relisten();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      client.end().catch(() => undefined);
      this.suspect(pools);
      throw e;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
  }

  private relisten(): void {
    if (this.closed || this.listenRetry) return;
    this.listenRetry = setTimeout(() => {
      this.listenRetry = undefined;
      this.listen()
        .then(() => this.listeners.forEach((l) => l()))
        .catch(() => this.relisten());
    }, LISTEN_RETRY_MS);
    this.listenRetry.unref();
  }

  async write<T>(fn: (tx: StoreOps) => Promise<T>, hint?: ChangeHint): Promise<T> {
    const { client: c, pools } = await this.connection('writes');
    let committing = false;
    let broken = false;
    try {
      await c.query('BEGIN');
      const ops = new SqlOps(new PgExec(c));
      const r = await fn(ops);
      if (ops.versionTaken !== undefined) {
        // A change: the other replicas hear of it, and it waits for the synchronous standby.
        if (this.changeCommit) await c.query(`SET LOCAL synchronous_commit TO ${this.changeCommit}`);
        await c.query('SELECT pg_notify($1, $2)', [
          CHANNEL,
          `${this.instance}:${ops.versionTaken}:${hint?.peers ? 'p' : ''}`,
        ]);
      } else {
        await c.query('SET LOCAL synchronous_commit TO local');
      }
      committing = true;
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      if (isConnectionError(e)) {
        broken = true;
        this.suspect(pools);
        throw unavailable(e, committing);
      }
      throw e;
    } finally {
      c.release(broken);
    }
  }

  async read<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { client: c, pools } = await this.connection('reads');
      let broken = false;
      try {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const r = await fn(new SqlOps(new PgExec(c)));
        await c.query('COMMIT');
        return r;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        if (!isConnectionError(e)) throw e;
        broken = true;
        this.suspect(pools);
        // A read can be repeated: once, on the server found again.
        if (attempt >= 1) throw unavailable(e, false);
      } finally {
        c.release(broken);
      }
    }
  }

  onRemoteChange(listener: (version?: number, hint?: ChangeHint) => void): void {
    this.listeners.push(listener);
  }

  async schemaVersion(): Promise<number> {
    const { client: c } = await this.connection('reads');
    try {
      return Number((await c.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v ?? 0);
    } finally {
      c.release();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.listenRetry) clearTimeout(this.listenRetry);
    await this.locating?.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    if (this.pools) await Promise.all([this.pools.reads.end(), this.pools.writes.end()]).catch(() => undefined);
  }
}

/** 503: the database is unreachable or failing over. A commit whose answer was lost may or may not have happened. */
function unavailable(e: unknown, committing: boolean): ApiError {
  const why = (e as Error).message;
  return new ApiError(
    503,
    'database-unavailable',
    committing
      ? `the database connection was lost while committing (${why}): the change may or may not have been made; check before repeating it`
      : `the database is unavailable (${why}); try again shortly`,
  );
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//.test(s);
}

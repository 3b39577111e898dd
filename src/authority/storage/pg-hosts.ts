// Multi-host PostgreSQL URLs as libpq reads them, for the authority's database failover:
//
//   postgres://kasane@db1:5432,db2:5432/kasane?target_session_attrs=read-write&connect_timeout=5
//
// node-postgres takes one host per connection, so the store keeps the list and finds the server
// to use itself, the way libpq does: hosts are tried in the order given and the first whose
// session matches `target_session_attrs` wins (read-write: `transaction_read_only` is off, i.e.
// the primary, never a standby). After the primary is lost and a standby promoted, the next
// search finds the promoted one.
import pg from 'pg';

export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby';

export interface PostgresTarget {
  /** One single-host URL per host, in the order given (the parameters only libpq knows removed). */
  hosts: { label: string; url: string }[];
  targetSessionAttrs: TargetSessionAttrs;
  /** connect_timeout, ms (libpq's is seconds). */
  connectTimeoutMs: number;
}

const ATTRS: readonly TargetSessionAttrs[] = ['any', 'read-write', 'read-only', 'primary', 'standby'];
/** libpq parameters that node-postgres does not understand: the store applies them itself. */
const OWN_PARAMS = new Set(['target_session_attrs', 'connect_timeout', 'load_balance_hosts']);
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Parses a postgres:// URL with one or several `host[:port]` (comma-separated, IPv6 in brackets). */
export function parsePostgresUrl(url: string): PostgresTarget {
  const m = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!m) throw new Error('the database URL must look like postgres://user@host:port/database');
  const [, scheme, userinfo, hostList, path, query] = m;
  const params = new URLSearchParams(query ?? '');
  const attrs = (params.get('target_session_attrs') ?? 'any') as TargetSessionAttrs;
  if (!ATTRS.includes(attrs)) throw new Error(`target_session_attrs=${attrs} is not one of ${ATTRS.join(', ')}`);
  const timeout = params.get('connect_timeout');
  if (timeout !== null && !/^\d+$/.test(timeout))
    throw new Error(`connect_timeout must be whole seconds, got ${JSON.stringify(timeout)}`);
  for (const p of OWN_PARAMS) params.delete(p);
  const rest = params.toString();
  const hosts = (hostList === '' ? [''] : hostList.split(',')).map((h) => {
    if (!/^(\[[0-9A-Fa-f:.]+\]|[^:[\]]*)(:\d{1,5})?$/.test(h))
      throw new Error(`${JSON.stringify(h)} is not host[:port] in the database URL`);
    return {
      label: h || 'localhost',
      url: `${scheme}${userinfo !== undefined ? userinfo + '@' : ''}${h}${path}${rest ? '?' + rest : ''}`,
    };
  });
  return {
    hosts,
    targetSessionAttrs: attrs,
    connectTimeoutMs: timeout === null || timeout === '0' ? DEFAULT_CONNECT_TIMEOUT_MS : Number(timeout) * 1000,
  };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

/** Does this connected session match the wanted attributes? */
async function matches(c: pg.Client, attrs: TargetSessionAttrs): Promise<boolean> {
  if (attrs === 'any') return true;
  if (attrs === 'read-write' || attrs === 'read-only') {
    const ro = (await c.query('SHOW transaction_read_only')).rows[0].transaction_read_only === 'on';
    return attrs === 'read-write' ? !ro : ro;
  }
  const recovery = (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r === true;
  return attrs === 'primary' ? !recovery : recovery;
}

/**
 * Tries the hosts in order and returns the index of the first that accepts a connection and
 * matches `target_session_attrs`; throws with what each host said when none does.
 */
export async function findServer(t: PostgresTarget): Promise<number> {
  const why: string[] = [];
  for (let i = 0; i < t.hosts.length; i++) {
    const c = new pg.Client({ connectionString: t.hosts[i].url, connectionTimeoutMillis: t.connectTimeoutMs });
    c.on('error', () => undefined);
    try {
      await c.connect();
      if (await matches(c, t.targetSessionAttrs)) return i;
      why.push(`${t.hosts[i].label}: not ${t.targetSessionAttrs}`);
    } catch (e) {
      why.push(`${t.hosts[i].label}: ${(e as Error).message}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  throw new Error(
    `no database server is available${t.targetSessionAttrs === 'any' ? '' : ` as ${t.targetSessionAttrs}`} (${why.join('; ')})`,
  );
}

/** Errors that mean the connection or the server is gone (or is no longer the primary), not that the SQL was wrong. */
export function isConnectionError(e: unknown): boolean {
  const x = e as { code?: string; message?: string } | undefined;
  const code = x?.code ?? '';
  if (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'EPIPE',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'ENOTFOUND',
      'EAI_AGAIN',
    ].includes(code)
  )
    return true;
  // 08: connection exception; 57P01-57P03: admin/crash shutdown, cannot connect now; 25006: a read-only (promoted-away)
  // server.
  if (/^08/.test(code) || ['57P01', '57P02', '57P03', '25006'].includes(code)) return true;
  const msg = x?.message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|no database server is available/i.test(
    msg,
  );
}

// Multi-host PostgreSQL URLs (src/authority/storage/pg-hosts.ts), as an operator writes them for a
// primary and its standbys: one single-host URL per host in the order given, libpq's own
// parameters taken out and applied by the store, refusals that say what is wrong, and passwords
// kept out of messages. The failover itself runs against real servers in postgres-failover.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isConnectionError, parsePostgresUrl, redactUrl } from '../../src/authority/storage/pg-hosts.js';

test('a URL with several hosts: one URL per host, in order, without the parameters only libpq knows', () => {
  const t = parsePostgresUrl(
    'postgres://kasane:s3cret@db1.example:5432,[2001:db8::2]:5433,db3/kasane?target_session_attrs=read-write&connect_timeout=5&sslmode=require',
  );
  assert.deepEqual(
    t.hosts.map((h) => h.label),
    ['db1.example:5432', '[2001:db8::2]:5433', 'db3'],
  );
  assert.deepEqual(
    t.hosts.map((h) => h.url),
    [
      'postgres://kasane:s3cret@db1.example:5432/kasane?sslmode=require',
      'postgres://kasane:s3cret@[2001:db8::2]:5433/kasane?sslmode=require',
      'postgres://kasane:s3cret@db3/kasane?sslmode=require',
    ],
  );
  assert.equal(t.targetSessionAttrs, 'read-write');
  assert.equal(t.connectTimeoutMs, 5000);
  const one = parsePostgresUrl('postgresql://db/kasane');
  assert.deepEqual(one.hosts, [{ label: 'db', url: 'postgresql://db/kasane' }]);
  assert.equal(one.targetSessionAttrs, 'any');
  // IPv6 hosts, with and without a port, are passed on in brackets as written.
  const six = parsePostgresUrl('postgres://kasane@[::1],[FD00::5]:6432/kasane?target_session_attrs=primary');
  assert.deepEqual(
    six.hosts.map((h) => [h.label, h.url]),
    [
      ['[::1]', 'postgres://kasane@[::1]/kasane'],
      ['[FD00::5]:6432', 'postgres://kasane@[FD00::5]:6432/kasane'],
    ],
  );
});

test('what is wrong with a URL is said; passwords stay out of messages', () => {
  assert.throws(() => parsePostgresUrl('mysql://db/kasane'), /must look like postgres:\/\/user@host:port\/database/);
  assert.throws(
    () => parsePostgresUrl('postgres://db1,db2/k?target_session_attrs=primary-ish'),
    /target_session_attrs=primary-ish is not one of/,
  );
  assert.throws(
    () => parsePostgresUrl('postgres://db1/k?connect_timeout=2.5'),
    /connect_timeout must be whole seconds/,
  );
  assert.throws(() => parsePostgresUrl('postgres://db1:port/k'), /"db1:port" is not host\[:port\]/);
  // An IPv6 address needs its brackets, as in any URL.
  assert.throws(() => parsePostgresUrl('postgres://db1,::1:5432/k'), /"::1:5432" is not host\[:port\]/);
  assert.throws(() => parsePostgresUrl('postgres://[::1:5432/k'), /"\[::1:5432" is not host\[:port\]/);
  assert.equal(redactUrl('postgres://kasane:s3cret@db1,db2/kasane'), 'postgres://kasane:***@db1,db2/kasane');
});

test('a lost server or a standby that refuses writes is a connection error; bad SQL is not', () => {
  for (const e of [
    { code: 'ECONNREFUSED' },
    { code: '57P01' },
    { code: '25006' },
    { code: '08006' },
    { message: 'Connection terminated unexpectedly' },
  ])
    assert.equal(isConnectionError(e), true, JSON.stringify(e));
  for (const e of [{ code: '42P01' }, { code: '23505' }, new Error('syntax error'), undefined])
    assert.equal(isConnectionError(e), false, JSON.stringify(e));
});

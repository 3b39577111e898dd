// Web console sessions (src/authority/sessions.ts), driven directly over SQLite and PostgreSQL. It
// proves: a session is opened only with a valid administrator token and acts as that token's
// administrator; its cookie is stored only as a hash; it ends after its idle time, at its absolute
// end, on sign-out, and when its token is revoked; a change needs the session's CSRF token and,
// when the browser names it, the authority's own origin; failed sign-ins from one address are
// limited; sign-in and sign-out are in the audit log; ended sessions are purged.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { SESSION_COOKIE, cookieValue, DEFAULT_SESSIONS } from '../../src/authority/sessions.js';
import { ADMIN, refusal, testStores, withAuthority } from './helpers/direct.js';
import { tampered } from '../support/tokens.js';

const cookieOf = (v: string) => `theme=dark; ${SESSION_COOKIE}=${v}; other=1`;

describe('the session cookie header', () => {
  it('is read by name; anything but 43 base64url characters is no session', () => {
    const v = 'A'.repeat(43);
    assert.equal(cookieValue(cookieOf(v), SESSION_COOKIE), v);
    assert.equal(cookieValue(`${SESSION_COOKIE}=${v}x`, SESSION_COOKIE), undefined);
    assert.equal(cookieValue(`${SESSION_COOKIE}=${'A'.repeat(42)}"`, SESSION_COOKIE), undefined);
    assert.equal(cookieValue(`x${SESSION_COOKIE}=${v}`, SESSION_COOKIE), undefined);
    assert.equal(cookieValue(undefined, SESSION_COOKIE), undefined);
  });
});

for (const store of await testStores()) {
  describe(`console sessions on ${store.kind}`, { skip: store.skip }, () => {
    it('sign in with an administrator token; the session acts as its administrator; the cookie is kept only as a hash', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        const { cookie, session } = await a.service.sessions.signIn(alice.token, '192.0.2.1');
        assert.equal(session.actor, 'admin:alice');
        assert.match(session.csrfToken, /^[A-Za-z0-9_-]{43}$/);
        assert.equal(session.expiresAt, a.clock.now + DEFAULT_SESSIONS.maxMs);
        const s = await a.service.sessions.authenticate(cookieOf(cookie));
        assert.equal(s.actor, 'admin:alice');
        assert.equal(s.csrfToken, session.csrfToken);
        const row = await a.store.read((tx) => tx.getSession(createHash('sha256').update(cookie).digest('hex')));
        assert.ok(row, 'stored under the hash of the cookie');
        assert.equal(await a.store.read((tx) => tx.getSession(cookie)), undefined, 'never under the cookie itself');
        const audit = await a.service.audit({ action: 'console.' });
        assert.deepEqual(
          audit.map((e) => [e.actor, e.action, e.detail.from]),
          [['admin:alice', 'console.sign-in', '192.0.2.1']],
        );
        assert.equal(JSON.stringify(audit).includes(alice.token.split('.')[2]), false, 'the audit log holds no secret');
      }));

    it('a wrong, malformed or revoked token opens no session', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        await a.service.admin.createToken(ADMIN, 'spare');
        assert.deepEqual(await refusal(a.service.sessions.signIn(tampered(alice.token, 3), 'c')), [401, 'bad-token']);
        assert.deepEqual(await refusal(a.service.sessions.signIn('nonsense', 'c')), [401, 'bad-token']);
        assert.deepEqual(await refusal(a.service.sessions.signIn(42, 'c')), [401, 'bad-token']);
        await a.service.admin.revokeToken(ADMIN, alice.info.id);
        assert.deepEqual(await refusal(a.service.sessions.signIn(alice.token, 'c')), [401, 'token-revoked']);
        assert.equal((await a.service.audit({ action: 'console.sign-in' })).length, 0);
      }));

    it('ends after its idle time, at its absolute end, and when its token is revoked', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        await a.service.admin.createToken(ADMIN, 'spare');
        const { idleMs, maxMs } = DEFAULT_SESSIONS;

        const idle = (await a.service.sessions.signIn(alice.token, 'c')).cookie;
        a.clock.now += idleMs - 1000;
        await a.service.sessions.authenticate(cookieOf(idle)); // activity: the idle time starts again
        a.clock.now += idleMs - 1000;
        await a.service.sessions.authenticate(cookieOf(idle));
        a.clock.now += idleMs;
        assert.deepEqual(await refusal(a.service.sessions.authenticate(cookieOf(idle))), [401, 'session-ended']);
        assert.deepEqual(
          await refusal(a.service.sessions.authenticate(cookieOf(idle))),
          [401, 'session-ended'],
          'and it stays ended',
        );

        const busy = (await a.service.sessions.signIn(alice.token, 'c')).cookie;
        for (let t = 0; t < maxMs; t += idleMs / 2) {
          await a.service.sessions.authenticate(cookieOf(busy));
          a.clock.now += idleMs / 2;
        }
        assert.deepEqual(
          await refusal(a.service.sessions.authenticate(cookieOf(busy))),
          [401, 'session-ended'],
          'used all the time, it still ends after maxMs',
        );

        const revoked = (await a.service.sessions.signIn(alice.token, 'c')).cookie;
        // Checking the events stream does not count as activity.
        a.clock.now += idleMs - 1000;
        await a.service.sessions.authenticate(cookieOf(revoked), false);
        a.clock.now += 2000;
        assert.deepEqual(
          await refusal(a.service.sessions.authenticate(cookieOf(revoked))),
          [401, 'session-ended'],
          'watching is not activity',
        );
        const again = (await a.service.sessions.signIn(alice.token, 'c')).cookie;
        await a.service.admin.revokeToken(ADMIN, alice.info.id);
        const [status, code] = await refusal(a.service.sessions.authenticate(cookieOf(again)));
        assert.deepEqual([status, code], [401, 'session-ended']);
        assert.deepEqual(
          await refusal(a.service.sessions.authenticate(`${SESSION_COOKIE}=${'B'.repeat(43)}`)),
          [401, 'session-ended'],
          'an unknown cookie',
        );
        assert.deepEqual(await refusal(a.service.sessions.authenticate(undefined)), [401, 'unauthorized']);
      }));

    it('a change needs the CSRF token of its own session and the own origin', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        const one = await a.service.sessions.signIn(alice.token, 'c');
        const two = await a.service.sessions.signIn(alice.token, 'c');
        const s = await a.service.sessions.authenticate(cookieOf(one.cookie));
        const host = 'authority.example:7443';
        assert.doesNotThrow(() => a.service.sessions.checkCsrf(s, one.session.csrfToken, undefined, host));
        assert.doesNotThrow(() => a.service.sessions.checkCsrf(s, one.session.csrfToken, `https://${host}`, host));
        const refused = (header: string | undefined, origin?: string) => {
          try {
            a.service.sessions.checkCsrf(s, header, origin, host);
          } catch (e) {
            return [(e as { status: number }).status, (e as { code: string }).code];
          }
          return 'accepted';
        };
        assert.deepEqual(refused(undefined), [403, 'csrf-token-required']);
        assert.deepEqual(refused(''), [403, 'csrf-token-required']);
        assert.deepEqual(refused(two.session.csrfToken), [403, 'bad-csrf-token'], "another session's token");
        assert.deepEqual(refused(one.session.csrfToken.slice(1)), [403, 'bad-csrf-token']);
        assert.deepEqual(refused(one.session.csrfToken, 'https://evil.example'), [403, 'cross-origin']);
        assert.deepEqual(refused(one.session.csrfToken, `http://${host}`), [403, 'cross-origin']);
      }));

    it('sign-out ends the session at once; ended sessions are purged', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        const one = await a.service.sessions.signIn(alice.token, 'c');
        const two = await a.service.sessions.signIn(alice.token, 'c');
        await a.service.sessions.signOut(await a.service.sessions.authenticate(cookieOf(one.cookie)));
        assert.deepEqual(await refusal(a.service.sessions.authenticate(cookieOf(one.cookie))), [401, 'session-ended']);
        await a.service.sessions.authenticate(cookieOf(two.cookie));
        assert.deepEqual(
          (await a.service.audit({ actor: 'admin:alice', order: 'desc', limit: 1 })).map((e) => e.action),
          ['console.sign-out'],
        );
        a.clock.now += DEFAULT_SESSIONS.idleMs + 1;
        assert.equal(await a.service.sessions.purge(), 1);
        assert.equal(await a.service.sessions.purge(), 0);
      }));

    it('failed sign-ins from one address are limited to 10 a minute (others still sign in)', () =>
      withAuthority(store, async (a) => {
        const alice = await a.service.admin.createToken(ADMIN, 'alice');
        for (let i = 0; i < 10; i++)
          assert.deepEqual(
            await refusal(a.service.sessions.signIn('kasane-admin-v1.0000000000000000.x', '198.51.100.7')),
            [401, 'bad-token'],
          );
        assert.deepEqual(
          await refusal(a.service.sessions.signIn(alice.token, '198.51.100.7')),
          [429, 'too-many-sign-ins'],
          'even the right token, for a minute',
        );
        await a.service.sessions.signIn(alice.token, '198.51.100.8');
        a.clock.now += 60_000;
        await a.service.sessions.signIn(alice.token, '198.51.100.7');
      }));
  });
}

// Web console sessions. An administrator signs in once with an administrator token; the console
// then holds only a session cookie (HttpOnly, Secure, SameSite=Strict, `__Host-` prefix) and a
// CSRF token that it sends back with every change. The token itself is never stored in the
// browser. A session ends on sign-out, after `idleMs` without a request of the administrator,
// after `maxMs` whatever the activity, and when its administrator token is revoked. Sessions live
// in the store (as the SHA-256 of the cookie), so every replica and a restarted authority know them.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Administration } from './admin.js';
import type { AuthorityContext } from './context.js';
import { ApiError, forbidden, unauthorized } from './errors.js';
import { parseToken } from './tokens.js';
import type { SessionView } from './wire.js';

export const SESSION_COOKIE = '__Host-kasane-session';
export const CSRF_HEADER = 'x-kasane-csrf';

export interface SessionConfig {
  /** A session unused this long ends (ms). */
  idleMs: number;
  /** A session ends this long after sign-in, whatever the activity (ms). */
  maxMs: number;
}

export const DEFAULT_SESSIONS: SessionConfig = { idleMs: 30 * 60_000, maxMs: 12 * 3_600_000 };

/** Activity is written back at most this often per session (a write per request would be wasteful). */
const TOUCH_EVERY_MS = 30_000;
/** Failed sign-ins per client address and minute before it is answered 429. */
const FAILED_SIGN_INS_PER_MINUTE = 10;

export type { SessionView };

export interface Session extends SessionView {
  idHash: string;
  tokenId: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The value of one cookie in a Cookie header (undefined when absent or malformed). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

export class ConsoleSessions {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: { admin: Administration; config: SessionConfig },
  ) {}

  get config(): SessionConfig {
    return this.o.config;
  }

  /** Signs in with an administrator token: a new session (its cookie value is returned once). */
  async signIn(token: unknown, client: string): Promise<{ cookie: string; session: SessionView }> {
    const now = this.ctx.now();
    this.checkFailures(client, now);
    let actor: string;
    try {
      if (typeof token !== 'string') throw unauthorized('bad-token', 'an administrator token is required');
      actor = await this.o.admin.authenticate(`Bearer ${token.trim()}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.failed(client, now);
      throw e;
    }
    const tokenId = parseToken('admin', (token as string).trim())!.id;
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const row = {
      idHash: sha256(cookie),
      tokenId,
      csrf,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.o.config.maxMs,
    };
    await this.ctx.change(actor, async (c) => {
      await c.tx.deleteExpiredSessions(c.now, c.now - this.o.config.idleMs);
      await c.tx.insertSession(row);
      c.audit('console.sign-in', { scope: 'none', detail: { token: tokenId, from: client } });
    });
    return { cookie, session: this.view(actor, row) };
  }

  /** The session of a Cookie header; refuses an ended one. `touch` counts the request as activity. */
  async authenticate(cookieHeader: string | undefined, touch = true): Promise<Session> {
    const cookie = cookieValue(cookieHeader, SESSION_COOKIE);
    if (!cookie) throw unauthorized('unauthorized', 'sign in first (no console session)');
    const idHash = sha256(cookie);
    const now = this.ctx.now();
    const found = await this.ctx.store.read(async (tx) => {
      const s = await tx.getSession(idHash);
      return s && { s, token: await tx.getAdminToken(s.tokenId) };
    });
    if (!found) throw unauthorized('session-ended', 'the console session has ended: sign in again');
    const { s, token } = found;
    if (now >= s.expiresAt || now >= s.lastSeenAt + this.o.config.idleMs || !token || token.revokedAt !== null) {
      await this.ctx.store.write((tx) => tx.deleteSession(idHash));
      throw unauthorized(
        'session-ended',
        token && token.revokedAt === null
          ? 'the console session has expired: sign in again'
          : 'the administrator token of this session was revoked',
      );
    }
    if (touch && now - s.lastSeenAt >= TOUCH_EVERY_MS) {
      await this.ctx.store.write((tx) => tx.touchSession(idHash, now));
      s.lastSeenAt = now;
    }
    return { ...this.view(`admin:${token.name}`, s), idHash, tokenId: s.tokenId };
  }

  /**
   * A change made with a session must carry the session's CSRF token, and, when the browser says
   * where the request comes from, come from this authority's own origin.
   */
  checkCsrf(
    s: Session,
    header: string | string[] | undefined,
    origin: string | undefined,
    host: string | undefined,
  ): void {
    if (origin !== undefined && origin !== `https://${host}`)
      throw forbidden('cross-origin', `a change from another origin (${origin}) is refused`);
    const got = Buffer.from(typeof header === 'string' ? header : '');
    const want = Buffer.from(s.csrfToken);
    if (got.length === 0)
      throw forbidden(
        'csrf-token-required',
        `a change from the console needs the session's CSRF token in the ${CSRF_HEADER} header`,
      );
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw forbidden('bad-csrf-token', 'the CSRF token does not belong to this session');
  }

  async signOut(s: Session): Promise<void> {
    await this.ctx.change(s.actor, async (c) => {
      await c.tx.deleteSession(s.idHash);
      c.audit('console.sign-out', { scope: 'none', detail: { token: s.tokenId } });
    });
  }

  /** Deletes ended sessions (a periodic job; sign-in also does it). */
  async purge(): Promise<number> {
    const now = this.ctx.now();
    return this.ctx.store.write((tx) => tx.deleteExpiredSessions(now, now - this.o.config.idleMs));
  }

  private view(
    actor: string,
    s: { csrf: string; createdAt: number; lastSeenAt: number; expiresAt: number },
  ): SessionView {
    return {
      actor,
      csrfToken: s.csrf,
      createdAt: s.createdAt,
      idleExpiresAt: Math.min(s.expiresAt, s.lastSeenAt + this.o.config.idleMs),
      expiresAt: s.expiresAt,
    };
  }

  private checkFailures(client: string, now: number): void {
    const f = this.failures.get(client);
    if (f && now - f.since < 60_000 && f.count >= FAILED_SIGN_INS_PER_MINUTE) {
      throw new ApiError(429, 'too-many-sign-ins', `too many failed sign-ins from ${client}; wait a minute`);
    }
  }

  private failed(client: string, now: number): void {
    const f = this.failures.get(client);
    if (!f || now - f.since >= 60_000) this.failures.set(client, { count: 1, since: now });
    else f.count++;
    // Bounded: an attacker cycling addresses must not grow this without end.
    if (this.failures.size > 10_000)
      for (const [k, v] of this.failures) if (now - v.since >= 60_000) this.failures.delete(k);
  }
}

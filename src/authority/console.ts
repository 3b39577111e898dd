// The web console on the authority's own HTTPS listener: the built single-page application at `/`
// (files made by `npm install` into dist/console, read once at start, nothing from elsewhere), the
// console's sign-in (POST/GET/DELETE /v1/session), live events (GET /v1/events, server-sent
// events), and how an administrator request is authenticated: a bearer token (the CLI) or a
// console session, whose changes must carry its CSRF token. The console itself calls the same
// /v1 API as the CLI. Every response carries a strict Content-Security-Policy (no inline script
// or style, nothing from another origin) and the usual hardening headers.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthorityService } from './service.js';
import { CSRF_HEADER, SESSION_COOKIE, cookieValue, type Session } from './sessions.js';

/** The longest path parameter the API's router takes (server.ts: longer is 414 path-too-long). */
export const MAX_PARAM_LENGTH = 500;

/** Where `npm install` (scripts/build-console.mjs) puts the console. */
export const CONSOLE_DIR = join(new URL('../..', import.meta.url).pathname, 'dist', 'console');

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  /** Names with a content hash never change: cached for a year. */
  immutable: boolean;
}

/** The built console, read once: URL path -> file. Empty when it was not built. */
export function loadConsoleAssets(dir = CONSOLE_DIR): Map<string, Asset> {
  const out = new Map<string, Asset>();
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const body = readFileSync(p);
        const url = '/' + relative(dir, p).split(sep).join('/');
        out.set(url, {
          body,
          type: TYPES[extname(p)] ?? 'application/octet-stream',
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
          immutable: /-[A-Z0-9]{8,}\.(js|css)$/i.test(name),
        });
      }
    }
  };
  walk(dir);
  return out;
}

/**
 * Authenticates an administrator request: `Authorization: Bearer` (the CLI, scripts), else the
 * console's session cookie, whose changes (anything but GET/HEAD) need the CSRF token.
 */
export async function authenticateAdminRequest(
  service: AuthorityService,
  req: FastifyRequest,
): Promise<{ actor: string; session?: Session }> {
  if (req.headers.authorization !== undefined || cookieValue(req.headers.cookie, SESSION_COOKIE) === undefined) {
    return { actor: await service.authenticateAdmin(req.headers.authorization) };
  }
  const session = await service.sessions.authenticate(req.headers.cookie);
  if (req.method !== 'GET' && req.method !== 'HEAD')
    service.sessions.checkCsrf(session, req.headers[CSRF_HEADER], req.headers.origin, req.headers.host);
  return { actor: session.actor, session };
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: Session;
  }
}

const signInBody = {
  type: 'object',
  properties: { token: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['token'],
  additionalProperties: false,
} as const;

function sessionCookie(value: string): string {
  // No Max-Age: the browser forgets it when it closes; the authority ends it anyway (idle, absolute).
  return `${SESSION_COOKIE}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

const CLEAR_COOKIE = `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`;

/** The console's routes and headers on the authority's server. */
export async function registerConsole(
  app: FastifyInstance,
  service: AuthorityService,
  assets = loadConsoleAssets(),
): Promise<void> {
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
    return payload;
  });

  // --- sign-in, the session, sign-out
  app.post(
    '/v1/session',
    { schema: { body: signInBody } },
    async (req: FastifyRequest<{ Body: { token: string } }>, reply: FastifyReply) => {
      if (req.headers.origin !== undefined && req.headers.origin !== `https://${req.headers.host}`) {
        return reply
          .code(403)
          .send({ error: 'cross-origin', message: `a sign-in from another origin (${req.headers.origin}) is refused` });
      }
      const { cookie, session } = await service.sessions.signIn(req.body.token, req.ip);
      reply.header('set-cookie', sessionCookie(cookie)).header('cache-control', 'no-store').code(201);
      return session;
    },
  );
  app.register(async (r) => {
    r.addHook('onRequest', async (req) => {
      const session = await service.sessions.authenticate(req.headers.cookie);
      if (req.method === 'DELETE')
        service.sessions.checkCsrf(session, req.headers[CSRF_HEADER], req.headers.origin, req.headers.host);
      req.actor = session.actor;
      req.consoleSession = session;
    });
    r.get('/v1/session', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      const { idHash: _hash, tokenId: _token, ...view } = req.consoleSession!;
      return view;
    });
    r.delete('/v1/session', async (req, reply) => {
      await service.sessions.signOut(req.consoleSession!);
      reply.header('set-cookie', CLEAR_COOKIE);
      return { signedOut: true };
    });
  });

  // --- live events (server-sent events): the console reloads what changed
  app.get('/v1/events', async (req, reply) => {
    const auth = await authenticateAdminRequest(service, req);
    const version = (await service.status()).version;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    const send = (event: string, data: unknown): void => {
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    res.write('retry: 3000\n\n');
    send('hello', { version, actor: auth.actor });
    const off = service.events.subscribe((e) => send(e.type, e));
    // A comment now and then keeps proxies from closing the stream; a console session is
    // re-checked then (not counted as activity): a session that ended ends its stream.
    const keepAlive = setInterval(() => {
      if (!auth.session) return void res.write(': keep-alive\n\n');
      service.sessions.authenticate(req.headers.cookie, false).then(
        () => res.write(': keep-alive\n\n'),
        () => {
          send('session-ended', {});
          res.end();
        },
      );
    }, 15_000);
    keepAlive.unref();
    const close = (): void => {
      clearInterval(keepAlive);
      off();
    };
    res.on('close', close);
    res.on('error', close);
  });

  // --- the application: its files, and index.html for every page path (client-side routing)
  const index = assets.get('/index.html');
  const page = async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const path = req.url.split('?')[0];
    if (path.startsWith('/v1/') || path === '/v1') {
      // The router hands this wildcard the API paths whose parameter is over its limit.
      if (path.split('/').some((segment) => segment.length > MAX_PARAM_LENGTH)) {
        return reply
          .code(414)
          .send({ error: 'path-too-long', message: `a path parameter is longer than ${MAX_PARAM_LENGTH} characters` });
      }
      return reply.code(404).send({ error: 'not-found', message: `no such endpoint: ${req.method} ${path}` });
    }
    const asset = assets.get(path) ?? (path.startsWith('/assets/') ? undefined : index);
    if (!asset) {
      if (!index)
        return reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send('The web console is not built here: run `npm install` (or `npm run build`) in the kasane directory.\n');
      return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
    }
    reply
      .header('etag', asset.etag)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };
  app.get('/', page);
  app.get('/*', page);
}

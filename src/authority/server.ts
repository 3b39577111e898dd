// The authority's HTTPS API (fastify 5), documented in docs/openapi.yaml. Administrators
// authenticate with bearer tokens; gateways with mutual TLS (their enrolled certificate, checked
// against the CRLs in the TLS layer and against the database on every request). Bodies, parameters
// and queries are validated by JSON schemas; every error is {error: code, message} with a 4xx
// status that says what was wrong.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { authenticateAdminRequest, MAX_PARAM_LENGTH, registerConsole } from './console.js';
import { ApiError, forbidden, notFound as notFoundError, unauthorized } from './errors.js';
import { Hangup } from './hub.js';
import type { PushChannel } from './push.js';
import { authorityMetrics } from './push-metrics.js';
import { REPORT_LIMITS } from './reports.js';
import type { AuthorityService } from './service.js';

export interface TlsMaterial {
  key: string;
  /** The server certificate followed by the issuing CA certificate (PEM). */
  cert: string;
  /** Trust anchors for client certificates: root and issuing CA (PEM). */
  ca: string[];
  /** Key exchange groups (OpenSSL names, ':'-separated); absent: node's default. */
  groups?: string;
  /**
   * TLS session ticket keys (48 bytes) shared by every replica (push.ts derives them from the push
   * secret): a gateway's session resumes on any replica, and across restarts. Absent: node's random.
   */
  ticketKeys?: Buffer;
}

/** How long a TLS session ticket is good for (s). */
const SESSION_TIMEOUT_S = 86_400;

declare module 'fastify' {
  interface FastifyRequest {
    actor?: string;
    gatewayName?: string;
    /** The peer authority a federation exchange comes from (authenticated before its body is read). */
    peerAuthority?: string;
  }
}

/** The API's own error body, also for what the framework and node's HTTP parser refuse. */
function errorBody(error: string, message: string): string {
  return JSON.stringify({ error, message });
}

/**
 * Requests node's HTTP parser refuses before fastify sees them (headers too large, not HTTP):
 * answered in the API's shape, then the connection is closed, as node itself would.
 */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers-too-large', 'the request headers are larger than the authority accepts (16 KiB)']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request-timeout', 'the request did not arrive in time']
        : [400, 'bad-http', `not an HTTP request the authority can read (${err.code ?? 'parse error'})`];
  const body = errorBody(code, message);
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  socket.destroy(err);
}

/** The first U+0000 in a request's parameters, query or body (keys too): where it is, or undefined. */
function findNul(value: unknown, at: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? at : undefined;
  if (value === null || typeof value !== 'object' || depth > 32) return undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const here = Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`;
    if (k.includes('\u0000')) return here;
    const found = findNul(v, here, depth + 1);
    if (found) return found;
  }
  return undefined;
}

const NAME = { type: 'string', minLength: 1, maxLength: 200 } as const;
const PREFIX = { type: 'string', minLength: 1, maxLength: 64 } as const;
const PREFIXES = { type: 'array', items: PREFIX, maxItems: 1024 } as const;

const s = {
  vpnParams: { type: 'object', properties: { vpn: NAME }, required: ['vpn'], additionalProperties: false },
  gatewayParams: { type: 'object', properties: { gateway: NAME }, required: ['gateway'], additionalProperties: false },
  memberParams: {
    type: 'object',
    properties: { vpn: NAME, gateway: NAME },
    required: ['vpn', 'gateway'],
    additionalProperties: false,
  },
  createVpn: {
    type: 'object',
    properties: {
      name: NAME,
      id: { type: 'integer', minimum: 1, maximum: 4294967295 },
      mode: { type: 'string', enum: ['group', 'pairwise'] },
      rotationPeriodMs: { type: 'integer', minimum: 0 },
    },
    required: ['name'],
    additionalProperties: false,
  },
  deleteVpnQuery: {
    type: 'object',
    properties: { force: { type: 'string', enum: ['true', 'false'] } },
    additionalProperties: false,
  },
  rotate: { type: 'object', properties: { immediate: { type: 'boolean' } }, additionalProperties: false },
  addMember: {
    type: 'object',
    properties: { gateway: NAME, prefixes: { ...PREFIXES, minItems: 1 } },
    required: ['gateway', 'prefixes'],
    additionalProperties: false,
  },
  patchMember: { type: 'object', properties: { add: PREFIXES, remove: PREFIXES }, additionalProperties: false },
  addGateway: {
    type: 'object',
    properties: { name: NAME, address: { type: 'string', minLength: 1, maxLength: 64 } },
    required: ['name', 'address'],
    additionalProperties: false,
  },
  patchGateway: {
    type: 'object',
    properties: { address: { type: 'string', minLength: 1, maxLength: 64 } },
    additionalProperties: false,
  },
  revoke: {
    type: 'object',
    properties: { reason: { type: 'string', maxLength: 500 }, compromised: { type: 'boolean' } },
    additionalProperties: false,
  },
  token: {
    type: 'object',
    properties: { ttlSeconds: { type: 'integer', minimum: 1, maximum: 2592000 }, replace: { type: 'boolean' } },
    additionalProperties: false,
  },
  bundle: {
    type: 'object',
    properties: { replace: { type: 'boolean' }, validityDays: { type: 'integer', minimum: 1, maximum: 3650 } },
    additionalProperties: false,
  },
  enroll: {
    type: 'object',
    properties: {
      token: { type: 'string', minLength: 1, maxLength: 200 },
      csr: { type: 'string', minLength: 1, maxLength: 16384 },
    },
    required: ['token', 'csr'],
    additionalProperties: false,
  },
  directoryAdd: {
    type: 'object',
    properties: { prefix: PREFIX, note: { type: 'string', maxLength: 500 } },
    required: ['prefix'],
    additionalProperties: false,
  },
  directoryQuery: { type: 'object', properties: { prefix: PREFIX }, required: ['prefix'], additionalProperties: false },
  auditQuery: {
    type: 'object',
    properties: {
      after: { type: 'string', pattern: '^[0-9]{1,15}$' },
      before: { type: 'string', pattern: '^[0-9]{1,15}$' },
      limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
      vpn: NAME,
      gateway: NAME,
      actor: NAME,
      action: { type: 'string', minLength: 1, maxLength: 64 },
      from: { type: 'string', pattern: '^[0-9]{1,15}$' },
      to: { type: 'string', pattern: '^[0-9]{1,15}$' },
      order: { type: 'string', enum: ['asc', 'desc'] },
    },
    additionalProperties: false,
  },
  adminToken: { type: 'object', properties: { name: NAME }, required: ['name'], additionalProperties: false },
  adminTokenParams: {
    type: 'object',
    properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } },
    required: ['id'],
    additionalProperties: false,
  },
  ikeCertificate: {
    type: 'object',
    properties: { csr: { type: 'string', minLength: 1, maxLength: 16384 } },
    required: ['csr'],
    additionalProperties: false,
  },
  peerParams: { type: 'object', properties: { peer: NAME }, required: ['peer'], additionalProperties: false },
  shareParams: {
    type: 'object',
    properties: { vpn: NAME, peer: NAME },
    required: ['vpn', 'peer'],
    additionalProperties: false,
  },
  addPeer: {
    type: 'object',
    properties: {
      name: NAME,
      url: { type: 'string', minLength: 1, maxLength: 500 },
      root: { type: 'string', minLength: 1, maxLength: 16384 },
    },
    required: ['name', 'url', 'root'],
    additionalProperties: false,
  },
  share: { type: 'object', properties: { peer: NAME }, required: ['peer'], additionalProperties: false },
  federationMessage: {
    type: 'object',
    properties: {
      format: { type: 'string', maxLength: 64 },
      authority: NAME,
      issuing: { type: 'string', maxLength: 16384 },
      attributeAuthority: { type: 'string', maxLength: 16384 },
      vpns: { type: 'array', maxItems: 10000 },
      permits: { type: 'array', maxItems: 100000 },
    },
    required: ['format', 'authority', 'issuing', 'attributeAuthority', 'vpns', 'permits'],
    additionalProperties: false,
  },
  // The shape only; every field is checked and bounded by parseGatewayReport (reports.ts).
  gatewayReport: {
    type: 'object',
    properties: {
      format: { type: 'string', maxLength: 64 },
      intervalMs: { type: 'integer' },
      uptimeMs: { type: 'integer' },
      authorityVersion: { type: 'integer' },
      vpns: { type: 'array', maxItems: REPORT_LIMITS.vpns },
      paths: { type: 'array', maxItems: REPORT_LIMITS.paths },
      pathsTotal: { type: 'integer' },
      ike: { type: 'array', maxItems: REPORT_LIMITS.ike },
      counters: { type: 'object', maxProperties: REPORT_LIMITS.counters },
    },
    required: [
      'format',
      'intervalMs',
      'uptimeMs',
      'authorityVersion',
      'vpns',
      'paths',
      'pathsTotal',
      'ike',
      'counters',
    ],
    additionalProperties: false,
  },
  changesQuery: {
    type: 'object',
    properties: {
      since: { type: 'string', pattern: '^[0-9]{1,15}$' },
      wait: { type: 'string', pattern: '^[0-9]{1,2}$' },
    },
    additionalProperties: false,
  },
} as const;

/** Fastify's own error codes, as the API names them. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty-body',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
  FST_ERR_CTP_INVALID_JSON_BODY: 'bad-json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad-content-length',
};

type Req<T extends Record<string, unknown> = Record<string, never>> = FastifyRequest<{
  Body: T extends { Body: infer B } ? B : unknown;
  Params: T extends { Params: infer P } ? P : unknown;
  Querystring: T extends { Querystring: infer Q } ? Q : unknown;
}>;

/** `push`: the wake-up channel (push.ts); absent when it is off. */
export async function buildServer(
  service: AuthorityService,
  tls: TlsMaterial,
  log: Logger,
  push?: PushChannel,
): Promise<FastifyInstance> {
  // The TLS context, built again (with the new CRLs) whenever a CRL changes: one definition, so a
  // reload cannot drop a setting (it once dropped minVersion).
  const secureContext = (crls: { root: string; issuing: string }) => ({
    key: tls.key,
    cert: tls.cert,
    ca: tls.ca,
    crl: [crls.root, crls.issuing],
    ...(tls.groups && { ecdhCurve: tls.groups }),
    minVersion: 'TLSv1.2' as const,
    // Gateways on the wake-up channel fetch on a new connection each time, resuming their TLS
    // session with a ticket: keep tickets good for a day (node's default, 5 minutes, would make
    // most fetches full handshakes). Resumption still runs an ECDHE: forward secrecy is kept.
    sessionTimeout: SESSION_TIMEOUT_S,
    ...(tls.ticketKeys && { ticketKeys: tls.ticketKeys }),
  });
  const app = Fastify({
    https: {
      ...secureContext(service.currentCrls()),
      requestCert: true,
      // Administrators have no certificate: the gateway routes check `authorized` themselves.
      rejectUnauthorized: false,
    },
    loggerInstance: log,
    // Request logs would be one line per long poll of every gateway: changes are logged instead.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    bodyLimit: 1024 * 1024,
    forceCloseConnections: true,
    // Malformed percent-encoding (400) and parameters over maxParamLength (414): the API's error shape.
    frameworkErrors: (
      error: Error & { code?: string; statusCode?: number },
      _req: FastifyRequest,
      reply: FastifyReply,
    ) => {
      const long = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      reply
        .code(long ? 414 : (error.statusCode ?? 400))
        .type('application/json')
        .send(
          errorBody(
            long ? 'path-too-long' : 'bad-url',
            long
              ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`
              : 'the URL is not valid: a bad percent-encoding?',
          ),
        );
    },
    clientErrorHandler: clientError,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  const routes: RouteInfo[] = [];
  (app as unknown as Record<symbol, RouteInfo[]>)[ROUTES] = routes;
  app.addHook('onRoute', (o) => {
    // The API's routes (the console's pages are not part of it).
    if (!o.url.startsWith('/v1/')) return;
    for (const m of Array.isArray(o.method) ? o.method : [o.method]) {
      if (m === 'HEAD') continue;
      const schema = o.schema as { body?: object; querystring?: object } | undefined;
      routes.push({
        route: `${m} ${o.url.replace(/:([A-Za-z]+)/g, '{$1}')}`,
        body: schema?.body,
        query: schema?.querystring,
      });
    }
  });

  service.onCrlChange((c) => {
    (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext(secureContext(c));
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).send(error.toJSON());
    if (error.validation) return reply.code(400).send({ error: 'bad-request', message: error.message });
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .code(error.statusCode)
        .send({ error: FASTIFY_CODES[error.code ?? ''] ?? 'bad-request', message: error.message });
    }
    req.log.error({ err: error, url: req.url, method: req.method }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error (see the authority log)' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'not-found', message: `no such endpoint: ${req.method} ${req.url.split('?')[0]}` }),
  );

  // Bodyless POSTs (e.g. rotate) validate as {}.
  app.addHook('preValidation', async (req) => {
    if ((req.method === 'POST' || req.method === 'PATCH') && req.body === undefined) req.body = {};
    // No name or text the authority keeps may hold U+0000 (PostgreSQL cannot store it): refused
    // here, after authentication (onRequest) and before anything looks the value up.
    const nul = findNul(req.params, 'path') ?? findNul(req.query, 'query') ?? findNul(req.body, 'body');
    if (nul)
      throw new ApiError(400, 'bad-character', `${nul} contains U+0000 (NUL), which no name or text may contain`);
  });

  // A bearer token (CLI) or a web console session (whose changes carry its CSRF token).
  const admin = async (req: FastifyRequest): Promise<void> => {
    req.actor = (await authenticateAdminRequest(service, req)).actor;
  };
  const gateway = async (req: FastifyRequest): Promise<void> => {
    const sock = req.raw.socket as TLSSocket;
    // Checked once per connection (and again after a revocation): long polls repeat on one connection.
    req.gatewayName = await service.authenticateConnection(sock, () => {
      const cert = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate(false) : undefined;
      if (!cert || !cert.raw)
        throw unauthorized(
          'client-certificate-required',
          "this endpoint needs the gateway's enrolled certificate (mutual TLS)",
        );
      if (!sock.authorized) {
        const why = String(sock.authorizationError ?? 'unknown');
        throw forbidden(
          why === 'CERT_REVOKED' ? 'certificate-revoked' : 'bad-client-certificate',
          `the client certificate was refused: ${why}`,
        );
      }
      return { der: new Uint8Array(cert.raw), serial: cert.serialNumber };
    });
  };
  const actor = (req: FastifyRequest): string => req.actor!;

  // --- public
  app.get('/v1/health', async () => ({ ok: true, authority: service.name }));
  app.get('/v1/ca', async () => service.caView());
  app.get('/v1/ca/crl', async () => service.currentCrls());
  app.post(
    '/v1/enroll',
    { schema: { body: s.enroll } },
    async (req: Req<{ Body: { token: string; csr: string } }>, reply: FastifyReply) => {
      reply.code(201);
      return service.enroll(req.body);
    },
  );

  // --- administrators
  app.register(async (r) => {
    r.addHook('onRequest', admin);
    r.get('/v1/status', async () => ({ ...(await service.status()), ...(push && { push: push.status() }) }));
    const metrics = authorityMetrics(service, push);
    r.get('/v1/metrics', async (_req, reply: FastifyReply) => {
      reply.type(metrics.contentType);
      return metrics.metrics();
    });
    r.get('/v1/replicas', async () => service.listReplicas());

    r.get('/v1/vpns', async () => service.listVpns());
    r.post(
      '/v1/vpns',
      { schema: { body: s.createVpn } },
      async (
        req: Req<{ Body: { name: string; id?: number; mode?: 'group' | 'pairwise'; rotationPeriodMs?: number } }>,
        reply: FastifyReply,
      ) => {
        reply.code(201);
        return service.createVpn(actor(req), req.body);
      },
    );
    r.get('/v1/vpns/:vpn', { schema: { params: s.vpnParams } }, async (req: Req<{ Params: { vpn: string } }>) =>
      service.getVpn(req.params.vpn),
    );
    r.delete(
      '/v1/vpns/:vpn',
      { schema: { params: s.vpnParams, querystring: s.deleteVpnQuery } },
      async (req: Req<{ Params: { vpn: string }; Querystring: { force?: string } }>) => {
        await service.deleteVpn(actor(req), req.params.vpn, req.query.force === 'true');
        return { deleted: req.params.vpn };
      },
    );
    r.post(
      '/v1/vpns/:vpn/rotate',
      { schema: { params: s.vpnParams, body: s.rotate } },
      async (req: Req<{ Params: { vpn: string }; Body: { immediate?: boolean } }>) =>
        service.rotateVpn(actor(req), req.params.vpn, Boolean(req.body.immediate)),
    );
    r.post('/v1/rotate', { schema: { body: s.rotate } }, async (req: Req<{ Body: { immediate?: boolean } }>) => ({
      rotated: await service.rotateAll(actor(req), Boolean(req.body.immediate)),
    }));

    r.get('/v1/vpns/:vpn/members', { schema: { params: s.vpnParams } }, async (req: Req<{ Params: { vpn: string } }>) =>
      service.listMembers(req.params.vpn),
    );
    r.post(
      '/v1/vpns/:vpn/members',
      { schema: { params: s.vpnParams, body: s.addMember } },
      async (req: Req<{ Params: { vpn: string }; Body: { gateway: string; prefixes: string[] } }>) =>
        service.updateMembership(actor(req), req.params.vpn, req.body.gateway, {
          add: req.body.prefixes,
          create: true,
        }),
    );
    r.patch(
      '/v1/vpns/:vpn/members/:gateway',
      { schema: { params: s.memberParams, body: s.patchMember } },
      async (req: Req<{ Params: { vpn: string; gateway: string }; Body: { add?: string[]; remove?: string[] } }>) => ({
        member: await service.updateMembership(actor(req), req.params.vpn, req.params.gateway, {
          add: req.body.add,
          remove: req.body.remove,
        }),
      }),
    );
    r.delete(
      '/v1/vpns/:vpn/members/:gateway',
      { schema: { params: s.memberParams } },
      async (req: Req<{ Params: { vpn: string; gateway: string } }>) => {
        await service.updateMembership(actor(req), req.params.vpn, req.params.gateway, { removeAll: true });
        return { removed: { vpn: req.params.vpn, gateway: req.params.gateway } };
      },
    );

    r.get('/v1/gateways', async () => service.listGateways());
    r.post(
      '/v1/gateways',
      { schema: { body: s.addGateway } },
      async (req: Req<{ Body: { name: string; address: string } }>, reply: FastifyReply) => {
        reply.code(201);
        return service.addGateway(actor(req), req.body);
      },
    );
    r.get(
      '/v1/gateways/:gateway',
      { schema: { params: s.gatewayParams } },
      async (req: Req<{ Params: { gateway: string } }>) => service.getGateway(req.params.gateway),
    );
    r.patch(
      '/v1/gateways/:gateway',
      { schema: { params: s.gatewayParams, body: s.patchGateway } },
      async (req: Req<{ Params: { gateway: string }; Body: { address?: string } }>) =>
        service.updateGateway(actor(req), req.params.gateway, req.body),
    );
    r.get(
      '/v1/gateways/:gateway/certificate',
      { schema: { params: s.gatewayParams } },
      async (req: Req<{ Params: { gateway: string } }>) => service.gatewayCertificate(req.params.gateway),
    );
    r.post(
      '/v1/gateways/:gateway/revoke',
      { schema: { params: s.gatewayParams, body: s.revoke } },
      async (req: Req<{ Params: { gateway: string }; Body: { reason?: string; compromised?: boolean } }>) =>
        service.revokeGateway(actor(req), req.params.gateway, req.body),
    );
    r.post(
      '/v1/gateways/:gateway/tokens',
      { schema: { params: s.gatewayParams, body: s.token } },
      async (
        req: Req<{ Params: { gateway: string }; Body: { ttlSeconds?: number; replace?: boolean } }>,
        reply: FastifyReply,
      ) => {
        reply.code(201);
        return service.createEnrollToken(actor(req), req.params.gateway, {
          ttlMs: req.body.ttlSeconds === undefined ? undefined : req.body.ttlSeconds * 1000,
          replace: req.body.replace,
        });
      },
    );
    r.post(
      '/v1/gateways/:gateway/bundle',
      { schema: { params: s.gatewayParams, body: s.bundle } },
      async (
        req: Req<{ Params: { gateway: string }; Body: { replace?: boolean; validityDays?: number } }>,
        reply: FastifyReply,
      ) => {
        reply.code(201);
        reply.header('cache-control', 'no-store');
        return service.makeBundle(actor(req), req.params.gateway, req.body);
      },
    );

    r.get('/v1/directory', async () => service.directory());
    r.post(
      '/v1/directory',
      { schema: { body: s.directoryAdd } },
      async (req: Req<{ Body: { prefix: string; note?: string } }>) =>
        service.addDirectory(actor(req), req.body.prefix, req.body.note ?? ''),
    );
    r.delete(
      '/v1/directory',
      { schema: { querystring: s.directoryQuery } },
      async (req: Req<{ Querystring: { prefix: string } }>) => service.removeDirectory(actor(req), req.query.prefix),
    );

    r.get(
      '/v1/gateways/:gateway/status',
      { schema: { params: s.gatewayParams } },
      async (req: Req<{ Params: { gateway: string } }>) => service.gatewayStatus(req.params.gateway),
    );

    type AuditQuerystring = {
      after?: string;
      before?: string;
      limit?: string;
      vpn?: string;
      gateway?: string;
      actor?: string;
      action?: string;
      from?: string;
      to?: string;
      order?: 'asc' | 'desc';
    };
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    r.get('/v1/audit', { schema: { querystring: s.auditQuery } }, async (req: Req<{ Querystring: AuditQuerystring }>) =>
      service.audit({
        afterId: num(req.query.after),
        beforeId: num(req.query.before),
        limit: req.query.limit === undefined ? undefined : Math.max(1, Number(req.query.limit)),
        vpn: req.query.vpn,
        gateway: req.query.gateway,
        actor: req.query.actor,
        action: req.query.action,
        from: num(req.query.from),
        to: num(req.query.to),
        order: req.query.order,
      }),
    );

    r.get('/v1/admin-tokens', async () => service.listAdminTokens());
    r.post(
      '/v1/admin-tokens',
      { schema: { body: s.adminToken } },
      async (req: Req<{ Body: { name: string } }>, reply: FastifyReply) => {
        reply.code(201);
        return service.createAdminToken(actor(req), req.body.name);
      },
    );
    r.delete(
      '/v1/admin-tokens/:id',
      { schema: { params: s.adminTokenParams } },
      async (req: Req<{ Params: { id: string } }>) => {
        await service.revokeAdminToken(actor(req), req.params.id);
        return { revoked: req.params.id };
      },
    );
  });

  // --- federation: administrators peer and share; peer authorities exchange (mutual TLS)
  const federation = (): NonNullable<typeof service.federation> => {
    if (!service.federation)
      throw notFoundError('no-federation', 'this authority has no attribute authority: federation is off');
    return service.federation;
  };
  app.register(async (r) => {
    r.addHook('onRequest', admin);
    r.get('/v1/federation', async () => federation().view());
    r.post(
      '/v1/peers',
      { schema: { body: s.addPeer } },
      async (req: Req<{ Body: { name: string; url: string; root: string } }>, reply: FastifyReply) => {
        await federation().addPeer(actor(req), req.body);
        reply.code(201);
        return federation().view();
      },
    );
    r.delete(
      '/v1/peers/:peer',
      { schema: { params: s.peerParams } },
      async (req: Req<{ Params: { peer: string } }>) => {
        await federation().removePeer(actor(req), req.params.peer);
        return { removed: req.params.peer };
      },
    );
    r.post('/v1/federation/sync', async () => {
      await federation().syncAll();
      return federation().view();
    });
    r.post(
      '/v1/vpns/:vpn/shares',
      { schema: { params: s.vpnParams, body: s.share } },
      async (req: Req<{ Params: { vpn: string }; Body: { peer: string } }>, reply: FastifyReply) => {
        await federation().share(actor(req), req.params.vpn, req.body.peer);
        reply.code(201);
        return { vpn: req.params.vpn, peer: req.body.peer };
      },
    );
    r.delete(
      '/v1/vpns/:vpn/shares/:peer',
      { schema: { params: s.shareParams } },
      async (req: Req<{ Params: { vpn: string; peer: string } }>) => {
        await federation().unshare(actor(req), req.params.vpn, req.params.peer);
        return { vpn: req.params.vpn, unshared: req.params.peer };
      },
    );
  });
  app.register(async (r) => {
    // The peer authority is authenticated (onRequest) before its body is read or validated.
    r.addHook('onRequest', async (req) => {
      const sock = req.raw.socket as TLSSocket;
      const chain: Uint8Array[] = [];
      let c = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate(true) : undefined;
      while (c && c.raw && chain.length < 4) {
        chain.push(new Uint8Array(c.raw));
        const next = c.issuerCertificate;
        if (!next || next === c || next.fingerprint256 === c.fingerprint256) break;
        c = next;
      }
      if (chain.length === 0)
        throw unauthorized(
          'client-certificate-required',
          "this endpoint needs a peer authority's TLS certificate (mutual TLS)",
        );
      req.peerAuthority = await federation().authenticatePeer(chain);
    });
    r.post('/v1/federation/exchange', { schema: { body: s.federationMessage } }, async (req: Req<{ Body: unknown }>) =>
      federation().exchange(req.peerAuthority!, req.body),
    );
  });

  // --- gateways (mutual TLS)
  app.register(async (r) => {
    r.addHook('onRequest', gateway);
    r.get('/v1/gateway/self', async (req) => service.gatewaySelf(req.gatewayName!));
    // Status reports: bounded in size here, in entries and rate by reports.ts.
    r.post(
      '/v1/gateway/status',
      { bodyLimit: REPORT_LIMITS.bytes, schema: { body: s.gatewayReport } },
      async (req: Req<{ Body: unknown }>) => service.reportStatus(req.gatewayName!, req.body),
    );
    r.post(
      '/v1/gateway/ike-certificate',
      { schema: { body: s.ikeCertificate } },
      async (req: Req<{ Body: { csr: string } }>) => service.issueIkeCertificate(req.gatewayName!, req.body.csr),
    );
    // The wake-up channel's key (push.ts); 404 when it is off: the gateway stays on the long poll.
    r.post('/v1/gateway/push', async (req) => {
      if (!push) throw notFoundError('push-off', 'this authority has no wake-up channel: use the long poll');
      return push.offer(req.gatewayName!);
    });
    r.get(
      '/v1/gateway/changes',
      { schema: { querystring: s.changesQuery } },
      async (req: Req<{ Querystring: { since?: string; wait?: string } }>, reply: FastifyReply) => {
        const since = req.query.since === undefined ? 0 : Number(req.query.since);
        const wait = req.query.wait === undefined ? 0 : Number(req.query.wait) * 1000;
        // The gateway going away ends its wait at once (nothing of it is kept until the deadline).
        const hangup = new Hangup();
        reply.raw.on('close', hangup.fire);
        try {
          return await service.changes(req.gatewayName!, since, wait, hangup);
        } finally {
          reply.raw.off('close', hangup.fire);
        }
      },
    );
  });

  await registerConsole(app, service);
  return app;
}

const ROUTES = Symbol('kasane routes');

export interface RouteInfo {
  /** "METHOD /path/{param}" */
  route: string;
  body?: object;
  query?: object;
}

/** Every route the server registers with its body and query schemas (for the OpenAPI sync test). */
export function routeList(app: FastifyInstance): RouteInfo[] {
  return [...((app as unknown as Record<symbol, RouteInfo[]>)[ROUTES] ?? [])].sort((a, b) =>
    a.route < b.route ? -1 : 1,
  );
}

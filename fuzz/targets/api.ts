// The authority's API as a client sees it: requests to every administrator and public route (valid
// ones, then mutated: fields of other types, NUL, bidi and huge strings, unknown fields, odd URLs)
// through the real server (fastify's inject, no sockets), and the wire documents the two sides of
// federation and delivery read (parseFederationMessage, parseDelivery). No 5xx, and every refusal
// is {error, message}.
import { ApiError } from '../../src/authority/errors.js';
import { parseFederationMessage } from '../../src/authority/federation.js';
import { parseDelivery } from '../../src/authority/snapshot.js';
import { bundleGateway, startTestAuthority, type TestAuthority } from '../../test/authority/helpers/authority.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateBytes, mutateJson } from '../mutate.js';
import { refusedCleanly, typedResult } from '../oracle.js';

const METHODS = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT'];

interface Call {
  m: string;
  u: string;
  b?: unknown;
  /** Send without the administrator token. */
  anon?: boolean;
}

const CALLS: Call[] = [
  { m: 'GET', u: '/v1/health', anon: true },
  { m: 'GET', u: '/v1/status' },
  { m: 'GET', u: '/v1/vpns' },
  { m: 'POST', u: '/v1/vpns', b: { name: 'v1', id: 100, mode: 'group', rotationPeriodMs: 3_600_000 } },
  { m: 'GET', u: '/v1/vpns/corp' },
  { m: 'DELETE', u: '/v1/vpns/v1?force=true' },
  { m: 'POST', u: '/v1/vpns/corp/rotate', b: { immediate: true } },
  { m: 'POST', u: '/v1/rotate', b: {} },
  { m: 'GET', u: '/v1/vpns/corp/members' },
  { m: 'POST', u: '/v1/vpns/corp/members', b: { gateway: 'gw1', prefixes: ['10.1.0.0/16'] } },
  { m: 'PATCH', u: '/v1/vpns/corp/members/gw1', b: { add: ['10.5.0.0/16'], remove: [] } },
  { m: 'DELETE', u: '/v1/vpns/corp/members/gw2' },
  { m: 'GET', u: '/v1/gateways' },
  { m: 'POST', u: '/v1/gateways', b: { name: 'gw9', address: '192.0.2.9' } },
  { m: 'GET', u: '/v1/gateways/gw1' },
  { m: 'PATCH', u: '/v1/gateways/gw1', b: { address: '192.0.2.1' } },
  { m: 'GET', u: '/v1/gateways/gw1/certificate' },
  { m: 'POST', u: '/v1/gateways/gw2/revoke', b: { reason: 'test', compromised: false } },
  { m: 'POST', u: '/v1/gateways/gw9/tokens', b: { ttlSeconds: 60 } },
  { m: 'GET', u: '/v1/directory' },
  { m: 'POST', u: '/v1/directory', b: { prefix: '172.16.0.0/12', note: 'future' } },
  { m: 'DELETE', u: '/v1/directory?prefix=172.16.0.0%2F12' },
  { m: 'GET', u: '/v1/audit?limit=10&vpn=corp' },
  { m: 'GET', u: '/v1/admin-tokens' },
  { m: 'POST', u: '/v1/admin-tokens', b: { name: 'ops' } },
  { m: 'DELETE', u: '/v1/admin-tokens/0000000000000000' },
  { m: 'GET', u: '/v1/federation' },
  {
    m: 'POST',
    u: '/v1/peers',
    b: {
      name: 'peer',
      url: 'https://192.0.2.200:7443',
      root: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    },
  },
  { m: 'DELETE', u: '/v1/peers/peer' },
  { m: 'POST', u: '/v1/vpns/pw/shares', b: { peer: 'peer' } },
  { m: 'DELETE', u: '/v1/vpns/pw/shares/peer' },
  {
    m: 'POST',
    u: '/v1/enroll',
    b: {
      token: 'kasane-enroll-v1.0000000000000000.' + 'A'.repeat(43),
      csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
    },
    anon: true,
  },
];

/** What an HTTP client cannot put in a request path: spaces, control characters, anything not ASCII. */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNSENDABLE = /[\s\u0000-\u001f\u007f-\uffff]/;
const enc = new TextEncoder();
const dec = new TextDecoder();

export const api: FuzzTarget = {
  name: 'api',
  description:
    'requests to every administrator and public route of a real authority (fastify inject): no 5xx, every refusal {error, message}',
  async setup() {
    const t: TestAuthority = await startTestAuthority();
    await t.admin.createVpn({ name: 'corp', id: 10 });
    await t.admin.createVpn({ name: 'pw', id: 20, mode: 'pairwise' });
    const g1 = await bundleGateway(t, 'gw1', '192.0.2.1');
    const g2 = await bundleGateway(t, 'gw2', '192.0.2.2');
    g1.client.close();
    g2.client.close();
    await t.admin.addMember('corp', 'gw1', ['10.1.0.0/16']);
    await t.admin.addMember('corp', 'gw2', ['10.2.0.0/16']);
    const app = t.running.app;
    const seeds = CALLS.map((c) => enc.encode(JSON.stringify(c)));
    return {
      seeds,
      // Authenticated requests that do real work (a rotation seals a key for every member, a bundle makes a key pair).
      slowMs: 100,
      next: (rng) => (rng.chance(0.03) ? rng.bytes(rng.size(300)) : mutateJson(rng, rng.pick(seeds), seeds)),
      async run(input) {
        let call: Call;
        try {
          call = JSON.parse(dec.decode(input)) as Call;
        } catch {
          call = { m: 'POST', u: '/v1/vpns', b: undefined };
          const r = await app.inject({
            method: 'POST',
            url: '/v1/vpns',
            payload: Buffer.from(input),
            headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
          });
          return checkAnswer(r.statusCode, r.body, 'POST /v1/vpns with raw bytes');
        }
        if (!call || typeof call !== 'object') return;
        const method = typeof call.m === 'string' && METHODS.includes(call.m) ? call.m : 'GET';
        const url =
          typeof call.u === 'string' && call.u.startsWith('/') && !UNSENDABLE.test(call.u) ? call.u : '/v1/vpns';
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (!call.anon) headers.authorization = `Bearer ${t.adminToken}`;
        const r = await app.inject({
          method: method as 'GET',
          url,
          payload: call.b === undefined ? undefined : JSON.stringify(call.b),
          headers,
        });
        // As the server sees the path (dot segments resolved): outside /v1 the web console answers
        // with its pages (index.html for any page path), not the API.
        const path = new URL(url, 'https://authority.invalid').pathname;
        if (path !== '/v1' && !path.startsWith('/v1/')) {
          if (r.statusCode >= 500)
            throw new Finding(
              'untyped-error',
              `${method} ${url} (a console path) answered ${r.statusCode}: ${r.body.slice(0, 300)}`,
            );
          return;
        }
        checkAnswer(r.statusCode, r.body, `${method} ${url}`);
      },
      close: () => t.close(),
    };
  },
};

function checkAnswer(status: number, body: string, what: string): void {
  if (status >= 500) throw new Finding('untyped-error', `${what} answered ${status}: ${body.slice(0, 300)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Finding(
      'untyped-error',
      `${what} answered ${status} with a body that is not JSON: ${body.slice(0, 200)}`,
    );
  }
  if (status >= 400) {
    const keys = parsed && typeof parsed === 'object' ? Object.keys(parsed).sort().join(',') : '';
    const e = parsed as { error?: unknown; message?: unknown };
    if (keys !== 'error,message' || typeof e.error !== 'string' || typeof e.message !== 'string')
      throw new Finding('untyped-error', `${what} answered ${status} without {error, message}: ${body.slice(0, 200)}`);
  }
}

export const apiWire: FuzzTarget = {
  name: 'api-wire',
  description:
    'documents the authorities and gateways read from each other: federation messages (parseFederationMessage) and deliveries (parseDelivery)',
  async setup() {
    const t = await startTestAuthority();
    await t.admin.createVpn({ name: 'corp', id: 10 });
    const g1 = await bundleGateway(t, 'gw1', '192.0.2.1');
    await bundleGateway(t, 'gw2', '192.0.2.2');
    await t.admin.addMember('corp', 'gw1', ['10.1.0.0/16']);
    await t.admin.addMember('corp', 'gw2', ['10.2.0.0/16']);
    const delivery = (await g1.client.changes(0)).delivery;
    g1.client.close();
    await t.close();
    const federation = {
      format: 'kasane-federation/1',
      authority: 'peer',
      issuing: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      attributeAuthority: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      vpns: [
        {
          name: 'pw',
          id: 20,
          members: [{ gateway: 'gx', address: '192.0.2.7', prefixes: ['10.7.0.0/16'], certificate: 'AAAA' }],
        },
      ],
      permits: [{ vpn: 'pw', holder: 'gw1', der: 'AAAA', notAfter: 1 }],
    };
    const seeds = [
      enc.encode(JSON.stringify({ kind: 'delivery', doc: delivery })),
      enc.encode(JSON.stringify({ kind: 'federation', doc: federation })),
    ];
    return {
      seeds,
      next: (rng) =>
        rng.chance(0.9) ? mutateJson(rng, rng.pick(seeds), seeds) : mutateBytes(rng, rng.pick(seeds), seeds),
      run(input) {
        let v: { kind?: unknown; doc?: unknown };
        try {
          v = JSON.parse(dec.decode(input)) as typeof v;
        } catch {
          return;
        }
        if (!v || typeof v !== 'object') return;
        if (v.kind === 'delivery') return typedResult(parseDelivery(v.doc), 'parseDelivery');
        try {
          parseFederationMessage(v.doc);
        } catch (e) {
          if (!(e instanceof ApiError) || e.status !== 400) refusedCleanly(e, 'parseFederationMessage');
        }
      },
    };
  },
};

// Every route refuses every credential that does not own it (issue 11): no credentials, a wrong,
// malformed or revoked administrator token, a gateway certificate on an administrator route and
// the reverse, a revoked, superseded or expired gateway certificate, another authority's gateway, a used or
// expired enrollment token. Each with its status and code, and nothing changes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuthorityClient, parseBundle } from '../../src/authority/client.js';
import { routeList } from '../../src/authority/server.js';
import { joinPem } from '../../src/pki/keys.js';
import { createCsr } from '../../src/pki/ca.js';
import { generateKeyPair } from '../../src/pki/keys.js';
import type { GatewayBundle } from '../../src/authority/wire.js';
import { apiError, startTestAuthority, type TestAuthority } from './helpers/authority.js';

type Kind = 'admin' | 'gateway' | 'peer-authority' | 'console-session';
/** What each kind of route answers a credential: status and code (none where the credential is accepted). */
type Expect = Partial<Record<Kind, [number, string]>>;
// POST /v1/session signs in with the administrator token in its body (test/authority/console-api.test.ts).
const PUBLIC = ['GET /v1/health', 'GET /v1/ca', 'GET /v1/ca/crl', 'POST /v1/enroll', 'POST /v1/session'];

function kindOf(route: string): Kind {
  const path = route.split(' ')[1];
  if (path.startsWith('/v1/gateway/')) return 'gateway';
  if (path === '/v1/federation/exchange') return 'peer-authority';
  // The console's session is its cookie: no bearer token or certificate stands for it.
  if (path === '/v1/session') return 'console-session';
  return 'admin';
}

describe('authorization: every route refuses every credential that does not own it', () => {
  let t: TestAuthority;
  let other: TestAuthority;
  let clock = Date.now();
  const clients: AuthorityClient[] = [];
  /** Credential name -> a client presenting it, and what each kind of route answers. */
  let credentials: {
    name: string;
    client: AuthorityClient;
    why?: RegExp;
    expect: Expect;
  }[];

  const withCert = (b: GatewayBundle, token?: string): AuthorityClient => {
    const c = new AuthorityClient({
      url: t.url,
      ca: t.ca,
      cert: joinPem(b.certificate, b.chain[0]),
      key: b.privateKey!,
      adminToken: token,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    t = await startTestAuthority({ now: () => clock });
    other = await startTestAuthority({ name: 'another authority' });
    // A certificate that has expired: issued (valid one day) while the authority's clock read three days ago.
    clock -= 3 * 86_400_000;
    await t.admin.addGateway('gw-expired', '192.0.2.4');
    const expired = parseBundle(JSON.stringify(await t.admin.makeBundle('gw-expired', { validityDays: 1 })));
    clock += 3 * 86_400_000;
    await t.admin.createVpn({ name: 'corp' });
    await t.admin.addGateway('gw1', '192.0.2.1');
    const gw1 = parseBundle(JSON.stringify(await t.admin.makeBundle('gw1')));
    await t.admin.addMember('corp', 'gw1', ['10.1.0.0/16']);
    await t.admin.addGateway('gw-revoked', '192.0.2.2');
    const revoked = parseBundle(JSON.stringify(await t.admin.makeBundle('gw-revoked')));
    await t.admin.revokeGateway('gw-revoked', { reason: 'test' });
    await t.admin.addGateway('gw-renewed', '192.0.2.3');
    const superseded = parseBundle(JSON.stringify(await t.admin.makeBundle('gw-renewed')));
    await t.admin.makeBundle('gw-renewed', { replace: true });
    await other.admin.addGateway('gw1', '192.0.2.1');
    const foreign = parseBundle(JSON.stringify(await other.admin.makeBundle('gw1')));
    const spare = await t.admin.createAdminToken('spare');
    await t.admin.revokeAdminToken(spare.info.id);
    const token = (s: string) => t.clientWith(s);
    // Without a client certificate, the routes that take one ask for it, whatever the token.
    const noCertificate: Expect = {
      gateway: [401, 'client-certificate-required'],
      'peer-authority': [401, 'client-certificate-required'],
    };
    // A gateway's certificate is neither an administrator's credential nor a peer authority's.
    const gatewayCertificate: Expect = { admin: [401, 'unauthorized'], 'peer-authority': [403, 'unknown-peer'] };
    credentials = [
      {
        name: 'no credentials',
        client: token(undefined as unknown as string),
        expect: { admin: [401, 'unauthorized'], ...noCertificate },
      },
      {
        name: 'a wrong administrator token',
        client: token(`kasane-admin-v1.${spare.info.id}.${'B'.repeat(43)}`),
        expect: { admin: [401, 'bad-token'], ...noCertificate },
      },
      {
        name: 'a malformed administrator token',
        client: token('kasane-admin-v1.xyz'),
        expect: { admin: [401, 'bad-token'], ...noCertificate },
      },
      {
        name: 'a revoked administrator token',
        client: token(spare.token),
        expect: { admin: [401, 'token-revoked'], ...noCertificate },
      },
      {
        name: 'a valid administrator token on a gateway route',
        client: token(t.adminToken),
        expect: noCertificate,
      },
      {
        name: "a gateway's certificate on an administrator route",
        client: withCert(gw1),
        expect: gatewayCertificate,
      },
      {
        name: 'a revoked gateway’s certificate',
        client: withCert(revoked),
        expect: { ...gatewayCertificate, gateway: [403, 'certificate-revoked'] },
      },
      {
        name: 'a superseded certificate',
        client: withCert(superseded),
        expect: { ...gatewayCertificate, gateway: [403, 'certificate-revoked'] },
      },
      {
        name: 'an expired gateway certificate',
        client: withCert(expired),
        why: /CERT_HAS_EXPIRED/,
        expect: { ...gatewayCertificate, gateway: [403, 'bad-client-certificate'] },
      },
      {
        name: "another authority's gateway",
        client: withCert(foreign),
        expect: { ...gatewayCertificate, gateway: [403, 'bad-client-certificate'] },
      },
      {
        name: 'a revoked gateway’s certificate with a revoked administrator token',
        client: withCert(revoked, spare.token),
        expect: { admin: [401, 'token-revoked'], gateway: [403, 'certificate-revoked'] },
      },
    ];
  });

  after(async () => {
    for (const c of clients) c.close();
    await t?.close();
    await other?.close();
  });

  it('a table of routes × credentials: each refused with its status and code, nothing changed', async () => {
    const before = {
      status: await t.admin.status(),
      audit: await t.admin.audit({ limit: 1000 }),
      gateways: await t.admin.listGateways(),
    };
    const routes = routeList(t.running.app)
      .map((r) => r.route)
      .filter((r) => !PUBLIC.includes(r));
    assert.ok(routes.length >= 35, `${routes.length} routes`);
    let tried = 0;
    for (const route of routes) {
      const [method, path] = route.split(' ');
      const url = path
        .replace('{vpn}', 'corp')
        .replace('{gateway}', 'gw1')
        .replace('{peer}', 'nobody')
        .replace('{id}', '0000000000000000');
      const kind = kindOf(route);
      for (const cred of credentials) {
        const expected = kind === 'console-session' ? ([401, 'unauthorized'] as [number, string]) : cred.expect[kind];
        if (!expected) continue; // this credential owns routes of this kind
        const e = await apiError(
          cred.client.request(method, url, method === 'POST' || method === 'PATCH' ? {} : undefined),
        );
        assert.deepEqual([e.status, e.code], expected, `${route} with ${cred.name}: ${e.message}`);
        if (cred.why && kind === 'gateway') assert.match(e.message, cred.why, `${route} with ${cred.name}`);
        tried++;
      }
    }
    assert.ok(tried >= 300, `${tried} requests`);
    assert.equal((await t.admin.status()).version, before.status.version, 'no version taken');
    assert.deepEqual(await t.admin.audit({ limit: 1000 }), before.audit, 'no audit entry');
    assert.deepEqual(await t.admin.listGateways(), before.gateways);
  });

  it('enrollment takes only a valid, unused, unexpired token for that gateway', async () => {
    const csr = await createCsr(await generateKeyPair(), 'gw-new');
    await t.admin.addGateway('gw-new', '192.0.2.9');
    const tok = await t.admin.createEnrollToken('gw-new', { ttlSeconds: 60 });
    const anon = t.clientWith(undefined);
    const cases: [string, string, number, string][] = [
      ['no token', '', 400, 'bad-request'],
      ['the administrator token', t.adminToken, 401, 'bad-token'],
      ['a token with a wrong secret', tok.token.replace(/\.[^.]+$/, `.${'C'.repeat(43)}`), 401, 'bad-token'],
    ];
    for (const [what, token, status, code] of cases) {
      const e = await apiError(anon.request('POST', '/v1/enroll', { token, csr }));
      assert.deepEqual([e.status, e.code], [status, code], what);
    }
    clock += 61_000;
    const expired = await apiError(anon.request('POST', '/v1/enroll', { token: tok.token, csr }));
    assert.deepEqual([expired.status, expired.code], [401, 'token-expired']);
    clock -= 61_000;
    await anon.request('POST', '/v1/enroll', { token: tok.token, csr });
    const used = await apiError(anon.request('POST', '/v1/enroll', { token: tok.token, csr }));
    assert.deepEqual([used.status, used.code], [401, 'token-used']);
  });
});

// The web console's side of the authority's HTTPS server (src/authority/console.ts), over real
// HTTPS on 127.0.0.1. It proves: the built console is served at / (and every page path) with a
// strict Content-Security-Policy and hardening headers, the API stays under /v1; sign-in sets an
// HttpOnly, Secure, SameSite=Strict __Host- cookie and refuses wrong tokens; with the cookie the
// same /v1 API works for reading, and changes need the session's CSRF token and the own origin;
// the CLI's bearer token needs none; sign-out ends the session; live events arrive as server-sent
// events after each change and each gateway report; gateways report their status over mutual TLS,
// bounded in size and rate, and `kasane gateway list/show` shows it.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { CONTENT_SECURITY_POLICY, loadConsoleAssets } from '../../src/authority/console.js';
import { REPORT_FORMAT } from '../../src/authority/wire.js';
import { reportOf } from '../../src/gateway/status-report.js';
import { cliOutput } from '../../src/cli/commands/authority-common.js';
import { main } from '../../src/cli/main.js';
import { bundleGateway, startTestAuthority, type TestAuthority, type TestGateway } from './helpers/authority.js';
import { tampered } from '../support/tokens.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: () => { error?: string; [k: string]: unknown };
}

function request(
  t: TestAuthority,
  method: string,
  path: string,
  o: { body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
    const headers: Record<string, string> = {
      ...(payload !== undefined && { 'content-type': 'application/json' }),
      ...o.headers,
    };
    const req = https.request(new URL(path, t.url), { method, ca: t.ca, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body,
          json: () => JSON.parse(body) as { error?: string },
        }),
      );
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const built = loadConsoleAssets().size > 0;

describe('the web console on the authority', () => {
  let t: TestAuthority;
  let g1: TestGateway;
  before(async () => {
    t = await startTestAuthority({ name: 'console' });
    await t.admin.createVpn({ name: 'VPN1', id: 1 });
    g1 = await bundleGateway(t, 'G1', '10.200.1.2');
    await t.admin.addMember('VPN1', 'G1', ['10.1.0.0/24']);
  });
  after(() => t.close());

  const signIn = async () => {
    const r = await request(t, 'POST', '/v1/session', { body: { token: t.adminToken } });
    assert.equal(r.status, 201, r.body);
    const cookie = String((r.headers['set-cookie'] as string[])[0]).split(';')[0];
    return { cookie, csrf: r.json().csrfToken as string, answer: r };
  };

  it(
    'serves the console at / and at every page path, with a strict CSP; the API stays under /v1',
    { skip: built ? false : 'the console is not built (npm run build)' },
    async () => {
      const page = await request(t, 'GET', '/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(page.body, /<div id="app">/);
      assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
      assert.doesNotMatch(page.body, /<style|\sstyle=/, 'no inline style');
      assert.equal(page.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
      assert.match(CONTENT_SECURITY_POLICY, /default-src 'none'/);
      assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
      assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|https?:|\*/);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.equal(page.headers['x-frame-options'], 'DENY');
      assert.equal(page.headers['referrer-policy'], 'no-referrer');
      for (const path of ['/map', '/vpns/VPN1', '/gateways/G1', '/audit?actor=x'])
        assert.equal((await request(t, 'GET', path)).body, page.body, path);
      const js = /src="(\/assets\/app-[^"]+\.js)"/.exec(page.body)![1];
      const asset = await request(t, 'GET', js);
      assert.equal(asset.status, 200);
      assert.match(String(asset.headers['content-type']), /^text\/javascript/);
      assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(
        (await request(t, 'GET', js, { headers: { 'if-none-match': String(asset.headers.etag) } })).status,
        304,
      );
      assert.equal((await request(t, 'GET', '/assets/nothing.js')).status, 404);
      const api = await request(t, 'GET', '/v1/nothing');
      assert.equal(api.status, 404);
      assert.equal(api.json().error, 'not-found');
      assert.equal(
        (await request(t, 'GET', '/v1/health')).headers['content-security-policy'],
        CONTENT_SECURITY_POLICY,
        'API answers carry it too',
      );
    },
  );

  it('sign-in: an HttpOnly, Secure, SameSite=Strict __Host- session cookie; a wrong token is refused', async () => {
    const wrong = await request(t, 'POST', '/v1/session', { body: { token: tampered(t.adminToken, 4) } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json().error, 'bad-token');
    assert.equal(wrong.headers['set-cookie'], undefined);
    assert.equal((await request(t, 'POST', '/v1/session', { body: { token: t.adminToken, extra: 1 } })).status, 400);
    assert.equal(
      (
        await request(t, 'POST', '/v1/session', {
          body: { token: t.adminToken },
          headers: { origin: 'https://evil.example' },
        })
      ).status,
      403,
    );
    const { answer, cookie } = await signIn();
    const set = String((answer.headers['set-cookie'] as string[])[0]);
    assert.match(set, /^__Host-kasane-session=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.doesNotMatch(answer.body, new RegExp(t.adminToken.split('.')[2]), 'the token is not echoed');
    const s = await request(t, 'GET', '/v1/session', { headers: { cookie } });
    assert.equal(s.status, 200);
    assert.equal(s.json().actor, 'admin:initial');
    assert.equal((await request(t, 'GET', '/v1/session')).status, 401);
  });

  it('with the session: the same /v1 API reads; a change needs the CSRF token (and the own origin); the bearer token needs none', async () => {
    const { cookie, csrf } = await signIn();
    const host = new URL(t.url).host;
    assert.equal((await request(t, 'GET', '/v1/vpns', { headers: { cookie } })).status, 200);
    const none = await request(t, 'POST', '/v1/vpns', { body: { name: 'by-console' }, headers: { cookie } });
    assert.equal(none.status, 403);
    assert.equal(none.json().error, 'csrf-token-required');
    const wrong = await request(t, 'POST', '/v1/vpns', {
      body: { name: 'by-console' },
      headers: { cookie, 'x-kasane-csrf': csrf.slice(0, -1) + (csrf.endsWith('A') ? 'B' : 'A') },
    });
    assert.equal(wrong.json().error, 'bad-csrf-token');
    const cross = await request(t, 'POST', '/v1/vpns', {
      body: { name: 'by-console' },
      headers: { cookie, 'x-kasane-csrf': csrf, origin: 'https://evil.example' },
    });
    assert.equal(cross.json().error, 'cross-origin');
    assert.equal((await request(t, 'DELETE', '/v1/vpns/VPN1?force=true', { headers: { cookie } })).status, 403);
    assert.deepEqual(
      (await t.admin.listVpns()).map((v) => v.name),
      ['VPN1'],
      'nothing was changed',
    );
    const ok = await request(t, 'POST', '/v1/vpns', {
      body: { name: 'by-console' },
      headers: { cookie, 'x-kasane-csrf': csrf, origin: `https://${host}` },
    });
    assert.equal(ok.status, 201, ok.body);
    const entry = (await t.admin.audit({ action: 'vpn.create', order: 'desc', limit: 1 }))[0];
    assert.deepEqual(
      [entry.actor, entry.vpn],
      ['admin:initial', 'by-console'],
      'the audit log names the administrator',
    );
    await t.admin.deleteVpn('by-console'); // bearer: no CSRF token involved
  });

  it('sign-out needs the CSRF token, clears the cookie, and ends the session', async () => {
    const { cookie, csrf } = await signIn();
    assert.equal((await request(t, 'DELETE', '/v1/session', { headers: { cookie } })).status, 403);
    const out = await request(t, 'DELETE', '/v1/session', { headers: { cookie, 'x-kasane-csrf': csrf } });
    assert.equal(out.status, 200);
    assert.match(String((out.headers['set-cookie'] as string[])[0]), /^__Host-kasane-session=; .*Max-Age=0/);
    const after = await request(t, 'GET', '/v1/vpns', { headers: { cookie } });
    assert.equal(after.status, 401);
    assert.equal(after.json().error, 'session-ended');
  });

  it('live events: a change and a gateway report arrive as server-sent events', async () => {
    const { cookie } = await signIn();
    const events: string[] = [];
    const stream = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = https.get(new URL('/v1/events', t.url), { ca: t.ca, headers: { cookie }, agent: false }, resolve);
      req.on('error', reject);
    });
    assert.equal(stream.statusCode, 200);
    assert.match(String(stream.headers['content-type']), /^text\/event-stream/);
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => events.push(d));
    const seen = async (re: RegExp) => {
      for (let i = 0; i < 100 && !re.test(events.join('')); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(events.join(''), re);
    };
    await seen(/event: hello\ndata: \{"version":\d+,"actor":"admin:initial"\}/);
    await t.admin.addMember('VPN1', 'G1', ['10.1.1.0/24']);
    await seen(/event: change\ndata: \{"type":"change","version":\d+\}/);
    await g1.client.reportStatus(
      reportOf(
        {
          gateway: 'G1',
          address: '10.200.1.2',
          authorityVersion: 1,
          vpns: [],
          startedAt: 0,
          now: 1000,
          paths: [],
          stats: {},
        },
        10_000,
      ),
    );
    await seen(/event: report\ndata: \{"type":"report","gateway":"G1"\}/);
    stream.destroy();
    assert.equal((await request(t, 'GET', '/v1/events')).status, 401, 'no session, no token: no events');
  });

  it('gateways report over mutual TLS, bounded in size and rate; the CLI lists and shows the report', async () => {
    const g = await bundleGateway(t, 'G2', '10.200.2.2');
    const report = reportOf(
      {
        gateway: 'G2',
        address: '10.200.2.2',
        authorityVersion: 3,
        vpns: [{ id: 1, name: 'VPN1', mode: 'group', epoch: 1 }],
        startedAt: Date.now() - 60_000,
        now: Date.now(),
        paths: [
          {
            local: '10.2.0.10',
            remote: '10.1.0.10',
            action: 'encrypt',
            vpnId: 1,
            vpnName: 'VPN1',
            peer: 'G1',
            reason: 'search',
            installedAt: Date.now() - 5000,
            lastUsed: Date.now() - 100,
            expiresAt: 0,
            packets: 42,
            bytes: 4200,
          },
        ],
        stats: { 'search.started': 1, 'drop.unknown-spi': 3, 'executor.drop.replay': 2 },
      },
      10_000,
    );
    assert.deepEqual(await g.client.reportStatus(report), { accepted: true, nextInMs: 10_000 });
    const again = await g.client.reportStatus(report).then(
      () => ({ status: 200, code: 'accepted' }),
      (e: { status: number; code: string }) => e,
    );
    assert.deepEqual([again.status, again.code], [429, 'report-too-frequent']);
    // An administrator cannot report for a gateway; a gateway cannot read the administrators' API.
    assert.equal(
      (
        await request(t, 'POST', '/v1/gateway/status', {
          body: report,
          headers: { authorization: `Bearer ${t.adminToken}` },
        })
      ).status,
      401,
    );
    assert.equal(
      (await request(t, 'POST', '/v1/gateway/status', { body: report })).status,
      401,
      'no certificate, no report',
    );
    const big = await g.client
      .request('POST', '/v1/gateway/status', { format: REPORT_FORMAT, pad: 'x'.repeat(300 * 1024) })
      .catch((e: { status: number; code: string }) => e);
    assert.deepEqual(
      [(big as { status: number }).status, (big as { code: string }).code],
      [413, 'body-too-large'],
      'over 256 KiB is refused before it is parsed',
    );
    const view = await t.admin.gatewayStatus('G2');
    assert.deepEqual(
      view.report.paths.map((p) => [p.remote, p.action, p.packets]),
      [['10.1.0.10', 'encrypt', 42]],
    );
    assert.equal(view.online, true);

    const out: string[] = [];
    const { write } = cliOutput;
    cliOutput.write = (s) => void out.push(s);
    try {
      const conn = ['--url', t.url, '--token', t.adminToken, '--ca', `${t.dir}/a/certs/root-ca.pem`];
      assert.equal(await main(['gateway', 'list', ...conn]), 0);
      const line = out
        .join('')
        .split('\n')
        .find((l) => l.startsWith('G2'))!;
      assert.match(line, /G2\s+active\s+10\.200\.2\.2\s+-\s+online \d+s ago\s+1\s+1\s+1\s+5\s/);
      out.length = 0;
      assert.equal(await main(['gateway', 'show', 'G2', ...conn]), 0);
      const shown = out.join('');
      assert.match(shown, /Status reported .* online/);
      assert.match(shown, /10\.2\.0\.10\s+10\.1\.0\.10\s+encrypt\s+VPN1\s+G1/);
      assert.match(shown, /drop\.unknown-spi\s+3/);
    } finally {
      cliOutput.write = write;
    }
  });

  it('the audit filters of the console page and of `kasane audit`: who, what, when, newest first', async () => {
    const { cookie } = await signIn();
    const asBob = t.clientWith((await t.admin.createAdminToken('bob')).token);
    await asBob.createVpn({ name: 'by-bob' });
    await asBob.addMember('by-bob', 'G1', ['10.9.0.0/24']);
    const since = Date.now() - 60_000;
    const q = `/v1/audit?actor=admin%3Abob&action=member.&from=${since}&order=desc`;
    const page = (await request(t, 'GET', q, { headers: { cookie } })).json() as unknown as {
      actor: string;
      action: string;
      vpn: string;
    }[];
    assert.deepEqual(
      page.map((e) => [e.actor, e.action, e.vpn]),
      [['admin:bob', 'member.add', 'by-bob']],
    );
    assert.equal(
      (await request(t, 'GET', `/v1/audit?from=${Date.now() + 60_000}`, { headers: { cookie } })).body,
      '[]',
      'nothing in the future',
    );
    assert.equal((await request(t, 'GET', '/v1/audit?order=sideways', { headers: { cookie } })).status, 400);

    const out: string[] = [];
    const { write } = cliOutput;
    cliOutput.write = (s) => void out.push(s);
    try {
      const conn = ['--url', t.url, '--token', t.adminToken, '--ca', `${t.dir}/a/certs/root-ca.pem`];
      assert.equal(await main(['audit', '--actor', 'admin:bob', '--since', '1m', '--newest', '--json', ...conn]), 0);
      assert.deepEqual(
        (JSON.parse(out.join('')) as { action: string }[]).map((e) => e.action),
        ['directory.change', 'member.add', 'vpn.create'],
      );
      out.length = 0;
      assert.equal(
        await main(['audit', '--action', 'vpn.', '--until', new Date(since).toISOString(), '--json', ...conn]),
        0,
      );
      assert.ok(
        !(JSON.parse(out.join('')) as { vpn: string }[]).some((e) => e.vpn === 'by-bob'),
        'by-bob was made after --until',
      );
    } finally {
      cliOutput.write = write;
    }
  });
});

// The web console in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against a real authority on 127.0.0.1. It proves: a wrong token is refused and opens nothing;
// sign-in keeps only an HttpOnly cookie the page cannot read; names such as
// `<img src=x onerror=alert(1)>` given to a VPN and a gateway through the console's own forms are
// shown as text on every page (overview, VPN, gateway, map, audit) and never run; a change sent
// without the session's CSRF token (or with another one) is refused and changes nothing; sign-out
// ends the session, and so does revoking the administrator token it was opened with (the page
// shows the sign-in again); the strict Content-Security-Policy is never violated. (The console over a live
// Figure 2 demo: test/e2e/console-demo.test.ts.)
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { startTestAuthority, type TestAuthority } from '../authority/helpers/authority.js';
import { loadConsoleAssets } from '../../src/authority/console.js';
import { browserSkip, launchChromium, type HeadlessBrowser } from './browser.js';
import { markDocument, serverSpki, signIn, watch, type Watched } from './helpers.js';
import { tampered } from '../support/tokens.js';

const HOSTILE = '<img src=x onerror=alert(1)>';

/** The CSRF token of another session of the same administrator (signed in from elsewhere). */
function otherSessionsCsrf(t: TestAuthority): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL('/v1/session', t.url),
      { method: 'POST', ca: t.ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve((JSON.parse(body) as { csrfToken: string }).csrfToken));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ token: t.adminToken }));
  });
}
const skip = browserSkip() || (loadConsoleAssets().size ? false : 'skipped: the console is not built (npm run build)');

describe('the console in Chromium', { skip }, () => {
  let t: TestAuthority;
  let b: HeadlessBrowser;
  let ctx: BrowserContext;
  let page: Page;
  let w: Watched;

  before(async () => {
    t = await startTestAuthority({ name: 'browser test' });
    await t.admin.createVpn({ name: 'VPN1', id: 1 });
    b = await launchChromium(serverSpki(`${t.dir}/a`));
    ctx = await b.context();
    page = await ctx.newPage();
    w = await watch(page);
  });
  after(async () => {
    await b?.close();
    await t?.close();
  });

  it('refuses a wrong token and opens no session', async () => {
    await page.goto(t.url);
    await page.getByLabel('administrator token').fill(tampered(t.adminToken, 4));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That token was refused' }).waitFor();
    assert.equal(await page.getByLabel('administrator token').inputValue(), '', 'the token field is emptied');
    assert.deepEqual(await ctx.cookies(), [], 'no cookie');
    assert.equal(await page.getByTestId('vpn-table').count(), 0);
  });

  it('signs in with the right token: an HttpOnly, Secure, SameSite=Strict cookie the page cannot read', async () => {
    await signIn(page, t.url, t.adminToken);
    const cookies = await ctx.cookies();
    assert.deepEqual(
      cookies.map((c) => [c.name, c.httpOnly, c.secure, c.sameSite, c.path]),
      [['__Host-kasane-session', true, true, 'Strict', '/']],
    );
    assert.equal(await page.evaluate(() => document.cookie), '', 'invisible to scripts');
    assert.equal(
      (await page.content()).includes(t.adminToken.split('.')[2]),
      false,
      'the token is nowhere on the page',
    );
    await page.getByRole('banner').getByText('admin:initial').waitFor();
  });

  it(`shows a VPN and a gateway named ${HOSTILE} as text on every page`, async () => {
    const stillHere = await markDocument(page);
    // Made through the console's own forms.
    const vpnForm = page.locator('form', { has: page.getByRole('button', { name: 'Create VPN' }) });
    await vpnForm.locator('input[name=name]').fill(HOSTILE);
    await vpnForm.getByRole('button', { name: 'Create VPN' }).click();
    await page.getByTestId('vpn-name').waitFor();
    assert.equal(await page.getByTestId('vpn-name').textContent(), HOSTILE);
    await page.getByRole('link', { name: 'Overview' }).click();
    const gwForm = page.locator('form', { has: page.getByRole('button', { name: 'Register gateway' }) });
    await gwForm.locator('input[name=name]').fill(HOSTILE);
    await gwForm.locator('input[name=address]').fill('192.0.2.66');
    await gwForm.getByRole('button', { name: 'Register gateway' }).click();
    await page.getByTestId('gateway-name').waitFor();
    assert.equal(await page.getByTestId('gateway-name').textContent(), HOSTILE);
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByTestId('vpn-table').getByRole('link', { name: HOSTILE, exact: true }).click();
    const memberForm = page.locator('form', { has: page.getByRole('button', { name: 'Add member' }) });
    await memberForm.locator('select[name=gateway]').selectOption(HOSTILE);
    await memberForm.locator('input[name=prefixes]').fill('10.66.0.0/24');
    await memberForm.getByRole('button', { name: 'Add member' }).click();
    await page.getByTestId('member-table').getByRole('link', { name: HOSTILE }).waitFor();

    await page.getByRole('link', { name: 'Overview' }).click();
    assert.equal(
      await page.getByTestId('vpn-table').getByRole('link', { name: HOSTILE, exact: true }).textContent(),
      HOSTILE,
    );
    assert.equal(
      await page.getByTestId('gateway-table').getByRole('link', { name: HOSTILE, exact: true }).textContent(),
      HOSTILE,
    );
    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByTestId('map-legend').getByRole('link', { name: HOSTILE }).waitFor();
    assert.match(
      await page.getByTestId('map-legend').innerText(),
      /<img src=x onerror=alert\(1\)> \+ 10\.66\.0\.0\/24/,
    );
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByTestId('audit-table').getByRole('link', { name: HOSTILE }).first().waitFor();

    assert.equal(await page.locator('img').count(), 0, 'no <img> element was made from a name');
    assert.deepEqual(w.dialogs, [], 'no script ran (alert)');
    assert.ok(await stillHere(), 'all of it without loading the page again');
  });

  it("refuses a change without the CSRF token, or with another session's, and changes nothing", async () => {
    const attempt = (headers: Record<string, string>) =>
      page.evaluate(async (h) => {
        const r = await fetch('/v1/vpns', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json', ...h },
          body: JSON.stringify({ name: 'csrf-victim' }),
        });
        return { status: r.status, body: (await r.json()) as { error: string } };
      }, headers);
    assert.deepEqual(await attempt({}), {
      status: 403,
      body: {
        error: 'csrf-token-required',
        message: "a change from the console needs the session's CSRF token in the x-kasane-csrf header",
      },
    });
    assert.equal((await attempt({ 'x-kasane-csrf': await otherSessionsCsrf(t) })).body.error, 'bad-csrf-token');
    assert.equal((await attempt({ 'x-kasane-csrf': 'A'.repeat(43) })).body.error, 'bad-csrf-token');
    // Reading needs no token (and changes nothing).
    const names = await page.evaluate(async () =>
      ((await (await fetch('/v1/vpns')).json()) as { name: string }[]).map((v) => v.name),
    );
    assert.equal(names.includes('csrf-victim'), false);
    assert.equal(
      (await t.admin.listVpns()).some((v) => v.name === 'csrf-victim'),
      false,
    );
  });

  it("ends a session whose administrator token is revoked: the page's next read is refused and the sign-in comes back, saying why", async () => {
    const carol = await t.admin.createAdminToken('carol');
    const other = await b.context();
    const p = await other.newPage();
    await signIn(p, t.url, carol.token);
    await p.getByRole('banner').getByText('admin:carol').waitFor();
    await t.admin.revokeAdminToken(carol.info.id);
    // A change elsewhere: the page hears of it and reads again, with a session that has ended.
    await t.admin.createVpn({ name: 'after-carol' });
    await p.getByText('Your session has ended. Sign in again.').waitFor();
    await p.getByLabel('administrator token').waitFor();
    assert.equal(await p.evaluate(async () => (await fetch('/v1/vpns')).status), 401);
    await other.close();
  });

  it('signs out: the session ends and the sign-in comes back', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('administrator token').waitFor();
    assert.equal(await page.evaluate(async () => (await fetch('/v1/vpns')).status), 401);
    assert.deepEqual(w.violations, [], 'no Content-Security-Policy violation');
    assert.deepEqual(w.errors, [], 'no error in the page');
  });
});

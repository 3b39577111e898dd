// The console's pages and changes beyond sign-in, in a real browser (Debian's Chromium, headless,
// driven by playwright-core) against two real authorities on 127.0.0.1, peered over mutual TLS.
// It proves: the federation page shows the peer authority, the shared pairwise VPN with the peer's
// members, and every permit (issued, received, local) with its expiry, and the overview lists the
// permits expiring soon (the peer's short ones, not ours); a VPN is rotated, loses a prefix and a
// member, and is deleted from its page; an enrollment token is shown once, enrolls a gateway with
// the command the page gives, and is gone after "Done"; a bundle goes into a downloaded file and
// its private key never onto the page; the audit log filters by who, what and when, and keeps the
// filter in its URL. Every change is checked against the authority through the API, not only on
// the page, and no Content-Security-Policy violation happens.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { enroll } from '../../src/authority/client.js';
import { loadConsoleAssets } from '../../src/authority/console.js';
import {
  bundleGateway,
  exchangeTwice,
  peerAndShare,
  startTestAuthority,
  type TestAuthority,
  type TestGateway,
} from '../authority/helpers/authority.js';
import { browserSkip, launchChromium, type HeadlessBrowser } from './browser.js';
import { serverSpki, signIn, watch, type Watched } from './helpers.js';

const skip = browserSkip() || (loadConsoleAssets().size ? false : 'skipped: the console is not built (npm run build)');
const HOUR = 3_600_000;
/** The peer issues permits valid 12 minutes: under a quarter of our hour, so they show as expiring. */
const PEER_PERMITS_MS = 12 * 60_000;

describe(
  "the console's pages in Chromium: federation, a VPN's and a gateway's changes, audit filters",
  { skip },
  () => {
    let A: TestAuthority;
    let B: TestAuthority;
    const gateways: TestGateway[] = [];
    let b: HeadlessBrowser;
    let ctx: BrowserContext;
    let page: Page;
    let w: Watched;

    before(async () => {
      // No periodic exchange: the test runs the rounds itself.
      A = await startTestAuthority({
        name: 'authority-a',
        federation: { permitValidityMs: HOUR, syncIntervalMs: HOUR },
      });
      B = await startTestAuthority({
        name: 'authority-b',
        federation: { permitValidityMs: PEER_PERMITS_MS, syncIntervalMs: HOUR },
      });
      gateways.push(
        await bundleGateway(A, 'ga', '192.0.2.1'),
        await bundleGateway(A, 'ga2', '192.0.2.2'),
        await bundleGateway(B, 'gb', '198.51.100.2'),
      );
      await peerAndShare(A, B, { name: 'P7', id: 7000 });
      await A.admin.addMember('P7', 'ga', ['10.1.0.0/24']);
      await B.admin.addMember('P7', 'gb', ['10.2.0.0/24']);
      await exchangeTwice(A, B);
      await A.admin.createVpn({ name: 'corp', id: 100 });
      await A.admin.addMember('corp', 'ga', ['10.1.0.0/24', '10.1.1.0/24']);
      await A.admin.addMember('corp', 'ga2', ['10.3.0.0/24']);

      b = await launchChromium(serverSpki(`${A.dir}/a`));
      ctx = await b.context();
      page = await ctx.newPage();
      w = await watch(page);
      await signIn(page, A.url, A.adminToken);
    });
    after(async () => {
      await b?.close();
      for (const g of gateways) g.client.close();
      await A?.close();
      await B?.close();
    });

    it('federation: the peer, the shared VPN with its members there, every permit with its expiry; the overview lists those expiring', async () => {
      await page.getByRole('link', { name: 'Federation' }).click();
      const peer = page.getByTestId('peer-table').locator('tr', { hasText: 'authority-b' });
      await peer.waitFor();
      assert.match(await peer.innerText(), new RegExp(`authority-b\\s+${B.url.replace(/[.:/]/g, '\\$&')}`));
      assert.match(
        await page.getByTestId('share-table').innerText(),
        /P7 \(id 7000\)\s+authority-b\s+gb \(198\.51\.100\.2\) \+ 10\.2\.0\.0\/24\s+1 \/ 1/,
      );
      const permits = page.getByTestId('permit-table').locator('tbody tr');
      const rows = (await permits.allInnerTexts()).map((r) => r.replace(/\s+/g, ' ').trim());
      assert.equal(rows.length, 3, rows.join('\n'));
      // Soonest first: the one received from authority-b (12 min) before our own two (1 h).
      assert.match(rows[0], /^P7 received for ga authority-b \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 1[12] min\)$/);
      assert.ok(
        rows.slice(1).some((r) => /^P7 issued to gb @ authority-b authority-b .* \(in (60|59) min\)$/.test(r)),
        rows.join('\n'),
      );
      assert.ok(
        rows.slice(1).some((r) => /^P7 issued \(local\) to ga — .* \(in (60|59) min\)$/.test(r)),
        rows.join('\n'),
      );
      assert.deepEqual(await permits.evaluateAll((trs) => trs.map((tr) => tr.className)), ['soon', '', '']);
      // The same permits as the API has them.
      const view = await A.admin.federation();
      assert.deepEqual(view.permits.map((p) => p.direction).sort(), ['in', 'local', 'out']);

      await page.getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('heading', { name: 'Permits expiring within 15 min' }).waitFor();
      const soon = page.getByTestId('permit-table').locator('tbody tr');
      assert.deepEqual(
        (await soon.allInnerTexts()).map((r) => r.split(/\s+/).slice(0, 4).join(' ')),
        ['P7 received for ga'],
      );
    });

    it("a VPN's changes: rotate now, remove a prefix, remove a member, delete the VPN", async () => {
      await page.getByTestId('vpn-table').getByRole('link', { name: 'corp', exact: true }).click();
      await page.getByTestId('vpn-name').waitFor();
      const field = (name: string) => page.locator(`dt:text-is("${name}") + dd`);
      assert.equal(await field('current epoch').textContent(), '1');

      await page.getByRole('button', { name: 'Rotate now' }).click();
      await page.getByRole('button', { name: 'Yes, rotate now' }).click();
      await page.locator('dt:text-is("current epoch") + dd:text-is("2")').waitFor();
      assert.equal((await A.admin.getVpn('corp')).currentEpoch, 2);

      await page.getByRole('button', { name: 'remove 10.1.1.0/24' }).click();
      await page.getByRole('button', { name: 'remove 10.1.1.0/24' }).waitFor({ state: 'detached' });
      assert.deepEqual((await A.admin.getVpn('corp')).memberList.find((m) => m.gateway === 'ga')?.prefixes, [
        '10.1.0.0/24',
      ]);

      const ga2 = page.getByTestId('member-table').locator('tr', { has: page.getByRole('link', { name: 'ga2' }) });
      await ga2.getByRole('button', { name: 'Remove' }).click();
      await ga2.getByRole('button', { name: 'Yes, remove' }).click();
      await ga2.waitFor({ state: 'detached' });
      assert.deepEqual(
        (await A.admin.getVpn('corp')).memberList.map((m) => m.gateway),
        ['ga'],
      );

      await page.getByRole('button', { name: 'Delete VPN' }).click();
      await page.getByText('Delete corp and its 1 memberships?').waitFor();
      await page.getByRole('button', { name: 'Yes, delete VPN' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page
        .getByTestId('vpn-table')
        .getByRole('link', { name: 'corp', exact: true })
        .waitFor({ state: 'detached' });
      assert.equal(
        (await A.admin.listVpns()).some((v) => v.name === 'corp'),
        false,
      );
    });

    it('an enrollment token is shown once and enrolls with the command given; a bundle goes into a file, its key never onto the page', async () => {
      await A.admin.addGateway('gw-token', '192.0.2.10');
      await A.admin.addGateway('gw-bundle', '192.0.2.11');
      await page.goto(`${A.url}/gateways/gw-token`);
      await page.getByRole('button', { name: 'Make enrollment token' }).click();
      const issued = page.getByTestId('issued-token');
      const command = await issued.locator('pre').textContent();
      const m =
        /^kasane gateway enroll --data DIR --url (\S+) --token (kasane-enroll-v1\.\S+) --ca-fingerprint (\S+)$/.exec(
          command ?? '',
        );
      assert.ok(m, command ?? '');
      await issued.getByRole('button', { name: 'Done (forget it)' }).click();
      await issued.waitFor({ state: 'detached' });
      assert.equal((await page.content()).includes(m[2]), false, 'the token is gone from the page');
      // The command works: the gateway enrolls with it (online, with a key of its own).
      const enrolled = await enroll({ url: m[1], token: m[2], caFingerprint: m[3], name: 'gw-token' });
      assert.equal(enrolled.gateway.name, 'gw-token');
      await page.locator('h1 .badge.active').waitFor();
      assert.equal((await page.content()).includes(m[2]), false, 'nor shown again');

      await page.goto(`${A.url}/gateways/gw-bundle`);
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download bundle' }).click();
      const file = await download;
      assert.equal(file.suggestedFilename(), 'gw-bundle.bundle.json');
      const bundle = JSON.parse(readFileSync(await file.path(), 'utf8')) as {
        gateway: { name: string };
        privateKey: string;
        certificate: string;
      };
      assert.equal(bundle.gateway.name, 'gw-bundle');
      assert.match(bundle.privateKey, /^-----BEGIN PRIVATE KEY-----/);
      await page.locator('h1 .badge.active').waitFor();
      const html = await page.content();
      assert.equal(html.includes(bundle.privateKey.split('\n')[1]), false, 'the private key is not on the page');
      assert.equal(html.includes('PRIVATE KEY'), false);
    });

    it("the map draws seed 000 Figure 1(2): the inner gateways in the outer ones' prefixes, dept inside company", async () => {
      const C = await startTestAuthority({ name: 'multistage' });
      const own: TestGateway[] = [];
      try {
        for (const n of [1, 2])
          own.push(await bundleGateway(C, `Go${n}`, `10.200.${n}.2`), await bundleGateway(C, `Gi${n}`, `10.${n}.0.2`));
        await C.admin.createVpn({ name: 'company', id: 10 });
        await C.admin.createVpn({ name: 'dept', id: 20 });
        for (const n of [1, 2]) {
          await C.admin.addMember('company', `Go${n}`, [`10.${n}.0.0/16`]);
          await C.admin.addMember('dept', `Gi${n}`, [`10.${n}.1.0/24`]);
        }
        const b2 = await launchChromium(serverSpki(`${C.dir}/a`));
        try {
          const p = await (await b2.context()).newPage();
          await signIn(p, C.url, C.adminToken);
          await p.getByRole('link', { name: 'Map' }).click();
          const dept = p.getByTestId('map-legend').locator('li[data-vpn="dept"]');
          await dept.waitFor();
          assert.match(
            await dept.innerText(),
            /runs inside company[\s\S]*Gi1 \+ 10\.1\.1\.0\/24[\s\S]*Gi2 \+ 10\.2\.1\.0\/24/,
          );
          assert.doesNotMatch(
            await p.getByTestId('map-legend').locator('li[data-vpn="company"]').innerText(),
            /runs inside/,
          );
          // The picture itself is a canvas (its model: test/console/map-model.test.ts).
          await p.locator('.graph canvas').first().waitFor();
          if (process.env.KASANE_SCREENSHOTS)
            await p.screenshot({ path: `${process.env.KASANE_SCREENSHOTS}/console-map-multistage.png` });
        } finally {
          await b2.close();
        }
      } finally {
        for (const g of own) g.client.close();
        await C.close();
      }
    });

    it('the audit log filters by who, what and when, and keeps the filter in its URL', async () => {
      const bob = A.clientWith((await A.admin.createAdminToken('bob')).token);
      await bob.createVpn({ name: 'bobs' });
      await bob.addMember('bobs', 'ga2', ['10.9.0.0/24']);
      await page.getByRole('link', { name: 'Audit log', exact: true }).click();
      const table = page.getByTestId('audit-table');
      await table.waitFor();
      await page.getByLabel('who').fill('admin:bob');
      await page.getByLabel('what').fill('member.');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/\/audit\?actor=admin%3Abob&action=member\.$/);
      // The URL changes before the filtered entries arrive: until then the table shows the unfiltered
      // ones (other actors' member.add among them), so wait for the filtered table itself.
      const want = [['admin:bob', 'member.add', 'bobs']];
      let rows: string[][] = [];
      for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
        rows = (await table.locator('tbody tr').allInnerTexts()).map((r) => r.split('\t').slice(2, 5));
        if (isDeepStrictEqual(rows, want)) break;
      }
      assert.deepEqual(rows, want);

      // When: from a minute from now, nothing yet.
      const later = new Date(Date.now() + 60_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
      await page.getByLabel('from').fill(later);
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/&from=\d+$/);
      await table.getByText('no entry').waitFor();
      // The filter lives in the URL: a reload (or a shared link) shows the same.
      await page.reload();
      await table.getByText('no entry').waitFor();
      assert.equal(await page.getByLabel('who').inputValue(), 'admin:bob');
      assert.equal(await page.getByLabel('from').inputValue(), later);

      assert.deepEqual(w.violations, [], 'no Content-Security-Policy violation');
      assert.deepEqual(w.dialogs, []);
      assert.deepEqual(w.errors, []);
    });
  },
);

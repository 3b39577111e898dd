// The console of a live demo, in a real browser: `kasane demo figure2` runs seed 000 Figure 2 in
// network namespaces (real authority, three real gateway daemons pinging through each other) and
// opens its authority's console on 127.0.0.1; headless Chromium (playwright-core) signs in there.
// It proves: Figure 2's VPNs are on the map (G2 and terminal B's prefix in both VPN1 and VPN2); a
// gateway's page shows the key table its daemon reported, and follows it live; adding a member in
// one tab changes the overview and the map open in other tabs without a reload; revoking a gateway
// from the console revokes it everywhere; no Content-Security-Policy violation; the demo's local
// listener and namespaces are gone after Ctrl-C. With KASANE_SCREENSHOTS=DIR it writes the
// screenshots of docs/ (overview, map, a gateway) there.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { waitFor } from '../../src/testbed/sites.js';
import { browserSkip, launchChromium } from '../console/browser.js';
import { markDocument, serverSpki, signIn, watch } from '../console/helpers.js';
import { netnsTest } from '../support/netns-gate.js';
import { CLI } from './sites.js';

netnsTest(
  'the console of a live Figure 2 demo in Chromium: the map, a live key table, a member added and a gateway revoked without reloads',
  { timeout: 300_000, skip: browserSkip() },
  async () => {
    const shots = process.env.KASANE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'kasane-shots-'));
    mkdirSync(shots, { recursive: true });
    const demo = spawn(CLI[0], [...CLI.slice(1), 'demo', 'figure2', '--interval', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
    let b: Awaited<ReturnType<typeof launchChromium>> | undefined;
    try {
      await waitFor(() => out.includes('live:') || demo.exitCode !== null, 180_000, 'the demo to run').catch(
        (e: Error) => {
          throw new Error(`${e.message}\n${out}`);
        },
      );
      assert.equal(demo.exitCode, null, out);
      const url = /console of figure2: (https:\/\/127\.0\.0\.1:\d+\/)/.exec(out)![1];
      const token = /sign in with its administrator token: (\S+)/.exec(out)![1];
      const data = dirname(dirname(/own CA (\S+root-ca\.pem)/.exec(out)![1]));

      b = await launchChromium(serverSpki(data));
      const ctx = await b.context();
      const page = await ctx.newPage();
      const w = await watch(page);
      await signIn(page, url, token);

      // The map: Figure 2's VPNs as regions, G2 and B's prefix in both.
      await page.getByRole('link', { name: 'Map' }).click();
      const legend = page.getByTestId('map-legend');
      await legend.waitFor();
      const vpn = (name: string) => legend.locator(`li[data-vpn="${name}"]`);
      assert.match(await vpn('VPN1').innerText(), /G1 \+ 10\.1\.0\.0\/24[\s\S]*G2 \+ 10\.2\.0\.0\/24/);
      assert.match(await vpn('VPN2').innerText(), /G2 \+ 10\.2\.0\.0\/24[\s\S]*G3 \+ 10\.3\.0\.0\/24/);
      assert.match(
        await page.getByTestId('multi-homed').innerText(),
        /G2: VPN1, VPN2[\s\S]*10\.2\.0\.0\/24: VPN1, VPN2/,
      );
      await page.waitForTimeout(500);
      await page.screenshot({ path: join(shots, 'console-map.png') });

      // G2's page: the key table its daemon reports, filling as the demo's pings go (no reload).
      await page.goto(`${url}gateways/G2`);
      const live = await markDocument(page);
      const keyTable = page.getByTestId('key-table');
      await waitFor(
        async () => {
          if ((await keyTable.count()) === 0) return false;
          const text = await keyTable.innerText();
          return /10\.1\.0\.10\s+encrypt\s+VPN1\s+G1/.test(text) && /10\.3\.0\.10\s+encrypt\s+VPN2\s+G3/.test(text);
        },
        60_000,
        "G2's reported key table with its paths to A (VPN1) and C (VPN2)",
      );
      assert.ok(await live(), 'followed live, not reloaded');
      assert.match(await page.getByTestId('search-counters').innerText(), /search\.started\s+[1-9]/);
      assert.ok((await page.getByTestId('drop-counters').locator('tr').count()) > 3, 'drops by reason');
      await page.screenshot({ path: join(shots, 'console-gateway.png'), fullPage: true });

      // Overview and map in other tabs; a member added in this one: they follow without a reload.
      const overview = await ctx.newPage();
      await overview.goto(url);
      await overview.getByTestId('vpn-table').waitFor();
      await waitFor(
        async () => (await overview.getByTestId('online-count').textContent()) === '3',
        30_000,
        'three gateways online',
      );
      await overview.screenshot({ path: join(shots, 'console-overview.png'), fullPage: true });
      const map = await ctx.newPage();
      await map.goto(`${url}map`);
      await map.getByTestId('map-legend').waitFor();
      const [overviewStill, mapStill] = [await markDocument(overview), await markDocument(map)];
      assert.equal(await overview.getByTestId('members-VPN2').textContent(), '2');

      await page.goto(`${url}vpns/VPN2`);
      const form = page.locator('form', { has: page.getByRole('button', { name: 'Add member' }) });
      await form.locator('select[name=gateway]').selectOption('G1');
      await form.locator('input[name=prefixes]').fill('10.1.0.0/24');
      await form.getByRole('button', { name: 'Add member' }).click();
      await page.getByTestId('member-table').getByRole('link', { name: 'G1' }).waitFor();

      await waitFor(
        async () => (await overview.getByTestId('members-VPN2').textContent()) === '3',
        10_000,
        'the overview to count 3 members of VPN2',
      );
      await waitFor(
        async () => /G1 \+ 10\.1\.0\.0\/24/.test(await map.locator('li[data-vpn="VPN2"]').innerText()),
        10_000,
        'the map to put G1 into VPN2',
      );
      assert.match(await map.getByTestId('multi-homed').innerText(), /G1: VPN1, VPN2/);
      assert.ok((await overviewStill()) && (await mapStill()), 'neither page was loaded again');

      // Revoke G3 from its page: everywhere it is revoked.
      await page.goto(`${url}gateways/G3`);
      await page.getByRole('button', { name: 'Revoke…' }).click();
      await page.getByLabel('reason').fill('decommissioned in the console test');
      await page.getByRole('button', { name: 'Revoke gateway' }).click();
      await page.locator('h1 .badge.revoked').waitFor();
      const g3Row = overview
        .getByTestId('gateway-table')
        .locator('tr', { has: overview.getByRole('link', { name: 'G3', exact: true }) });
      await waitFor(async () => /revoked/.test(await g3Row.innerText()), 10_000, 'the overview to show G3 revoked');
      assert.ok(await overviewStill());

      for (const p of [page, overview, map]) await p.close();
      assert.deepEqual(w.violations, [], 'no Content-Security-Policy violation');
      assert.deepEqual(w.dialogs, []);
      assert.deepEqual(w.errors, []);
    } finally {
      await b?.close();
      if (demo.exitCode === null) demo.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      if (!process.env.KASANE_SCREENSHOTS) rmSync(shots, { recursive: true, force: true });
    }
    // Ctrl-C: the demo removed its namespaces and closed its listener on 127.0.0.1.
    assert.equal(demo.exitCode, 130, `Ctrl-C ends the demo with 130\n${out.slice(-2000)}`);
    const prefix = /namespaces (kn[0-9a-f]+)-\* and links up/.exec(out)![1];
    assert.deepEqual(
      spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l.startsWith(`${prefix}-`)),
      [],
    );
    const port = Number(/https:\/\/127\.0\.0\.1:(\d+)\//.exec(out)![1]);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    assert.ok(refused, 'the console listener closed with the demo');
  },
);

// Headless Chromium for the console's tests: Debian's chromium (/usr/bin/chromium, installed by
// scripts/test-all.sh with apt-get; never a browser download) driven by playwright-core, with the
// flags this closed network needs (no background connections to Google's services).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.KASANE_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here (they always run in CI), or false. */
export function browserSkip(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI) return false; // in CI a missing browser is a failure, not a skip
  return `skipped: no Chromium at ${CHROMIUM} (as root: apt-get install chromium; always runs in CI)`;
}

export interface HeadlessBrowser {
  browser: Browser;
  /** A fresh profile that trusts exactly this authority's TLS key (by its SPKI hash), nothing else. */
  context(spkiSha256Base64?: string): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchChromium(spkiSha256Base64?: string): Promise<HeadlessBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      // The authority's certificate chains to its own CA, which this throw-away profile does not
      // know: accept that one key only, so every other TLS check stays as it is.
      ...(spkiSha256Base64 ? [`--ignore-certificate-errors-spki-list=${spkiSha256Base64}`] : []),
    ],
  });
  return {
    browser,
    context: async () => browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 }),
    async close() {
      // playwright gives the browser a new empty profile of its own and deletes it on close.
      await browser.close().catch(() => undefined);
    },
  };
}

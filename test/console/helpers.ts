// Shared steps of the console's browser tests: trust one authority's TLS key, sign in, watch for
// Content-Security-Policy violations and browser dialogs (an injected script would open one).
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

/** base64 SHA-256 of the server certificate's public key: what --ignore-certificate-errors-spki-list takes. */
export function serverSpki(authorityData: string): string {
  const cert = new X509Certificate(readFileSync(join(authorityData, 'certs', 'server.pem')));
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
}

export interface Watched {
  /** CSP violations the page reported (none is allowed). */
  violations: string[];
  /** Dialogs (alert/confirm/prompt) that opened: the console opens none by itself. */
  dialogs: string[];
  /** Uncaught errors in the page. */
  errors: string[];
}

/** Records CSP violations, dialogs and page errors from the first script on. */
export async function watch(page: Page): Promise<Watched> {
  const w: Watched = { violations: [], dialogs: [], errors: [] };
  await page.exposeFunction('__kasaneViolation', (s: string) => void w.violations.push(s));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __kasaneViolation(s: string): void }).__kasaneViolation(
        `${e.violatedDirective} ${e.blockedURI} ${e.sample}`,
      );
    });
  });
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (e) => w.errors.push(e.message));
  return w;
}

export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('administrator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('vpn-table').waitFor();
}

/** Marks the document: still marked later means the page was not loaded again. */
export async function markDocument(page: Page): Promise<() => Promise<boolean>> {
  const mark = `m${Math.random()}`;
  await page.evaluate((m) => ((window as unknown as Record<string, string>).__kasaneMark = m), mark);
  return async () => (await page.evaluate(() => (window as unknown as Record<string, string>).__kasaneMark)) === mark;
}

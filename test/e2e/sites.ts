// End-to-end topologies beyond Figure 2 (src/testbed/sites.ts), with the CLI run from source
// (through tsx: no build step needed in the test run).
import { join } from 'node:path';
import { buildSites as build, type SiteSpec, type Sites } from '../../src/testbed/sites.js';

export type { SiteGateway, SiteLink, SiteSpec, Sites } from '../../src/testbed/sites.js';
export { waitFor } from '../../src/testbed/sites.js';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The CLI from source. */
export const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

export function buildSites(s: SiteSpec): Promise<Sites> {
  return build({ cli: CLI, ...s });
}

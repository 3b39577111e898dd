// End-to-end worlds (seed 000 Figure 2, src/demo/figure2.ts, and the topologies of
// src/testbed/sites.ts), with the CLI run from source (through tsx: no build step needed in the test
// run), each in a scratch directory that goes with its namespaces when the test ends, even on failure.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFigure2, type Figure2, type Figure2Options } from '../../src/demo/figure2.js';
import { buildSites as build, type SiteSpec, type Sites } from '../../src/testbed/sites.js';

export type { SiteGateway, SiteLink, SiteSpec, Sites } from '../../src/testbed/sites.js';
export { waitFor } from '../../src/testbed/sites.js';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The CLI from source. */
export const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

export function buildSites(s: SiteSpec): Promise<Sites> {
  return build({ cli: CLI, ...s });
}

/**
 * Runs `body` with the world `make` builds in a fresh scratch directory (named from `prefix`), then
 * tears the world down and deletes the directory, whatever happened.
 */
export async function inWorld<W extends { teardown(): Promise<void> }>(
  prefix: string,
  make: (dir: string) => Promise<W>,
  body: (world: W, dir: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const world = await make(dir);
    try {
      await body(world, dir);
    } finally {
      await world.teardown();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Figure 2 in namespaces (`options` as buildFigure2 takes them), for `body`. */
export function inFigure2(
  options: Omit<Figure2Options, 'dir' | 'cli'>,
  body: (f: Figure2, dir: string) => Promise<void>,
): Promise<void> {
  return inWorld('kasane-e2e-', (dir) => buildFigure2({ dir, cli: CLI, ...options }), body);
}

/** A row of a gateway's key table as its status shows it (`kasane gateway status --json`). */
export interface PathRow {
  local: string;
  remote: string;
  action: string;
  vpnName?: string;
  peer?: string;
  packets: number;
}

/** Asserts that `rows` hold a path with every field of `want`, and (`moving`) one that carried packets. */
export function assertPath(rows: PathRow[], want: Partial<PathRow> & { moving?: boolean }, message?: string): void {
  const { moving, ...fields } = want;
  assert.ok(
    rows.some(
      (p) => Object.entries(fields).every(([k, v]) => p[k as keyof PathRow] === v) && (!moving || p.packets > 0),
    ),
    `${message ? `${message}: ` : ''}${JSON.stringify(rows)}`,
  );
}

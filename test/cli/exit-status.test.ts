// The exit status of the `kasane` process itself (issue 11, point 9), as a script or a service
// manager sees it: a file kasane cannot use — a topology, a gateway configuration, authority.json
// — ends the process with status 2 and its problems on stderr (line and field, no stack trace);
// a wrong command line is 1; a good run 0. Each case is a separate process of the CLI from source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aliasBomb, AUTHORITY_CONFIG, SMALL_TOPOLOGY } from '../support/files.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = ['--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

interface Exit {
  status: number | null;
  stdout: string;
  stderr: string;
}

function kasane(...argv: string[]): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CLI, ...argv],
      { cwd: ROOT, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (e, stdout, stderr) => {
        const status = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

/** A problem report for an operator: the problems, and no stack trace. */
function assertReport(r: Exit, status: number, ...expected: RegExp[]): void {
  const all = `status ${r.status}\nstderr:\n${r.stderr}`;
  assert.equal(r.status, status, all);
  for (const re of expected) assert.match(r.stderr, re, all);
  assert.doesNotMatch(r.stderr, /^\s+at .*\(.*:\d+:\d+\)$/m, `a stack trace on stderr:\n${r.stderr}`);
}

test(
  'kasane exits 2 for every file it cannot use, 1 for a wrong command line, 0 for a good run',
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kasane-exit-'));
    try {
      const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
      const bomb = file('bomb.yaml', SMALL_TOPOLOGY + aliasBomb(9));
      const huge = file('huge.yaml', SMALL_TOPOLOGY);
      truncateSync(huge, 58 * 1024 * 1024); // the 58 MB topology (sparse: nothing is written)
      const ring = file(
        'ring.yaml',
        `vpns: [{ name: V, id: 1 }]\nnodes:\n  - { name: G1, gateway: 192.0.2.1, inside: [G2] }\n  - { name: G2, gateway: 192.0.2.2, inside: [G1] }\nlinks: [[G1, G2]]\n`,
      );
      const nan = file('nan.yaml', `seed: .nan\n${SMALL_TOPOLOGY}`);
      const authorityDir = join(dir, 'authority');
      mkdirSync(authorityDir);
      writeFileSync(
        join(authorityDir, 'authority.json'),
        JSON.stringify({ ...AUTHORITY_CONFIG, listen: { host: '127.0.0.1', port: 'x' } }, null, 2),
      );
      const gatewayBomb = file(
        'gateway.yaml',
        `data: /var/lib/kasane/g1\ninside: [lan0]\noutside: [wan0]\n${aliasBomb(8, 'logLevel')}`,
      );
      const gatewayUnknown = file(
        'gateway-typo.yaml',
        'data: /var/lib/kasane/g1\ninside: [lan0]\noutside: [wan0]\npathMTU: 1400\n',
      );

      const [rBomb, rHuge, rRing, rNan, rMissing, rAuthority, rGatewayBomb, rGatewayUnknown, rTeardown, rUsage, rGood] =
        await Promise.all([
          kasane('simulate', bomb),
          kasane('simulate', huge),
          kasane('simulate', ring),
          kasane('simulate', nan),
          kasane('simulate', join(dir, 'no-such.yaml')),
          kasane('authority', 'serve', '--data', authorityDir),
          kasane('gateway', 'run', '--config', gatewayBomb),
          kasane('gateway', 'run', '--config', gatewayUnknown),
          kasane('gateway', 'teardown', '--config', gatewayUnknown),
          kasane('simulate'),
          kasane('simulate', join(ROOT, 'examples/figure2.yaml'), '--no-trace'),
        ]);
      assertReport(
        rBomb,
        2,
        /bomb\.yaml:11:\d+: x4\[0\]: alias \*a3 stands for 11111 nodes; an alias may stand for at most 10000/,
      );
      assertReport(rHuge, 2, /is 58\.0 MiB; topology files are limited to 32\.0 MiB of JSON or 4\.0 MiB of YAML/);
      assertReport(rRing, 2, /inside nesting forms a cycle: G1 → G2 → G1/);
      assertReport(rNan, 2, /nan\.yaml:1:7: seed: expected a number, got not-a-number \(\.nan\)/);
      assertReport(rMissing, 2, /no-such\.yaml/);
      assertReport(rAuthority, 2, /authority\.json:6:13: listen\.port: expected an integer from 0 to 65535, got "x"/);
      assertReport(rGatewayBomb, 2, /gateway\.yaml:\d+:\d+: x4\[0\]: alias \*a3 stands for 11111 nodes/);
      assertReport(rGatewayUnknown, 2, /gateway-typo\.yaml:4:10: pathMTU: unknown field "pathMTU"/);
      assertReport(rTeardown, 2, /gateway-typo\.yaml:4:10: pathMTU: unknown field "pathMTU"/);
      assertReport(rUsage, 1, /missing required argument 'file'/);
      assert.equal(rGood.status, 0, rGood.stderr);
      assert.match(rGood.stdout, /delivered/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

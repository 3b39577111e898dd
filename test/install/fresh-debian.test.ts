// The README's first command on a newcomer's machine: a fresh Debian root (debootstrap, this
// machine's Debian mirror) with only git and Node.js added the usual way, a clone, and the
// command exactly as the README gives it, with `kasane demo --check` for the live demo. Before
// that, as an unprivileged user, scripts/setup.sh and scripts/test-all.sh must each refuse in one
// line that names what to install. test/install/fresh-debian.sh builds and cleans up the root.
//
// Debian 12 with Node.js 22 (and the npm 10 it ships), Debian 13 with Node.js 26 (npm 11): the
// oldest supported line on the older release and the current LTS on the newer one. On Debian 12,
// whose stock apt sources are the one-line /etc/apt/sources.list, the strongSwan interop's plugin
// build (scripts/strongswan-acert.sh, which fetches strongSwan's Debian source) runs too.
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand } from '../../src/testbed/netns.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CI = process.env.CI === 'true';

/** The README's first command: the first line of its first `sh` block that is not a comment. */
export function readmeFirstCommand(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README.md has a ```sh block');
  const line = block[1].split('\n').find((l) => l.trim() && !l.trim().startsWith('#'));
  assert.ok(line, 'the README sh block has a command');
  return line.trim();
}

function why(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'not root: debootstrap, chroot and namespaces need root';
  for (const c of ['debootstrap', 'unshare', 'chroot', 'git'])
    if (!hasCommand(c)) return `${c} not found (scripts/test-all.sh installs debootstrap)`;
  return undefined;
}
const reason = why();
const skip = reason && !CI ? `skipped: ${reason} (runs as root, and always in CI)` : false;

// `then` runs after the first command: on Debian 12 the plugin build; on Debian 13 an offline
// reinstall as the README describes it, from npm's cache with no network at all.
const RELEASES = [
  {
    suite: 'bookworm',
    debian: 12,
    node: '22',
    then: 'bash scripts/strongswan-acert.sh',
    proof: /\/libstrongswan-acert\.so$/m,
  },
  {
    suite: 'trixie',
    debian: 13,
    node: '26',
    then: 'rm -rf node_modules native/build && unshare --net npm ci --offline && echo "offline install: done"',
    proof: /^offline install: done$/m,
  },
] as const;

test('the README first command is one line that ends in the live demo', () => {
  const cmd = readmeFirstCommand();
  assert.match(cmd, /&& npx kasane demo$/);
});

// Both at once: one root's downloads overlap the other's builds (the test's longest part).
describe('a newcomer on a fresh Debian', { concurrency: true }, () => {
  for (const r of RELEASES) {
    it(
      `fresh Debian ${r.debian} (${r.suite}) with git and Node.js ${r.node}: the README's first command, with demo --check, passes`,
      { skip, timeout: 20 * 60_000 },
      async () => {
        assert.equal(reason, undefined, `required in CI: ${reason}`);
        const first = readmeFirstCommand().replace(/npx kasane demo$/, 'npx kasane demo --check');
        const command = `${first} && ${r.then}`;
        const started = Date.now();
        const child = spawn('bash', [join(ROOT, 'test/install/fresh-debian.sh'), r.suite, r.node, command], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => {
          out += d.toString();
          // Progress as it happens: this is a few minutes long.
          for (const line of d.toString().split('\n'))
            if (line.startsWith('fresh-debian[')) process.stderr.write(`# ${line}\n`);
        });
        const code = await new Promise<number | null>((resolve) => {
          const timer = setTimeout(() => child.kill('SIGTERM'), 18 * 60_000);
          child.once('exit', (c) => {
            clearTimeout(timer);
            resolve(c);
          });
        });
        process.stderr.write(`# fresh Debian ${r.debian}: ${Math.round((Date.now() - started) / 1000)} s\n`);
        assert.equal(code, 0, out.slice(-6000));
        assert.match(out, /setup: ready \(node v/);
        assert.match(out, /kasane: native fast path built/);
        assert.match(out, /build-console: dist\/console \(app-/, 'npm install builds the web console');
        assert.match(out, /console of figure2 answers at https:\/\/127\.0\.0\.1:\d+\/\s+yes \[yes\]/);
        assert.match(out, /check passed: figure2 behaves as the paper says/);
        assert.doesNotMatch(out, /EBADENGINE/, 'no engine warnings');
        assert.match(out, r.proof, r.then);
      },
    );
  }
});

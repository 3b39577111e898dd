// `kasane demo` on a host that is not ready for it: a missing tool is named before anything is
// built, and a failure while the namespaces are being made leaves none of them behind. The `ip` the
// demo runs is a small wrapper (first on PATH) that records every namespace the demo adds and,
// in the second test, refuses to add one of them as a real `ip` would (a name already taken).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsTest } from '../support/netns-gate.js';
import { CLI } from './sites.js';

function which(cmd: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} is needed for this test`);
  return r.stdout.trim();
}

interface Host {
  dir: string;
  bin: string;
  added: () => string[];
  namespaces: () => string[];
  /** Deletes any namespace the demo added that is still there (after a failed assertion). */
  cleanup: () => void;
  /** The demo's work directories (kasane-demo-*) in the TMPDIR it was given. */
  workDirs: () => string[];
  run: (path: string) => SpawnSyncReturns<string>;
}

/** A PATH directory with the recording `ip` (failing `netns add` for names ending in `failSuffix`). */
function host(failSuffix: string | undefined): Host {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-preflight-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const log = join(dir, 'added');
  writeFileSync(log, '');
  const fail = failSuffix
    ? `  *" netns add "*"${failSuffix} ") echo "$3" >> '${log}'; echo 'Cannot create namespace file "/run/netns/'"$3"'": File exists' >&2; exit 1 ;;\n`
    : '';
  writeFileSync(
    join(bin, 'ip'),
    `#!/bin/sh\ncase " $* " in\n${fail}  *" netns add "*) echo "$3" >> '${log}' ;;\nesac\nexec '${which('ip')}' "$@"\n`,
  );
  chmodSync(join(bin, 'ip'), 0o755);
  const h: Host = {
    dir,
    bin,
    added: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
    namespaces: () =>
      spawnSync(which('ip'), ['netns', 'list'], { encoding: 'utf8' })
        .stdout.split('\n')
        .map((l) => l.split(' ')[0])
        .filter(Boolean),
    cleanup: () => {
      const left = new Set(h.namespaces());
      for (const n of h.added()) if (left.has(n)) spawnSync(which('ip'), ['netns', 'del', n]);
      rmSync(dir, { recursive: true, force: true });
    },
    workDirs: () => readdirSync(tmp).filter((n) => n.startsWith('kasane-demo-')),
    run: (path) =>
      spawnSync(CLI[0], [...CLI.slice(1), 'demo', '--check'], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, PATH: path, TMPDIR: tmp },
      }),
  };
  return h;
}

netnsTest(
  'kasane demo without ping: names it and its package, builds nothing, leaves nothing',
  { timeout: 180_000 },
  () => {
    const h = host(undefined);
    try {
      symlinkSync(which('sh'), join(h.bin, 'sh'));
      symlinkSync(which('nft'), join(h.bin, 'nft'));
      const r = h.run(h.bin); // ip (the wrapper), sh and nft, nothing else: no ping
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /the demo cannot run on this host/);
      assert.match(r.stderr, /`ping` not found.*iputils-ping/);
      assert.match(r.stderr, /as root, run: apt-get install -y iputils-ping$/m);
      assert.doesNotMatch(r.stderr, /`ip` not found|`nft` not found|tun|veth/, 'only what is missing is named');
      // Only the throw-away probe namespace was made, and it is gone.
      assert.ok(h.added().length >= 1 && h.added().every((n) => n.endsWith('-probe')), h.added().join(' '));
      const left = h.namespaces();
      for (const n of h.added()) assert.ok(!left.includes(n), `namespace ${n} left behind`);
      assert.deepEqual(h.workDirs(), [], 'no work directory left');
    } finally {
      h.cleanup();
    }
  },
);

netnsTest('kasane demo that fails while making its namespaces deletes those it made', { timeout: 180_000 }, () => {
  const h = host('-C'); // A and B are made, C is refused
  try {
    const r = h.run(`${h.bin}:${process.env.PATH}`);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /netns add kn[0-9a-f]{6}-C: Cannot create namespace file/);
    const made = h.added().filter((n) => !n.endsWith('-probe'));
    assert.deepEqual(
      made.map((n) => n.replace(/^kn[0-9a-f]{6}-/, '')),
      ['A', 'B', 'C'],
      h.added().join(' '),
    );
    const left = h.namespaces();
    for (const n of h.added()) assert.ok(!left.includes(n), `namespace ${n} left behind`);
    assert.deepEqual(h.workDirs(), [], 'no work directory left');
  } finally {
    h.cleanup();
  }
});

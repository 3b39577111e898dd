// Native builds without the internet: which Node.js headers to compile against, and where npm's
// own node-gyp is. Used by node-gyp.mjs beside it (every native dependency) and by
// scripts/build-native.mjs (kasane's own addon).
//
// node-gyp downloads the headers of the running node from nodejs.org unless it is given a
// `nodedir`. Every usual install of Node.js on Linux already has them: the official tarball
// (and nvm, which unpacks it), NodeSource's package, Debian's libnode-dev and the npm registry's
// node-linux-<arch> packages all put them in <prefix>/include/node. A gateway in a closed network
// then needs nothing but the npm registry (or a mirror of it).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

/** The Node.js version whose headers are under `dir/include/node`, or undefined. */
export function headersVersion(dir) {
  try {
    const h = readFileSync(join(dir, 'include/node/node_version.h'), 'utf8');
    const part = (name) => new RegExp(`^#define NODE_${name}_VERSION (\\d+)`, 'm').exec(h)?.[1];
    const v = [part('MAJOR'), part('MINOR'), part('PATCH')];
    return v.every(Boolean) ? v.join('.') : undefined;
  } catch {
    return undefined;
  }
}

/** The install prefix of the running node (<prefix>/bin/node). */
export function runningNodePrefix() {
  return resolve(dirname(process.execPath), '..');
}

/**
 * The nodedir to build against. A configured one (npm's `nodedir`, e.g. npm_config_nodedir) wins
 * when it holds the running node's headers; otherwise the running node's own headers; otherwise
 * the configured one as it is, or none (node-gyp will then try to download the headers).
 * Returns { dir, note }: note explains a choice the user may not expect.
 */
export function chooseNodeDir(configured = process.env.npm_config_nodedir) {
  const want = process.versions.node;
  const own = runningNodePrefix();
  if (configured && headersVersion(configured) === want) return { dir: configured };
  if (headersVersion(own) === want) {
    const note = configured
      ? `nodedir ${configured} holds ${headersVersion(configured) ? `the headers of node ${headersVersion(configured)}` : 'no node headers'}; building against this node's own (${want}) in ${own}`
      : undefined;
    return { dir: own, note };
  }
  const note =
    `no headers of node ${want} in ${own}/include/node${configured ? ` nor in ${configured}` : ''}: ` +
    'node-gyp will try to download them. Offline, install the headers of this node ' +
    "(they come with the official tarball, NodeSource's nodejs package and Debian's libnode-dev) " +
    "or set npm's nodedir to a directory that has include/node.";
  return { dir: configured || undefined, note };
}

/** npm's own node-gyp (bin/node-gyp.js), never the wrapper in scripts/node-gyp. */
export function findNpmNodeGyp() {
  const candidates = [];
  // npm tells its scripts where npm itself is; its node-gyp is one of its dependencies.
  if (process.env.npm_execpath) {
    try {
      candidates.push(createRequire(process.env.npm_execpath).resolve('node-gyp/bin/node-gyp.js'));
    } catch {
      /* not npm's layout */
    }
  }
  const prefix = runningNodePrefix();
  candidates.push(join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push(join(prefix, 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  // npm's location as npm reports it (slower: spawns npm).
  const found = candidates.find((c) => existsSync(c));
  if (found) return found;
  const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  if (npmRoot.status === 0) {
    const c = join(npmRoot.stdout.trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js');
    if (existsSync(c)) return c;
  }
  return undefined;
}

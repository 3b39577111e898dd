#!/usr/bin/env node
// Builds the native fast path (native/ -> native/build/Release/kasane_native.node) with the node-gyp
// that npm bundles, against the headers of the node that runs this script (no download).
//
// A failed build is not fatal outside CI: the TypeScript executor is the fallback and
// src/native/index.ts reports the native executor as unavailable. With CI=true (or
// KASANE_REQUIRE_NATIVE=1) a failed build fails the install.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const nativeDir = join(root, 'native');
const required = process.env.CI === 'true' || process.env.KASANE_REQUIRE_NATIVE === '1';

function fail(message) {
  const text = `kasane: native fast path not built: ${message}\n` +
    'kasane: the gateway will use the TypeScript executor (slower); see docs/dataplane.md.\n';
  process.stderr.write(text);
  process.exit(required ? 1 : 0);
}

if (process.env.KASANE_SKIP_NATIVE === '1') fail('KASANE_SKIP_NATIVE=1');
if (process.platform !== 'linux') fail(`the native datapath is Linux-only (this is ${process.platform})`);

function findNodeGyp() {
  const candidates = [];
  // npm tells its scripts where its node-gyp is.
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  // npm's own install beside this node (e.g. /usr/bin/node -> /usr/lib/node_modules/npm).
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push(join(prefix, 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  // A node-gyp the project itself may have installed.
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not installed locally */
  }
  // npm's location as npm reports it (slower: spawns npm).
  const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  if (npmRoot.status === 0) candidates.push(join(npmRoot.stdout.trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js'));
  return candidates.find((c) => c && existsSync(c));
}

// Headers of the running node: <prefix>/include/node (Debian/NodeSource: /usr/include/node).
function findNodeDir() {
  const fromEnv = process.env.npm_config_nodedir;
  if (fromEnv && existsSync(join(fromEnv, 'include/node/node_api.h'))) return fromEnv;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include/node/node_api.h'))) return prefix;
  return undefined;
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) fail('node-gyp not found (it ships with npm)');
const nodeDir = findNodeDir();
if (!nodeDir) fail(`node headers not found under ${resolve(dirname(process.execPath), '..')}/include/node`);
if (!existsSync(join(nodeDir, 'include/node/openssl/evp.h'))) fail(`OpenSSL headers not found in ${nodeDir}/include/node/openssl`);

const args = [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`, '--jobs=max', '--loglevel=warn'];
const r = spawnSync(process.execPath, args, { cwd: nativeDir, stdio: 'inherit' });
if (r.status !== 0) fail(`node-gyp exited with ${r.status ?? r.signal}`);
const out = join(nativeDir, 'build/Release/kasane_native.node');
if (!existsSync(out)) fail(`${out} missing after the build`);

// Load it once: a build that links but cannot resolve node's OpenSSL symbols fails here, not later.
try {
  createRequire(import.meta.url)(out);
} catch (e) {
  fail(`built but does not load: ${e instanceof Error ? e.message : String(e)}`);
}
process.stdout.write(`kasane: native fast path built: ${out}\n`);

#!/usr/bin/env node
// Builds the native fast path (native/ -> native/build/Release/kasane_native.node) with the node-gyp
// that npm bundles, against the headers of the node that runs this script (no download; see
// scripts/node-headers.mjs).
//
// A failed build is not fatal outside CI: the TypeScript executor is the fallback and
// src/native/index.ts reports the native executor as unavailable. With CI=true (or
// KASANE_REQUIRE_NATIVE=1) a failed build fails the install.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { chooseNodeDir, findNpmNodeGyp, runningNodePrefix } from './node-gyp/node-headers.mjs';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const nativeDir = join(root, 'native');
const required = process.env.CI === 'true' || process.env.KASANE_REQUIRE_NATIVE === '1';

function fail(message) {
  const text =
    `kasane: native fast path not built: ${message}\n` +
    'kasane: the gateway will use the TypeScript executor (slower); see docs/dataplane.md.\n';
  process.stderr.write(text);
  process.exit(required ? 1 : 0);
}

if (process.env.KASANE_SKIP_NATIVE === '1') fail('KASANE_SKIP_NATIVE=1');
if (process.platform !== 'linux') fail(`the native datapath is Linux-only (this is ${process.platform})`);

const nodeGyp = findNpmNodeGyp();
if (!nodeGyp) fail('node-gyp not found (it ships with npm)');
const { dir: nodeDir, note } = chooseNodeDir();
if (note) process.stderr.write(`kasane: ${note}\n`);
if (!nodeDir || !existsSync(join(nodeDir, 'include/node/node_api.h')))
  fail(`headers of node ${process.versions.node} not found (${runningNodePrefix()}/include/node)`);
if (!existsSync(join(nodeDir, 'include/node/openssl/evp.h')))
  fail(`OpenSSL headers not found in ${nodeDir}/include/node/openssl`);

// node-gyp reads npm_config_* after its command line: nodedir goes in the environment.
const args = [nodeGyp, 'rebuild', '--jobs=max', '--loglevel=warn'];
const r = spawnSync(process.execPath, args, {
  cwd: nativeDir,
  stdio: 'inherit',
  env: { ...process.env, npm_config_nodedir: nodeDir },
});
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

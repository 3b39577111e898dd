#!/usr/bin/env node
// `node-gyp` for every native dependency that npm builds (pkcs11js, better-sqlite3): npm runs
// install scripts with <project>/node_modules/.bin ahead of its own node-gyp on PATH, and this
// package (a dependency of kasane) puts this file there as `node-gyp`. It runs npm's own node-gyp
// unchanged, with `nodedir` set to the running node's headers when npm's configuration does not
// already point at headers of this very node: node-gyp would otherwise download them from
// nodejs.org, which a gateway in a closed network cannot reach. (npm's `node-gyp` setting is no
// way to do this: npm ignores it for dependencies' install scripts.)
import { spawnSync } from 'node:child_process';
import { chooseNodeDir, findNpmNodeGyp } from './node-headers.mjs';

const nodeGyp = findNpmNodeGyp();
if (!nodeGyp) {
  process.stderr.write("kasane: npm's node-gyp not found (it ships with npm: is npm installed beside this node?)\n");
  process.exit(1);
}
// node-gyp reads npm_config_* after its command line, so the environment is where nodedir goes.
const { dir, note } = chooseNodeDir();
if (note) process.stderr.write(`kasane: ${note}\n`);
const env = { ...process.env };
if (dir) env.npm_config_nodedir = dir;
const r = spawnSync(process.execPath, [nodeGyp, ...process.argv.slice(2)], { stdio: 'inherit', env });
if (r.error) process.stderr.write(`kasane: ${nodeGyp}: ${r.error.message}\n`);
process.exit(r.status ?? 1);

#!/usr/bin/env node
// Builds the authority's web console (console/) into dist/console with esbuild: one JavaScript
// bundle and one stylesheet with content hashes in their names, the favicon, and index.html naming
// them. Runs in `npm install` (prepare) and `npm run build`; everything comes from node_modules, so
// the console works offline and needs no CDN. `--watch` rebuilds on change (development).
import { build, context } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist', 'console');
const assets = join(out, 'assets');

const options = {
  entryPoints: { app: join(root, 'console', 'src', 'main.tsx') },
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  outdir: assets,
  metafile: true,
  logLevel: 'warning',
  legalComments: 'linked',
};

function writeIndex(metafile) {
  const outputs = Object.keys(metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => /^app-.*\.js$/.test(f));
  const css = outputs.find((f) => /^app-.*\.css$/.test(f));
  if (!js || !css) throw new Error(`build-console: no app bundle among ${outputs.join(', ')}`);
  const html = readFileSync(join(root, 'console', 'index.html'), 'utf8')
    .replace('%APP_JS%', js)
    .replace('%APP_CSS%', css);
  writeFileSync(join(out, 'index.html'), html);
  copyFileSync(join(root, 'console', 'favicon.svg'), join(assets, 'favicon.svg'));
  return { js, css };
}

rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });
if (process.argv.includes('--watch')) {
  const ctx = await context({
    ...options,
    plugins: [{ name: 'index', setup: (b) => b.onEnd((r) => r.metafile && writeIndex(r.metafile)) }],
  });
  await ctx.watch();
  console.log('build-console: watching console/src');
} else {
  const r = await build(options);
  const { js, css } = writeIndex(r.metafile);
  const size = (f) => Math.round(readFileSync(join(assets, f)).length / 1024);
  console.log(
    `build-console: dist/console (${js} ${size(js)} KiB, ${css} ${size(css)} KiB, ${readdirSync(assets).length} files)`,
  );
}

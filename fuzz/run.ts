// `npm run fuzz [-- [--count N] [--seed S] [--slow-ms MS] [TARGET...]]`: every parser of untrusted
// input, 1,000,000 inputs each by default (docs/fuzzing.md). Findings are printed and saved under
// test/fuzz/regressions/<target>/, where test/fuzz/regressions.test.ts replays them for good.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { fuzz, type FuzzReport } from './harness.js';
import { TARGETS } from './targets/index.js';

export const REGRESSIONS = fileURLToPath(new URL('../test/fuzz/regressions/', import.meta.url));

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Saves a finding's input where the regression test replays it. */
export function saveFinding(f: { target: string; kind: string; message: string; input: string }): string {
  const dir = `${REGRESSIONS}${f.target}`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/${createHash('sha256').update(f.input).digest('hex').slice(0, 16)}.json`;
  writeFileSync(
    file,
    JSON.stringify({ target: f.target, kind: f.kind, message: f.message.split('\n')[0], input: f.input }, null, 2) +
      '\n',
  );
  return file;
}

export function formatReport(r: FuzzReport): string {
  const heap =
    r.heapGrowth === undefined
      ? ''
      : `, heap ${r.heapGrowth >= 0 ? '+' : ''}${(r.heapGrowth / 1048576).toFixed(1)} MiB`;
  return `${r.target.padEnd(16)} ${String(r.inputs).padStart(9)} inputs in ${r.seconds.toFixed(1).padStart(7)} s (${Math.round(r.inputs / r.seconds)}/s), slowest ${r.slowestMs.toFixed(2)} ms${heap}, ${r.findings.length} findings`;
}

async function main(): Promise<void> {
  const names = process.argv
    .slice(2)
    .filter((a, i, all) => !a.startsWith('--') && !(all[i - 1] ?? '').startsWith('--'));
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length) {
    process.stderr.write(
      `unknown fuzz target(s): ${unknown.join(', ')}; available: ${TARGETS.map((t) => t.name).join(', ')}\n`,
    );
    process.exit(2);
  }
  const count = option('--count', 1_000_000);
  const seed = option('--seed', Date.now() % 0x7fffffff);
  const slowMs = option('--slow-ms', 10);
  console.log(`fuzz: ${count} inputs per target, seed ${seed} (repeat with --seed ${seed})`);
  let total = 0;
  for (const t of TARGETS.filter((x) => names.length === 0 || names.includes(x.name))) {
    console.log(`# ${t.name}: ${t.description}`);
    const r = await fuzz(t, {
      count,
      seed,
      slowMs,
      onProgress: (n, f) => process.stderr.isTTY && n > 0 && process.stderr.write(`  ${n} inputs, ${f} findings\r`),
    });
    console.log(formatReport(r));
    for (const f of r.findings) {
      total++;
      const where = f.input ? ` -> ${saveFinding(f)}` : '';
      console.log(`  FINDING ${f.kind}: ${f.message.split('\n').join('\n    ')}${where}`);
    }
  }
  console.log(
    total === 0 ? 'fuzz: no findings' : `fuzz: ${total} findings (inputs saved under test/fuzz/regressions/)`,
  );
  process.exitCode = total === 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Heap growth needs --expose-gc: re-run under it.
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function' && process.env.KASANE_FUZZ_CHILD === undefined) {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
      { stdio: 'inherit', env: { ...process.env, KASANE_FUZZ_CHILD: '1' } },
    );
    process.exit(child.status ?? 1);
  }
  main().catch((e: unknown) => {
    process.stderr.write(`fuzz: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}

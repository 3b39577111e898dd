// `kasane simulate`: the JSON and text reports, byte-for-byte determinism by seed, and exit code 2
// with a precise message for a bad file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_BAD_TOPOLOGY, EXIT_OK, simulate, type SimulateOptions } from '../../src/cli/commands/simulate.js';

const FIGURE2 = fileURLToPath(new URL('../../examples/figure2.yaml', import.meta.url));

function run(file: string, options: SimulateOptions = {}) {
  let stdout = '';
  let stderr = '';
  const code = simulate(file, options, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

function withFile(text: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-sim-'));
  try {
    const path = join(dir, 'net.yaml');
    writeFileSync(path, text);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('--json prints exactly one JSON document with paths, trace, keyTables and stats', () => {
  const { code, stdout, stderr } = run(FIGURE2, { json: true });
  assert.equal(code, EXIT_OK);
  assert.equal(stderr, '');
  const doc = JSON.parse(stdout); // throws if there is anything besides one document
  assert.equal(doc.name, 'figure2');
  assert.equal(doc.seed, 1);
  assert.deepEqual(
    doc.paths.map((p: { from: string; to: string }) => [p.from, p.to]),
    [
      ['B', 'A'],
      ['B', 'C'],
      ['A', 'C'],
    ],
  );
  for (const p of doc.paths) {
    assert.equal(typeof p.delivered, 'boolean');
    assert.equal(typeof p.replied, 'boolean');
    assert.ok(Array.isArray(p.vpnLayers) && p.vpnLayers.every((l: unknown) => typeof l === 'string'));
  }
  assert.ok(Array.isArray(doc.trace) && doc.trace.length > 0);
  for (const t of doc.trace) {
    assert.equal(typeof t.time, 'number');
    assert.equal(typeof t.node, 'string');
    assert.equal(typeof t.event, 'string');
    assert.equal(typeof t.kind, 'string');
    if ('step' in t) assert.equal(typeof t.step, 'number');
  }
  const times = doc.trace.map((t: { time: number }) => t.time);
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    'the trace is in time order',
  );
  assert.deepEqual(Object.keys(doc.keyTables), ['G1', 'G2', 'G3']);
  for (const entries of Object.values(doc.keyTables)) assert.ok(Array.isArray(entries));
  assert.deepEqual(Object.keys(doc.stats), ['G1', 'G2', 'G3']);
  // Terminal events carry Figure 4 step 1 for the first data packet of each traffic item.
  const firstSends = doc.trace.filter((t: { event: string; step?: number }) => t.event === 'send' && t.step === 1);
  assert.deepEqual(
    firstSends.map((t: { node: string }) => t.node),
    ['B', 'B', 'A'],
  );
});

test('the same file and seed print the same bytes; --seed and --until change the run', () => {
  const a = run(FIGURE2, { json: true }).stdout;
  assert.equal(run(FIGURE2, { json: true }).stdout, a);
  const seeded = JSON.parse(run(FIGURE2, { json: true, seed: 9 }).stdout);
  assert.equal(seeded.seed, 9);
  const short = JSON.parse(run(FIGURE2, { json: true, until: 500 }).stdout);
  assert.equal(short.until, 500);
  assert.ok(short.trace.every((t: { time: number }) => t.time <= 500));
  assert.deepEqual(JSON.parse(run(FIGURE2, { json: true, trace: false }).stdout).trace, []);
});

test('the text report has the paths, the trace and the key tables', () => {
  const { code, stdout } = run(FIGURE2);
  assert.equal(code, EXIT_OK);
  assert.match(stdout, /^figure2: seed 1, ran to \d+ ms/);
  assert.match(stdout, /\nPaths tried\n  FROM +TO +KIND +DELIVERED +REPLIED +VPN LAYERS/);
  assert.match(stdout, /\n  B +A +echo +(yes|no) \d\/3/);
  assert.match(stdout, /\nTrace \(\d+ events\)\n  TIME \(ms\) +NODE +STEP +EVENT +KIND +DETAIL\n/);
  assert.match(stdout, /\nKey tables at \d+ ms\n  G1/);
  assert.match(stdout, /\nLinks\n/);
  const noTrace = run(FIGURE2, { trace: false }).stdout;
  assert.doesNotMatch(noTrace, /\nTrace \(/);
});

test('a bad file exits with code 2 and a precise message, never a stack trace', () => {
  withFile('nodes:\n  - { name: A, terminal: 10.0.0.1 }\nlinks: [[A, Z]]\n', (path) => {
    const { code, stdout, stderr } = run(path, { json: true });
    assert.equal(code, EXIT_BAD_TOPOLOGY);
    assert.equal(stdout, '');
    assert.equal(
      stderr,
      `kasane simulate: ${path} is not a valid topology:\n  net.yaml:3:13: links[0][1]: unknown node "Z"\n`,
    );
  });
  const missing = run('/nonexistent/net.yaml');
  assert.equal(missing.code, EXIT_BAD_TOPOLOGY);
  assert.match(missing.stderr, /cannot read \/nonexistent\/net\.yaml: no such file/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
});

test('IPv6 and dual-stack examples run through the command; the report shows the addresses used', () => {
  const v6 = fileURLToPath(new URL('../../examples/figure2-ipv6.yaml', import.meta.url));
  const doc = JSON.parse(run(v6, { json: true }).stdout);
  assert.deepEqual(
    doc.paths.map((p: { src: string; dst: string; deliveredCount: number }) => [p.src, p.dst, p.deliveredCount]),
    [
      ['2001:db8:2::10', '2001:db8:1::10', 3],
      ['2001:db8:2::10', '2001:db8:3::10', 3],
      ['2001:db8:1::10', '2001:db8:3::10', 0],
    ],
  );
  const dual = run(fileURLToPath(new URL('../../examples/dual-stack.yaml', import.meta.url)), { trace: false });
  assert.equal(dual.code, EXIT_OK);
  assert.match(dual.stdout, /\n  B 10\.2\.0\.10 +A 10\.1\.0\.10 +echo +yes 3\/3 +yes 3\/3 +VPN1 /);
  assert.match(dual.stdout, /\n  B 2001:db8:2::10 +A 2001:db8:1::10 +echo +yes 3\/3 +yes 3\/3 +VPN1 /);
  // An IPv4 run keeps its report as it was: names only.
  assert.match(run(FIGURE2, { trace: false }).stdout, /\n  B +A +echo +yes 3\/3/);
});

// Topology files as an attacker (or an unlucky generator) would write them (issue 11): alias
// bombs, huge files, 300,000 terminals behind one gateway, gateways nested in a ring, .nan. Every
// one is a clear problem with its line and field, and `kasane simulate` exits 2, never 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_BAD_TOPOLOGY, simulate } from '../../src/cli/commands/simulate.js';
import { loadTopology, TOPOLOGY_LIMITS } from '../../src/sim/topology.js';
import { jsonPositions } from '../../src/files/document.js';
import { aliasBomb, SMALL_TOPOLOGY } from '../support/files.js';

function withFile(name: string, write: (path: string) => void, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-files-'));
  try {
    const path = join(dir, name);
    write(path);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function simulateFile(path: string): { code: number; stderr: string } {
  let stderr = '';
  const code = simulate(path, {}, { stdout: () => undefined, stderr: (t) => (stderr += t) });
  return { code, stderr };
}

test("a YAML alias bomb: exit 2 with the line and field of the alias, not the library's exception", () => {
  const bomb = aliasBomb(9);
  withFile(
    'bomb.yaml',
    (p) => writeFileSync(p, SMALL_TOPOLOGY + bomb),
    (p) => {
      const { code, stderr } = simulateFile(p);
      assert.equal(code, EXIT_BAD_TOPOLOGY);
      assert.match(
        stderr,
        /bomb\.yaml:11:\d+: x4\[0\]: alias \*a3 stands for 11111 nodes; an alias may stand for at most 10000/,
      );
      assert.ok(stderr.split('\n').length < 20, 'one problem per anchor, not thousands');
    },
  );
  // An alias inside its own anchor.
  const r = loadTopology({ text: `${SMALL_TOPOLOGY}description: &self [*self]\n` });
  assert.ok(!r.ok);
  assert.match(r.error.message, /line 7:\d+: description\[0\]: alias \*self stands for an endless number of nodes/);
});

test('files over the documented size are refused before they are read', () => {
  withFile(
    'huge.yaml',
    (p) => (writeFileSync(p, SMALL_TOPOLOGY), truncateSync(p, TOPOLOGY_LIMITS.maxJsonBytes + 1)),
    (p) => {
      const { code, stderr } = simulateFile(p);
      assert.equal(code, EXIT_BAD_TOPOLOGY);
      assert.match(stderr, /is 32\.0 MiB; topology files are limited to 32\.0 MiB of JSON or 4\.0 MiB of YAML/);
    },
  );
  const yaml = SMALL_TOPOLOGY + `description: "${'x'.repeat(TOPOLOGY_LIMITS.maxYamlBytes)}"\n`;
  const r = loadTopology({ text: yaml });
  assert.ok(!r.ok);
  assert.match(r.error.message, /of YAML; topology files are limited to 4\.0 MiB of YAML \(32\.0 MiB as JSON\)/);
});

test('300,000 terminals behind one gateway load (validation is linear in the terminals)', { timeout: 120_000 }, () => {
  const n = 300_000;
  const nodes: object[] = [
    { name: 'G', gateway: '192.0.2.1', lans: ['10.0.0.0/8'], members: { V: ['10.0.0.0/8'] }, inside: [] as string[] },
    { name: 'G2', gateway: '192.0.2.2', members: { V: ['11.0.0.0/8'] } },
  ];
  const links: [string, string][] = [['G', 'G2']];
  for (let i = 0; i < n; i++) {
    nodes.push({ name: `t${i}`, terminal: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` });
    links.push([`t${i}`, 'G']);
    (nodes[0] as { inside: string[] }).inside.push(`t${i}`);
  }
  const text = JSON.stringify({ vpns: [{ name: 'V', id: 1 }], nodes, links });
  const r = loadTopology({ text });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(r.value.nodes.filter((x) => x.kind === 'terminal').length, n);
  // One mistake among them is found, with its line and column in the JSON text.
  const bad = text.replace('"t299999","G"]', '"t299999","Gx"]');
  const e = loadTopology({ text: bad, file: 'big.json' });
  assert.ok(!e.ok);
  assert.match(e.error.message, /^big\.json:1:\d+: links\[300000\]\[1\]: unknown node "Gx"/);
});

test('gateways nested inside each other in a ring are refused, naming the ring', () => {
  const ring = `vpns: [{ name: V, id: 1 }]
nodes:
  - { name: G1, gateway: 192.0.2.1, inside: [G2] }
  - { name: G2, gateway: 192.0.2.2, inside: [G3] }
  - { name: G3, gateway: 192.0.2.3, inside: [G1] }
  - { name: G4, gateway: 192.0.2.4, inside: [G5] }
  - { name: G5, gateway: 192.0.2.5, inside: [G4] }
links: [[G1, G2], [G2, G3], [G3, G1], [G4, G5]]
`;
  const r = loadTopology({ text: ring });
  assert.ok(!r.ok);
  assert.match(r.error.message, /line 5:\d+: nodes\[2\]\.inside\[0\]: inside nesting forms a cycle: G1 → G2 → G3 → G1/);
  assert.match(r.error.message, /line 7:\d+: nodes\[4\]\.inside\[0\]: inside nesting forms a cycle: G4 → G5 → G4/);
  assert.equal(r.error.issues.length, 2);
});

test('.nan and .inf get a message that says what they are', () => {
  const r = loadTopology({ text: `seed: .nan\nuntil: -.inf\n${SMALL_TOPOLOGY}` });
  assert.ok(!r.ok);
  assert.match(r.error.message, /line 1:7: seed: expected a number, got not-a-number \(\.nan\)/);
  assert.match(r.error.message, /line 2:8: until: expected a number, got minus infinity \(-\.inf\)/);
});

test('nesting too deep for the parser, and other unparsable text: exit 2, no crash', () => {
  for (const text of [
    `x: ${'['.repeat(50_000)}`,
    `{"a": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
    '\u0000\u0001: [',
    'a: b: c',
  ]) {
    withFile(
      'deep.yaml',
      (p) => writeFileSync(p, text),
      (p) => {
        const { code, stderr } = simulateFile(p);
        assert.equal(code, EXIT_BAD_TOPOLOGY, stderr);
      },
    );
  }
});

test('jsonPositions finds values in any JSON text', () => {
  const text = '{\n  "a": [1, {"b": "x,]}\\""}, [], {}],\n  "c": {"d": true, "e": null}\n}';
  assert.deepEqual(jsonPositions(text, [['a', 1, 'b'], ['c', 'e'], ['a', 3], ['c', 'missing'], ['a', 2], []]), [
    { line: 2, column: 18 },
    { line: 3, column: 25 },
    { line: 2, column: 33 },
    { line: 3, column: 8 },
    { line: 2, column: 29 },
    { line: 1, column: 1 },
  ]);
});

test('a list or a mapping used as a key is a problem at its line, not a warning on stderr', () => {
  const r = loadTopology({ text: `${SMALL_TOPOLOGY}? [a, b]\n: x\n` });
  assert.ok(!r.ok);
  assert.match(r.error.message, /line 7:3: \(top level\): a list or a mapping used as a key; keys are names/);
});

// The example topologies in examples/ load, run and try every traffic item; the multi-stage one nests
// two VPNs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadTopology, renderJson, renderText, runTopology } from '../../src/sim/run.js';

const dir = fileURLToPath(new URL('../../examples/', import.meta.url));

test('every example loads, runs, and tries each of its traffic items', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.includes('figure2.yaml') && files.includes('multistage.yaml'));
  for (const file of files) {
    const loaded = loadTopology({ path: dir + file });
    assert.ok(loaded.ok, `${file}: ${loaded.ok ? '' : loaded.error.message}`);
    const t = loaded.value;
    const result = runTopology(t);
    assert.equal(result.paths.length, t.traffic.length, file);
    result.paths.forEach((p, i) => {
      assert.equal(p.from, t.traffic[i].from);
      assert.equal(p.to, t.traffic[i].to);
      assert.equal(p.sent, t.traffic[i].count);
    });
    assert.deepEqual(
      Object.keys(result.keyTables),
      t.nodes.filter((n) => n.kind === 'gateway').map((n) => n.name),
    );
    assert.ok(renderText(result).length > 0);
    assert.doesNotThrow(() => JSON.parse(renderJson(result)));
  }
});

test('the multi-stage example nests two VPNs behind each other', () => {
  const loaded = loadTopology({ path: dir + 'multistage.yaml' });
  assert.ok(loaded.ok);
  const gateways = loaded.value.nodes.filter((n) => n.kind === 'gateway');
  assert.deepEqual(
    gateways.map((g) =>
      g.kind === 'gateway' ? [g.name, g.inside, g.members.map((m) => `${m.vpn}:${m.prefixes.join(',')}`)] : [],
    ),
    [
      ['Gi1', ['A'], ['dept:10.1.1.0/24']],
      ['Go1', ['Gi1'], ['company:10.1.0.0/16']],
      ['Gi2', ['B'], ['dept:10.2.1.0/24']],
      ['Go2', ['Gi2'], ['company:10.2.0.0/16']],
    ],
  );
});

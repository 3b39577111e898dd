// The simulator's scale benchmark runs (a small size): its topology is valid and it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSimScale, runSimScale, scaleTopologyDocument, simScaleOptions } from '../../bench/sim-scale.js';
import { parseTopology } from '../../src/sim/topology.js';

// The benchmark itself is not a test; this keeps its generator and plumbing from rotting.
const small = {
  ...simScaleOptions({
    KASANE_BENCH_GATEWAYS: '6',
    KASANE_BENCH_TERMINALS_PER_GATEWAY: '3',
    KASANE_BENCH_SEARCHES: '10',
  }),
};

test('the scale topology is valid and sized by the environment', () => {
  assert.deepEqual([small.gateways, small.terminalsPerGateway, small.searches, small.vpnMembers], [6, 3, 10, 5]);
  const parsed = parseTopology(scaleTopologyDocument(small));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.message);
  const t = parsed.value;
  assert.equal(t.nodes.filter((n) => n.kind === 'terminal').length, 18);
  assert.equal(t.nodes.filter((n) => n.kind === 'gateway').length, 6);
  assert.equal(t.vpns.length, 6);
  assert.equal(t.traffic.length, 10);
  // Every pair shares a VPN: the gateways of its two terminals are members of a common one.
  const gatewayOf = (terminal: string) => terminal.slice(1).split('_')[0];
  for (const item of t.traffic) {
    const a = `G${gatewayOf(item.from)}`;
    const b = `G${gatewayOf(item.to)}`;
    assert.notEqual(a, b);
    const vpnsOf = (g: string) =>
      new Set(t.nodes.flatMap((n) => (n.kind === 'gateway' && n.name === g ? n.members.map((m) => m.vpn) : [])));
    const common = [...vpnsOf(a)].filter((v) => vpnsOf(b).has(v));
    assert.ok(common.length > 0, `${item.from} -> ${item.to}`);
  }
  assert.throws(() => simScaleOptions({ KASANE_BENCH_GATEWAYS: 'many' }), /KASANE_BENCH_GATEWAYS must be an integer/);
});

test('the benchmark runs and reports', () => {
  const report = runSimScale(small);
  assert.equal(report.searches, 10);
  assert.ok(report.delivered <= 10);
  assert.ok(Number.isFinite(report.searchesPerSecond) && report.searchesPerSecond > 0);
  assert.match(formatSimScale(report), /searches per second/);
});

// Reading topology files: defaults, YAML and JSON, and every kind of mistake reported with its field
// and line instead of thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadTopology, parseTopology, type Topology } from '../../src/sim/topology.js';

const GOOD = `
name: small
vpns: [{ name: V, id: 7 }]
nodes:
  - { name: A, terminal: 10.1.0.10 }
  - { name: B, terminal: 10.2.0.10 }
  - { name: G1, gateway: 192.0.2.1, inside: [A], members: { V: [10.1.0.0/24] } }
  - { name: G2, gateway: 192.0.2.2, inside: [B], members: { V: [B] }, timers: { searchTimeout: 500 } }
  - { name: R, router: true }
links:
  - [A, G1]
  - [B, G2]
  - { a: G1, b: R, latency: 2, mtu: 1400, loss: { searchPackets: 1, searchFrom: G1 } }
  - [G2, R]
traffic:
  - { from: A, to: B, count: 2 }
events:
  - { at: 5000, removeMember: { vpn: V, gateway: G2 } }
  - { at: 100, rotate: V }
`;

function load(text: string): Topology {
  const r = loadTopology({ text });
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

/** Loads a bad file and returns its error lines. */
function problems(text: string): string[] {
  const r = loadTopology({ text, file: 'net.yaml' });
  assert.equal(r.ok, false, 'expected the file to be refused');
  return r.ok ? [] : r.error.message.split('\n');
}

test('a valid file: defaults, LAN/WAN latencies, terminal names in memberships, events in time order', () => {
  const t = load(GOOD);
  assert.equal(t.name, 'small');
  assert.equal(t.seed, 1);
  assert.deepEqual(t.vpns, [{ name: 'V', id: 7 }]);
  const g2 = t.nodes.find((n) => n.name === 'G2');
  assert.ok(g2 && g2.kind === 'gateway');
  assert.deepEqual(
    g2.members.map((m) => [m.vpn, m.prefixes.map(String)]),
    [['V', ['10.2.0.10/32']]],
  );
  assert.deepEqual(g2.timers, { searchTimeout: 500 });
  const links = Object.fromEntries(t.links.map((l) => [`${l.a}-${l.b}`, l]));
  assert.equal(links['A-G1'].latency, 0.1);
  assert.equal(links['A-G1'].lan, true);
  assert.equal(links['G2-R'].latency, 1);
  assert.equal(links['G2-R'].lan, false);
  assert.equal(links['G1-R'].latency, 2);
  assert.equal(links['G1-R'].mtu, 1400);
  assert.deepEqual(links['G1-R'].loss, { searchPackets: 1, searchFrom: 'G1', rate: 0 });
  assert.deepEqual(t.traffic[0], {
    kind: 'echo',
    from: 'A',
    to: 'B',
    family: 4,
    at: 0,
    count: 2,
    interval: 1000,
    size: 56,
    marker: undefined,
    port: 80,
  });
  assert.deepEqual(
    t.events.map((e) => [e.at, e.kind]),
    [
      [100, 'rotate'],
      [5000, 'remove-member'],
    ],
  );
});

test('JSON is accepted as well as YAML, and a program can pass a parsed document', () => {
  const doc = {
    nodes: [
      { name: 'A', terminal: '10.0.0.1' },
      { name: 'B', terminal: '10.0.0.2' },
      { name: 'R', router: '192.0.2.254' },
    ],
    links: [
      ['A', 'R'],
      ['B', 'R'],
    ],
  };
  const fromJson = loadTopology(JSON.stringify(doc));
  assert.ok(fromJson.ok);
  const parsed = parseTopology(doc);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value, fromJson.value);
  const router = parsed.value.nodes[2];
  assert.equal(router.kind === 'router' && router.address, '192.0.2.254');
});

test('the examples load', () => {
  for (const name of ['figure2', 'multistage']) {
    const r = loadTopology({ path: fileURLToPath(new URL(`../../examples/${name}.yaml`, import.meta.url)) });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
  }
});

test('unknown node names are reported with the field and its line', () => {
  const lines = problems(`
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: R, router: true }
links:
  - [A, R]
  - [R, X]
`);
  assert.deepEqual(lines, ['net.yaml:7:9: links[1][1]: unknown node "X"']);
});

test('duplicate addresses and names', () => {
  const lines = problems(`
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: B, terminal: 10.0.0.1 }
  - { name: A, router: true }
  - { name: G, gateway: 10.0.0.1 }
links: [[A, G], [B, G]]
`);
  assert.deepEqual(lines, [
    'net.yaml:4:26: nodes[1].terminal: address 10.0.0.1 is already used by A',
    'net.yaml:5:13: nodes[2].name: duplicate node name "A" (also nodes[0])',
    'net.yaml:6:25: nodes[3].gateway: address 10.0.0.1 is already used by A',
  ]);
});

test('bad CIDR prefixes in memberships, lans and allowPlain', () => {
  const lines = problems(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - name: G
    gateway: 192.0.2.1
    inside: [A]
    members: { V: [10.0.0.1/24, 10.0.0.0/33, 10.0.0.0/24] }
    lans: [not-a-prefix]
    allowPlain: [fd00::/8, "fd00::1/8", "2001:db8::/129"]
links: [[A, G]]
`);
  assert.deepEqual(lines, [
    'net.yaml:8:20: nodes[1].members.V[0]: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)',
    'net.yaml:8:33: nodes[1].members.V[1]: bad prefix length in "10.0.0.0/33"',
    'net.yaml:9:12: nodes[1].lans[0]: not a CIDR prefix: "not-a-prefix"',
    'net.yaml:10:28: nodes[1].allowPlain[1]: fd00::1/8 has host bits set (did you mean fd00::/8?)',
    'net.yaml:10:41: nodes[1].allowPlain[2]: bad prefix length in "2001:db8::/129"',
  ]);
});

test('a membership names an unknown VPN, or something that is neither a prefix nor a terminal', () => {
  const lines = problems(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: R, router: true }
  - { name: G, gateway: 192.0.2.1, inside: [A], members: { W: [10.0.0.0/24], V: [Nobody, R] } }
links: [[A, G], [G, R]]
`);
  assert.deepEqual(lines, [
    'net.yaml:6:63: nodes[2].members.W: unknown field "W"; expected one of: V',
    'net.yaml:6:82: nodes[2].members.V[0]: "Nobody" is neither a CIDR prefix nor a node name',
    'net.yaml:6:90: nodes[2].members.V[1]: "R" is a router; a membership lists prefixes or terminal names',
  ]);
});

test('a terminal with more than one link, or none', () => {
  const lines = problems(`
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: B, terminal: 10.0.0.2 }
  - { name: R1, router: true }
  - { name: R2, router: true }
links: [[A, R1], [A, R2], [R1, R2]]
`);
  assert.deepEqual(lines, [
    'net.yaml:3:5: nodes[0]: terminal A has 2 links (R1, R2); a terminal has exactly one link',
    'net.yaml:4:5: nodes[1]: terminal B has no link; a terminal has exactly one link',
  ]);
});

test('gateway inside neighbours that are not linked to it', () => {
  const lines = problems(`
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: R, router: true }
  - { name: G, gateway: 192.0.2.1, inside: [R, A] }
links: [[G, R], [A, R]]
`);
  assert.deepEqual(lines, ['net.yaml:5:48: nodes[2].inside[1]: "A" is not linked to G']);
});

test('unknown VPNs in events, unknown fields, wrong types and ranges', () => {
  const lines = problems(`
vpns: [{ name: V, id: 0 }, { name: W, id: 2, mode: pairwise }]
nodes:
  - { name: A, terminal: 10.0.0.1, silnet: true }
  - { name: R, router: true }
links: [{ a: A, b: R, latency: -1, loss: { rate: 2 } }]
traffic: [{ from: A, to: R, count: 0 }]
events: [{ at: 10, rotate: X }, { at: 20, removeMember: { vpn: V, gateway: R } }]
`);
  assert.deepEqual(lines, [
    'net.yaml:2:23: vpns[0].id: must be at least 1, got 0',
    'net.yaml:2:52: vpns[1].mode: string "pairwise": the simulator runs group-mode VPNs only (mode: group)',
    'net.yaml:4:44: nodes[0].silnet: unknown field "silnet"; expected one of: name, terminal, silent',
    'net.yaml:6:32: links[0].latency: must be at least 0, got -1',
    'net.yaml:6:50: links[0].loss.rate: must be at most 1, got 2',
    'net.yaml:7:26: traffic[0].to: "R" is a router; traffic runs between terminals',
    'net.yaml:7:36: traffic[0].count: must be at least 1, got 0',
    'net.yaml:8:28: events[0].rotate: unknown VPN "X"',
    'net.yaml:8:76: events[1].removeMember.gateway: unknown gateway "R"',
  ]);
});

test('removing a gateway that is not (or no longer) a member', () => {
  const lines = problems(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.0.0.1 }
  - { name: G, gateway: 192.0.2.1, inside: [A], members: { V: [A] } }
links: [[A, G]]
events:
  - { at: 20, removeMember: { vpn: V, gateway: G } }
  - { at: 10, removeMember: { vpn: V, gateway: G } }
`);
  assert.deepEqual(lines, ['net.yaml:8:48: events[0].removeMember.gateway: G is not a member of V at 20 ms']);
});

test('YAML syntax errors and unreadable files are reported, not thrown', () => {
  const syntax = problems('nodes: [\n  - { name: A\n');
  assert.ok(syntax.length >= 1);
  assert.match(syntax[0], /^net\.yaml:\d+:\d+: \(syntax\): /);
  const missing = loadTopology({ path: '/nonexistent/topology.yaml' });
  assert.equal(missing.ok, false);
  assert.match(missing.ok ? '' : missing.error.message, /cannot read \/nonexistent\/topology\.yaml: no such file/);
  const empty = problems('');
  assert.deepEqual(empty, ['net.yaml: (top level): expected a mapping (key: value), got nothing']);
});

test('every issue is reported, not only the first, with a structured list', () => {
  const r = loadTopology({ text: 'nodes: [{ name: 1a, terminal: x }]\nlinks: []\nfoo: 1\n' });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.error.issues.map((i) => [i.path, i.line]),
    [
      ['foo', 3],
      ['nodes[0].name', 1],
    ],
  );
  assert.equal(r.error.code, 'bad-topology');
});

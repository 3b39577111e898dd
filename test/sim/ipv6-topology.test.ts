// IPv6 and dual stack in topology files and on the simulated network: v6 addresses and prefixes
// wherever v4 ones are taken, a node with one address of each family, the family of a traffic
// item, and v6 packets routed and forwarded (hop limit) through routers and gateways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTopology, type Topology } from '../../src/sim/topology.js';
import { Simulation } from '../../src/sim/simulation.js';
import { ipEndpoints } from '../../src/sim/packets.js';
import { PlainCore, routerChain, topology } from './helpers.js';

function problems(text: string): string[] {
  const r = loadTopology({ text, file: 'net.yaml' });
  assert.equal(r.ok, false, 'expected the file to be refused');
  return r.ok ? [] : r.error.message.split('\n');
}

const DUAL = `
vpns: [{ name: V, id: 1 }, { name: W, id: 2 }]
nodes:
  - { name: A, terminal: [10.0.1.1, "2001:DB8:1:0::1"] }
  - { name: B, terminal: ["2001:db8:2::1", 10.0.2.1] }
  - { name: C, terminal: "2001:db8:3::1" }
  - { name: G1, gateway: [192.0.2.1, "2001:db8:100::1"], inside: [A], members: { V: [A] } }
  - { name: G2, gateway: "2001:db8:100::2", inside: [B, C], members: { V: [10.0.2.0/24, "2001:db8:2::/64"], W: [C] }, allowPlain: ["2001:db8:ff::/48"] }
  - { name: R, router: [198.51.100.1, "2001:db8:ff::1"] }
links: [[A, G1], [G1, R], [R, G2], [G2, B], [G2, C]]
traffic:
  - { from: A, to: B }
  - { from: B, to: A, at: 100 }
  - { from: A, to: B, family: 6, at: 200 }
  - { from: A, to: C, at: 300 }
`;

test('IPv6 addresses and prefixes are taken everywhere, canonicalised; dual-stack nodes list one of each family', () => {
  const t = topology(DUAL);
  const byName = new Map(t.nodes.map((n) => [n.name, n]));
  assert.deepEqual(byName.get('A')?.addresses, ['10.0.1.1', '2001:db8:1::1']);
  assert.equal(byName.get('A')?.kind === 'terminal' && byName.get('A')?.addresses[0], '10.0.1.1');
  assert.deepEqual(byName.get('B')?.addresses, ['2001:db8:2::1', '10.0.2.1']);
  assert.deepEqual(byName.get('R')?.addresses, ['198.51.100.1', '2001:db8:ff::1']);
  const g1 = byName.get('G1');
  const g2 = byName.get('G2');
  assert.ok(g1?.kind === 'gateway' && g2?.kind === 'gateway');
  assert.equal(g1.address, '192.0.2.1');
  // A terminal named in a membership stands for a host prefix of each of its addresses.
  assert.deepEqual(
    g1.members.map((m) => [m.vpn, m.prefixes.map(String)]),
    [['V', ['10.0.1.1/32', '2001:db8:1::1/128']]],
  );
  assert.deepEqual(
    g2.members.map((m) => [m.vpn, m.prefixes.map(String)]),
    [
      ['V', ['10.0.2.0/24', '2001:db8:2::/64']],
      ['W', ['2001:db8:3::1/128']],
    ],
  );
  assert.deepEqual(g2.allowPlain?.map(String), ['2001:db8:ff::/48']);
  // Family: the sender's first address that the receiver has, unless the item says.
  assert.deepEqual(
    t.traffic.map((x) => x.family),
    [4, 6, 6, 6],
  );
});

test('gateways are configured with every host prefix of the terminals inside, and their first address', () => {
  const configs = new Map<string, PlainCore>();
  new Simulation(topology(DUAL), {
    createCore: (opts) => configs.set(opts.config.id, new PlainCore(opts)).get(opts.config.id) as PlainCore,
  });
  assert.deepEqual(configs.get('G1')?.opts.config.attached.map(String), ['10.0.1.1/32', '2001:db8:1::1/128']);
  assert.deepEqual(configs.get('G2')?.opts.config.attached.map(String), [
    '2001:db8:2::1/128',
    '10.0.2.1/32',
    '2001:db8:3::1/128',
  ]);
  assert.equal(configs.get('G2')?.opts.config.address, '2001:db8:100::2');
  assert.equal(configs.get('G2')?.opts.config.address6, undefined, 'its address is the IPv6 one');
  assert.equal(configs.get('G1')?.opts.config.address, '192.0.2.1');
  assert.equal(configs.get('G1')?.opts.config.address6, '2001:db8:100::1');
});

test('address mistakes of IPv6 and dual-stack nodes are reported with their field', () => {
  const lines = problems(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: [10.0.1.1, 10.0.1.2] }
  - { name: B, terminal: ["2001:db8::1", 10.0.2.1, 10.0.2.2] }
  - { name: C, terminal: "2001:db8::zz" }
  - { name: D, terminal: "2001:0db8:0::1" }
  - { name: E, terminal: [] }
  - { name: F, terminal: "2001:db8:f::1" }
  - { name: H, terminal: [10.9.9.9, "2001:0DB8:F:0::1"] }
  - { name: G, gateway: 192.0.2.1, inside: [A, B, C, D, E, F, H], members: { V: ["2001:db8::1/64", F] } }
links: [[A, G], [B, G], [C, G], [D, G], [E, G], [F, G], [H, G]]
traffic:
  - { from: A, to: F }
  - { from: F, to: D, family: 4 }
  - { from: F, to: D, family: 5 }
`);
  const expect = [
    /^net\.yaml:4:\d+: nodes\[0\]\.terminal\[1\]: two IPv4 addresses \(10\.0\.1\.1, 10\.0\.1\.2\); a node has at most one of each family$/,
    /^net\.yaml:5:\d+: nodes\[1\]\.terminal: expected an address, or a list of one IPv4 and one IPv6 address \(got 3 entries\)$/,
    /^net\.yaml:6:\d+: nodes\[2\]\.terminal: .*2001:db8::zz/,
    /^net\.yaml:10:\d+: nodes\[6\]\.terminal\[1\]: address 2001:db8:f::1 is already used by F$/,
    /^net\.yaml:8:\d+: nodes\[4\]\.terminal: expected an address, or a list .* \(got 0 entries\)$/,
    /^net\.yaml:11:\d+: nodes\[7\]\.members\.V\[0\]: 2001:db8::1\/64 has host bits set \(did you mean 2001:db8::\/64\?\)$/,
    /^net\.yaml:14:\d+: traffic\[0\]\.to: A and F share no IP family \(A has IPv4, F has IPv6\)$/,
    /^net\.yaml:15:\d+: traffic\[1\]\.family: IPv4 is not on both ends \(F has IPv6, D has IPv6\)$/,
    /^net\.yaml:16:\d+: traffic\[2\]\.family: expected 4 or 6, got number 5$/,
  ];
  for (const re of expect)
    assert.ok(
      lines.some((l) => re.test(l)),
      `no line matches ${re}:\n${lines.join('\n')}`,
    );
});

/** The routed network of the simulation tests, with its addresses and router on IPv6. */
function routed6(routers: number): Topology {
  const { names, links } = routerChain(routers);
  return topology(`
nodes:
  - { name: A, terminal: "2001:db8:1::1" }
  - { name: B, terminal: "2001:db8:2::1" }
${names.map((n, i) => `  - { name: ${n}, router: ${i === 0 ? '"2001:db8:ff::1"' : 'true'} }`).join('\n')}
links:
${links}
traffic: [{ from: A, to: B, count: 2, size: 100, marker: hello }]
`);
}

test('IPv6 echo crosses routers and is answered; routers decrement the hop limit, and drop at 0', () => {
  const hopLimits: number[] = [];
  const sim = new Simulation(routed6(2));
  sim.tap(({ to, packet }) => {
    if (to === 'B') hopLimits.push(packet.bytes[7]);
  });
  const r = sim.run();
  assert.equal(r.paths[0].deliveredCount, 2);
  assert.equal(r.paths[0].repliedCount, 2);
  assert.deepEqual([r.paths[0].src, r.paths[0].dst], ['2001:db8:1::1', '2001:db8:2::1']);
  assert.deepEqual(hopLimits, [62, 62]);
  assert.equal(r.links.find((l) => l.link === 'R1-R2')?.bytes, 4 * (40 + 8 + 100));
  assert.equal(sim.terminals.get('B')?.received.data, 2);
  assert.equal(sim.terminals.get('A')?.received['data-reply'], 2);

  assert.equal(new Simulation(routed6(63)).run().paths[0].deliveredCount, 2);
  const expired = new Simulation(routed6(64)).run();
  assert.equal(expired.paths[0].deliveredCount, 0);
  assert.equal(expired.drops['ttl-expired'], 2);
});

test('dual-stack terminals are reached over either family; gateways see each family on the side it came from', () => {
  const cores = new Map<string, PlainCore>();
  const sim = new Simulation(topology(DUAL), {
    createCore: (opts) => cores.set(opts.config.id, new PlainCore(opts)).get(opts.config.id) as PlainCore,
  });
  const r = sim.run();
  assert.deepEqual(
    r.paths.map((p) => [p.from, p.to, p.src, p.dst, p.deliveredCount, p.repliedCount]),
    [
      ['A', 'B', '10.0.1.1', '10.0.2.1', 1, 1],
      ['B', 'A', '2001:db8:2::1', '2001:db8:1::1', 1, 1],
      ['A', 'B', '2001:db8:1::1', '2001:db8:2::1', 1, 1],
      ['A', 'C', '2001:db8:1::1', '2001:db8:3::1', 1, 1],
    ],
  );
  // G1 (A's gateway) sees the IPv4 exchange, then B's IPv6 one, each packet on the side it came from.
  assert.deepEqual(
    cores
      .get('G1')
      ?.seen.slice(0, 4)
      .map((s) => [s.side, s.dst]),
    [
      ['inside', '10.0.2.1'],
      ['outside', '10.0.1.1'],
      ['outside', '2001:db8:1::1'],
      ['inside', '2001:db8:2::1'],
    ],
  );
});

test('too big for the path on IPv6: the gateway answers Packet Too Big from its IPv6 address; SYNs are clamped for v6', () => {
  const t = topology(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: [10.0.1.1, "2001:db8:1::1"] }
  - { name: B, terminal: [10.0.2.1, "2001:db8:2::1"] }
  - { name: G1, gateway: [192.0.2.1, "2001:db8:100::1"], inside: [A], members: { V: [A] } }
  - { name: G2, gateway: [192.0.2.2, "2001:db8:100::2"], inside: [B], members: { V: [B] } }
  - { name: R, router: true }
links: [[A, G1], { a: G1, b: R, mtu: 1400 }, [R, G2], [G2, B]]
traffic:
  - { from: A, to: B, family: 6, at: 0, count: 2, interval: 500, size: 1400 }
  - { kind: tcp-syn, from: A, to: B, family: 6, at: 2000 }
  - { kind: tcp-syn, from: A, to: B, family: 4, at: 3000 }
`);
  const sim = new Simulation(t);
  const tooBig: { src: string; mtu: number }[] = [];
  sim.tap(({ to, packet }) => {
    const b = packet.bytes;
    if (to === 'A' && b[0] >> 4 === 6 && b[6] === 58 && b[40] === 2) {
      tooBig.push({
        src: ipEndpoints(b)?.src ?? '?',
        mtu: ((b[44] << 24) | (b[45] << 16) | (b[46] << 8) | b[47]) >>> 0,
      });
    }
  });
  const r = sim.run();
  // The echo (1448 bytes of IPv6) does not fit 1400 once encrypted: never sent too big, answered.
  assert.equal(r.paths[0].deliveredCount, 0);
  assert.equal(
    r.links.find((l) => l.link === 'G1-R')?.drops.mtu,
    undefined,
    'the core never emits a packet over the MTU',
  );
  assert.ok(tooBig.length >= 1);
  assert.ok(
    tooBig.every((p) => p.src === '2001:db8:100::1' && p.mtu < 1400 && p.mtu >= 1280),
    JSON.stringify(tooBig),
  );
  assert.ok((sim.terminals.get('A')?.received['icmp6-packet-too-big'] ?? 0) >= 1);
  // MSS clamped to what fits the path after the VPN layer: 20 bytes less over IPv6 than IPv4.
  const [, syn6, syn4] = r.paths;
  assert.equal(syn6.delivered && syn4.delivered, true);
  const mss6 = syn6.packets[0].mss as number;
  const mss4 = syn4.packets[0].mss as number;
  assert.ok(mss4 < 1460 && mss6 < 1460, `${mss4} ${mss6}`);
  assert.equal(mss4 - mss6, 20);
});

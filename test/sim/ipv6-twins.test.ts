// An IPv4 topology (each example, and random networks) with every address and prefix rewritten to
// IPv6 by one fixed mapping runs the same: the same paths delivered and dropped, through the same
// gateways and VPN layers, the same key tables, drops and trace (issue 14). The mapping puts the
// 32 bits of each IPv4 address behind 2001:db8:4::/96, and a /n prefix becomes a /(96+n), so
// containment (what key search, the memberships and the attached LANs depend on) is kept exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse } from 'yaml';
import { ipFamily, ipFromBytes, ipToBytes, parseIp, Prefix } from '../../src/base/addr.js';
import { parseTopology, runTopology, type SimResult, type Topology } from '../../src/sim/run.js';

const dir = fileURLToPath(new URL('../../examples/', import.meta.url));
const V6_BASE = ipToBytes('2001:db8:4::');

function v4ToV6(ip: string): string {
  const out = V6_BASE.slice();
  out.set(ipToBytes(ip), 12);
  return ipFromBytes(out, 0, 6);
}

/** Every IPv4 address or prefix in a document, rewritten to IPv6; everything else as it was. */
function toIpv6(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toIpv6);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toIpv6(v)]));
  if (typeof value !== 'string') return value;
  if (value.includes('/')) {
    const p = Prefix.parse(value);
    if (p.ok && p.value.family === 4) {
      const [address] = p.value.toString().split('/');
      return `${v4ToV6(address)}/${96 + p.value.length}`;
    }
    return value;
  }
  const ip = parseIp(value);
  return ip.ok && ipFamily(ip.value) === 4 ? v4ToV6(ip.value) : value;
}

function load(doc: unknown): Topology {
  const t = parseTopology(doc);
  if (!t.ok) assert.fail(t.error.message);
  return t.value;
}

/** What must not change between a run and its IPv6 twin; IPv4 addresses mapped as the file was. */
function essentials(r: SimResult, mapAddress: (ip: string) => string) {
  return {
    paths: r.paths.map((p) => ({
      from: p.from,
      to: p.to,
      kind: p.kind,
      delivered: p.delivered,
      replied: p.replied,
      vpnLayers: p.vpnLayers,
      sent: p.sent,
      deliveredCount: p.deliveredCount,
      repliedCount: p.repliedCount,
      packets: p.packets.map((x) => ({
        seq: x.seq,
        delivered: x.deliveredAt !== undefined,
        replied: x.repliedAt !== undefined,
        vpnLayers: x.vpnLayers,
        replyVpnLayers: x.replyVpnLayers,
      })),
    })),
    keyTables: Object.fromEntries(
      Object.entries(r.keyTables).map(([g, rows]) => [
        g,
        rows.map((row) => ({
          local: mapAddress(row.local),
          remote: mapAddress(row.remote),
          action: row.action,
          vpn: row.vpnName,
          peer: row.peer,
          layers: row.layers,
          reason: row.reason,
        })),
      ]),
    ),
    drops: r.drops,
    maxWanLayers: r.maxWanLayers,
    layerMismatches: r.layerMismatches,
    // Who did what, in order: the same Figure 4 steps at the same nodes.
    trace: r.trace.map((t) => `${t.node} ${t.event} ${t.kind} ${t.step ?? ''}`),
  };
}

const v4Examples = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .filter(
    (f) =>
      JSON.stringify(parse(readFileSync(dir + f, 'utf8'))).match(/"\d+\.\d+\.\d+\.\d+/) !== null &&
      !/::/.test(readFileSync(dir + f, 'utf8')),
  );

test('every IPv4 example, rewritten to IPv6, gives the same paths, key tables, drops and trace', () => {
  assert.ok(
    v4Examples.includes('figure2.yaml') &&
      v4Examples.includes('multistage.yaml') &&
      v4Examples.includes('robustness.yaml'),
    v4Examples.join(),
  );
  for (const file of v4Examples) {
    const doc = parse(readFileSync(dir + file, 'utf8'));
    const v6doc = toIpv6(doc);
    assert.doesNotMatch(JSON.stringify(v6doc), /"\d+\.\d+\.\d+\.\d+/, `${file}: every address rewritten`);
    for (const seed of [1, 2, 3]) {
      const v4 = runTopology(load(doc), { seed });
      const v6 = runTopology(load(v6doc), { seed });
      assert.ok(
        v4.paths.some((p) => p.delivered),
        `${file}: something is delivered`,
      );
      assert.deepEqual(
        essentials(v6, (ip) => ip),
        essentials(v4, v4ToV6),
        `${file}, seed ${seed}`,
      );
    }
  }
});

test('Figure 2 on IPv6 (examples/figure2-ipv6.yaml) runs as Figure 2 does', () => {
  const v6 = runTopology(load(parse(readFileSync(dir + 'figure2-ipv6.yaml', 'utf8'))));
  assert.deepEqual(
    v6.paths.map((p) => [p.from, p.to, p.deliveredCount, p.repliedCount, p.vpnLayers.join('+')]),
    [
      ['B', 'A', 3, 3, 'VPN1'],
      ['B', 'C', 3, 3, 'VPN2'],
      ['A', 'C', 0, 0, ''],
    ],
  );
  assert.equal(v6.maxWanLayers, 1);
  assert.equal(v6.layerMismatches, 0);
  // Its own address plan, but the same run as figure2.yaml: Figure 4's steps at the same nodes.
  const v4 = runTopology(load(parse(readFileSync(dir + 'figure2.yaml', 'utf8'))));
  const steps = (r: SimResult) => essentials(r, (ip) => ip).trace;
  assert.deepEqual(steps(v6), steps(v4));
  assert.ok(v6.trace.some((t) => t.kind === 'search-request(destination)' && t.event === 'echo' && t.step === 8));
  // The WAN carries IPv6 between the terminals: 20 bytes more per packet than IPv4, as many packets.
  const wan = (r: SimResult) => r.links.filter((l) => l.wan).map((l) => [l.link, l.packets]);
  assert.deepEqual(wan(v6), wan(v4));
});

test('dual stack (examples/dual-stack.yaml): each family protected on its own, both at once', () => {
  const r = runTopology(load(parse(readFileSync(dir + 'dual-stack.yaml', 'utf8'))));
  assert.deepEqual(
    r.paths.map((p) => [p.from, p.to, p.src, p.dst, p.deliveredCount, p.repliedCount, p.vpnLayers.join('+')]),
    [
      ['B', 'A', '10.2.0.10', '10.1.0.10', 3, 3, 'VPN1'],
      ['B', 'A', '2001:db8:2::10', '2001:db8:1::10', 3, 3, 'VPN1'],
      ['B', 'C', '2001:db8:2::10', '2001:db8:3::10', 3, 3, 'VPN2'],
      ['B', 'D', '10.2.0.10', '10.3.0.11', 0, 0, ''],
      ['A', 'C', '2001:db8:1::10', '2001:db8:3::10', 0, 0, ''],
    ],
  );
  // G2 holds an encrypting path per family to A (VPN1) and one to C (VPN2) on IPv6.
  const g2 = r.keyTables.G2.filter((p) => p.action === 'encrypt').map(
    (p) => `${p.local}>${p.remote} ${p.vpnName} ${p.peer}`,
  );
  assert.deepEqual(g2.sort(), [
    '10.2.0.10>10.1.0.10 VPN1 G1',
    '2001:db8:2::10>2001:db8:1::10 VPN1 G1',
    '2001:db8:2::10>2001:db8:3::10 VPN2 G3',
  ]);
  assert.equal(r.layerMismatches, 0);
  // Plain never leaks onto the WAN: every data packet there was inside one VPN layer.
  assert.equal(r.maxWanLayers, 1);
});

test('dual stack at once: v4 and v6 pings between the same terminals interleaved, all delivered', () => {
  const doc = parse(readFileSync(dir + 'dual-stack.yaml', 'utf8')) as { traffic: unknown[] };
  doc.traffic = [
    { from: 'A', to: 'B', at: 0, count: 20, interval: 50, family: 4 },
    { from: 'B', to: 'A', at: 25, count: 20, interval: 50, family: 6 },
    { from: 'C', to: 'B', at: 10, count: 20, interval: 50 },
  ];
  const r = runTopology(load(doc));
  assert.deepEqual(
    r.paths.map((p) => [p.deliveredCount, p.repliedCount, p.vpnLayers.join('+')]),
    [
      [20, 20, 'VPN1'],
      [20, 20, 'VPN1'],
      [20, 20, 'VPN2'],
    ],
  );
  assert.equal(r.layerMismatches, 0);
});

test('multi-stage on IPv6: two ESP layers on the WAN, one search sets up both', () => {
  const v6 = runTopology(load(toIpv6(parse(readFileSync(dir + 'multistage.yaml', 'utf8')))));
  const [p] = v6.paths;
  assert.equal(p.deliveredCount, 3);
  assert.equal(p.repliedCount, 3);
  assert.deepEqual(p.vpnLayers, ['company', 'dept']);
  assert.equal(v6.maxWanLayers, 2);
});

/** A random IPv4 network: gateways with terminals on their /24 LANs around a few routers, random VPNs. */
const randomNetwork = fc
  .record({
    routers: fc.integer({ min: 1, max: 3 }),
    gateways: fc.array(
      fc.record({ terminals: fc.integer({ min: 1, max: 2 }), router: fc.nat(), silent: fc.boolean() }),
      { minLength: 2, maxLength: 5 },
    ),
    vpns: fc.array(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
    traffic: fc.array(fc.record({ from: fc.nat(), to: fc.nat(), count: fc.integer({ min: 1, max: 3 }) }), {
      minLength: 1,
      maxLength: 5,
    }),
    lossyLink: fc.option(fc.nat(), { nil: undefined }),
    seed: fc.integer({ min: 0, max: 1000 }),
  })
  .map((n) => {
    const nodes: Record<string, unknown>[] = [];
    const links: unknown[] = [];
    const terminals: string[] = [];
    for (let r = 0; r < n.routers; r++) nodes.push({ name: `R${r}`, router: true });
    for (let r = 1; r < n.routers; r++) links.push([`R${r - 1}`, `R${r}`]);
    n.gateways.forEach((g, i) => {
      const inside = Array.from({ length: g.terminals }, (_, t) => `T${i}_${t}`);
      inside.forEach((t, k) => {
        nodes.push({ name: t, terminal: `10.${i}.0.${10 + k}`, silent: g.silent && k === 1 });
        links.push([t, `G${i}`]);
        terminals.push(t);
      });
      const members: Record<string, string[]> = {};
      n.vpns.forEach((m, v) => {
        if (m.some((x) => x % n.gateways.length === i)) members[`V${v}`] = [`10.${i}.0.0/24`];
      });
      nodes.push({ name: `G${i}`, gateway: `192.0.2.${i + 1}`, inside, lans: [`10.${i}.0.0/24`], members });
      const link: Record<string, unknown> = { a: `G${i}`, b: `R${g.router % n.routers}` };
      if (n.lossyLink !== undefined && n.lossyLink % n.gateways.length === i) link.loss = { searchPackets: 1 };
      links.push(link);
    });
    const traffic = n.traffic
      .map((t, k) => ({
        from: terminals[t.from % terminals.length],
        to: terminals[t.to % terminals.length],
        at: k * 700,
        count: t.count,
        interval: 100,
      }))
      .filter((t) => t.from !== t.to);
    return {
      seed: n.seed,
      vpns: n.vpns.map((_, v) => ({ name: `V${v}`, id: v + 1 })),
      nodes,
      links,
      traffic,
      defaults: { settle: 5000 },
    };
  });

test('property: any IPv4 network and its IPv6 twin give the same paths, key tables, drops and trace', () => {
  const seen = { encrypted: 0, refused: 0 };
  fc.assert(
    fc.property(randomNetwork, (doc) => {
      const v4 = runTopology(load(doc));
      const v6 = runTopology(load(toIpv6(doc)));
      assert.deepEqual(
        essentials(v6, (ip) => ip),
        essentials(v4, v4ToV6),
      );
      for (const p of v4.paths) {
        if (p.delivered && p.vpnLayers.length > 0) seen.encrypted++;
        if (!p.delivered) seen.refused++;
      }
    }),
    { numRuns: 40, seed: 14 },
  );
  // The networks drawn exercise both outcomes.
  assert.ok(seen.encrypted > 10 && seen.refused > 10, JSON.stringify(seen));
});

// The simulated network: delivery with link latencies, TTL and checksums at routers, gateways fed
// with the side a packet came from, VPN layers per packet, MTU, loss, and determinism by seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/core/packet/ipv4.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import { buildEchoRequest, echoData } from '../../src/sim/packets.js';
import { Simulation } from '../../src/sim/simulation.js';
import { LayeringCore, PlainCore, routerChain, searchPacket, topology } from './helpers.js';

const ROUTED = `
name: routed
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1 }
  - { name: R1, router: true }
  - { name: R2, router: 192.0.2.2 }
links:
  - [A, R1]
  - { a: R1, b: R2, latency: 5 }
  - [R2, B]
traffic:
  - { from: A, to: B, at: 10, count: 3, interval: 100, size: 100, marker: hello }
`;

test('echo requests are delivered through routers and answered; delays are the link latencies', () => {
  const sim = new Simulation(topology(ROUTED));
  const r = sim.run();
  assert.equal(r.paths.length, 1);
  const p = r.paths[0];
  assert.equal(p.from, 'A');
  assert.equal(p.to, 'B');
  assert.equal(p.delivered, true);
  assert.equal(p.replied, true);
  assert.equal(p.deliveredCount, 3);
  assert.equal(p.repliedCount, 3);
  assert.deepEqual(p.vpnLayers, []);
  assert.ok(Math.abs((p.firstPacketDelay as number) - 5.2) < 1e-9, `delay ${p.firstPacketDelay}`);
  assert.deepEqual(
    p.packets.map((x) => x.sentAt),
    [10, 110, 210],
  );
  assert.ok(Math.abs((p.packets[0].repliedAt as number) - (10 + 2 * 5.2)) < 1e-9);
  assert.equal(sim.terminals.get('B')?.echoed, 3);
  assert.equal(sim.terminals.get('A')?.received['data-reply'], 3);
  // Default end: last packet + 30 s of settling.
  assert.equal(r.until, 210 + 30_000);
  const sends = r.trace.filter((t) => t.event === 'send');
  assert.deepEqual(
    sends.map((t) => [t.time, t.node, t.kind, t.step]),
    [
      [10, 'A', 'data', 1],
      [110, 'A', 'data', undefined],
      [210, 'A', 'data', undefined],
    ],
  );
  assert.equal(r.trace.filter((t) => t.event === 'echo' && t.node === 'B').length, 3);
  const wan = r.links.find((l) => l.link === 'R1-R2');
  assert.equal(wan?.wan, true);
  assert.equal(wan?.packets, 6);
  assert.equal(wan?.bytes, 6 * (20 + 8 + 100));
});

test('routers decrement the TTL and fix the header checksum; a TTL that runs out is dropped', () => {
  const chain = (routers: number) => {
    const { names, links } = routerChain(routers);
    return topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1, silent: true }
${names.map((n) => `  - { name: ${n}, router: true }`).join('\n')}
links:
${links}
traffic: [{ from: A, to: B }]
`);
  };
  const arrivals: Uint8Array[] = [];
  const sim = new Simulation(chain(63));
  sim.tap(({ to, packet }) => {
    if (to === 'B') arrivals.push(packet.bytes);
  });
  const ok = sim.run();
  assert.equal(ok.paths[0].delivered, true);
  assert.equal(ok.paths[0].replied, false, 'B is silent');
  const parsed = parseIpv4(arrivals[0]);
  assert.ok(parsed.ok, 'the checksum still verifies after 63 decrements');
  assert.equal(parsed.value.header.ttl, 1);

  const expired = new Simulation(chain(64)).run();
  assert.equal(expired.paths[0].delivered, false);
  assert.equal(expired.drops['ttl-expired'], 1);
  const drop = expired.trace.find((t) => t.event === 'drop');
  assert.deepEqual(drop && [drop.node, drop.kind, drop.detail], ['R64', 'data', { reason: 'ttl-expired' }]);
});

test('gateways hand packets to their core with the side they came from, and decrement the TTL', () => {
  const cores = new Map<string, PlainCore>();
  const sim = new Simulation(
    topology(`
vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1 }
  - { name: G1, gateway: 192.0.2.1, inside: [A], members: { V: [A] } }
  - { name: G2, gateway: 192.0.2.2, inside: [B], members: { V: [B] } }
  - { name: R, router: true }
links: [[A, G1], [G1, R], [R, G2], [G2, B]]
traffic: [{ from: A, to: B }]
`),
    {
      createCore: (opts) => {
        const core = new PlainCore(opts);
        cores.set(opts.config.id, core);
        return core;
      },
    },
  );
  let ttlAtB = 0;
  sim.tap(({ to, packet }) => {
    if (to === 'B') ttlAtB = packet.bytes[8];
  });
  const r = sim.run();
  assert.equal(r.paths[0].delivered, true);
  assert.equal(r.paths[0].replied, true);
  assert.equal(ttlAtB, 64 - 3, 'G1, R and G2 each decrement');
  assert.deepEqual(
    cores.get('G1')?.seen.map((s) => [s.side, s.dst]),
    [
      ['inside', '10.0.2.1'],
      ['outside', '10.0.1.1'],
    ],
  );
  assert.deepEqual(
    cores.get('G2')?.seen.map((s) => [s.side, s.dst]),
    [
      ['outside', '10.0.2.1'],
      ['inside', '10.0.1.1'],
    ],
  );
  // Config handed to the core: attached = the /32 of the terminal inside (no lans given).
  assert.deepEqual(cores.get('G1')?.opts.config.attached.map(String), ['10.0.1.1/32']);
  assert.equal(cores.get('G1')?.opts.config.address, '192.0.2.1');
  assert.deepEqual(r.stats, { G1: { seen: 2 }, G2: { seen: 2 } });
});

test('VPN layers are tracked per packet: nested encryption shows two layers on the WAN, outermost first', () => {
  const sim = new Simulation(
    topology(`
vpns: [{ name: dept, id: 10 }, { name: company, id: 20 }]
nodes:
  - { name: A, terminal: 10.1.1.10 }
  - { name: B, terminal: 10.2.1.10 }
  - { name: Gi1, gateway: 10.1.0.2, inside: [A], members: { dept: [10.1.1.0/24] } }
  - { name: Go1, gateway: 192.0.2.1, inside: [Gi1], members: { company: [10.1.0.0/16] } }
  - { name: Gi2, gateway: 10.2.0.2, inside: [B], members: { dept: [10.2.1.0/24] } }
  - { name: Go2, gateway: 192.0.2.2, inside: [Gi2], members: { company: [10.2.0.0/16] } }
  - { name: R, router: true }
links: [[A, Gi1], [Gi1, Go1], [Go1, R], [R, Go2], [Go2, Gi2], [Gi2, B]]
traffic: [{ from: B, to: A, count: 2 }]
`),
    { createCore: (opts) => new LayeringCore(opts) },
  );
  const r = sim.run();
  const p = r.paths[0];
  assert.equal(p.delivered, true);
  assert.deepEqual(p.vpnLayers, ['company', 'dept']);
  assert.deepEqual(p.packets[0].replyVpnLayers, ['company', 'dept']);
  assert.equal(r.maxWanLayers, 2);
  assert.equal(r.layerMismatches, 0);
  assert.deepEqual(
    r.links.map((l) => [l.link, l.wan, l.maxLayers]),
    [
      ['A-Gi1', false, 0],
      ['Gi1-Go1', false, 1],
      ['Go1-R', true, 2],
      ['R-Go2', true, 2],
      ['Go2-Gi2', false, 1],
      ['Gi2-B', false, 0],
    ],
  );
});

test('a packet larger than a link MTU is dropped there, counted and traced', () => {
  const sim = new Simulation(
    topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1 }
  - { name: R, router: true }
links: [[A, R], { a: R, b: B, mtu: 576 }]
traffic:
  - { from: A, to: B, size: 548 }
  - { from: A, to: B, at: 1, size: 549 }
`),
  );
  const r = sim.run();
  assert.deepEqual(
    r.paths.map((p) => p.delivered),
    [true, false],
  );
  assert.deepEqual(r.links.find((l) => l.link === 'R-B')?.drops, { mtu: 1 });
  assert.equal(r.drops['link:mtu'], 1);
  const drop = r.trace.find((t) => t.event === 'link-drop');
  assert.deepEqual(drop && [drop.time, drop.node, drop.kind, drop.detail], [
    1.1,
    'R',
    'data',
    { link: 'R-B', to: 'B', reason: 'mtu', size: 577, mtu: 576 },
  ]);
});

test('searchPackets loss drops the first N key-search packets crossing a link, in the given direction', () => {
  const net = (loss: string) =>
    topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1 }
  - { name: R, router: true }
links: [[A, R], { a: R, b: B, loss: ${loss} }]
`);
  const sendAll = (sim: Simulation) => {
    // Three search requests A->B (each echoed by B: replies B->A), interleaved with data.
    for (let i = 0; i < 3; i++) {
      sim.inject('A', 'R', searchPacket('10.0.1.1', '10.0.2.1', 'destination'), i * 10);
      sim.inject(
        'A',
        'R',
        buildEchoRequest({ src: '10.0.1.1', dst: '10.0.2.1', id: 9, seq: i, data: echoData(8), ipId: i }),
        i * 10 + 1,
      );
    }
    return sim.run(100);
  };
  const both = new Simulation(net('{ searchPackets: 2 }'));
  const r = sendAll(both);
  assert.deepEqual(r.links.find((l) => l.link === 'R-B')?.drops, { 'search-loss': 2 });
  // The first two requests are lost; the third is echoed; its reply crosses (the budget is spent).
  assert.equal(both.terminals.get('B')?.received['search-request(destination)'], 1);
  assert.equal(both.terminals.get('B')?.received['data'], 3);
  assert.equal(both.terminals.get('A')?.received['search-reply(destination)'], 1);

  const replies = new Simulation(net('{ searchPackets: 2, searchFrom: B }'));
  const r2 = sendAll(replies);
  assert.deepEqual(r2.links.find((l) => l.link === 'R-B')?.drops, { 'search-loss': 2 });
  assert.equal(replies.terminals.get('B')?.received['search-request(destination)'], 3);
  assert.equal(
    replies.terminals.get('A')?.received['search-reply(destination)'],
    1,
    'only replies (sent by B) were lost',
  );
  const echoes = r2.trace.filter((t) => t.event === 'echo' && t.kind === 'search-request(destination)');
  assert.deepEqual(
    echoes.map((e) => e.step),
    [8, 8, 8],
    'a terminal echoing a destination search is step 8',
  );
});

test('random loss is seeded: the same seed loses the same packets, another seed others', () => {
  const t = topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1, silent: true }
  - { name: R, router: true }
links: [[A, R], { a: R, b: B, loss: { rate: 0.5 } }]
traffic: [{ from: A, to: B, count: 400, interval: 1 }]
`);
  const lost = (seed?: number) =>
    new Simulation(t, { seed })
      .run()
      .paths[0].packets.filter((p) => p.deliveredAt === undefined)
      .map((p) => p.seq);
  const a = lost();
  assert.deepEqual(lost(), a);
  assert.ok(a.length > 140 && a.length < 260, `lost ${a.length} of 400`);
  assert.notDeepEqual(lost(2), a);
});

test('gateway cores are woken at their next deadline, also when it moves', () => {
  const ticks: number[] = [];
  class TimedCore extends PlainCore {
    private deadlines = [5, 12];
    override onPacket(side: 'inside' | 'outside', bytes: Uint8Array, now: number): CoreAction[] {
      this.deadlines = [3, ...this.deadlines].sort((x, y) => x - y); // a packet brings a deadline forward
      return super.onPacket(side, bytes, now);
    }
    override onTick(now: number): CoreAction[] {
      ticks.push(now);
      this.deadlines = this.deadlines.filter((d) => d > now);
      return [{ type: 'trace', event: { event: 'tick', kind: 'timer', step: 99, detail: { at: now } } }];
    }
    override nextDeadline(): number | undefined {
      return this.deadlines[0];
    }
  }
  const sim = new Simulation(
    topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1, silent: true }
  - { name: G, gateway: 192.0.2.1, inside: [A] }
links: [[A, G], [G, B]]
traffic: [{ from: A, to: B, at: 1 }]
`),
    { createCore: (opts) => new TimedCore(opts) },
  );
  const r = sim.run(50);
  assert.deepEqual(ticks, [3, 5, 12]);
  assert.deepEqual(
    r.trace.filter((t) => t.node === 'G').map((t) => [t.time, t.event, t.kind, t.step, t.detail]),
    [
      [3, 'tick', 'timer', 99, { at: 3 }],
      [5, 'tick', 'timer', 99, { at: 5 }],
      [12, 'tick', 'timer', 99, { at: 12 }],
    ],
  );
});

test('packets to an address nobody owns are dropped as no-route', () => {
  const sim = new Simulation(
    topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: R, router: true }
links: [[A, R]]
`),
  );
  sim.inject(
    'A',
    'R',
    buildEchoRequest({ src: '10.0.1.1', dst: '203.0.113.5', id: 1, seq: 1, data: echoData(4), ipId: 1 }),
  );
  const r = sim.run(10);
  assert.deepEqual(r.drops, { 'no-route': 1 });
});

test('a run is deterministic: same topology and seed, same result byte for byte', () => {
  const t = topology(ROUTED.replace('traffic:', 'traffic:\n  - { from: B, to: A, at: 0, count: 5, interval: 3 }'));
  const once = () => JSON.stringify(new Simulation(t).run(), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  assert.equal(once(), once());
});

test('tcp-syn traffic carries an MSS option; terminals receive it but run no TCP', () => {
  const r = new Simulation(
    topology(`
nodes:
  - { name: A, terminal: 10.0.1.1 }
  - { name: B, terminal: 10.0.2.1 }
  - { name: R, router: true }
links: [[A, R], [R, B]]
traffic: [{ kind: tcp-syn, from: A, to: B, count: 2, interval: 10, port: 443 }]
`),
  ).run();
  const p = r.paths[0];
  assert.equal(p.kind, 'tcp-syn');
  assert.equal(p.deliveredCount, 2);
  assert.equal(p.replied, false);
  assert.deepEqual(
    p.packets.map((x) => x.mss),
    [1460, 1460],
  );
  assert.deepEqual(
    r.trace.filter((t) => t.node === 'B').map((t) => [t.event, t.kind]),
    [
      ['receive', 'tcp-syn'],
      ['receive', 'tcp-syn'],
    ],
  );
});

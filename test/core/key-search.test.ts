// The key search on the simulator: seed 000 Figure 2 / Figure 4, multi-stage, and the defences
// beyond the seed (docs/protocol.md). Real packet bytes through the real core and TS executor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { figure2, path, simulate, steps } from '../support/sim.js';

const fig2Traffic = `
  - { from: B, to: A, at: 0, count: 3, interval: 100, marker: B-to-A }
  - { from: B, to: C, at: 1000, count: 3, interval: 100, marker: B-to-C }
  - { from: A, to: C, at: 2000, count: 3, interval: 100, marker: A-to-C }`;

test('Figure 2: B reaches A over VPN1 and C over VPN2; A and C never meet', () => {
  const r = simulate(figure2({ traffic: fig2Traffic }));
  const ba = path(r, 'B', 'A');
  const bc = path(r, 'B', 'C');
  const ac = path(r, 'A', 'C');
  assert.equal(ba.delivered, true);
  assert.equal(ba.replied, true);
  assert.deepEqual(ba.vpnLayers, ['VPN1']);
  assert.equal(ba.deliveredCount, 3);
  assert.equal(bc.delivered, true);
  assert.deepEqual(bc.vpnLayers, ['VPN2']);
  assert.equal(ac.delivered, false);
  assert.equal(ac.deliveredCount, 0);
  // Key tables: G2 has both paths, G1 and G3 learned theirs on the path, A-C is discarded at G1.
  const g2 = r.keyTables.G2.map((e) => `${e.local}>${e.remote}:${e.action}:${e.vpnName ?? ''}:${e.peer ?? ''}`).sort();
  assert.deepEqual(g2, ['10.2.0.10>10.1.0.10:encrypt:VPN1:G1', '10.2.0.10>10.3.0.10:encrypt:VPN2:G3']);
  assert.ok(
    r.keyTables.G1.some(
      (e) => e.local === '10.1.0.10' && e.remote === '10.2.0.10' && e.action === 'encrypt' && e.peer === 'G2',
    ),
  );
  // A-C: G1 searched, found no common VPN, and installed a (negative, short-lived) discard entry.
  const ac1 = r.trace.find(
    (t) => t.node === 'G1' && t.event === 'search-complete' && (t.detail as { action: string }).action === 'discard',
  );
  assert.equal((ac1?.detail as { reason: string }).reason, 'no-common-vpn');
  assert.equal(r.drops['core:discard'], 3);
  assert.ok(
    r.keyTables.G3.some(
      (e) => e.local === '10.3.0.10' && e.remote === '10.2.0.10' && e.action === 'encrypt' && e.vpnName === 'VPN2',
    ),
  );
  // Nothing left the gateways in the clear between VPN members.
  assert.equal(r.layerMismatches, 0);
});

/** The figure's steps appear in this order (other events may interleave). */
function assertStepsInOrder(seen: { step: number; node: string }[], expected: [number, string][]): void {
  let i = 0;
  for (const s of seen) if (i < expected.length && s.step === expected[i][0] && s.node === expected[i][1]) i++;
  assert.equal(i, expected.length, `steps seen: ${JSON.stringify(seen)}`);
}

test('Figure 4: the key search runs steps 1-12 in order', () => {
  // As the figure draws it: G2 does not know B to be on its own LAN, so it runs the source search
  // (steps 3-5); for attached terminals it skips them (next test).
  const r = simulate(
    figure2({ traffic: `  - { from: B, to: A, at: 0, count: 3, interval: 100 }`, unattached: ['G2'] }),
  );
  const seen = steps(r.trace, 0, 100);
  const expected: [number, string][] = [
    [1, 'B'],
    [2, 'G2'],
    [3, 'G2'],
    [4, 'B'],
    [5, 'G2'],
    [6, 'G2'],
    [7, 'G1'],
    [8, 'A'],
    [9, 'G1'],
    [10, 'G2'],
    [11, 'G2'],
  ];
  assertStepsInOrder(seen, expected);
  // Step 12: later packets go by the key table alone — one search only, and they are encrypted.
  const searches = r.trace.filter(
    (t) => t.node === 'G2' && t.event === 'search-request' && t.kind === 'search-request(destination)',
  );
  assert.equal(searches.length, 1);
  assert.equal(path(r, 'B', 'A').deliveredCount, 3);
  assert.ok(path(r, 'B', 'A').packets.every((p) => p.vpnLayers?.[0] === 'VPN1'));
});

test('a terminal on an attached LAN: no source search (steps 3-5 skipped), the rest as Figure 4, the first packet sooner', () => {
  const traffic = `  - { from: B, to: A, at: 0, count: 3, interval: 100 }`;
  const r = simulate(figure2({ traffic }));
  const seen = steps(r.trace, 0, 100);
  assert.ok(
    !seen.some((s) => s.node === 'G2' && [4, 5].includes(s.step)) && !seen.some((s) => s.node === 'B' && s.step === 4),
    JSON.stringify(seen),
  );
  assert.ok(
    !r.trace.some((t) => t.node === 'G2' && t.kind === 'search-request(source)' && t.event === 'search-request'),
    'no source-search request',
  );
  assert.ok(r.trace.some((t) => t.node === 'G2' && t.event === 'source-skipped'));
  const expected: [number, string][] = [
    [1, 'B'],
    [2, 'G2'],
    [6, 'G2'],
    [7, 'G1'],
    [8, 'A'],
    [9, 'G1'],
    [10, 'G2'],
    [11, 'G2'],
  ];
  assertStepsInOrder(seen, expected);
  assert.equal(path(r, 'B', 'A').deliveredCount, 3);
  assert.ok(path(r, 'B', 'A').packets.every((p) => p.vpnLayers?.[0] === 'VPN1'));
  // The skipped round trip to B shows in the first packet's delay.
  const full = simulate(figure2({ traffic, unattached: ['G2'] }));
  assert.ok(
    path(r, 'B', 'A').firstPacketDelay! < path(full, 'B', 'A').firstPacketDelay!,
    `${path(r, 'B', 'A').firstPacketDelay} < ${path(full, 'B', 'A').firstPacketDelay}`,
  );
});

const multistage = (traffic: string, extra = '') => `
name: multistage-test
seed: 3
${extra}
vpns:
  - { name: company, id: 10 }
  - { name: dept, id: 20 }
nodes:
  - { name: A, terminal: 10.1.1.10 }
  - { name: B, terminal: 10.2.1.10 }
  - { name: X, terminal: 10.2.2.10 }
  - { name: Gi1, gateway: 10.1.0.2, inside: [A], lans: [10.1.1.0/24], members: { dept: [10.1.1.0/24] } }
  - { name: Go1, gateway: 192.0.2.1, inside: [Gi1], members: { company: [10.1.0.0/16] } }
  - { name: Gi2, gateway: 10.2.0.2, inside: [B], lans: [10.2.1.0/24], members: { dept: [10.2.1.0/24] } }
  - { name: Go2, gateway: 192.0.2.2, inside: [Gi2, X], lans: [10.2.2.0/24], members: { company: [10.2.0.0/16] } }
  - { name: R, router: true }
links:
  - [A, Gi1]
  - [Gi1, Go1]
  - [Go1, R]
  - [R, Go2]
  - [Go2, Gi2]
  - [Gi2, B]
  - [Go2, X]
traffic:
${traffic}
`;

test('multi-stage: one search sets up both nested layers; the WAN carries ESP inside ESP', () => {
  const r = simulate(multistage(`  - { from: B, to: A, at: 0, count: 3, interval: 100 }`));
  const ba = path(r, 'B', 'A');
  assert.equal(ba.delivered, true);
  assert.equal(ba.replied, true);
  assert.deepEqual(ba.vpnLayers, ['company', 'dept']);
  assert.equal(r.maxWanLayers, 2);
  // One search (by the inner gateway); the outer gateways learned their layer from it.
  const searches = r.trace.filter((t) => t.event === 'search-request' && t.kind === 'search-request(destination)');
  assert.deepEqual(
    searches.map((s) => s.node),
    ['Gi2'],
  );
  assert.ok(r.keyTables.Go2.some((e) => e.action === 'encrypt' && e.vpnName === 'company' && e.peer === 'Go1'));
  assert.ok(r.keyTables.Gi1.some((e) => e.action === 'encrypt' && e.vpnName === 'dept' && e.peer === 'Gi2'));
  assert.equal(r.layerMismatches, 0);
});

test('multi-stage: searches from both ends converge and the report stays exact (every packet, both layers, no mismatch)', () => {
  // The first packets wait in both inner gateways; each is flushed by the other end's search reply,
  // which passes the same gateways with the same terminal pair. The report must follow the data
  // packet, not the reply (it once gave the first packet one layer and counted 2 mismatches).
  for (const lag of [0, 0.3, 1, 1.5, 2.2, 4]) {
    const r = simulate(
      multistage(
        `  - { from: B, to: A, at: 0, count: 3, interval: 100 }\n  - { from: A, to: B, at: ${lag}, count: 3, interval: 100 }`,
      ),
    );
    assert.equal(r.layerMismatches, 0, `lag ${lag} ms`);
    for (const [from, to] of [
      ['B', 'A'],
      ['A', 'B'],
    ]) {
      const p = path(r, from, to);
      assert.equal(p.deliveredCount, 3, `${from}->${to}, lag ${lag} ms`);
      assert.deepEqual(p.vpnLayers, ['company', 'dept'], `${from}->${to}, lag ${lag} ms`);
      for (const pk of p.packets) {
        assert.deepEqual(pk.vpnLayers, ['company', 'dept'], `${from}->${to} #${pk.seq}, lag ${lag} ms`);
        assert.deepEqual(pk.replyVpnLayers, ['company', 'dept'], `${from}->${to} #${pk.seq} reply, lag ${lag} ms`);
      }
    }
  }
  // The example as shipped, with the reverse traffic 1 ms later (the case reported).
  const shipped = readFileSync(new URL('../../examples/multistage.yaml', import.meta.url), 'utf8').replace(
    /^(  - \{ from: B, to: A, at: 0, .*)$/m,
    '$1\n  - { from: A, to: B, at: 1, count: 3, interval: 100, marker: A-to-B }',
  );
  const r = simulate(shipped);
  assert.equal(r.paths.length, 2);
  assert.equal(r.layerMismatches, 0);
  for (const p of r.paths)
    assert.deepEqual(
      p.packets.map((x) => x.vpnLayers),
      [
        ['company', 'dept'],
        ['company', 'dept'],
        ['company', 'dept'],
      ],
    );
});

test('multi-stage: a terminal outside the inner VPN cannot reach into it (no crossing, no plain bypass)', () => {
  // X is behind Go2 only (company); A is behind Gi1 (dept) too: the inner layer has no partner.
  const r = simulate(multistage(`  - { from: X, to: A, at: 0, count: 2, interval: 100 }`));
  assert.equal(path(r, 'X', 'A').delivered, false);
  const done = r.trace.find((t) => t.node === 'Go2' && t.event === 'search-complete');
  assert.deepEqual(
    [(done?.detail as { action: string }).action, (done?.detail as { reason: string }).reason],
    ['discard', 'unmatched-layer'],
  );
});

// The simulator's authority: each gateway's snapshot holds only its VPNs, keys come from the seed,
// and rotation and member removal change epochs as the real authority does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_SPI, NEVER, SimAuthority } from '../../src/sim/authority-sim.js';
import { randomStream } from '../../src/sim/random.js';
import { topology } from './helpers.js';

const FIGURE2 = topology(`
vpns: [{ name: VPN1, id: 1 }, { name: VPN2, id: 2 }]
defaults: { rotation: { overlap: 1000, grace: 5000 } }
nodes:
  - { name: A, terminal: 10.1.0.10 }
  - { name: B, terminal: 10.2.0.10 }
  - { name: C, terminal: 10.3.0.10 }
  - { name: G1, gateway: 192.0.2.1, inside: [A], members: { VPN1: [10.1.0.0/24] } }
  - { name: G2, gateway: 192.0.2.2, inside: [B], members: { VPN1: [10.2.0.0/24], VPN2: [10.2.0.0/24] } }
  - { name: G3, gateway: 192.0.2.3, inside: [C], members: { VPN2: [10.3.0.0/24] } }
  - { name: R, router: true }
links: [[A, G1], [B, G2], [C, G3], [G1, R], [G2, R], [G3, R]]
`);

function authority(seed = 1) {
  return new SimAuthority(FIGURE2, randomStream(seed, 'authority'));
}

test('each gateway gets only its VPNs, with keys, members, SPIs and the protected prefixes', () => {
  const a = authority();
  const snaps = a.initialSnapshots();
  const g2 = snaps.get('G2');
  assert.ok(g2);
  assert.equal(g2.version, 1);
  assert.deepEqual(
    g2.vpns.map((v) => [v.name, v.id, v.mode]),
    [
      ['VPN1', 1, 'group'],
      ['VPN2', 2, 'group'],
    ],
  );
  assert.deepEqual(
    snaps.get('G1')?.vpns.map((v) => v.name),
    ['VPN1'],
  );
  assert.deepEqual(
    snaps.get('G3')?.vpns.map((v) => v.name),
    ['VPN2'],
  );
  const vpn1 = g2.vpns[0];
  assert.equal(vpn1.epochs.length, 1);
  assert.deepEqual(
    { ...vpn1.epochs[0], key: vpn1.epochs[0].key.length },
    { epoch: 1, key: 32, activeFrom: 0, expiresAt: NEVER },
  );
  assert.deepEqual(
    vpn1.members.map((m) => [m.gateway, m.address, m.prefixes.map(String)]),
    [
      ['G1', '192.0.2.1', ['10.1.0.0/24']],
      ['G2', '192.0.2.2', ['10.2.0.0/24']],
    ],
  );
  assert.deepEqual(g2.protectedPrefixes.map(String), ['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24']);
  assert.notDeepEqual(g2.vpns[0].epochs[0].key, g2.vpns[1].epochs[0].key, 'one key per VPN');
  // snapshotFor agrees with the bulk construction.
  assert.deepEqual(a.snapshotFor('G2'), g2);
  // SPIs: one per (VPN, sender, epoch), unique, never reserved.
  const spis = g2.vpns.flatMap((v) => v.members.flatMap((m) => m.spis.map((s) => s.spi)));
  assert.equal(new Set(spis).size, spis.length);
  assert.ok(spis.every((s) => s >= FIRST_SPI));
});

test('keys come from the seed', () => {
  const key = (seed: number) => authority(seed).initialSnapshots().get('G1')?.vpns[0].epochs[0].key;
  assert.deepEqual(key(1), key(1));
  assert.notDeepEqual(key(1), key(2));
});

test('rotation adds an epoch active after the overlap; the old one expires after the grace', () => {
  const a = authority();
  const deliveries = a.apply({ kind: 'rotate', at: 10_000, vpn: 'VPN1' });
  assert.deepEqual(
    deliveries.map((d) => d.gateway),
    ['G1', 'G2'],
    'the members of VPN1 only',
  );
  const view = deliveries[0].snapshot.vpns[0];
  assert.equal(deliveries[0].snapshot.version, 2);
  assert.deepEqual(
    view.epochs.map((e) => [e.epoch, e.activeFrom, e.expiresAt]),
    [
      [1, 0, 16_000],
      [2, 11_000, NEVER],
    ],
  );
  assert.notDeepEqual(view.epochs[0].key, view.epochs[1].key);
  for (const m of view.members)
    assert.deepEqual(
      m.spis.map((s) => s.epoch),
      [1, 2],
    );
  // A second rotation after epoch 1 expired forgets it.
  const later = a.apply({ kind: 'rotate', at: 20_000, vpn: 'VPN1' })[0].snapshot.vpns[0];
  assert.deepEqual(
    later.epochs.map((e) => [e.epoch, e.activeFrom, e.expiresAt]),
    [
      [2, 11_000, 26_000],
      [3, 21_000, NEVER],
    ],
  );
  assert.deepEqual(
    later.members[0].spis.map((s) => s.epoch),
    [2, 3],
  );
});

test('removing a member rotates at once, drops it from the others and the VPN from its snapshot', () => {
  const a = authority();
  const deliveries = a.apply({ kind: 'remove-member', at: 5000, vpn: 'VPN2', gateway: 'G3' });
  // G3's prefix is no longer protected, so every gateway's directory changed.
  assert.deepEqual(
    deliveries.map((d) => d.gateway),
    ['G1', 'G2', 'G3'],
  );
  const byGateway = new Map(deliveries.map((d) => [d.gateway, d.snapshot]));
  assert.deepEqual(byGateway.get('G3')?.vpns, []);
  const vpn2 = byGateway.get('G2')?.vpns.find((v) => v.name === 'VPN2');
  assert.deepEqual(
    vpn2?.members.map((m) => m.gateway),
    ['G2'],
  );
  assert.deepEqual(
    vpn2?.epochs.map((e) => [e.epoch, e.activeFrom, e.expiresAt]),
    [
      [1, 0, 10_000],
      [2, 5000, NEVER],
    ],
  );
  assert.deepEqual(byGateway.get('G1')?.protectedPrefixes.map(String), ['10.1.0.0/24', '10.2.0.0/24']);
  assert.deepEqual(a.membersOf('VPN2'), ['G2']);
});

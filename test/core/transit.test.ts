// A member gateway on the routed path between two other members of its VPN (a hub or head office
// between two branches): it is a bump in the wire for their traffic, group and pairwise alike, and
// still the gateway of its own terminals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import { buildIpv4, PROTO_UDP } from '../../src/core/packet/ipv4.js';
import { seededRandom } from '../../src/base/random.js';
import { dropped, emitted, espFrom as espFromGateway, snapshotOf, vpnView } from '../support/core.js';
import { simulate } from '../support/sim.js';

// ---- in the simulator: three sites of one VPN, the third site's gateway on the A–B path ----

/** A, B, C behind GA, GB, H, all three in V. `branchBehindHub`: GB sits on H's inside (a branch
 *  whose only way out is through the head office); otherwise H is on the WAN path between them. */
function threeSites(traffic: string, opts: { branchBehindHub?: boolean; hubAlsoIn?: string } = {}): string {
  const behind = opts.branchBehindHub === true;
  return `
name: transit
seed: 5
vpns:
  - { name: V, id: 1 }
  - { name: W, id: 2 }
nodes:
  - { name: A, terminal: 10.1.0.10 }
  - { name: B, terminal: 10.2.0.10 }
  - { name: C, terminal: 10.3.0.10 }
  - { name: GA, gateway: 192.0.2.1, inside: [A], members: { V: [10.1.0.0/24] } }
  - { name: GB, gateway: ${behind ? '10.3.1.2' : '192.0.2.2'}, inside: [B], members: { V: [10.2.0.0/24] } }
  - { name: H, gateway: 192.0.2.3, inside: [C${behind ? ', GB' : ''}], lans: [10.3.0.0/24], members: { V: [10.3.0.0/24]${opts.hubAlsoIn ? `, W: [${opts.hubAlsoIn}]` : ''} } }
  - { name: R1, router: true }
  - { name: R2, router: true }
links:
  - [A, GA]
  - [B, GB]
  - [C, H]
  - [GA, R1]
  - [R1, H]
${behind ? '  - [H, GB]' : '  - [H, R2]\n  - [R2, GB]'}
traffic:
${traffic}
`;
}

const EACH_WAY = `  - { from: A, to: B, at: 0, count: 3, interval: 100 }
  - { from: B, to: A, at: 2000, count: 3, interval: 100 }
  - { from: A, to: B, at: 4000, count: 3, interval: 100 }
  - { from: B, to: A, at: 4000.5, count: 3, interval: 100 }
  - { from: A, to: C, at: 6000, count: 3, interval: 100 }
  - { from: C, to: B, at: 8000, count: 3, interval: 100 }`;

for (const branchBehindHub of [false, true]) {
  const where = branchBehindHub ? "a branch behind the hub's inside" : 'the hub on the WAN path';
  test(`transit member (${where}): A <-> B pass the hub encrypted, end to end; the hub still serves its own terminal`, () => {
    // Behind the hub's inside, B's branch is not reached from C across the WAN but between two of
    // the hub's inside networks, which a gateway does not protect (docs/gateway.md): only A <-> B
    // and A <-> C there.
    const traffic = branchBehindHub ? EACH_WAY.split('\n').slice(0, -1).join('\n') : EACH_WAY;
    const r = simulate(threeSites(traffic, { branchBehindHub }));
    for (const p of r.paths) {
      assert.equal(p.deliveredCount, 3, `${p.from} -> ${p.to} at ${p.packets[0].sentAt}`);
      assert.equal(p.repliedCount, 3, `${p.from} -> ${p.to} replies`);
      assert.deepEqual(p.vpnLayers, ['V'], `${p.from} -> ${p.to} layers`);
    }
    assert.deepEqual(r.drops, {}, 'nothing dropped anywhere');
    assert.equal(r.layerMismatches, 0);
    // A and B are paired with each other, not with the hub; the hub holds no key-table entry
    // that would encrypt or decrypt their traffic.
    assert.ok(r.keyTables.GA.some((e) => e.remote === '10.2.0.10' && e.action === 'encrypt' && e.peer === 'GB'));
    assert.ok(r.keyTables.GB.some((e) => e.remote === '10.1.0.10' && e.action === 'encrypt' && e.peer === 'GA'));
    assert.ok(
      !r.keyTables.H.some((e) => (e.local === '10.2.0.10' || e.local === '10.1.0.10') && e.action !== 'plain'),
      JSON.stringify(r.keyTables.H),
    );
    assert.ok(
      r.keyTables.H.some(
        (e) => e.local === '10.3.0.10' && e.remote === '10.1.0.10' && e.action === 'encrypt' && e.peer === 'GA',
      ),
    );
    assert.equal(r.stats.H['drop.membership'] ?? 0, 0);
  });
}

test('transit member in a second VPN too: still a bump in the wire for a VPN it shares with both ends', () => {
  const r = simulate(threeSites(EACH_WAY, { hubAlsoIn: '10.3.0.0/24' }));
  for (const p of r.paths) assert.equal(p.deliveredCount, 3, `${p.from} -> ${p.to}`);
});

// ---- the hub's core on its own: what passes, what is still refused ----

const KEY = new Uint8Array(32).fill(3);
const A = '10.1.0.10';
const B = '10.2.0.10';
const C = '10.3.0.10';

function hub(): GatewayCore {
  const sites = [
    { gw: 'GA', prefix: '10.1.0.0/24', spi: 0x101 },
    { gw: 'GB', prefix: '10.2.0.0/24', spi: 0x102 },
    { gw: 'H', prefix: '10.3.0.0/24', spi: 0x103 },
  ];
  // VPN 1 (group) and 7 (pairwise) join the three sites; in VPN 2 the hub puts 10.4.0.0/24 only.
  const other = [
    { gw: 'H', prefix: '10.4.0.0/24', spi: 0x203 },
    { gw: 'GA', prefix: '10.1.0.0/24', spi: 0x201 },
  ];
  const snapshot = snapshotOf([
    vpnView(1, 'group', sites, KEY),
    vpnView(7, 'pairwise', sites, KEY),
    vpnView(2, 'group', other, KEY),
  ]);
  return new GatewayCore({
    config: { id: 'H', address: '192.0.2.3', attached: [Prefix.from('10.3.0.0/24'), Prefix.from('10.4.0.0/24')] },
    snapshot,
    now: 0,
    random: seededRandom('hub'),
  });
}

const espFrom = (sender: string, spi: number, vpnId: number, src: string, dst: string, seq: bigint) =>
  espFromGateway(KEY, sender, spi, vpnId, src, dst, seq);

test('hub core: group ESP between two other members passes untouched, both ways, from either side', () => {
  const h = hub();
  let seq = 1n;
  for (const [from, side] of [
    [A, 'outside'],
    [B, 'outside'],
    [A, 'inside'],
    [B, 'inside'],
  ] as const) {
    const to = from === A ? B : A;
    const esp = espFrom(from === A ? 'GA' : 'GB', from === A ? 0x101 : 0x102, 1, from, to, seq++);
    for (let i = 0; i < 2; i++) {
      const out = h.onPacket(side, esp, 10 + i);
      assert.deepEqual(dropped(out), [], `${from} from ${side}`);
      assert.equal(emitted(out).length, 1);
      assert.deepEqual(emitted(out)[0].bytes, esp, 'relayed byte for byte');
    }
  }
});

test('hub core: pairwise traffic between two other members (IKE and ESP in UDP between their addresses) passes', () => {
  const h = hub();
  for (const port of [500, 4500]) {
    const udp = new Uint8Array(8 + 40);
    udp[0] = port >> 8;
    udp[1] = port & 0xff;
    udp[2] = port >> 8;
    udp[3] = port & 0xff;
    udp[5] = udp.length;
    const dgram = buildIpv4({ src: '192.0.2.1', dst: '192.0.2.2', protocol: PROTO_UDP, payload: udp });
    const out = h.onPacket('outside', dgram, 1);
    assert.deepEqual(
      emitted(out).map((e) => e.bytes),
      [dgram],
      `UDP ${port}`,
    );
  }
});

test('hub core: ESP for its own terminals is still checked, decrypted, and refused when it does not belong', () => {
  const h = hub();
  // GA -> C in V: learned and decrypted.
  const ok = h.onPacket('outside', espFrom('GA', 0x101, 1, A, C, 1n), 1);
  assert.equal(emitted(ok)[0]?.note.op, 'decrypt');
  // GA claims a source it does not put in V: refused.
  assert.deepEqual(dropped(h.onPacket('outside', espFrom('GA', 0x101, 1, '10.9.0.1', '10.3.0.11', 1n), 2)), [
    'membership',
  ]);
  // ESP of V to a terminal the hub protects only in VPN 2: no V layer ends behind the hub.
  assert.deepEqual(dropped(h.onPacket('outside', espFrom('GA', 0x101, 1, A, '10.4.0.10', 2n), 3)), ['membership']);
  // An SPI nobody delivered, to a protected terminal: refused; to someone else's: relayed.
  assert.deepEqual(dropped(h.onPacket('outside', espFrom('GA', 0x999, 1, A, '10.3.0.12', 3n), 4)), ['unknown-spi']);
  assert.equal(emitted(h.onPacket('outside', espFrom('GA', 0x999, 1, A, '10.2.0.12', 3n), 5)).length, 1);
});

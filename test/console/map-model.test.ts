// The map's model (console/src/map-model.ts): seed 000's configuration table as Figures 1 and 2.
// It proves: in Figure 2, G2 and terminal B's prefix lie in the regions of both VPN1 and VPN2 (and
// nothing else is multi-homed); in the multi-stage Figure 1(2), each inner gateway sits in the box of
// the outer gateway's prefix that holds its address, and dept is nested in company (not the other
// way round); a shared VPN's members under a peer authority are in its region; prefix containment
// is exact at the bit level.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMapModel, within } from '../../console/src/map-model.js';
import type { FederationView, GatewayInfo, MemberInfo, VpnDetail } from '../../src/authority/wire.js';

function gateway(name: string, address: string, status: GatewayInfo['status'] = 'active'): GatewayInfo {
  return {
    name,
    address,
    status,
    certificate: null,
    vpns: [],
    createdAt: 0,
    enrolledAt: null,
    revokedAt: null,
    revokeReason: null,
    lastReport: null,
  };
}

function vpn(
  name: string,
  id: number,
  members: [string, string, ...string[]][],
  gateways: GatewayInfo[],
  mode: 'group' | 'pairwise' = 'group',
): VpnDetail {
  const memberList: MemberInfo[] = members.map(([g, ...prefixes]) => {
    const info = gateways.find((x) => x.name === g)!;
    return {
      vpn: name,
      vpnId: id,
      gateway: g,
      gatewayStatus: info.status,
      address: info.address,
      prefixes,
      effective: info.status === 'active',
    };
  });
  return {
    id,
    name,
    mode,
    rotationPeriodMs: 0,
    nextRotationAt: null,
    currentEpoch: 1,
    members: memberList.length,
    createdAt: 0,
    epochs: [],
    memberList,
  };
}

/** Figure 2's VPNs over `gateways`: VPN1 of G1 and G2, VPN2 of G2 and G3, each with its prefixes. */
function figure2(gateways: GatewayInfo[], prefixes: Record<'G1' | 'G2' | 'G3', [string, ...string[]]>) {
  return buildMapModel(
    [
      vpn(
        'VPN1',
        1,
        [
          ['G1', ...prefixes.G1],
          ['G2', ...prefixes.G2],
        ],
        gateways,
      ),
      vpn(
        'VPN2',
        2,
        [
          ['G2', ...prefixes.G2],
          ['G3', ...prefixes.G3],
        ],
        gateways,
      ),
    ],
    gateways,
  );
}

describe('the map model', () => {
  it('Figure 2: G2 and terminal B in both VPNs, A and C in one each', () => {
    const gws = [gateway('G1', '10.200.1.2'), gateway('G2', '10.200.2.2'), gateway('G3', '10.200.3.2')];
    const m = figure2(gws, { G1: ['10.1.0.0/24'], G2: ['10.2.0.0/24'], G3: ['10.3.0.0/24'] });
    assert.deepEqual(
      m.multiHomed.map((x) => [x.label, x.vpns]),
      [
        ['G2', ['VPN1', 'VPN2']],
        ['10.2.0.0/24', ['VPN1', 'VPN2']],
      ],
    );
    assert.deepEqual(
      m.regions.map((r) => [r.vpn, r.members, r.nestedIn]),
      [
        ['VPN1', ['G1 + 10.1.0.0/24', 'G2 + 10.2.0.0/24'], []],
        ['VPN2', ['G2 + 10.2.0.0/24', 'G3 + 10.3.0.0/24'], []],
      ],
    );
    assert.equal(m.nodes.filter((n) => n.kind === 'prefix').length, 3, "B's prefix is one node, in two regions");
    assert.ok(
      m.nodes.every((n) => !n.parent),
      'every gateway is on the WAN',
    );
    assert.deepEqual(
      m.edges
        .filter((e) => e.kind === 'wan')
        .map((e) => e.target)
        .sort(),
      ['g:G1', 'g:G2', 'g:G3'],
    );
  });

  it('Figure 1(2): inner gateways sit in the outer prefixes; dept runs inside company', () => {
    const gws = [
      gateway('Go1', '10.200.1.2'),
      gateway('Go2', '10.200.2.2'),
      gateway('Gi1', '10.1.0.2'),
      gateway('Gi2', '10.2.0.2', 'pending'),
    ];
    const m = buildMapModel(
      [
        vpn(
          'company',
          10,
          [
            ['Go1', '10.1.0.0/16'],
            ['Go2', '10.2.0.0/16'],
          ],
          gws,
        ),
        vpn(
          'dept',
          20,
          [
            ['Gi1', '10.1.1.0/24'],
            ['Gi2', '10.2.1.0/24'],
          ],
          gws,
        ),
      ],
      gws,
    );
    const node = (id: string) => m.nodes.find((n) => n.id === id)!;
    assert.equal(node('g:Gi1').parent, 'p:Go1:10.1.0.0/16');
    assert.equal(node('p:Gi1:10.1.1.0/24').parent, 'p:Go1:10.1.0.0/16');
    assert.equal(node('g:Gi2').parent, 'p:Go2:10.2.0.0/16');
    assert.equal(node('g:Go1').parent, undefined);
    assert.deepEqual(
      m.regions.map((r) => [r.vpn, r.nestedIn]),
      [
        ['company', []],
        ['dept', ['company']],
      ],
    );
    assert.deepEqual(m.multiHomed, []);
    assert.deepEqual(
      m.edges
        .filter((e) => e.kind === 'wan')
        .map((e) => e.target)
        .sort(),
      ['g:Go1', 'g:Go2'],
      'only the outer gateways are on the WAN',
    );
  });

  it("a shared pairwise VPN: the peer authority's gateways are in its region", () => {
    const gws = [gateway('GA', '10.200.1.2')];
    const federation: FederationView = {
      peers: [],
      shares: [
        {
          vpn: 'P7',
          vpnId: 7000,
          peer: 'authority-b',
          foreignMembers: [{ gateway: 'GB', address: '10.200.2.2', prefixes: ['10.2.0.0/24'] }],
          permitsIn: 1,
          permitsOut: 1,
        },
      ],
      permits: [],
      permitValidityMs: 3_600_000,
    };
    const m = buildMapModel([vpn('P7', 7000, [['GA', '10.1.0.0/24']], gws, 'pairwise')], gws, federation);
    assert.deepEqual(m.regions[0].members, ['GA + 10.1.0.0/24', 'GB @ authority-b + 10.2.0.0/24']);
    assert.ok(m.regions[0].nodes.includes('f:authority-b:GB'));
    assert.equal(m.nodes.find((n) => n.id === 'f:authority-b:GB')!.label, 'GB @ authority-b');
  });

  it('containment is exact: strictly inside, on the bits of the outer prefix', () => {
    assert.ok(within('10.1.0.2', '10.1.0.0/16'));
    assert.ok(within('10.1.1.0/24', '10.1.0.0/16'));
    assert.ok(!within('10.1.0.0/16', '10.1.0.0/16'), 'not strictly smaller');
    assert.ok(!within('10.2.0.2', '10.1.0.0/16'));
    assert.ok(within('10.1.255.255', '10.1.0.0/16'));
    assert.ok(!within('10.0.255.255', '10.1.0.0/16'));
    assert.ok(within('192.168.0.1', '0.0.0.0/0'));
    assert.ok(!within('2001:db8::1', '10.0.0.0/8'), 'IPv6 is never inside an IPv4 prefix');
    assert.ok(!within('300.1.1.1', '0.0.0.0/0'));
  });

  it('IPv6: Figure 1(2) with v6 prefixes and addresses nests as with v4; Figure 2 dual stack keeps B multi-homed', () => {
    const gws = [
      gateway('Go1', '2001:db8:ff::1'),
      gateway('Go2', '2001:db8:ff::2'),
      gateway('Gi1', '2001:db8:1:0:1::2'),
      gateway('Gi2', '10.2.0.2'),
    ];
    const m = buildMapModel(
      [
        vpn(
          'company',
          10,
          [
            ['Go1', '2001:db8:1::/48'],
            ['Go2', '10.2.0.0/16', '2001:db8:2::/48'],
          ],
          gws,
        ),
        vpn(
          'dept',
          20,
          [
            ['Gi1', '2001:db8:1:1::/64'],
            ['Gi2', '2001:db8:2:1::/64', '10.2.1.0/24'],
          ],
          gws,
        ),
      ],
      gws,
    );
    const node = (id: string) => m.nodes.find((n) => n.id === id);
    assert.equal(
      node('g:Gi1')?.parent,
      'p:Go1:2001:db8:1::/48',
      'a v6 inner gateway sits in the v6 outer prefix that holds its address',
    );
    assert.equal(node('p:Gi1:2001:db8:1:1::/64')?.parent, 'p:Go1:2001:db8:1::/48');
    assert.equal(
      node('g:Gi2')?.parent,
      'p:Go2:10.2.0.0/16',
      'a v4 inner gateway in the v4 box of a dual-stack outer gateway',
    );
    assert.equal(
      node('p:Gi2:2001:db8:2:1::/64')?.parent,
      'p:Go2:2001:db8:2::/48',
      "its v6 prefix in the outer gateway's v6 box",
    );
    assert.deepEqual(
      m.regions.map((r) => [r.vpn, r.nestedIn]),
      [
        ['company', []],
        ['dept', ['company']],
      ],
    );
    assert.deepEqual(m.regions[0].members, ['Go1 + 2001:db8:1::/48', 'Go2 + 10.2.0.0/16, 2001:db8:2::/48']);
    const fig2 = [gateway('G1', '2001:db8:ff::1'), gateway('G2', '192.0.2.2'), gateway('G3', '2001:db8:ff::3')];
    const m2 = figure2(fig2, { G1: ['fd00:1::/64'], G2: ['fd00:2::/64', '10.2.0.0/24'], G3: ['fd00:3::/64'] });
    assert.deepEqual(
      m2.multiHomed.map((x) => [x.label, x.vpns]),
      [
        ['G2', ['VPN1', 'VPN2']],
        ['fd00:2::/64', ['VPN1', 'VPN2']],
        ['10.2.0.0/24', ['VPN1', 'VPN2']],
      ],
    );
    assert.ok(
      m2.nodes.every((n) => !n.parent),
      'every gateway is on the WAN',
    );
  });

  it('IPv6 containment is exact at the bit level, in any spelling, never across families', () => {
    assert.ok(within('2001:db8::1', '2001:db8::/32'));
    assert.ok(within('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8::/32'));
    assert.ok(!within('2001:db9::', '2001:db8::/32'));
    assert.ok(within('2001:db8:8000::/33', '2001:db8::/32'));
    assert.ok(!within('2001:db8::/32', '2001:db8::/32'), 'not strictly smaller');
    assert.ok(within('2001:DB8:0:0:0:0:0:1', '2001:0db8::/32'));
    assert.ok(within('fd00::1:2', 'fd00::/127') === false && within('fd00::1', 'fd00::/127'));
    assert.ok(within('::1', '::/0') && !within('10.0.0.1', '::/0') && !within('::1', '0.0.0.0/0'));
    for (const bad of ['2001:db8:::1', '2001:db8::g', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '2001:db8::/129'])
      assert.ok(!within(bad, '::/0'), bad);
  });
});

// `plain`: no VPN, the kernel routes the terminal LANs through the router (the ceiling);
// `plain-v6` the same over IPv6, measured between the terminals' IPv6 addresses.
import type { Testbed } from '../../test/native/netns.js';
import type { PeerSetup, PeerTopology } from './topology.js';

export function plainPeer(o: { ipv6?: boolean } = {}): PeerSetup {
  let state: { tb: Testbed; topo: PeerTopology } | undefined;
  const routes = (topo: PeerTopology) =>
    o.ipv6
      ? [
          [topo.gwA.lanPrefix6, topo.gwA.wanAddr6],
          [topo.gwB.lanPrefix6, topo.gwB.wanAddr6],
        ]
      : [
          [topo.gwA.lanPrefix, topo.gwA.wanAddr],
          [topo.gwB.lanPrefix, topo.gwB.wanAddr],
        ];
  return {
    name: o.ipv6 ? 'plain-v6' : 'plain',
    description: o.ipv6 ? 'kernel routing over IPv6, no VPN (the IPv6 ceiling)' : 'kernel routing, no VPN (ceiling)',
    family: o.ipv6 ? 6 : 4,
    async setUp(tb, topo) {
      state = { tb, topo };
      for (const [prefix, via] of routes(topo)) tb.ip(topo.router.ns, 'route', 'add', prefix, 'via', via);
    },
    async tearDown() {
      if (!state) return;
      const { tb, topo } = state;
      state = undefined;
      for (const [prefix, via] of routes(topo)) {
        try {
          tb.ip(topo.router.ns, 'route', 'del', prefix, 'via', via);
        } catch {
          /* not added (set-up failed part way) */
        }
      }
    },
  };
}

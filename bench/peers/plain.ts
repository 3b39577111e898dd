// `plain`: no VPN, the kernel routes the terminal LANs through the router (the ceiling).
import type { Testbed } from '../../test/native/netns.js';
import type { PeerSetup, PeerTopology } from './topology.js';

export function plainPeer(): PeerSetup {
  let state: { tb: Testbed; topo: PeerTopology } | undefined;
  const routes = (topo: PeerTopology) => [
    [topo.gwA.lanPrefix, topo.gwA.wanAddr],
    [topo.gwB.lanPrefix, topo.gwB.wanAddr],
  ];
  return {
    name: 'plain',
    description: 'kernel routing, no VPN (ceiling)',
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

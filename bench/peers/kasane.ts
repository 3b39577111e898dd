// `kasane`: two kasane gateways (native datapath) under a real authority, in the comparison
// testbed. kasane is a bump in the wire: packets keep the terminals' addresses, so the router
// routes the LANs exactly as for `plain`, and the gateways encrypt in place (ESP, AES-256-GCM).
// The authority runs on the router host (reachable from both gateways over the WAN links).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from '../../src/testbed/netns.js';
import { Daemon, waitFor } from './proc.js';
import type { PeerSetup, PeerTopology } from './topology.js';

const CLI = [process.execPath, join(new URL('../..', import.meta.url).pathname, 'bin', 'kasane.js')];

/**
 * `ipv6` (`kasane-v6`): the same group VPN with the LANs' IPv6 prefixes as members, measured between
 * the terminals' IPv6 addresses (the WAN carries IPv6 ESP between them; the gateways' outside
 * addresses stay IPv4).
 * `pairwise`: the same gateways in a pairwise VPN (seed 001): the key search, then IKEv2 between
 * the gateways (certificates and permits from the authority), and tunnel-mode ESP in UDP 4500.
 */
export function kasanePeer(o: { pairwise?: boolean; rawEsp?: boolean; ipv6?: boolean } = {}): PeerSetup {
  let state:
    | { tb: Testbed; topo: PeerTopology; daemons: Daemon[]; routes: [string, string][]; gateways: [string, string][] }
    | undefined;
  return {
    name: o.pairwise ? 'kasane-pairwise' : o.rawEsp ? 'kasane-raw-esp' : o.ipv6 ? 'kasane-v6' : 'kasane',
    family: o.ipv6 ? 6 : 4,
    description: o.ipv6
      ? 'group VPN over IPv6 terminals, bump-in-the-wire ESP in UDP 4500 (IPv6 transport form) AES-256-GCM, native datapath'
      : o.pairwise
        ? 'pairwise VPN: key search, IKEv2 with permits, tunnel-mode ESP-in-UDP AES-256-GCM, native datapath'
        : o.rawEsp
          ? 'group VPN sending raw ESP (protocol 50, rawEspVpns), bump in the wire, AES-256-GCM, native datapath (GSO/GRO, batched raw-socket egress)'
          : 'group VPN, bump-in-the-wire ESP in UDP 4500 AES-256-GCM, native datapath (TCP GSO in, UDP GSO super-packets out, GRO)',
    async setUp(tb, topo) {
      // A fresh authority and gateways every turn (a later round must not find the last one's data).
      const dir = join(topo.tmpDir, 'kasane');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const routes: [string, string][] = [
        [topo.gwA.lanPrefix, topo.gwA.wanAddr],
        [topo.gwB.lanPrefix, topo.gwB.wanAddr],
        ...(o.ipv6
          ? ([
              [topo.gwA.lanPrefix6, topo.gwA.wanAddr6],
              [topo.gwB.lanPrefix6, topo.gwB.wanAddr6],
            ] as [string, string][])
          : []),
      ];
      state = { tb, topo, daemons: [], routes: [], gateways: [] };
      for (const [prefix, via] of routes) {
        tb.ip(topo.router.ns, 'route', 'add', prefix, 'via', via);
        state.routes.push([prefix, via]);
      }
      const kasane = (ns: string, ...args: string[]) => tb.exec(ns, CLI[0], ...CLI.slice(1), ...args);
      const adata = join(dir, 'authority');
      kasane(
        topo.router.ns,
        'authority',
        'init',
        '--data',
        adata,
        '--name',
        'bench',
        '--listen',
        `${topo.gwA.wanNextHop}:7443`,
      );
      const auth = Daemon.start(tb, topo.router.ns, 'kasane-authority', CLI[0], [
        ...CLI.slice(1),
        'authority',
        'serve',
        '--data',
        adata,
        '--log-level',
        'warn',
      ]);
      state.daemons.push(auth);
      const admin = (...args: string[]) => kasane(topo.router.ns, ...args, '--data', adata);
      await waitFor('the kasane authority', () => (auth.assertRunning(), admin('authority', 'status'), true), {
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      admin('vpn', 'create', 'bench', '--id', '1', ...(o.pairwise ? ['--mode', 'pairwise'] : []));
      for (const [name, gw] of [
        ['gwA', topo.gwA],
        ['gwB', topo.gwB],
      ] as const) {
        admin('gateway', 'add', name, '--address', gw.wanAddr);
        admin('member', 'add', 'bench', name, gw.lanPrefix);
        if (o.ipv6) admin('member', 'add', 'bench', name, gw.lanPrefix6);
      }
      for (const [name, gw] of [
        ['gwA', topo.gwA],
        ['gwB', topo.gwB],
      ] as const) {
        const gdata = join(dir, name);
        const bundle = join(dir, `${name}.bundle.json`);
        admin('gateway', 'bundle', name, '-o', bundle);
        kasane(gw.ns, 'gateway', 'enroll', '--data', gdata, '--bundle', bundle);
        const cfg = join(dir, `${name}.yaml`);
        writeFileSync(
          cfg,
          `data: ${gdata}\ninside: [${gw.lanIf}]\noutside: [${gw.wanIf}]\nlogLevel: warn\n${o.rawEsp ? 'rawEspVpns: [1]\n' : ''}` +
            // TUN queues per device (reader threads): the gateway's default unless set.
            (process.env.KASANE_BENCH_QUEUES ? `tun: { queues: ${Number(process.env.KASANE_BENCH_QUEUES)} }\n` : ''),
        );
        state.gateways.push([gw.ns, cfg]);
        const d = Daemon.start(tb, gw.ns, `kasane-${name}`, CLI[0], [
          ...CLI.slice(1),
          'gateway',
          'run',
          '--config',
          cfg,
        ]);
        state.daemons.push(d);
        await waitFor(
          `kasane ${name}`,
          () => (d.assertRunning(), kasane(gw.ns, 'gateway', 'status', '--data', gdata, '--json'), true),
          { timeoutMs: 30_000, intervalMs: 200 },
        );
      }
      // The first packet triggers the key search; the harness measures once traffic flows.
      const to = o.ipv6 ? topo.hostB.addr6 : topo.hostB.addr;
      await waitFor(
        'hostA -> hostB through kasane',
        () => (tb.exec(topo.hostA.ns, 'ping', '-c', '1', '-W', '1', to), true),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
    },
    async tearDown() {
      if (!state) return;
      const { tb, topo, daemons, routes, gateways } = state;
      state = undefined;
      for (const d of daemons.reverse()) await d.stop();
      // A stopped gateway keeps refusing its terminals' traffic (fail closed): the next peer in
      // these namespaces needs it unprotected on purpose.
      for (const [ns, cfg] of gateways) {
        try {
          tb.exec(ns, CLI[0], ...CLI.slice(1), 'gateway', 'teardown', '--config', cfg);
        } catch {
          /* never started */
        }
      }
      for (const [prefix, via] of routes) {
        try {
          tb.ip(topo.router.ns, 'route', 'del', prefix, 'via', via);
        } catch {
          /* already gone */
        }
      }
    },
  };
}

// The comparison testbed: hostA – gwA – router – gwB – hostB, one network namespace each, veth
// links created inside the namespaces (nothing in the root namespace). The router knows only the
// two WAN links: traffic between the terminal LANs passes only if a peer carries it (a tunnel
// between gwA and gwB) or the `plain` peer adds the LAN routes to the router. Every link is dual
// stack (fd77:N::/64 beside 10.77.N.0/24): a peer with `family: 6` is measured between the
// terminals' IPv6 addresses (`plain-v6`, `kasane-v6`).
import type { Testbed } from '../../test/native/netns.js';
import type { Requirement } from './install.js';

export interface Terminal {
  ns: string;
  ifname: string;
  addr: string;
  prefixLen: number;
  /** Its gateway's LAN address (its default route). */
  gateway: string;
  /** Its IPv6 address (/64) and its gateway's. */
  addr6: string;
  gateway6: string;
}

export interface GatewaySide {
  ns: string;
  /** Inside: the terminal LAN. */
  lanIf: string;
  lanAddr: string;
  /** The LAN as a prefix, e.g. 10.77.1.0/24. */
  lanPrefix: string;
  /** Outside: the WAN link to the router. */
  wanIf: string;
  wanAddr: string;
  wanPrefixLen: number;
  /** The router's address on this WAN link (this gateway's default route). */
  wanNextHop: string;
  /** This gateway's address inside a tunnel overlay, for peers that need one. */
  overlayAddr: string;
  /** IPv6: the LAN prefix, and the WAN address and next hop (all /64). */
  lanPrefix6: string;
  wanAddr6: string;
  wanNextHop6: string;
}

export interface PeerTopology {
  /** The testbed's unique name prefix (namespaces are `<prefix>-<role>`). */
  prefix: string;
  /** A private directory for this run; a peer makes its own subdirectory in it. */
  tmpDir: string;
  hostA: Terminal;
  hostB: Terminal;
  gwA: GatewaySide;
  gwB: GatewaySide;
  router: { ns: string };
  /** The overlay prefix length (overlay addresses are in gwA/gwB.overlayAddr). */
  overlayPrefixLen: number;
  /** MTU of the tunnel devices, and of the terminals' LAN interfaces (so no peer depends on PMTU discovery). */
  mtu: number;
}

/** One system under comparison. setUp must resolve only once hostA→hostB traffic can flow. */
export interface PeerSetup {
  name: string;
  /** One line for the report (cipher, mode). */
  description?: string;
  /** Commands it runs and their Debian packages; missing ones are installed, or the peer is skipped. */
  requires?: Requirement[];
  /** The program's version, for the report. */
  version?(): Promise<string | undefined>;
  /** Measured between the terminals' IPv6 addresses (default: IPv4). */
  family?: 4 | 6;
  setUp(tb: Testbed, topo: PeerTopology): Promise<void>;
  /** Stops everything setUp started (by PID) and removes what it added to the namespaces. */
  tearDown(): Promise<void>;
}

const NET = '10.77';
const NET6 = 'fd77';

/** The terminal of site n (1: A, 2: B): .2 on the site's LAN 10.77.n.0/24 (fd77:n::/64), behind its gateway. */
function terminalOf(n: 1 | 2, ns: string): Terminal {
  return {
    ns,
    ifname: 'lan0',
    addr: `${NET}.${n}.2`,
    prefixLen: 24,
    gateway: `${NET}.${n}.1`,
    addr6: `${NET6}:${n}::2`,
    gateway6: `${NET6}:${n}::1`,
  };
}

/** The gateway of site n: .1 on the site's LAN, .2 on its WAN link 10.77.(100+n).0/24 to the router (.1). */
function gatewayOf(n: 1 | 2, ns: string): GatewaySide {
  const wan = 100 + n;
  return {
    ns,
    lanIf: 'lan0',
    lanAddr: `${NET}.${n}.1`,
    lanPrefix: `${NET}.${n}.0/24`,
    wanIf: 'wan0',
    wanAddr: `${NET}.${wan}.2`,
    wanPrefixLen: 24,
    wanNextHop: `${NET}.${wan}.1`,
    overlayAddr: `${NET}.200.${n}`,
    lanPrefix6: `${NET6}:${n}::/64`,
    wanAddr6: `${NET6}:${wan}::2`,
    wanNextHop6: `${NET6}:${wan}::1`,
  };
}

/** Builds the five namespaces and their links; throws on failure (the caller tears the testbed down). */
export function buildTopology(tb: Testbed, tmpDir: string, mtu = 1400): PeerTopology {
  const hostA = tb.ns('hostA');
  const gwA = tb.ns('gwA');
  const router = tb.ns('router');
  const gwB = tb.ns('gwB');
  const hostB = tb.ns('hostB');
  const topo: PeerTopology = {
    prefix: tb.prefix,
    tmpDir,
    hostA: terminalOf(1, hostA),
    hostB: terminalOf(2, hostB),
    gwA: gatewayOf(1, gwA),
    gwB: gatewayOf(2, gwB),
    router: { ns: router },
    overlayPrefixLen: 24,
    mtu,
  };
  for (const [host, gw] of [
    [topo.hostA, topo.gwA],
    [topo.hostB, topo.gwB],
  ] as const) {
    tb.link(host.ns, host.ifname, [`${host.addr}/${host.prefixLen}`, `${host.addr6}/64`], gw.ns, gw.lanIf, [
      `${gw.lanAddr}/${host.prefixLen}`,
      `${host.gateway6}/64`,
    ]);
    tb.ip(host.ns, 'link', 'set', host.ifname, 'mtu', String(mtu));
    tb.ip(host.ns, 'route', 'add', 'default', 'via', host.gateway);
    tb.ip(host.ns, '-6', 'route', 'add', 'default', 'via', host.gateway6);
    tb.link(
      gw.ns,
      gw.wanIf,
      [`${gw.wanAddr}/${gw.wanPrefixLen}`, `${gw.wanAddr6}/64`],
      router,
      gw === topo.gwA ? 'wa' : 'wb',
      [`${gw.wanNextHop}/${gw.wanPrefixLen}`, `${gw.wanNextHop6}/64`],
    );
    tb.ip(gw.ns, 'route', 'add', 'default', 'via', gw.wanNextHop);
    tb.ip(gw.ns, '-6', 'route', 'add', 'default', 'via', gw.wanNextHop6);
    tb.forwarding(gw.ns);
  }
  tb.forwarding(router);
  return topo;
}

/** The topology as a peer measured over IPv6 sees it: the terminals' IPv6 addresses in place of their IPv4 ones. */
export function ipv6View(topo: PeerTopology): PeerTopology {
  const v6 = (t: Terminal): Terminal => ({ ...t, addr: t.addr6, prefixLen: 64, gateway: t.gateway6 });
  return { ...topo, hostA: v6(topo.hostA), hostB: v6(topo.hostB) };
}

/** All namespaces of the topology, hosts first. */
export function namespacesOf(topo: PeerTopology): string[] {
  return [topo.hostA.ns, topo.hostB.ns, topo.gwA.ns, topo.gwB.ns, topo.router.ns];
}

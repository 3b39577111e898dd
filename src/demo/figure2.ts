// Seed 000 Figure 2 on real Linux networking: terminals A, B, C behind gateways G1, G2, G3, a WAN
// router R, and the authority in its own namespace. Used by `kasane demo` and the end-to-end tests.
//
//   A (10.1.0.10) -- G1 --+                      VPN1 = {G1 + A, G2 + B}
//   B (10.2.0.10) -- G2 --+-- R -- AUTH          VPN2 = {G2 + B, G3 + C}
//   C (10.3.0.10) -- G3 --+
//
// With `ipv6`, every link is dual stack as well: A, B, C are also fd00:1::10, fd00:2::10,
// fd00:3::10 (LANs fd00:N::/64, members of the VPNs beside the IPv4 ones), the WAN links are
// fd00:200:N::/64, and the terminals route IPv6 through their gateways like IPv4. The gateways'
// outside addresses are their IPv4 ones, or their IPv6 ones with `gatewayFamily: 6`.
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand, Testbed } from '../testbed/netns.js';
import { killProcess, stopProcess as stop, waitFor } from '../testbed/sites.js';
import type { GatewayStatus } from '../gateway/status.js';

export interface Figure2 {
  tb: Testbed;
  ns: Record<'A' | 'B' | 'C' | 'G1' | 'G2' | 'G3' | 'R' | 'AUTH', string>;
  terminals: Record<'A' | 'B' | 'C', string>;
  /** The terminals' IPv6 addresses (only with `ipv6`). */
  terminals6: Record<'A' | 'B' | 'C', string>;
  dir: string;
  authorityData: string;
  gatewayData(n: 1 | 2 | 3): string;
  /** Runs the kasane CLI in a namespace; returns stdout, throws with stderr on failure. */
  kasane(ns: string, ...args: string[]): string;
  /** An administrator command on the authority host. */
  admin(...args: string[]): string;
  gateways: Map<string, ChildProcess>;
  authority?: ChildProcess;
  /** Starts (or restarts) gateway Gn and waits until it runs. */
  startGateway(n: 1 | 2 | 3, extraConfig?: string): Promise<void>;
  stopGateway(n: 1 | 2 | 3): Promise<void>;
  /** Kills gateway Gn with SIGKILL (a crash: nothing of its own clean-up runs) and waits for it to be gone. */
  killGateway(n: 1 | 2 | 3): Promise<void>;
  startAuthority(): Promise<void>;
  stopAuthority(): Promise<void>;
  /** `kasane gateway status --json` of gateway Gn (key table, VPNs, counters). */
  status(n: 1 | 2 | 3): GatewayStatus;
  /** ping from a terminal (to its IPv6 address with `family: 6`); true when at least one reply came back. */
  ping(
    from: 'A' | 'B' | 'C',
    to: 'A' | 'B' | 'C',
    opts?: { count?: number; pattern?: string; family?: 4 | 6 },
  ): boolean;
  /** Stops everything it started and deletes every namespace. Never throws. */
  teardown(): Promise<void>;
}

export interface Figure2Options {
  /** How to run the kasane CLI: [executable, ...leading args]. Default: this node with the compiled CLI. */
  cli?: string[];
  /** Work directory (authority and gateway data). */
  dir: string;
  log?: (line: string) => void;
  gatewayLogLevel?: string;
  /** Extra YAML for every gateway's configuration (e.g. short aging timers in tests). */
  gatewayConfig?: string;
  /** Extra arguments to `kasane authority init` (e.g. a short key-rotation overlap). */
  authorityInit?: string[];
  /** Dual stack: IPv6 on every link and in the VPNs besides IPv4. */
  ipv6?: boolean;
  /** The family of the gateways' outside addresses (6 needs `ipv6`). Default 4. */
  gatewayFamily?: 4 | 6;
}

const TERMINALS = { A: '10.1.0.10', B: '10.2.0.10', C: '10.3.0.10' } as const;
export const TERMINALS6 = { A: 'fd00:1::10', B: 'fd00:2::10', C: 'fd00:3::10' } as const;
/** A gateway's outside address of either family. */
const gatewayAddress = (n: number, family: 4 | 6) => (family === 6 ? `fd00:200:${n}::2` : `10.200.${n}.2`);

export async function buildFigure2(o: Figure2Options): Promise<Figure2> {
  const tb = new Testbed();
  const log = o.log ?? (() => undefined);
  const cli = o.cli ?? [process.execPath, join(new URL('../..', import.meta.url).pathname, 'bin', 'kasane.js')];
  // Whatever step fails, the namespaces made before it go: the testbed deletes those it made.
  let ns: Figure2['ns'];
  try {
    ns = buildNetwork(tb, o.ipv6 ?? false);
  } catch (e) {
    tb.teardown();
    throw e;
  }
  const site = { 1: { t: ns.A, g: ns.G1 }, 2: { t: ns.B, g: ns.G2 }, 3: { t: ns.C, g: ns.G3 } } as const;
  log(`namespaces ${tb.prefix}-* and links up: A, B, C behind G1, G2, G3; router R; authority host AUTH`);

  const authorityData = join(o.dir, 'authority');
  const kasane = (where: string, ...args: string[]) => tb.exec(where, cli[0], ...cli.slice(1), ...args);
  const gateways = new Map<string, ChildProcess>();
  const f: Figure2 = {
    tb,
    ns,
    terminals: { ...TERMINALS },
    terminals6: { ...TERMINALS6 },
    dir: o.dir,
    authorityData,
    gatewayData: (n) => join(o.dir, `G${n}`),
    kasane,
    admin: (...args) => kasane(ns.AUTH, ...args, '--data', authorityData),
    gateways,
    async startAuthority() {
      f.authority = tb.spawn(ns.AUTH, cli[0], [
        ...cli.slice(1),
        'authority',
        'serve',
        '--data',
        authorityData,
        '--log-level',
        'warn',
      ]);
      await waitFor(
        () => {
          try {
            f.admin('authority', 'status');
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        'the authority to serve',
      );
    },
    async stopAuthority() {
      await stop(f.authority);
      f.authority = undefined;
    },
    async startGateway(n, extra = '') {
      const cfg = join(o.dir, `G${n}.yaml`);
      writeFileSync(
        cfg,
        `data: ${f.gatewayData(n)}\ninside: [lan0]\noutside: [wan0]\nlogLevel: ${o.gatewayLogLevel ?? 'info'}\n${o.gatewayConfig ?? ''}\n${extra}`,
      );
      const d = tb.spawn(site[n].g, cli[0], [...cli.slice(1), 'gateway', 'run', '--config', cfg]);
      gateways.set(`G${n}`, d);
      let text = '';
      d.stderr!.on('data', (b: Buffer) => (text += b.toString()));
      await waitFor(() => text.includes('gateway running') || d.exitCode !== null, 30_000, `G${n} to start`);
      if (d.exitCode !== null) throw new Error(`G${n} exited: ${text.slice(-2000)}`);
    },
    async stopGateway(n) {
      await stop(gateways.get(`G${n}`));
      gateways.delete(`G${n}`);
    },
    async killGateway(n) {
      await killProcess(gateways.get(`G${n}`));
      gateways.delete(`G${n}`);
    },
    status: (n) =>
      JSON.parse(kasane(site[n].g, 'gateway', 'status', '--data', f.gatewayData(n), '--json')) as GatewayStatus,
    ping(from, to, po = {}) {
      try {
        const args = ['-c', String(po.count ?? 3), '-i', '0.2', '-W', '2'];
        if (po.pattern) args.push('-p', po.pattern);
        tb.exec(ns[from], 'ping', ...args, po.family === 6 ? TERMINALS6[to] : TERMINALS[to]);
        return true;
      } catch {
        return false;
      }
    },
    async teardown() {
      for (const d of gateways.values()) await stop(d);
      await stop(f.authority);
      tb.teardown();
    },
  };
  try {
    kasane(
      ns.AUTH,
      'authority',
      'init',
      '--data',
      authorityData,
      '--name',
      'figure2',
      '--listen',
      '10.200.9.2:7443',
      ...(o.authorityInit ?? []),
    );
    await f.startAuthority();
    log('authority running at https://10.200.9.2:7443 (SQLite in ' + authorityData + ')');
    f.admin('vpn', 'create', 'VPN1', '--id', '1');
    f.admin('vpn', 'create', 'VPN2', '--id', '2');
    const family = o.gatewayFamily ?? 4;
    if (family === 6 && !o.ipv6)
      throw new Error('gateways with IPv6 outside addresses need an IPv6 network (ipv6: true)');
    for (const n of [1, 2, 3]) f.admin('gateway', 'add', `G${n}`, '--address', gatewayAddress(n, family));
    const lans = (n: number) => [`10.${n}.0.0/24`, ...(o.ipv6 ? [`fd00:${n}::/64`] : [])];
    for (const [vpn, g] of [
      ['VPN1', 1],
      ['VPN1', 2],
      ['VPN2', 2],
      ['VPN2', 3],
    ] as const)
      for (const p of lans(g)) f.admin('member', 'add', vpn, `G${g}`, p);
    log(
      `VPN1 = {G1 + ${lans(1).join(' ')}, G2 + ${lans(2).join(' ')}}; VPN2 = {G2 + ${lans(2).join(' ')}, G3 + ${lans(3).join(' ')}}`,
    );
    // Both ways of enrolling: G1 and G2 from offline bundles, G3 online with a one-time token
    // (its key is made on G3 and never leaves; it pins the authority's root by fingerprint).
    for (const n of [1, 2, 3] as const) {
      if (n === 3) {
        const token = (JSON.parse(f.admin('gateway', 'token', `G${n}`, '--ttl', '10m', '--json')) as { token: string })
          .token;
        const fingerprint = f.admin('authority', 'ca', '--fingerprint').trim();
        kasane(
          site[n].g,
          'gateway',
          'enroll',
          '--data',
          f.gatewayData(n),
          '--url',
          'https://10.200.9.2:7443',
          '--token',
          token,
          '--ca-fingerprint',
          fingerprint,
        );
      } else {
        const bundle = join(o.dir, `G${n}.bundle.json`);
        f.admin('gateway', 'bundle', `G${n}`, '-o', bundle);
        kasane(site[n].g, 'gateway', 'enroll', '--data', f.gatewayData(n), '--bundle', bundle);
      }
      await f.startGateway(n);
      log(`G${n} enrolled (${n === 3 ? 'online, one-time token' : 'offline bundle'}) and running`);
    }
  } catch (e) {
    await f.teardown();
    throw e;
  }
  return f;
}

/** The eight hosts of Figure 2 and their links (no kasane process yet), dual stack with `ipv6`. */
function buildNetwork(tb: Testbed, ipv6: boolean): Figure2['ns'] {
  const ns = {
    A: tb.ns('A'),
    B: tb.ns('B'),
    C: tb.ns('C'),
    G1: tb.ns('G1'),
    G2: tb.ns('G2'),
    G3: tb.ns('G3'),
    R: tb.ns('R'),
    AUTH: tb.ns('AUTH'),
  };
  const lan = { 1: ns.A, 2: ns.B, 3: ns.C } as const;
  const v6 = (...a: string[]) => (ipv6 ? a : []);
  for (const n of [1, 2, 3] as const) {
    const [t, g] = [lan[n], ns[`G${n}`]];
    tb.link(t, 'eth0', [`10.${n}.0.10/24`, ...v6(`fd00:${n}::10/64`)], g, 'lan0', [
      `10.${n}.0.1/24`,
      ...v6(`fd00:${n}::1/64`),
    ]);
    tb.ip(t, 'route', 'add', 'default', 'via', `10.${n}.0.1`);
    tb.link(g, 'wan0', [`10.200.${n}.2/24`, ...v6(`fd00:200:${n}::2/64`)], ns.R, `g${n}`, [
      `10.200.${n}.1/24`,
      ...v6(`fd00:200:${n}::1/64`),
    ]);
    tb.ip(g, 'route', 'add', 'default', 'via', `10.200.${n}.1`);
    tb.ip(ns.R, 'route', 'add', `10.${n}.0.0/24`, 'via', `10.200.${n}.2`);
    if (ipv6) {
      tb.ip(t, '-6', 'route', 'add', 'default', 'via', `fd00:${n}::1`);
      tb.ip(g, '-6', 'route', 'add', 'default', 'via', `fd00:200:${n}::1`);
      tb.ip(ns.R, '-6', 'route', 'add', `fd00:${n}::/64`, 'via', `fd00:200:${n}::2`);
    }
  }
  tb.link(ns.AUTH, 'eth0', ['10.200.9.2/24', ...v6('fd00:200:9::2/64')], ns.R, 'auth', [
    '10.200.9.1/24',
    ...v6('fd00:200:9::1/64'),
  ]);
  tb.ip(ns.AUTH, 'route', 'add', 'default', 'via', '10.200.9.1');
  if (ipv6) tb.ip(ns.AUTH, '-6', 'route', 'add', 'default', 'via', 'fd00:200:9::1');
  tb.forwarding(ns.R);
  return ns;
}

/**
 * What this host lacks to run the demo: one line per missing piece, naming the fix, and a last line
 * with the Debian packages to install; empty when it can run. Namespaces, veth links and the TUN
 * device are tried for real (a throw-away namespace with a veth pair, deleted at once).
 */
export function demoPrerequisites(): string[] {
  if (process.platform !== 'linux') return ['the demo needs Linux (network namespaces, TUN devices)'];
  if (process.getuid?.() !== 0) return ['the demo builds network namespaces and TUN devices: run it as root'];
  const missing: string[] = [];
  const packages: string[] = [];
  const ip = hasCommand('ip');
  if (!ip) {
    missing.push('`ip` not found: it builds the namespaces and links (Debian package iproute2)');
    packages.push('iproute2');
  }
  if (!hasCommand('nft')) {
    missing.push('`nft` not found: the gateways guard forwarding with nftables (Debian package nftables)');
    packages.push('nftables');
  }
  if (!hasCommand('ping')) {
    missing.push('`ping` not found: the terminals ping each other (Debian package iputils-ping)');
    packages.push('iputils-ping');
  }
  try {
    closeSync(openSync('/dev/net/tun', 'r+'));
  } catch (e) {
    missing.push(
      `/dev/net/tun cannot be opened (${(e as NodeJS.ErrnoException).code}): the gateways need TUN devices (modprobe tun; in a container, pass /dev/net/tun in)`,
    );
  }
  if (ip) {
    const probe = new Testbed();
    try {
      const p = probe.ns('probe');
      probe.ip(p, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    } catch (e) {
      missing.push(`network namespaces with veth links do not work here: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      probe.teardown();
    }
  }
  if (packages.length) missing.push(`as root, run: apt-get install -y ${packages.join(' ')}`);
  return missing;
}

// A small builder for end-to-end topologies beyond Figure 2: hosts in network namespaces joined by
// veth links, static routes, an authority in its own namespace, VPNs with members, and gateway
// daemons enrolled from bundles and started from the CLI (from source, through tsx).
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayStatus } from '../../src/gateway/status.js';
import { Testbed } from '../../src/testbed/netns.js';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The CLI from source (no build step needed in the test run). */
export const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

export interface SiteLink {
  /** host, interface, address/len on each end */
  a: [string, string, string];
  b: [string, string, string];
  /** MTU of both ends (default: the veth default, 1500). */
  mtu?: number;
}

export interface SiteGateway {
  name: string;
  /** Its outside address, as the authority delivers it to peers. */
  address: string;
  inside: string[];
  outside: string[];
  /** VPN name -> prefixes it puts in. */
  members: Record<string, string[]>;
  /** Extra YAML for its configuration file. */
  config?: string;
}

export interface SiteSpec {
  dir: string;
  hosts: string[];
  links: SiteLink[];
  /** host -> `ip route add` argument lists */
  routes: Record<string, string[][]>;
  /** Hosts that forward (routers; gateways turn forwarding on themselves). */
  routers: string[];
  /** The authority's host and its listen address. */
  authority: { host: string; address: string };
  vpns: { name: string; id: number }[];
  gateways: SiteGateway[];
}

export interface Sites {
  tb: Testbed;
  ns: Record<string, string>;
  kasane(ns: string, ...args: string[]): string;
  admin(...args: string[]): string;
  status(gateway: string): GatewayStatus;
  gatewayData(gateway: string): string;
  /** ping from host to address; the number of replies (0 when none). */
  ping(from: string, to: string, args?: string[]): number;
  teardown(): Promise<void>;
}

export async function buildSites(s: SiteSpec): Promise<Sites> {
  const tb = new Testbed();
  const procs: ChildProcess[] = [];
  const ns: Record<string, string> = {};
  const kasane = (where: string, ...args: string[]) => tb.exec(where, CLI[0], ...CLI.slice(1), ...args);
  const adata = join(s.dir, 'authority');
  const gatewayData = (g: string) => join(s.dir, g);
  const sites: Sites = {
    tb,
    ns,
    kasane,
    admin: (...args) => kasane(ns[s.authority.host], ...args, '--data', adata),
    status: (g) => JSON.parse(kasane(ns[g], 'gateway', 'status', '--data', gatewayData(g), '--json')) as GatewayStatus,
    gatewayData,
    ping(from, to, args = ['-c', '3', '-i', '0.2', '-W', '2']) {
      try {
        const out = tb.exec(ns[from], 'ping', ...args, to);
        return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
    async teardown() {
      for (const p of procs.reverse()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      await Promise.all(
        procs.map((p) =>
          p.exitCode !== null || p.signalCode !== null
            ? undefined
            : Promise.race([new Promise((r) => p.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]),
        ),
      );
      tb.teardown();
    },
  };
  try {
    for (const h of s.hosts) ns[h] = tb.ns(h);
    for (const l of s.links) {
      tb.link(ns[l.a[0]], l.a[1], l.a[2], ns[l.b[0]], l.b[1], l.b[2]);
      if (l.mtu !== undefined) {
        tb.ip(ns[l.a[0]], 'link', 'set', 'dev', l.a[1], 'mtu', String(l.mtu));
        tb.ip(ns[l.b[0]], 'link', 'set', 'dev', l.b[1], 'mtu', String(l.mtu));
      }
    }
    for (const [h, routes] of Object.entries(s.routes)) for (const r of routes) tb.ip(ns[h], 'route', 'add', ...r);
    for (const r of s.routers) tb.sysctl(ns[r], 'net.ipv4.ip_forward', '1');

    const auth = ns[s.authority.host];
    kasane(auth, 'authority', 'init', '--data', adata, '--name', 'sites', '--listen', `${s.authority.address}:7443`);
    procs.push(tb.spawn(auth, CLI[0], [...CLI.slice(1), 'authority', 'serve', '--data', adata, '--log-level', 'warn']));
    await waitFor(() => {
      try {
        sites.admin('authority', 'status');
        return true;
      } catch {
        return false;
      }
    }, 30_000, 'the authority');
    for (const v of s.vpns) sites.admin('vpn', 'create', v.name, '--id', String(v.id));
    for (const g of s.gateways) {
      sites.admin('gateway', 'add', g.name, '--address', g.address);
      for (const [vpn, prefixes] of Object.entries(g.members)) for (const p of prefixes) sites.admin('member', 'add', vpn, g.name, p);
    }
    for (const g of s.gateways) {
      const bundle = join(s.dir, `${g.name}.bundle.json`);
      sites.admin('gateway', 'bundle', g.name, '-o', bundle);
      kasane(ns[g.name], 'gateway', 'enroll', '--data', gatewayData(g.name), '--bundle', bundle);
      const cfg = join(s.dir, `${g.name}.yaml`);
      writeFileSync(cfg, `data: ${gatewayData(g.name)}\ninside: [${g.inside.join(', ')}]\noutside: [${g.outside.join(', ')}]\n${g.config ?? ''}\n`);
      const d = tb.spawn(ns[g.name], CLI[0], [...CLI.slice(1), 'gateway', 'run', '--config', cfg]);
      procs.push(d);
      let log = '';
      d.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      await waitFor(() => log.includes('gateway running') || d.exitCode !== null, 40_000, `${g.name} to start`);
      if (d.exitCode !== null) throw new Error(`${g.name} exited: ${log.slice(-2000)}`);
    }
  } catch (e) {
    await sites.teardown();
    throw e;
  }
  return sites;
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

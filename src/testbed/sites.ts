// A builder of kasane sites on real Linux networking, for `kasane demo` and the end-to-end tests:
// hosts in network namespaces joined by veth links, static routes, one or more authorities (each
// in its own namespace, `kasane authority serve`), VPNs with members, and gateway daemons enrolled
// from bundles and started from the CLI. Whatever fails half-way, everything made is removed.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayStatus } from '../gateway/status.js';
import { Testbed } from './netns.js';

/** The installed CLI: this node with the compiled kasane (`npm install` builds dist/). */
export const COMPILED_CLI = [process.execPath, join(new URL('../..', import.meta.url).pathname, 'bin', 'kasane.js')];

export interface SiteLink {
  /** host, interface, address/len on each end (several on a dual-stack link: IPv4 and IPv6) */
  a: [string, string, ...string[]];
  b: [string, string, ...string[]];
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
  /** The authority it enrolls with (by name; default: the first). */
  authority?: string;
}

export interface SiteAuthority {
  /** Its name (`authority init --name`). */
  name: string;
  host: string;
  /** Listen address (port 7443). */
  address: string;
  /** Merged into its authority.json before it starts (e.g. federation timers). */
  config?: Record<string, unknown>;
}

export interface SiteSpec {
  dir: string;
  hosts: string[];
  links: SiteLink[];
  /** host -> `ip route add` argument lists (the family follows the addresses: `default via fd00::1` is IPv6) */
  routes: Record<string, string[][]>;
  /** Hosts that forward (routers; gateways turn forwarding on themselves). */
  routers: string[];
  /** The authority's host and its listen address (one authority, named "sites"), or ... */
  authority?: { host: string; address: string };
  /** ... several authorities (each gateway names its own). */
  authorities?: SiteAuthority[];
  /** VPNs, created on every authority (or only on `authority`). */
  vpns: { name: string; id: number; mode?: 'group' | 'pairwise'; authority?: string }[];
  gateways: SiteGateway[];
  /** How to run the kasane CLI: [executable, ...leading args]. Default: the compiled CLI. */
  cli?: string[];
  /** Runs after the authorities are configured, before any gateway starts (e.g. peering). */
  beforeGateways?: (s: Sites) => Promise<void>;
  log?: (line: string) => void;
}

export interface Sites {
  tb: Testbed;
  ns: Record<string, string>;
  kasane(ns: string, ...args: string[]): string;
  /** An administrator command on the (first) authority's host. */
  admin(...args: string[]): string;
  /** An administrator command on the named authority's host. */
  adminOf(authority: string, ...args: string[]): string;
  authorities: SiteAuthority[];
  authorityData(authority?: string): string;
  status(gateway: string): GatewayStatus;
  gatewayData(gateway: string): string;
  /** What the gateway logged on stderr so far. */
  gatewayLog(gateway: string): string;
  startGateway(gateway: string): Promise<void>;
  stopGateway(gateway: string): Promise<void>;
  /** kill -9 of the gateway's daemon (a crash): nothing of it runs its shutdown. */
  killGateway(gateway: string): Promise<void>;
  startAuthority(authority: string): Promise<void>;
  stopAuthority(authority: string): Promise<void>;
  /** ping from host to address (IPv4 or IPv6); the number of replies (0 when none). */
  ping(from: string, to: string, args?: string[]): number;
  teardown(): Promise<void>;
}

export async function buildSites(s: SiteSpec): Promise<Sites> {
  const tb = new Testbed();
  const cli = s.cli ?? COMPILED_CLI;
  const log = s.log ?? (() => undefined);
  const procs = new Map<string, ChildProcess>();
  const logs = new Map<string, string>();
  const ns: Record<string, string> = {};
  const authorities: SiteAuthority[] = s.authorities ?? (s.authority ? [{ name: 'sites', ...s.authority }] : []);
  if (authorities.length === 0) throw new Error('a site needs an authority');
  const authorityOf = (name?: string): SiteAuthority => {
    const a = name === undefined ? authorities[0] : authorities.find((x) => x.name === name);
    if (!a) throw new Error(`no authority ${name}`);
    return a;
  };
  const kasane = (where: string, ...args: string[]) => tb.exec(where, cli[0], ...cli.slice(1), ...args);
  const authorityData = (name?: string) => join(s.dir, authorities.length === 1 ? 'authority' : authorityOf(name).name);
  const gatewayData = (g: string) => join(s.dir, g);
  const adminOf = (name: string, ...args: string[]) =>
    kasane(ns[authorityOf(name).host], ...args, '--data', authorityData(name));
  const gatewaySpec = (name: string): SiteGateway => {
    const g = s.gateways.find((x) => x.name === name);
    if (!g) throw new Error(`no gateway ${name}`);
    return g;
  };

  const sites: Sites = {
    tb,
    ns,
    kasane,
    admin: (...args) => adminOf(authorities[0].name, ...args),
    adminOf,
    authorities,
    authorityData,
    status: (g) => JSON.parse(kasane(ns[g], 'gateway', 'status', '--data', gatewayData(g), '--json')) as GatewayStatus,
    gatewayData,
    gatewayLog: (g) => logs.get(g) ?? '',
    async startAuthority(name) {
      const a = authorityOf(name);
      procs.set(
        `authority:${a.name}`,
        tb.spawn(ns[a.host], cli[0], [
          ...cli.slice(1),
          'authority',
          'serve',
          '--data',
          authorityData(a.name),
          '--log-level',
          'warn',
        ]),
      );
      await waitFor(
        () => {
          try {
            adminOf(a.name, 'authority', 'status');
            return true;
          } catch {
            return false;
          }
        },
        60_000,
        `authority ${a.name} to serve`,
      );
    },
    stopAuthority: (name) => stopProcess(procs.get(`authority:${authorityOf(name).name}`)),
    async startGateway(name) {
      const g = gatewaySpec(name);
      const cfg = join(s.dir, `${g.name}.yaml`);
      writeFileSync(
        cfg,
        `data: ${gatewayData(g.name)}\ninside: [${g.inside.join(', ')}]\noutside: [${g.outside.join(', ')}]\n${g.config ?? ''}\n`,
      );
      const d = tb.spawn(ns[g.name], cli[0], [...cli.slice(1), 'gateway', 'run', '--config', cfg]);
      procs.set(`gateway:${g.name}`, d);
      logs.set(g.name, '');
      d.stderr!.on('data', (b: Buffer) => logs.set(g.name, logs.get(g.name)! + b.toString()));
      await waitFor(
        () => logs.get(g.name)!.includes('gateway running') || d.exitCode !== null,
        60_000,
        `${g.name} to start`,
      );
      if (d.exitCode !== null) throw new Error(`${g.name} exited: ${logs.get(g.name)!.slice(-2000)}`);
    },
    stopGateway: (name) => stopProcess(procs.get(`gateway:${name}`)),
    killGateway: (name) => killProcess(procs.get(`gateway:${name}`)),
    ping(from, to, args = ['-c', '3', '-i', '0.2', '-W', '2']) {
      try {
        const out = tb.exec(ns[from], 'ping', ...args, to);
        return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
    async teardown() {
      // Gateways first (they talk to their authorities while they stop), then the authorities.
      const all = [...procs.entries()].sort(([a], [b]) =>
        a.startsWith('gateway:') === b.startsWith('gateway:') ? 0 : a.startsWith('gateway:') ? -1 : 1,
      );
      for (const [, p] of all) await stopProcess(p);
      tb.teardown();
    },
  };
  try {
    for (const h of s.hosts) ns[h] = tb.ns(h);
    for (const l of s.links) {
      tb.link(ns[l.a[0]], l.a[1], l.a.slice(2), ns[l.b[0]], l.b[1], l.b.slice(2));
      if (l.mtu !== undefined) {
        tb.ip(ns[l.a[0]], 'link', 'set', 'dev', l.a[1], 'mtu', String(l.mtu));
        tb.ip(ns[l.b[0]], 'link', 'set', 'dev', l.b[1], 'mtu', String(l.mtu));
      }
    }
    for (const [h, routes] of Object.entries(s.routes))
      for (const r of routes) tb.ip(ns[h], ...(r.some((x) => x.includes(':')) ? ['-6'] : []), 'route', 'add', ...r);
    for (const r of s.routers) tb.forwarding(ns[r]);
    log(`namespaces ${tb.prefix}-* and links up: ${s.hosts.join(', ')}`);

    for (const a of authorities) {
      kasane(
        ns[a.host],
        'authority',
        'init',
        '--data',
        authorityData(a.name),
        '--name',
        a.name,
        '--listen',
        `${a.address}:7443`,
      );
      if (a.config) {
        const path = join(authorityData(a.name), 'authority.json');
        writeFileSync(
          path,
          JSON.stringify({ ...(JSON.parse(readFileSync(path, 'utf8')) as object), ...a.config }, null, 2),
        );
      }
      await sites.startAuthority(a.name);
      log(`authority ${a.name} running at https://${a.address}:7443 (SQLite in ${authorityData(a.name)})`);
      for (const v of s.vpns)
        if (!v.authority || v.authority === a.name)
          adminOf(a.name, 'vpn', 'create', v.name, '--id', String(v.id), ...(v.mode ? ['--mode', v.mode] : []));
      for (const g of s.gateways) {
        if (authorityOf(g.authority).name !== a.name) continue;
        adminOf(a.name, 'gateway', 'add', g.name, '--address', g.address);
        for (const [vpn, prefixes] of Object.entries(g.members))
          for (const p of prefixes) adminOf(a.name, 'member', 'add', vpn, g.name, p);
      }
    }
    for (const g of s.gateways) {
      const bundle = join(s.dir, `${g.name}.bundle.json`);
      adminOf(authorityOf(g.authority).name, 'gateway', 'bundle', g.name, '-o', bundle);
      kasane(ns[g.name], 'gateway', 'enroll', '--data', gatewayData(g.name), '--bundle', bundle);
    }
    await s.beforeGateways?.(sites);
    for (const g of s.gateways) {
      await sites.startGateway(g.name);
      log(`${g.name} enrolled (offline bundle) and running`);
    }
  } catch (e) {
    await sites.teardown();
    throw e;
  }
  return sites;
}

/** Stops a process (SIGTERM, SIGKILL after 5 s). */
export async function stopProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const exited = await Promise.race([
    new Promise((r) => p.once('exit', () => r(true))),
    new Promise((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!exited && p.pid) p.kill('SIGKILL');
}

/** kill -9 (a crash: nothing of the process's own clean-up runs), and waits until it is gone. */
export async function killProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

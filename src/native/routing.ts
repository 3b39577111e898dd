// How a gateway host steers forwarded traffic through the datapath's two TUN devices with Linux
// policy routing (docs/dataplane.md): what arrives on an inside interface is routed into the
// inside TUN, what arrives on an outside interface into the outside TUN; packets the datapath
// writes back arrive with iif = a TUN device, match neither rule and are routed by the main table.
// Traffic to the gateway's own addresses is delivered by the local table (preference 0) first.
// The device a packet was read from tells the executor its side: no marks needed.
//
// routingSetup/routingTeardown are plans; runRouting carries one out (as root).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { err, ok, type Result } from '../core/result.js';

/**
 * One step: a command (`argv`, iproute2) or a sysctl written through /proc/sys (no procps needed).
 * An optional one may fail harmlessly (e.g. IPv6 settings on a host without IPv6).
 */
export type RoutingCommand = { argv: string[]; optional?: boolean } | { sysctl: string; value: string; optional?: boolean };

export interface TunRouting {
  insideTun: string;
  outsideTun: string;
  /** Interfaces facing the terminals' LANs. */
  insideIfaces: string[];
  /** Interfaces facing the WAN. */
  outsideIfaces: string[];
  /** Routing table for the inside TUN; the outside TUN uses table + 1. Default 5150. */
  table?: number;
  /** Preference of the ip rules (inside ones, then outside ones). Default 5150. */
  pref?: number;
}

/** Commands that set the routing up; run after the datapath opened the TUN devices. */
export function routingSetup(r: TunRouting): RoutingCommand[] {
  const t = r.table ?? 5150;
  const pref = r.pref ?? 5150;
  const c = (...argv: string[]): RoutingCommand => ({ argv });
  const cmds: RoutingCommand[] = [
    { sysctl: 'net.ipv4.ip_forward', value: '1' },
    // Packets written into a TUN keep the terminals' addresses: reverse-path filtering on the TUN
    // (the effective value is the maximum of "all" and the device's) would drop them.
    { sysctl: 'net.ipv4.conf.all.rp_filter', value: '0' },
  ];
  for (const tun of [r.insideTun, r.outsideTun]) {
    cmds.push({ sysctl: `net.ipv4.conf.${tun}.rp_filter`, value: '0' });
    // The executor is IPv4-only: keep the kernel's own IPv6 chatter (RS, MLD) off the devices.
    cmds.push({ sysctl: `net.ipv6.conf.${tun}.disable_ipv6`, value: '1', optional: true });
    cmds.push(c('ip', 'link', 'set', tun, 'up'));
  }
  cmds.push(c('ip', 'route', 'replace', 'default', 'dev', r.insideTun, 'table', String(t)));
  cmds.push(c('ip', 'route', 'replace', 'default', 'dev', r.outsideTun, 'table', String(t + 1)));
  for (const i of r.insideIfaces) cmds.push(c('ip', 'rule', 'add', 'iif', i, 'lookup', String(t), 'pref', String(pref)));
  for (const o of r.outsideIfaces) cmds.push(c('ip', 'rule', 'add', 'iif', o, 'lookup', String(t + 1), 'pref', String(pref + 1)));
  return cmds;
}

/** Commands that undo routingSetup (failures are harmless: the TUN devices' routes vanish with them). */
export function routingTeardown(r: TunRouting): RoutingCommand[] {
  const t = r.table ?? 5150;
  const pref = r.pref ?? 5150;
  const c = (...argv: string[]): RoutingCommand => ({ argv, optional: true });
  const cmds: RoutingCommand[] = [];
  for (const i of r.insideIfaces) cmds.push(c('ip', 'rule', 'del', 'iif', i, 'lookup', String(t), 'pref', String(pref)));
  for (const o of r.outsideIfaces) cmds.push(c('ip', 'rule', 'del', 'iif', o, 'lookup', String(t + 1), 'pref', String(pref + 1)));
  cmds.push(c('ip', 'route', 'flush', 'table', String(t)));
  cmds.push(c('ip', 'route', 'flush', 'table', String(t + 1)));
  return cmds;
}

/**
 * Runs a plan in this process's network namespace (root). Stops at the first failing step that
 * is not optional and says which.
 */
export function runRouting(cmds: RoutingCommand[]): Result<void> {
  for (const c of cmds) {
    try {
      if ('sysctl' in c) writeFileSync(`/proc/sys/${c.sysctl.replaceAll('.', '/')}`, c.value);
      else execFileSync(c.argv[0], c.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      if (c.optional) continue;
      const what = 'sysctl' in c ? `${c.sysctl}=${c.value}` : c.argv.join(' ');
      const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e instanceof Error ? e.message : String(e));
      return err('routing', `${what}: ${why}`);
    }
  }
  return ok(undefined);
}

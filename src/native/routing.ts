// How a gateway host steers forwarded traffic through the datapath's two TUN devices with Linux
// policy routing (docs/dataplane.md): what arrives on an inside interface is routed into the
// inside TUN, what arrives on an outside interface into the outside TUN; packets the datapath
// writes back arrive with iif = a TUN device, match neither rule and are routed by the main table.
// Traffic to the gateway's own addresses is delivered by the local table (preference 0) first.
// The device a packet was read from tells the executor its side: no marks needed.
//
// Fail closed (docs/gateway.md "When the gateway stops or dies"): everything here is kernel state
// that outlives the process. Behind each TUN route sits a refusing route (prohibit inside,
// blackhole outside) that stays when the TUN device vanishes with a dead process, the rules stay
// when the gateway stops, and an nftables table drops whatever would be forwarded directly between
// an inside and an outside interface (every legitimate forwarded packet passes a TUN device). Only
// routingTeardown (`kasane gateway teardown`) removes them, on purpose.
//
// IPv6 is steered the same way, in the same tables (`ip -6`), with its own refusing routes and
// rules; the guard is one nftables table of family inet, for both. A host without IPv6 (booted
// with ipv6.disable=1) forwards none, so its plan leaves IPv6 out (`ipv6: false`).
//
// routingSetup/routingTeardown are plans; runRouting carries one out (as root). Both are
// idempotent over whatever an earlier run left: routes are replaced, the rule set is made exact,
// the nftables table is replaced atomically.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { err, ok, type Result } from '../base/result.js';

/** One policy rule: packets arriving on `iif` look up `table`, at preference `pref`. */
export interface PolicyRule {
  iif: string;
  table: number;
  pref: number;
}

export type IpFamily = 4 | 6;

/**
 * One step: a command (`argv`, iproute2), a sysctl written through /proc/sys (no procps needed;
 * with `ifValue`, only when it holds that value now), an exact rule set of one family (`rules`:
 * adds the missing ones, then deletes every other rule at `prefs`, so rules an earlier run or an
 * earlier configuration left do not linger and nothing is added twice), or an nftables script
 * applied as one transaction (`nft -f -`). An optional step may fail harmlessly.
 */
export type RoutingCommand =
  | { argv: string[]; optional?: boolean }
  | { sysctl: string; value: string; ifValue?: string; optional?: boolean }
  | { rules: PolicyRule[]; prefs: number[]; family: IpFamily; optional?: boolean }
  | { nft: string; optional?: boolean };

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
  /** Steer and guard IPv6 too. Default true; false only on a host without IPv6 (hostHasIpv6()). */
  ipv6?: boolean;
}

/** Whether this host (network namespace) has IPv6 at all: false when booted with ipv6.disable=1. */
export function hostHasIpv6(): boolean {
  return existsSync('/proc/sys/net/ipv6');
}

function families(r: TunRouting): IpFamily[] {
  return r.ipv6 === false ? [4] : [4, 6];
}

/** The largest route metric: the refusing routes lose to any other default route of the table. */
const LAST_METRIC = '4294967295';

/** The nftables table (family inet: IPv4 and IPv6) of a gateway using routing table `table`: `kasane_5150`. */
export function guardTableName(r: TunRouting): string {
  return `kasane_${r.table ?? 5150}`;
}

/** The rules a gateway needs: each inside interface into the inside table, each outside one into the outside table. */
export function policyRules(r: TunRouting): PolicyRule[] {
  const t = r.table ?? 5150;
  const pref = r.pref ?? 5150;
  return [
    ...r.insideIfaces.map((iif) => ({ iif, table: t, pref })),
    ...r.outsideIfaces.map((iif) => ({ iif, table: t + 1, pref: pref + 1 })),
  ];
}

/**
 * Deletes the guard, if there is one, in the transaction it starts: the inet table, and the ip
 * table an earlier version (IPv4 only) made under the same name.
 */
function guardRemoval(name: string): string[] {
  return [`table ip ${name} {}`, `delete table ip ${name}`, `table inet ${name} {}`, `delete table inet ${name}`];
}

/**
 * The forwarding guard: drops packets the kernel would forward directly between an inside and an
 * outside interface, IPv4 and IPv6 alike (family inet). Legitimate traffic never does (it goes
 * into a TUN device and comes out of one), so this holds whether the gateway runs or not, and
 * whatever the routing tables say. Replaced atomically: the table is created if absent, deleted
 * and made again in one transaction.
 */
function guardScript(r: TunRouting): string {
  const name = guardTableName(r);
  const set = (ifs: string[]) => `{ ${ifs.map((i) => JSON.stringify(i)).join(', ')} }`;
  return [
    ...guardRemoval(name),
    `table inet ${name} {`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    iifname ${set(r.insideIfaces)} oifname ${set(r.outsideIfaces)} counter drop comment "kasane: inside to outside only through the gateway"`,
    `    iifname ${set(r.outsideIfaces)} oifname ${set(r.insideIfaces)} counter drop comment "kasane: outside to inside only through the gateway"`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/** Commands that set the routing up; run after the datapath opened the TUN devices. */
export function routingSetup(r: TunRouting): RoutingCommand[] {
  const t = r.table ?? 5150;
  const pref = r.pref ?? 5150;
  const fams = families(r);
  const ip = (f: IpFamily, ...argv: string[]): RoutingCommand => ({ argv: ['ip', `-${f}`, ...argv] });
  // The guard first: from here on nothing crosses unprotected, whatever happens to this process.
  const cmds: RoutingCommand[] = [{ nft: guardScript(r) }];
  for (const f of fams) {
    // Behind the TUN routes: when a TUN device vanishes (the process died), its route goes with it
    // and these remain. Inside: prohibit (terminals get an ICMP or ICMPv6 "administratively
    // prohibited" at once); outside: blackhole (nothing is said to the WAN).
    cmds.push(ip(f, 'route', 'replace', 'prohibit', 'default', 'metric', LAST_METRIC, 'table', String(t)));
    cmds.push(ip(f, 'route', 'replace', 'blackhole', 'default', 'metric', LAST_METRIC, 'table', String(t + 1)));
  }
  cmds.push({ sysctl: 'net.ipv4.ip_forward', value: '1' });
  // Packets written into a TUN keep the terminals' addresses: reverse-path filtering on the TUN
  // (the effective value is the maximum of "all" and the device's) would drop them. IPv6 has none.
  cmds.push({ sysctl: 'net.ipv4.conf.all.rp_filter', value: '0' });
  if (fams.includes(6)) {
    cmds.push({ sysctl: 'net.ipv6.conf.all.forwarding', value: '1' });
    // A forwarding host ignores router advertisements where accept_ra is 1: an outside interface
    // that takes its address and default route from them (SLAAC) keeps doing so with 2.
    for (const i of r.outsideIfaces) cmds.push({ sysctl: `net.ipv6.conf.${i}.accept_ra`, value: '2', ifValue: '1' });
  }
  for (const tun of [r.insideTun, r.outsideTun]) {
    cmds.push({ sysctl: `net.ipv4.conf.${tun}.rp_filter`, value: '0' });
    if (fams.includes(6)) {
      // IPv6 on the device (its routes need it), but no address of its own: no link-local, so no
      // DAD, router solicitation or MLD of the kernel's own on the datapath.
      cmds.push({ sysctl: `net.ipv6.conf.${tun}.disable_ipv6`, value: '0' });
      cmds.push({ sysctl: `net.ipv6.conf.${tun}.accept_ra`, value: '0' });
      cmds.push({ argv: ['ip', 'link', 'set', tun, 'addrgenmode', 'none'] });
    } else cmds.push({ sysctl: `net.ipv6.conf.${tun}.disable_ipv6`, value: '1', optional: true });
    cmds.push({ argv: ['ip', 'link', 'set', tun, 'up'] });
  }
  for (const f of fams) {
    cmds.push(ip(f, 'route', 'replace', 'default', 'dev', r.insideTun, 'table', String(t)));
    cmds.push(ip(f, 'route', 'replace', 'default', 'dev', r.outsideTun, 'table', String(t + 1)));
  }
  for (const f of fams) cmds.push({ rules: policyRules(r), prefs: [pref, pref + 1], family: f });
  return cmds;
}

/**
 * Commands that undo routingSetup on purpose (`kasane gateway teardown`): the rules, both tables
 * with their refusing routes, of IPv4 and IPv6, and the nftables guard. Afterwards forwarded
 * traffic between the inside and the outside follows the main tables, in the clear. Sysctls stay.
 */
export function routingTeardown(r: TunRouting): RoutingCommand[] {
  const t = r.table ?? 5150;
  const pref = r.pref ?? 5150;
  const cmds: RoutingCommand[] = [];
  for (const f of families(r)) {
    cmds.push({ rules: [], prefs: [pref, pref + 1], family: f });
    cmds.push({ argv: ['ip', `-${f}`, 'route', 'flush', 'table', String(t)], optional: true });
    cmds.push({ argv: ['ip', `-${f}`, 'route', 'flush', 'table', String(t + 1)], optional: true });
  }
  cmds.push({ nft: `${guardRemoval(guardTableName(r)).join('\n')}\n` });
  return cmds;
}

/**
 * Runs a plan in this process's network namespace (root). Stops at the first failing step that
 * is not optional and says which.
 */
export function runRouting(cmds: RoutingCommand[]): Result<void> {
  for (const c of cmds) {
    try {
      if ('sysctl' in c) writeSysctl(c.sysctl, c.value, c.ifValue);
      else if ('rules' in c) exactRules(c.rules, c.prefs, c.family);
      else if ('nft' in c) execFileSync('nft', ['-f', '-'], { input: c.nft, stdio: ['pipe', 'ignore', 'pipe'] });
      else execFileSync(c.argv[0], c.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      if (c.optional) continue;
      const what =
        'sysctl' in c
          ? `${c.sysctl}=${c.value}`
          : 'rules' in c
            ? `ip -${c.family} rules at preference ${c.prefs.join('/')}`
            : 'nft' in c
              ? 'nft -f (forwarding guard)'
              : c.argv.join(' ');
      const enoent = (e as NodeJS.ErrnoException).code === 'ENOENT';
      const why = enoent
        ? `${'nft' in c ? 'nft' : 'ip'} not found (install ${'nft' in c ? 'nftables' : 'iproute2'})`
        : (e as { stderr?: Buffer }).stderr?.toString().trim() || (e instanceof Error ? e.message : String(e));
      return err('routing', `${what}: ${why}`);
    }
  }
  return ok(undefined);
}

/** /proc/sys path of a key; an interface name in it keeps its dots (a VLAN's `wan0.100`). */
export function sysctlPath(key: string): string {
  const dev = /^(net\.ipv[46]\.conf)\.(.+)\.([a-z0-9_]+)$/.exec(key);
  return `/proc/sys/${dev ? `${dev[1].replaceAll('.', '/')}/${dev[2]}/${dev[3]}` : key.replaceAll('.', '/')}`;
}

function writeSysctl(key: string, value: string, ifValue?: string): void {
  const path = sysctlPath(key);
  if (ifValue !== undefined && readFileSync(path, 'utf8').trim() !== ifValue) return;
  writeFileSync(path, value);
}

interface RuleRow {
  priority: number;
  src?: string;
  srclen?: number;
  iif?: string;
  table?: string;
  [k: string]: unknown;
}

/** Makes the rules of one family at `prefs` exactly `want`: adds what is missing first, then deletes the rest. */
function exactRules(want: PolicyRule[], prefs: number[], family: IpFamily): void {
  const ip = (...a: string[]) =>
    execFileSync('ip', [`-${family}`, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const current = (): RuleRow[] =>
    (JSON.parse(ip('-j', '-N', 'rule', 'show')) as RuleRow[]).filter((x) => prefs.includes(x.priority));
  const plain = (x: RuleRow) =>
    x.src === 'all' && Object.keys(x).every((k) => ['priority', 'src', 'iif', 'iif_detached', 'table'].includes(k));
  const same = (x: RuleRow, w: PolicyRule) =>
    plain(x) && x.priority === w.pref && x.iif === w.iif && x.table === String(w.table);
  const have = current();
  for (const w of want)
    if (!have.some((x) => same(x, w)))
      ip('rule', 'add', 'iif', w.iif, 'lookup', String(w.table), 'pref', String(w.pref));
  for (const x of have) {
    if (want.some((w) => same(x, w))) continue;
    // A rule at our preference that we do not want (an earlier configuration's): delete it by its
    // selector, so that a wanted rule of the same preference stays.
    const sel = ['pref', String(x.priority)];
    if (x.src && x.src !== 'all') sel.push('from', `${x.src}/${x.srclen ?? (family === 4 ? 32 : 128)}`);
    if (x.iif) sel.push('iif', x.iif);
    if (typeof x.fwmark === 'string')
      sel.push('fwmark', typeof x.fwmask === 'string' ? `${x.fwmark}/${x.fwmask}` : x.fwmark);
    if (x.table) sel.push('lookup', x.table);
    ip('rule', 'del', ...sel);
  }
  // A rule with selectors of its own could have taken a wanted one with it: check the outcome.
  const now = current();
  for (const w of want)
    if (!now.some((x) => same(x, w)))
      ip('rule', 'add', 'iif', w.iif, 'lookup', String(w.table), 'pref', String(w.pref));
  const extra = current().filter((x) => !want.some((w) => same(x, w)));
  if (extra.length > 0)
    throw new Error(
      `IPv${family} rules at preference ${prefs.join('/')} that are not kasane's: ${JSON.stringify(extra)} (remove them, or choose another routingTable)`,
    );
}

// The topology file: what an operator writes to describe a simulated network (terminals,
// gateways, routers, links, VPNs and memberships, traffic to try, timed authority events), and
// its validation. Every problem is reported with the field it concerns (and its line in the file),
// never as an exception. The format is documented in docs/simulator.md.
import { formatPath, type DocumentLimits, type DocumentSource } from '../files/document.js';
import {
  checkFields,
  describe,
  formatIssues,
  readFields,
  type FieldPath,
  type FieldReader,
  type FieldsError,
} from '../files/fields.js';
import { ipFamily, Prefix, type Ip, type IpFamily } from '../base/addr.js';
import { pushTo } from '../base/maps.js';
import type { GatewayLimits, GatewayTimers } from '../core/gateway-api.js';
import type { Result } from '../base/result.js';
import type { VpnId } from '../core/types.js';

export const DEFAULT_SEED = 1;
/** Default latency (ms) of a link with a terminal or a gateway's inside interface on it. */
export const DEFAULT_LAN_LATENCY = 0.1;
/** Default latency (ms) of every other link (gateway outside interfaces, routers). */
export const DEFAULT_WAN_LATENCY = 1;
export const DEFAULT_MTU = 1500;
/** Without `until`, a run lasts this long (ms) after the last traffic packet or authority event. */
export const DEFAULT_SETTLE = 30_000;
/** Key rotation: senders switch to the new epoch `overlap` ms after it is delivered... */
export const DEFAULT_ROTATION_OVERLAP = 1_000;
/** ...and receivers accept the old epoch until `grace` ms after that. */
export const DEFAULT_ROTATION_GRACE = 5_000;
/** Data bytes of an echo request when `size` is not given (as ping's default). */
export const DEFAULT_ECHO_SIZE = 56;

export interface Topology {
  name: string;
  seed: number;
  /** Virtual time (ms) the run ends at, if the file sets it. */
  until?: number;
  defaults: TopologyDefaults;
  vpns: VpnSpec[];
  /** In file order. */
  nodes: NodeSpec[];
  links: LinkSpec[];
  traffic: TrafficSpec[];
  /** Sorted by time (stable: file order at equal times). */
  events: AuthorityEventSpec[];
}

export interface TopologyDefaults {
  timers: Partial<GatewayTimers>;
  limits: Partial<GatewayLimits>;
  lanLatency: number;
  wanLatency: number;
  mtu: number;
  rotation: { overlap: number; grace: number };
  settle: number;
}

export interface VpnSpec {
  name: string;
  id: VpnId;
}

export interface TerminalSpec {
  kind: 'terminal';
  name: string;
  /** Its first address (of `addresses`). */
  address: Ip;
  /** One address, or one of each family (a dual-stack terminal). */
  addresses: Ip[];
  /** Does not answer ICMP echo (a host firewall). */
  silent: boolean;
}

export interface GatewayMembership {
  vpn: string;
  prefixes: Prefix[];
}

export interface GatewaySpec {
  kind: 'gateway';
  name: string;
  /** Outside (WAN) address: the first of `addresses`, the one the core is configured with. */
  address: Ip;
  /** One outside address, or one of each family. */
  addresses: Ip[];
  /** Neighbours on the gateway's inside interfaces; every other link is outside. */
  inside: string[];
  /** In file order. */
  members: GatewayMembership[];
  /** The LANs on the inside interfaces; absent: the /32 of each terminal directly inside. */
  lans?: Prefix[];
  allowPlain?: Prefix[];
  pathMtu?: number;
  timers: Partial<GatewayTimers>;
  limits: Partial<GatewayLimits>;
}

export interface RouterSpec {
  kind: 'router';
  name: string;
  address?: Ip;
  /** Addresses it owns (none, one, or one of each family). */
  addresses: Ip[];
}

export type NodeSpec = TerminalSpec | GatewaySpec | RouterSpec;

export interface LinkLoss {
  /** Drop the first N key-search packets (echo requests/replies with a kasane payload). */
  searchPackets: number;
  /** Only count and drop search packets sent by this end of the link. */
  searchFrom?: string;
  /** Drop each packet with this probability (seeded). */
  rate: number;
}

export interface LinkSpec {
  a: string;
  b: string;
  latency: number;
  mtu: number;
  loss: LinkLoss;
  /** A LAN link: a terminal, or a gateway's inside interface, is on it. */
  lan: boolean;
}

export type TrafficKind = 'echo' | 'tcp-syn';

export interface TrafficSpec {
  kind: TrafficKind;
  from: string;
  to: string;
  at: number;
  count: number;
  interval: number;
  /** echo: ICMP data bytes (as ping -s). */
  size: number;
  /** Text at the start of the ICMP data, to recognise the packet in captures. */
  marker?: string;
  /** tcp-syn: destination port. */
  port: number;
  /** The IP family the packets use (a file's `family`, else the sender's first address's that the receiver has). */
  family: IpFamily;
}

export type AuthorityEventSpec =
  { kind: 'rotate'; at: number; vpn: string } | { kind: 'remove-member'; at: number; vpn: string; gateway: string };

export interface TopologyIssue {
  /** Where in the file, e.g. `nodes[3].inside[0]`. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export interface TopologyError {
  code: 'bad-topology';
  /** Every issue, one per line, ready to print. */
  message: string;
  issues: TopologyIssue[];
}

const TIMER_KEYS: Record<keyof GatewayTimers, true> = {
  sourceSearchTimeout: true,
  searchTimeout: true,
  searchRetries: true,
  proxyAnswerDelay: true,
  idleTimeout: true,
  hardLifetime: true,
  negativeTtl: true,
  sweepInterval: true,
  ikeTimeout: true,
  pathMtuTimeout: true,
};

const LIMIT_KEYS: Record<keyof GatewayLimits, true> = {
  maxPaths: true,
  pendingPerPath: true,
  pendingTotal: true,
  pendingBytes: true,
  maxSearchesInFlight: true,
};

/** Stands in for an invalid address in a file that is refused anyway. */
const UNUSABLE_ADDRESS = '0.0.0.0';
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;

type Path = FieldPath;
type Reader = FieldReader;

export { formatPath };

function readName(r: Reader, value: unknown, path: Path): string | undefined {
  const s = r.string(value, path);
  if (s === undefined) return undefined;
  if (!NAME_PATTERN.test(s)) {
    return r.fail(
      path,
      `bad name ${JSON.stringify(s)}: use 1-63 letters, digits, "_", "-" or ".", starting with a letter`,
    );
  }
  return s;
}

/**
 * A node's addresses: one address of either family, or a list of one of each (a dual-stack node).
 * Each comes with the path it was read at; undefined when any is bad.
 */
function readAddresses(r: Reader, value: unknown, path: Path): { ip: Ip; path: Path }[] | undefined {
  if (!Array.isArray(value)) {
    const ip = r.ip(value, path);
    return ip === undefined ? undefined : [{ ip, path }];
  }
  if (value.length < 1 || value.length > 2)
    return r.fail(
      path,
      `expected an address, or a list of one IPv4 and one IPv6 address (got ${value.length} entries)`,
    );
  const problems = r.failures;
  const out = value.flatMap((v, j) => {
    const ip = r.ip(v, [...path, j]);
    return ip === undefined ? [] : [{ ip, path: [...path, j] }];
  });
  if (out.length === 2 && ipFamily(out[0].ip) === ipFamily(out[1].ip)) {
    r.fail(
      [...path, 1],
      `two IPv${ipFamily(out[0].ip)} addresses (${out[0].ip}, ${out[1].ip}); a node has at most one of each family`,
    );
  }
  return r.failures === problems ? out : undefined;
}

function readPrefixList(r: Reader, value: unknown, path: Path): Prefix[] | undefined {
  return r.listOf(value, path, (v, at) => r.prefix(v, at));
}

function readTimers(r: Reader, value: unknown, path: Path): Partial<GatewayTimers> {
  return value === undefined
    ? {}
    : r.numbers(value, path, TIMER_KEYS, (k) => (k === 'searchRetries' ? { min: 0, integer: true } : { above: 0 }));
}

function readLimits(r: Reader, value: unknown, path: Path): Partial<GatewayLimits> {
  return value === undefined ? {} : r.numbers(value, path, LIMIT_KEYS, () => ({ min: 0, integer: true }));
}

const TOP_KEYS = ['name', 'description', 'seed', 'until', 'defaults', 'vpns', 'nodes', 'links', 'traffic', 'events'];

/**
 * Validates a parsed document (from YAML/JSON, or built by a program) into a Topology. Issues
 * carry the path of the field concerned; `loadTopology` adds line numbers.
 */
export function parseTopology(doc: unknown): Result<Topology, TopologyError> {
  const r = checkFields(doc, readTopology);
  return r.ok ? r : topologyError(r.error);
}

function topologyError(e: FieldsError): { ok: false; error: TopologyError } {
  return { ok: false, error: { code: 'bad-topology', message: formatIssues(e.issues, e.file), issues: e.issues } };
}

function readTopology(r: Reader, doc: unknown): Topology | undefined {
  const top = r.object(doc, [], TOP_KEYS);
  if (!top) return undefined;

  const name = top.name === undefined ? 'topology' : (r.string(top.name, ['name']) ?? 'topology');
  if (top.description !== undefined) r.string(top.description, ['description']);
  const seed =
    top.seed === undefined
      ? DEFAULT_SEED
      : (r.number(top.seed, ['seed'], { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }) ?? DEFAULT_SEED);
  const until = top.until === undefined ? undefined : r.number(top.until, ['until'], { min: 0 });
  const defaults = readDefaults(r, top.defaults);

  const vpns = readVpns(r, top.vpns);
  const vpnByName = new Map(vpns.map((v) => [v.name, v]));

  if (top.nodes === undefined) r.fail(['nodes'], 'missing: a topology needs nodes');
  const nodes = readNodes(r, top.nodes ?? [], vpnByName);
  const nodeByName = new Map<string, NodeSpec>();
  for (const n of nodes) nodeByName.set(n.spec.name, n.spec);

  if (top.links === undefined) r.fail(['links'], 'missing: a topology needs links');
  const mentioned = new Map<string, string[]>();
  const links = readLinks(r, top.links ?? [], nodeByName, defaults, nodes, mentioned);

  checkGatewaysAgainstLinks(r, nodes, mentioned);

  const traffic = top.traffic === undefined ? [] : readTraffic(r, top.traffic, nodeByName);
  const events = top.events === undefined ? [] : readEvents(r, top.events, nodes, vpnByName);

  if (r.failures > 0) return undefined;
  return { name, seed, until, defaults, vpns, nodes: nodes.map((n) => n.spec), links, traffic, events };
}

function readDefaults(r: Reader, value: unknown): TopologyDefaults {
  const d: TopologyDefaults = {
    timers: {},
    limits: {},
    lanLatency: DEFAULT_LAN_LATENCY,
    wanLatency: DEFAULT_WAN_LATENCY,
    mtu: DEFAULT_MTU,
    rotation: { overlap: DEFAULT_ROTATION_OVERLAP, grace: DEFAULT_ROTATION_GRACE },
    settle: DEFAULT_SETTLE,
  };
  if (value === undefined) return d;
  const path = ['defaults'];
  const obj = r.object(value, path, ['timers', 'limits', 'latency', 'mtu', 'rotation', 'settle']);
  if (!obj) return d;
  d.timers = readTimers(r, obj.timers, [...path, 'timers']);
  d.limits = readLimits(r, obj.limits, [...path, 'limits']);
  if (obj.latency !== undefined) {
    const lat = r.object(obj.latency, [...path, 'latency'], ['lan', 'wan']);
    if (lat?.lan !== undefined)
      d.lanLatency = r.number(lat.lan, [...path, 'latency', 'lan'], { min: 0 }) ?? d.lanLatency;
    if (lat?.wan !== undefined)
      d.wanLatency = r.number(lat.wan, [...path, 'latency', 'wan'], { min: 0 }) ?? d.wanLatency;
  }
  if (obj.mtu !== undefined)
    d.mtu = r.number(obj.mtu, [...path, 'mtu'], { min: 68, max: 65535, integer: true }) ?? d.mtu;
  if (obj.rotation !== undefined) {
    const rot = r.object(obj.rotation, [...path, 'rotation'], ['overlap', 'grace']);
    if (rot?.overlap !== undefined)
      d.rotation.overlap = r.number(rot.overlap, [...path, 'rotation', 'overlap'], { min: 0 }) ?? d.rotation.overlap;
    if (rot?.grace !== undefined)
      d.rotation.grace = r.number(rot.grace, [...path, 'rotation', 'grace'], { min: 0 }) ?? d.rotation.grace;
  }
  if (obj.settle !== undefined) d.settle = r.number(obj.settle, [...path, 'settle'], { min: 0 }) ?? d.settle;
  return d;
}

function readVpns(r: Reader, value: unknown): VpnSpec[] {
  if (value === undefined) return [];
  const list = r.list(value, ['vpns']);
  if (!list) return [];
  const out: VpnSpec[] = [];
  const names = new Map<string, number>();
  const ids = new Map<number, number>();
  list.forEach((item, i) => {
    const path = ['vpns', i];
    const obj = r.object(item, path, ['name', 'id', 'mode']);
    if (!obj) return;
    const name = readName(r, obj.name, [...path, 'name']);
    const id = r.number(obj.id, [...path, 'id'], { min: 1, max: 0xffffffff, integer: true });
    if (obj.mode !== undefined && obj.mode !== 'group') {
      r.fail([...path, 'mode'], `${describe(obj.mode)}: the simulator runs group-mode VPNs only (mode: group)`);
    }
    if (name !== undefined && names.has(name))
      r.fail([...path, 'name'], `duplicate VPN name "${name}" (also vpns[${names.get(name)}])`);
    if (id !== undefined && ids.has(id)) r.fail([...path, 'id'], `duplicate VPN id ${id} (also vpns[${ids.get(id)}])`);
    if (name === undefined || names.has(name)) return;
    names.set(name, i);
    if (id !== undefined) ids.set(id, i);
    // A VPN with a bad id is still known by name, so memberships naming it report nothing more.
    out.push({ name, id: id ?? 0 });
  });
  return out;
}

interface ReadNode {
  spec: NodeSpec;
  index: number;
  /** Raw member entries that name terminals, resolved once every node is known. */
  memberNames: { vpnIndex: number; vpn: string; entries: { value: string; path: Path }[] }[];
}

const TERMINAL_KEYS = ['name', 'terminal', 'silent'];
const GATEWAY_KEYS = ['name', 'gateway', 'inside', 'members', 'lans', 'allowPlain', 'pathMtu', 'timers', 'limits'];
const ROUTER_KEYS = ['name', 'router'];

function readNodes(r: Reader, value: unknown, vpnByName: Map<string, VpnSpec>): ReadNode[] {
  const list = r.list(value, ['nodes']);
  if (!list) return [];
  const out: ReadNode[] = [];
  const names = new Map<string, number>();
  const addresses = new Map<Ip, string>();
  list.forEach((item, i) => {
    const path: Path = ['nodes', i];
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      r.fail(path, `expected a mapping like { name: A, terminal: 10.1.0.10 }, got ${describe(item)}`);
      return;
    }
    const raw = item as Record<string, unknown>;
    const kinds = (['terminal', 'gateway', 'router'] as const).filter((k) => raw[k] !== undefined);
    if (kinds.length !== 1) {
      r.fail(
        path,
        kinds.length === 0
          ? 'a node needs one of: terminal: ADDRESS, gateway: ADDRESS, router: true'
          : `a node is one thing, not ${kinds.join(' and ')}`,
      );
      return;
    }
    const kind = kinds[0];
    const obj = r.object(
      item,
      path,
      kind === 'terminal' ? TERMINAL_KEYS : kind === 'gateway' ? GATEWAY_KEYS : ROUTER_KEYS,
    );
    if (!obj) return;
    const name = readName(r, obj.name, [...path, 'name']);
    if (name === undefined) return;
    if (names.has(name)) {
      r.fail([...path, 'name'], `duplicate node name "${name}" (also nodes[${names.get(name)}])`);
      return;
    }
    names.set(name, i);

    /** The node's addresses, each claimed (unique across nodes); [UNUSABLE_ADDRESS] when any is bad. */
    const claimAddresses = (value: unknown, at: Path): Ip[] => {
      const read = readAddresses(r, value, at);
      if (read === undefined) return [UNUSABLE_ADDRESS];
      const problems = r.failures;
      for (const { ip, path: where } of read) {
        const owner = addresses.get(ip);
        if (owner !== undefined) r.fail(where, `address ${ip} is already used by ${owner}`);
        else addresses.set(ip, name);
      }
      return r.failures === problems ? read.map((a) => a.ip) : [UNUSABLE_ADDRESS];
    };

    // A node with a bad address is still known by name (with a placeholder address that is never
    // used, since the file is refused), so links and traffic naming it report nothing more.
    if (kind === 'terminal') {
      const addresses = claimAddresses(obj.terminal, [...path, 'terminal']);
      const silent = obj.silent === undefined ? false : (r.boolean(obj.silent, [...path, 'silent']) ?? false);
      out.push({
        spec: { kind: 'terminal', name, address: addresses[0], addresses, silent },
        index: i,
        memberNames: [],
      });
      return;
    }
    if (kind === 'router') {
      const addresses = obj.router === true ? [] : claimAddresses(obj.router, [...path, 'router']);
      out.push({ spec: { kind: 'router', name, address: addresses[0], addresses }, index: i, memberNames: [] });
      return;
    }
    const gatewayAddresses = claimAddresses(obj.gateway, [...path, 'gateway']);
    const inside: string[] = [];
    if (obj.inside !== undefined) {
      const list = r.list(obj.inside, [...path, 'inside']) ?? [];
      const listed = new Set<string>();
      list.forEach((n, j) => {
        const neighbour = readName(r, n, [...path, 'inside', j]);
        if (neighbour === undefined) return;
        if (listed.has(neighbour)) r.fail([...path, 'inside', j], `"${neighbour}" is listed twice`);
        else {
          listed.add(neighbour);
          inside.push(neighbour);
        }
      });
    }
    const members: GatewayMembership[] = [];
    const memberNames: ReadNode['memberNames'] = [];
    if (obj.members !== undefined) {
      const m = r.object(obj.members, [...path, 'members'], [...vpnByName.keys()]);
      if (m) {
        for (const [vpn, entries] of Object.entries(m)) {
          const at = [...path, 'members', vpn];
          if (!vpnByName.has(vpn)) continue; // reported by object() as an unknown field
          const items = r.list(entries, at) ?? [];
          const prefixes: Prefix[] = [];
          const named: { value: string; path: Path }[] = [];
          items.forEach((e, j) => {
            if (typeof e === 'string' && NAME_PATTERN.test(e) && !e.includes(':'))
              named.push({ value: e, path: [...at, j] });
            else {
              const p = r.prefix(e, [...at, j]);
              if (p) prefixes.push(p);
            }
          });
          if (items.length === 0) r.fail(at, 'a membership needs at least one prefix or terminal name');
          members.push({ vpn, prefixes });
          memberNames.push({ vpnIndex: members.length - 1, vpn, entries: named });
        }
      }
    }
    const lans = obj.lans === undefined ? undefined : readPrefixList(r, obj.lans, [...path, 'lans']);
    const allowPlain =
      obj.allowPlain === undefined ? undefined : readPrefixList(r, obj.allowPlain, [...path, 'allowPlain']);
    const pathMtu =
      obj.pathMtu === undefined
        ? undefined
        : r.number(obj.pathMtu, [...path, 'pathMtu'], { min: 576, max: 65535, integer: true });
    const timers = readTimers(r, obj.timers, [...path, 'timers']);
    const limits = readLimits(r, obj.limits, [...path, 'limits']);
    out.push({
      spec: {
        kind: 'gateway',
        name,
        address: gatewayAddresses[0],
        addresses: gatewayAddresses,
        inside,
        members,
        lans,
        allowPlain,
        pathMtu,
        timers,
        limits,
      },
      index: i,
      memberNames,
    });
  });

  // Membership entries that name terminals stand for the terminal's /32.
  const byName = new Map(out.map((n) => [n.spec.name, n.spec]));
  for (const n of out) {
    if (n.spec.kind !== 'gateway') continue;
    for (const m of n.memberNames) {
      for (const e of m.entries) {
        const target = byName.get(e.value);
        if (target === undefined) r.fail(e.path, `"${e.value}" is neither a CIDR prefix nor a node name`);
        else if (target.kind !== 'terminal')
          r.fail(e.path, `"${e.value}" is a ${target.kind}; a membership lists prefixes or terminal names`);
        else n.spec.members[m.vpnIndex].prefixes.push(...target.addresses.map(hostPrefix));
      }
    }
  }
  return out;
}

/**
 * Reads the links. `mentioned` gets every pair the file links, even a link refused for another
 * reason, so that one bad link is not reported again as "terminal X has no link".
 */
function readLinks(
  r: Reader,
  value: unknown,
  nodes: Map<string, NodeSpec>,
  defaults: TopologyDefaults,
  readNodesList: ReadNode[],
  mentioned: Map<string, string[]>,
): LinkSpec[] {
  const list = r.list(value, ['links']);
  if (!list) return [];
  const insideOf = new Map<string, Set<string>>();
  for (const n of readNodesList) if (n.spec.kind === 'gateway') insideOf.set(n.spec.name, new Set(n.spec.inside));
  const out: LinkSpec[] = [];
  const seen = new Map<string, number>();
  const mentionedPairs = new Set<string>();
  list.forEach((item, i) => {
    const path: Path = ['links', i];
    let aRaw: unknown;
    let bRaw: unknown;
    let obj: Record<string, unknown> | undefined;
    let aPath: Path;
    let bPath: Path;
    if (Array.isArray(item)) {
      if (item.length !== 2) {
        r.fail(path, `a link joins two nodes: [A, B] (got ${item.length} entries)`);
        return;
      }
      [aRaw, bRaw] = item;
      aPath = [...path, 0];
      bPath = [...path, 1];
    } else {
      obj = r.object(item, path, ['a', 'b', 'latency', 'mtu', 'loss']);
      if (!obj) return;
      aRaw = obj.a;
      bRaw = obj.b;
      aPath = [...path, 'a'];
      bPath = [...path, 'b'];
    }
    const a = readName(r, aRaw, aPath);
    const b = readName(r, bRaw, bPath);
    if (a === undefined || b === undefined) return;
    const key = a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
    if (a !== b && !mentionedPairs.has(key)) {
      mentionedPairs.add(key);
      pushTo(mentioned, a, b);
      pushTo(mentioned, b, a);
    }
    const problems = r.failures;
    if (!nodes.has(a)) r.fail(aPath, `unknown node "${a}"`);
    if (!nodes.has(b)) r.fail(bPath, `unknown node "${b}"`);
    if (a === b) r.fail(path, `a link needs two different nodes (both ends are "${a}")`);
    if (r.failures === problems && seen.has(key))
      r.fail(path, `${a} and ${b} are already linked by links[${seen.get(key)}]`);
    if (r.failures !== problems) return;
    seen.set(key, i);
    const na = nodes.get(a) as NodeSpec;
    const nb = nodes.get(b) as NodeSpec;
    const lan =
      na.kind === 'terminal' ||
      nb.kind === 'terminal' ||
      (insideOf.get(a)?.has(b) ?? false) ||
      (insideOf.get(b)?.has(a) ?? false);
    const link: LinkSpec = {
      a,
      b,
      latency: lan ? defaults.lanLatency : defaults.wanLatency,
      mtu: defaults.mtu,
      loss: { searchPackets: 0, rate: 0 },
      lan,
    };
    if (obj) {
      if (obj.latency !== undefined)
        link.latency = r.number(obj.latency, [...path, 'latency'], { min: 0 }) ?? link.latency;
      if (obj.mtu !== undefined)
        link.mtu = r.number(obj.mtu, [...path, 'mtu'], { min: 68, max: 65535, integer: true }) ?? link.mtu;
      if (obj.loss !== undefined) {
        const lp = [...path, 'loss'];
        const loss = r.object(obj.loss, lp, ['searchPackets', 'searchFrom', 'rate']);
        if (loss?.searchPackets !== undefined) {
          link.loss.searchPackets =
            r.number(loss.searchPackets, [...lp, 'searchPackets'], { min: 0, integer: true }) ?? 0;
        }
        if (loss?.searchFrom !== undefined) {
          const from = readName(r, loss.searchFrom, [...lp, 'searchFrom']);
          if (from !== undefined && from !== a && from !== b)
            r.fail([...lp, 'searchFrom'], `"${from}" is not an end of this link (${a}, ${b})`);
          else link.loss.searchFrom = from;
        }
        if (loss?.rate !== undefined) link.loss.rate = r.number(loss.rate, [...lp, 'rate'], { min: 0, max: 1 }) ?? 0;
      }
    }
    out.push(link);
  });
  return out;
}

function checkGatewaysAgainstLinks(r: Reader, nodes: ReadNode[], neighbours: Map<string, string[]>): void {
  for (const n of nodes) {
    const spec = n.spec;
    const mine = neighbours.get(spec.name) ?? [];
    if (spec.kind === 'terminal' && mine.length !== 1) {
      r.fail(
        ['nodes', n.index],
        mine.length === 0
          ? `terminal ${spec.name} has no link; a terminal has exactly one link`
          : `terminal ${spec.name} has ${mine.length} links (${mine.join(', ')}); a terminal has exactly one link`,
      );
    }
    if (spec.kind === 'gateway') {
      const linked = new Set(mine);
      spec.inside.forEach((name, j) => {
        if (!linked.has(name)) r.fail(['nodes', n.index, 'inside', j], `"${name}" is not linked to ${spec.name}`);
      });
    }
  }
  checkInsideCycles(r, nodes);
}

/**
 * Gateways inside each other in a ring (G1 inside G2 inside ... inside G1) describe no network: a
 * packet would be inside and outside of the same gateway. Each ring is reported once, at the
 * `inside` entry that closes it, naming every gateway on it.
 */
function checkInsideCycles(r: Reader, nodes: ReadNode[]): void {
  const gateways = new Map<string, { spec: GatewaySpec; index: number }>();
  for (const n of nodes) if (n.spec.kind === 'gateway') gateways.set(n.spec.name, { spec: n.spec, index: n.index });
  // Iterative depth-first search over "X lists gateway Y inside": 0 unseen, 1 on the path, 2 done.
  const state = new Map<string, 1 | 2>();
  for (const start of gateways.keys()) {
    if (state.has(start)) continue;
    const path: { name: string; next: number }[] = [{ name: start, next: 0 }];
    state.set(start, 1);
    while (path.length > 0) {
      const top = path[path.length - 1];
      const g = gateways.get(top.name)!;
      if (top.next >= g.spec.inside.length) {
        state.set(top.name, 2);
        path.pop();
        continue;
      }
      const j = top.next++;
      const child = g.spec.inside[j];
      if (!gateways.has(child)) continue;
      const s = state.get(child);
      if (s === 1) {
        const ring = path.slice(path.findIndex((p) => p.name === child)).map((p) => p.name);
        r.fail(
          ['nodes', g.index, 'inside', j],
          `inside nesting forms a cycle: ${[...ring, child].join(' → ')} (each lists the next in "inside"); a gateway cannot be inside itself`,
        );
      } else if (s === undefined) {
        state.set(child, 1);
        path.push({ name: child, next: 0 });
      }
    }
  }
}

const TRAFFIC_KINDS = ['echo', 'tcp-syn'] as const;
const TRAFFIC_KEYS = ['kind', 'from', 'to', 'family', 'at', 'count', 'interval', 'size', 'marker', 'port'];
const FAMILIES = [4, 6] as const;

function readTraffic(r: Reader, value: unknown, nodes: Map<string, NodeSpec>): TrafficSpec[] {
  const list = r.list(value, ['traffic']);
  if (!list) return [];
  const out: TrafficSpec[] = [];
  list.forEach((item, i) => {
    const path: Path = ['traffic', i];
    const obj = r.object(item, path, TRAFFIC_KEYS);
    if (!obj) return;
    const kind: TrafficKind =
      obj.kind === undefined ? 'echo' : (r.oneOf(obj.kind, [...path, 'kind'], TRAFFIC_KINDS) ?? 'echo');
    const terminal = (v: unknown, key: string): string | undefined => {
      const name = readName(r, v, [...path, key]);
      if (name === undefined) return undefined;
      const node = nodes.get(name);
      if (node === undefined) return r.fail([...path, key], `unknown node "${name}"`);
      if (node.kind !== 'terminal')
        return r.fail([...path, key], `"${name}" is a ${node.kind}; traffic runs between terminals`);
      return name;
    };
    const from = terminal(obj.from, 'from');
    const to = terminal(obj.to, 'to');
    if (from !== undefined && from === to)
      r.fail([...path, 'to'], `traffic from ${from} to itself never leaves the terminal`);
    const at = obj.at === undefined ? 0 : r.number(obj.at, [...path, 'at'], { min: 0 });
    const count =
      obj.count === undefined ? 1 : r.number(obj.count, [...path, 'count'], { min: 1, max: 65535, integer: true });
    const interval = obj.interval === undefined ? 1000 : r.number(obj.interval, [...path, 'interval'], { min: 0 });
    const size =
      obj.size === undefined
        ? DEFAULT_ECHO_SIZE
        : r.number(obj.size, [...path, 'size'], { min: 0, max: 65000, integer: true });
    const marker = obj.marker === undefined ? undefined : r.string(obj.marker, [...path, 'marker']);
    const port =
      obj.port === undefined ? 80 : r.number(obj.port, [...path, 'port'], { min: 1, max: 65535, integer: true });
    if (marker !== undefined && size !== undefined && Buffer.byteLength(marker) > size) {
      r.fail([...path, 'marker'], `the marker is ${Buffer.byteLength(marker)} bytes but size is ${size}`);
    }
    const wanted = obj.family === undefined ? undefined : r.oneOf(obj.family, [...path, 'family'], FAMILIES);
    let family: IpFamily | undefined;
    if (from !== undefined && to !== undefined && from !== to && (obj.family === undefined || wanted !== undefined)) {
      const a = nodes.get(from) as TerminalSpec;
      const b = nodes.get(to) as TerminalSpec;
      family = trafficFamily(wanted, a.addresses, b.addresses);
      if (family === undefined) {
        const has = (t: TerminalSpec) => `${t.name} has ${t.addresses.map((x) => `IPv${ipFamily(x)}`).join(' and ')}`;
        r.fail(
          wanted === undefined ? [...path, 'to'] : [...path, 'family'],
          wanted === undefined
            ? `${from} and ${to} share no IP family (${has(a)}, ${has(b)})`
            : `IPv${wanted} is not on both ends (${has(a)}, ${has(b)})`,
        );
      }
    }
    if (
      from === undefined ||
      to === undefined ||
      family === undefined ||
      at === undefined ||
      count === undefined ||
      interval === undefined ||
      size === undefined ||
      port === undefined
    )
      return;
    out.push({ kind, from, to, family, at, count, interval, size, marker, port });
  });
  return out;
}

function readEvents(
  r: Reader,
  value: unknown,
  nodes: ReadNode[],
  vpnByName: Map<string, VpnSpec>,
): AuthorityEventSpec[] {
  const list = r.list(value, ['events']);
  if (!list) return [];
  const read: { event: AuthorityEventSpec; path: Path }[] = [];
  list.forEach((item, i) => {
    const path: Path = ['events', i];
    const obj = r.object(item, path, ['at', 'rotate', 'removeMember']);
    if (!obj) return;
    const at = r.number(obj.at, [...path, 'at'], { min: 0 });
    const actions = ['rotate', 'removeMember'].filter((k) => obj[k] !== undefined);
    if (actions.length !== 1) {
      r.fail(
        path,
        actions.length === 0
          ? 'an event needs one of: rotate: VPN, removeMember: { vpn, gateway }'
          : 'one action per event',
      );
      return;
    }
    const vpnName = (v: unknown, at: Path): string | undefined => {
      const name = readName(r, v, at);
      if (name !== undefined && !vpnByName.has(name)) return r.fail(at, `unknown VPN "${name}"`);
      return name;
    };
    if (obj.rotate !== undefined) {
      const vpn = vpnName(obj.rotate, [...path, 'rotate']);
      if (at !== undefined && vpn !== undefined) read.push({ event: { kind: 'rotate', at, vpn }, path });
      return;
    }
    const rm = r.object(obj.removeMember, [...path, 'removeMember'], ['vpn', 'gateway']);
    if (!rm) return;
    const vpn = vpnName(rm.vpn, [...path, 'removeMember', 'vpn']);
    const gateway = readName(r, rm.gateway, [...path, 'removeMember', 'gateway']);
    if (at !== undefined && vpn !== undefined && gateway !== undefined) {
      read.push({ event: { kind: 'remove-member', at, vpn, gateway }, path: [...path, 'removeMember', 'gateway'] });
    }
  });
  // Replay removals in time order against the initial memberships.
  const order = read.map((e, i) => ({ ...e, i })).sort((x, y) => x.event.at - y.event.at || x.i - y.i);
  const memberOf = new Map<string, Set<string>>();
  for (const n of nodes) {
    if (n.spec.kind === 'gateway') memberOf.set(n.spec.name, new Set(n.spec.members.map((m) => m.vpn)));
  }
  for (const { event, path } of order) {
    if (event.kind !== 'remove-member') continue;
    const vpns = memberOf.get(event.gateway);
    if (vpns === undefined) r.fail(path, `unknown gateway "${event.gateway}"`);
    else if (!vpns.has(event.vpn)) r.fail(path, `${event.gateway} is not a member of ${event.vpn} at ${event.at} ms`);
    else vpns.delete(event.vpn);
  }
  return order.map((e) => e.event);
}

/**
 * The IP family of traffic between two terminals: `wanted` when both have it, else the family of
 * the sender's first address that the receiver also has; undefined when there is none.
 */
export function trafficFamily(
  wanted: IpFamily | undefined,
  from: readonly Ip[],
  to: readonly Ip[],
): IpFamily | undefined {
  const theirs = new Set(to.map(ipFamily));
  if (wanted !== undefined) return theirs.has(wanted) && from.some((a) => ipFamily(a) === wanted) ? wanted : undefined;
  return from.map(ipFamily).find((f) => theirs.has(f));
}

/** The prefix of one host: its /32 or /128. */
export function hostPrefix(ip: Ip): Prefix {
  return Prefix.of(ip, ipFamily(ip) === 4 ? 32 : 128);
}

/** Where a topology comes from: its text (YAML or JSON), or a file. */
export type TopologySource = DocumentSource;

/** Largest topology file read (docs/simulator.md, "File limits"). */
export const TOPOLOGY_LIMITS: DocumentLimits = {
  kind: 'topology',
  maxYamlBytes: 4 * 1024 * 1024,
  maxJsonBytes: 32 * 1024 * 1024,
};

/**
 * Reads and validates a topology. A string is taken as YAML/JSON text when it contains a newline
 * or starts with "{", otherwise as a file path. Errors name the field and its line.
 */
export function loadTopology(source: string | TopologySource): Result<Topology, TopologyError> {
  const src: TopologySource =
    typeof source === 'string'
      ? source.includes('\n') || source.trimStart().startsWith('{')
        ? { text: source }
        : { path: source }
      : source;
  const r = readFields(src, TOPOLOGY_LIMITS, readTopology);
  return r.ok ? r : topologyError(r.error);
}

// The gateway's configuration file (YAML). Identity and the authority come from the enrollment
// credentials in the data directory; this file says how the gateway sits in the host's network.
import { join } from 'node:path';
import type { DocumentLimits } from '../files/document.js';
import { checkFields, formatIssues, readFields, type FieldPath, type FieldReader } from '../files/fields.js';
import { Prefix } from '../base/addr.js';
import type { GatewayLimits, GatewayTimers } from '../core/gateway-api.js';
import { err, type Result } from '../base/result.js';
import { DEFAULT_LIMITS, DEFAULT_TIMERS } from '../core/context.js';
import { DEFAULT_IKE_TIMERS, type IkeTimers } from '../ike/engine/types.js';

export interface GatewayRunConfig {
  /** Data directory: credentials (from `kasane gateway enroll`), the cached delivery, the status socket. */
  data: string;
  /**
   * The authority's replicas (https URLs), tried in order when one cannot be reached; default: the
   * URL in the enrollment credentials. A host name with several addresses counts as one per address.
   */
  authorityUrls?: string[];
  /**
   * Follow the change stream on the authority's wake-up channel (UDP) when it offers one (default);
   * false: always the mutual-TLS long poll (UDP to the authority blocked, or by choice).
   */
  authorityPush: boolean;
  /** Interfaces facing the terminals' LANs, and facing the WAN. */
  inside: string[];
  outside: string[];
  /** LANs whose terminals this gateway serves first-hand; default: the prefixes on the inside interfaces. */
  attached?: Prefix[];
  /**
   * TUN device names (created by the gateway), and their queues: one reader thread per queue of each
   * device, flows spread over them by the kernel, crypto in parallel (default 1, at most 8).
   */
  tun: { inside: string; outside: string; queues: number };
  /**
   * An upper bound on the path MTU toward other gateways, below what the outside interfaces carry
   * (a narrower link beyond the gateway's own, e.g. PPPoE or a tunnel). Unset: the smallest MTU of
   * the outside interfaces, followed as it changes; narrower paths are learned from ICMP.
   */
  pathMtu?: number;
  /** Group VPNs (ids) whose ESP this gateway sends raw, protocol 50, instead of in UDP 4500 (the default). */
  rawEspVpns: number[];
  allowPlain: Prefix[];
  statusSocket: string;
  /** host:port for Prometheus metrics, or undefined for none. */
  metrics?: { host: string; port: number };
  /** Routing table (and table + 1) and ip-rule preference the gateway uses. */
  routingTable: number;
  timers: Partial<GatewayTimers>;
  limits: Partial<GatewayLimits>;
  /** IKEv2 for pairwise VPNs: ports, idle time of Child SAs, and the engine's timers (src/ike/engine/types.ts). */
  ike: { port: number; natPort: number; idleTimeout: number; timers: Partial<IkeTimers> };
  /**
   * Where the IKE identity key lives. Absent: the gateway's file key. `pkcs11`: a key made and kept
   * in a PKCS#11 token (seed 001's IC chip), with its own certificate from the authority.
   */
  keystore?: { pkcs11: { module: string; token: string; pinFile: string; key: string } };
  /** Status reports to the authority (status-report.ts): at least every `interval` ms, 0 = none. */
  statusReport: { interval: number };
  logLevel: string;
}

const IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;
/** Queues per TUN device: DP_MAX_QUEUES of native/src/datapath.h. */
const MAX_TUN_QUEUES = 8;
/**
 * One queue: on a machine without idle cores more threads only add wake-ups, which small packets pay
 * for (docs/dataplane.md, "Several queues" and "The retransmits with several queues were replay
 * drops"); an operator whose gateway has cores to spare may raise it.
 */
const DEFAULT_TUN_QUEUES = 1;
const TOP_KEYS = [
  'data',
  'authorityUrls',
  'authorityPush',
  'inside',
  'outside',
  'attached',
  'tun',
  'pathMtu',
  'rawEspVpns',
  'allowPlain',
  'statusSocket',
  'metrics',
  'routingTable',
  'timers',
  'limits',
  'ike',
  'keystore',
  'statusReport',
  'logLevel',
];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const DEFAULT_IKE_IDLE_TIMEOUT = 300_000;
export const DEFAULT_STATUS_REPORT_INTERVAL = 10_000;

/** A gateway configuration is a page of YAML; anything larger is not one (docs/gateway.md). */
export const GATEWAY_CONFIG_LIMITS: DocumentLimits = {
  kind: 'gateway configuration',
  maxYamlBytes: 1024 * 1024,
  maxJsonBytes: 1024 * 1024,
};

/** Reads a gateway's YAML configuration: size-limited, aliases counted, problems with their line and field. */
export function loadGatewayConfig(path: string): Result<GatewayRunConfig> {
  const r = readFields({ path }, GATEWAY_CONFIG_LIMITS, readGatewayConfig);
  return r.ok ? r : err('bad-config', formatIssues(r.error.issues, path));
}

/** Checks a parsed configuration (`where` names it in messages). */
export function parseGatewayConfig(doc: unknown, where = 'config'): Result<GatewayRunConfig> {
  const r = checkFields(doc, readGatewayConfig);
  return r.ok ? r : err('bad-config', formatIssues(r.error.issues, where));
}

function readGatewayConfig(r: FieldReader, doc: unknown): GatewayRunConfig | undefined {
  const d = r.object(doc, [], TOP_KEYS, ['inside', 'outside']);
  if (!d) return undefined;
  if (d.data === undefined) r.fail([], 'missing field "data" (the data directory with the enrollment credentials)');
  const ifname = (v: unknown, at: FieldPath) => r.string(v, at, { pattern: IFNAME, what: 'an interface name' });
  const interfaces = (k: string) => (d[k] === undefined ? [] : (r.listOf(d[k], [k], ifname, 1) ?? []));
  const prefixes = (k: string) => (d[k] === undefined ? undefined : r.listOf(d[k], [k], (v, at) => r.prefix(v, at)));
  // A misspelt timer would otherwise be ignored silently and the default used.
  const numbers = <K extends string>(k: string, known: Record<K, unknown>) =>
    d[k] === undefined ? {} : r.numbers(d[k], [k], known, () => ({ min: 0 }));

  const data = d.data === undefined ? undefined : r.string(d.data, ['data']);
  const authorityUrls =
    d.authorityUrls === undefined
      ? undefined
      : r.listOf(d.authorityUrls, ['authorityUrls'], (v, at) => httpsUrl(r, v, at), 1);
  const inside = interfaces('inside');
  const outside = interfaces('outside');
  outside.forEach(
    (i, j) => inside.includes(i) && r.fail(['outside', j], `interface ${i} cannot be both inside and outside`),
  );
  const tunDoc = d.tun === undefined ? {} : (r.object(d.tun, ['tun'], ['inside', 'outside', 'queues']) ?? {});
  const tun = {
    inside: tunDoc.inside === undefined ? 'kasane-in' : (ifname(tunDoc.inside, ['tun', 'inside']) ?? ''),
    outside: tunDoc.outside === undefined ? 'kasane-out' : (ifname(tunDoc.outside, ['tun', 'outside']) ?? ''),
    queues:
      tunDoc.queues === undefined
        ? DEFAULT_TUN_QUEUES
        : (r.integer(tunDoc.queues, ['tun', 'queues'], { min: 1, max: MAX_TUN_QUEUES }) ?? 1),
  };
  let metrics: GatewayRunConfig['metrics'];
  if (d.metrics !== undefined) {
    const m = r.object(d.metrics, ['metrics'], ['listen'], ['listen']);
    const listen = m?.listen === undefined ? undefined : r.string(m.listen, ['metrics', 'listen']);
    const hp = listen === undefined ? null : /^(.+):(\d{1,5})$/.exec(listen);
    if (listen !== undefined && (!hp || Number(hp[2]) > 65535))
      r.fail(['metrics', 'listen'], 'must be host:port, e.g. 127.0.0.1:9108');
    else if (hp) metrics = { host: hp[1].replace(/^\[|\]$/g, ''), port: Number(hp[2]) };
  }
  const ike = numbers('ike', { port: 0, natPort: 0, idleTimeout: 0, ...DEFAULT_IKE_TIMERS });
  const cfg: GatewayRunConfig = {
    data: data ?? '',
    authorityUrls,
    authorityPush: d.authorityPush === undefined ? true : (r.boolean(d.authorityPush, ['authorityPush']) ?? true),
    inside,
    outside,
    attached: prefixes('attached'),
    tun,
    pathMtu: d.pathMtu === undefined ? undefined : r.integer(d.pathMtu, ['pathMtu'], { min: 576, max: 65535 }),
    rawEspVpns:
      (d.rawEspVpns === undefined
        ? undefined
        : r.listOf(d.rawEspVpns, ['rawEspVpns'], (v, at) => r.integer(v, at, { min: 1, max: 0xffffffff }))) ?? [],
    allowPlain: prefixes('allowPlain') ?? [],
    statusSocket:
      (d.statusSocket === undefined ? undefined : r.string(d.statusSocket, ['statusSocket'])) ??
      join(data ?? '.', 'status.sock'),
    metrics,
    routingTable:
      d.routingTable === undefined
        ? 5150
        : (r.integer(d.routingTable, ['routingTable'], { min: 1, max: 0xfffffff0 }) ?? 5150),
    timers: numbers('timers', DEFAULT_TIMERS),
    limits: numbers('limits', DEFAULT_LIMITS),
    keystore: d.keystore === undefined ? undefined : keystoreOf(r, d.keystore),
    ike: ikeOf(r, ike),
    statusReport: statusReportOf(r, numbers('statusReport', { interval: 0 })),
    logLevel: d.logLevel === undefined ? 'info' : (r.oneOf(d.logLevel, ['logLevel'], LOG_LEVELS) ?? 'info'),
  };
  return cfg;
}

function httpsUrl(r: FieldReader, v: unknown, at: FieldPath): string | undefined {
  const s = r.string(v, at);
  if (s === undefined) return undefined;
  if (!URL.canParse(s) || new URL(s).protocol !== 'https:')
    return r.fail(at, `${JSON.stringify(s)} is not an https:// URL`);
  return s;
}

/** The `statusReport` section: `{ interval: ms }` (0 turns the reports off; otherwise 2 s to 1 h). */
function statusReportOf(r: FieldReader, v: { interval?: number }): GatewayRunConfig['statusReport'] {
  const interval = v.interval ?? DEFAULT_STATUS_REPORT_INTERVAL;
  if (interval !== 0 && (!Number.isInteger(interval) || interval < 2000 || interval > 3_600_000))
    r.fail(['statusReport', 'interval'], 'must be 0 (off) or from 2000 to 3600000 ms');
  return { interval };
}

/** The `ike` section: ports (default 500 and 4500), idle timeout, and engine timers by name. */
function ikeOf(
  r: FieldReader,
  v: Partial<Record<'port' | 'natPort' | 'idleTimeout' | keyof IkeTimers, number>>,
): GatewayRunConfig['ike'] {
  const { port = 500, natPort = 4500, idleTimeout = DEFAULT_IKE_IDLE_TIMEOUT, ...timers } = v;
  if (v.port !== undefined) r.integer(port, ['ike', 'port'], { min: 1, max: 65535 });
  if (v.natPort !== undefined) r.integer(natPort, ['ike', 'natPort'], { min: 1, max: 65535 });
  if (port === natPort) r.fail(['ike'], 'ike.port and ike.natPort must differ');
  if (idleTimeout < 1000) r.fail(['ike', 'idleTimeout'], 'must be at least 1000 ms');
  return { port, natPort, idleTimeout, timers };
}

/**
 * The `keystore` section: `{ pkcs11: { module, token, pinFile, key } }` (key: the key's label, default "kasane-ike").
 */
function keystoreOf(r: FieldReader, v: unknown): GatewayRunConfig['keystore'] {
  const keystore = r.object(v, ['keystore'], ['pkcs11'], ['pkcs11']);
  if (keystore?.pkcs11 === undefined) return undefined;
  const at = ['keystore', 'pkcs11'];
  const p = r.object(keystore.pkcs11, at, ['module', 'token', 'pinFile', 'key'], ['module', 'token', 'pinFile']);
  if (!p) return undefined;
  const field = (k: string) => (p[k] === undefined ? undefined : r.string(p[k], [...at, k]));
  const [module, token, pinFile, key] = [field('module'), field('token'), field('pinFile'), field('key')];
  if (module === undefined || token === undefined || pinFile === undefined) return undefined;
  return { pkcs11: { module, token, pinFile, key: key ?? 'kasane-ike' } };
}

// The gateway's configuration file (YAML). Identity and the authority come from the enrollment
// credentials in the data directory; this file says how the gateway sits in the host's network.
import { join } from 'node:path';
import { readDocument, type DocumentLimits } from '../files/document.js';
import { Prefix } from '../base/addr.js';
import type { GatewayLimits, GatewayTimers } from '../core/gateway-api.js';
import { err, ok, type Result } from '../base/result.js';
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
  /** Interfaces facing the terminals' LANs, and facing the WAN. */
  inside: string[];
  outside: string[];
  /** LANs whose terminals this gateway serves first-hand; default: the prefixes on the inside interfaces. */
  attached?: Prefix[];
  /** TUN device names (created by the gateway). */
  tun: { inside: string; outside: string };
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
const KNOWN = new Set(['data', 'authorityUrls', 'inside', 'outside', 'attached', 'tun', 'pathMtu', 'rawEspVpns', 'allowPlain', 'statusSocket', 'metrics', 'routingTable', 'timers', 'limits', 'ike', 'keystore', 'statusReport', 'logLevel']);

/** A gateway configuration is a page of YAML; anything larger is not one (docs/gateway.md). */
export const GATEWAY_CONFIG_LIMITS: DocumentLimits = { kind: 'gateway configuration', maxYamlBytes: 1024 * 1024, maxJsonBytes: 1024 * 1024 };

/** Reads a gateway's YAML configuration: size-limited, aliases counted, problems with their line and field. */
export function loadGatewayConfig(path: string): Result<GatewayRunConfig> {
  const read = readDocument({ path }, GATEWAY_CONFIG_LIMITS);
  if (!read.ok) return err('bad-config', read.issues.map((i) => `${path}${i.line !== undefined ? `:${i.line}:${i.column}` : ''}: ${i.path}: ${i.message}`).join('\n'));
  return parseGatewayConfig(read.value.value, path);
}

export function parseGatewayConfig(doc: unknown, where = 'config'): Result<GatewayRunConfig> {
  const problems: string[] = [];
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return err('bad-config', `${where}: expected a mapping at the top level`);
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!KNOWN.has(k)) problems.push(`unknown field "${k}" (known: ${[...KNOWN].join(', ')})`);
  const str = (k: string): string | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') problems.push(`${k} must be a non-empty string`);
    return typeof v === 'string' ? v : undefined;
  };
  const ifaces = (k: string): string[] => {
    const v = d[k];
    if (!Array.isArray(v) || v.length === 0) {
      problems.push(`${k} must list at least one interface name`);
      return [];
    }
    for (const i of v) if (typeof i !== 'string' || !IFNAME.test(i)) problems.push(`${k}: ${JSON.stringify(i)} is not an interface name`);
    return v as string[];
  };
  const prefixes = (k: string): Prefix[] | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) {
      problems.push(`${k} must be a list of CIDR prefixes`);
      return [];
    }
    return v.flatMap((p) => {
      const r = typeof p === 'string' ? Prefix.parse(p) : undefined;
      if (!r?.ok) problems.push(`${k}: ${r ? r.error.message : `${JSON.stringify(p)} is not a CIDR prefix`}`);
      return r?.ok ? [r.value] : [];
    });
  };
  const num = (k: string, dflt: number, min: number, max: number): number => {
    const v = d[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) problems.push(`${k} must be an integer from ${min} to ${max}`);
    return typeof v === 'number' ? v : dflt;
  };
  let authorityUrls: string[] | undefined;
  if (d.authorityUrls !== undefined) {
    const v = d.authorityUrls;
    if (!Array.isArray(v) || v.length === 0) problems.push('authorityUrls must list at least one https:// URL');
    else {
      authorityUrls = [];
      for (const u of v) {
        let ok = false;
        try {
          ok = typeof u === 'string' && new URL(u).protocol === 'https:';
        } catch {
          ok = false;
        }
        if (ok) authorityUrls.push(u as string);
        else problems.push(`authorityUrls: ${JSON.stringify(u)} is not an https:// URL`);
      }
    }
  }
  const data = str('data');
  if (!data) problems.push('data (the data directory with the enrollment credentials) is required');
  const inside = ifaces('inside');
  const outside = ifaces('outside');
  for (const i of inside) if (outside.includes(i)) problems.push(`interface ${i} cannot be both inside and outside`);
  const tunDoc = (d.tun ?? {}) as Record<string, unknown>;
  const tun = { inside: String(tunDoc.inside ?? 'kasane-in'), outside: String(tunDoc.outside ?? 'kasane-out') };
  for (const t of [tun.inside, tun.outside]) if (!IFNAME.test(t)) problems.push(`tun: ${JSON.stringify(t)} is not an interface name`);
  let metrics: GatewayRunConfig['metrics'];
  const m = d.metrics as { listen?: unknown } | undefined;
  if (m !== undefined) {
    const hp = typeof m?.listen === 'string' ? /^(.+):(\d{1,5})$/.exec(m.listen) : null;
    if (!hp || Number(hp[2]) > 65535) problems.push('metrics.listen must be host:port, e.g. 127.0.0.1:9108');
    else metrics = { host: hp[1].replace(/^\[|\]$/g, ''), port: Number(hp[2]) };
  }
  const vpnIds = (k: string): number[] => {
    const v = d[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 0xffffffff)) {
      problems.push(`${k} must be a list of VPN ids (integers from 1)`);
      return [];
    }
    return v as number[];
  };
  // A misspelt timer would otherwise be ignored silently and the default used.
  const objectOf = (k: string, known: object) => {
    const v = d[k];
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'number' || !Number.isFinite(x) || x < 0)) {
      problems.push(`${k} must map names to non-negative numbers`);
      return {};
    }
    for (const name of Object.keys(v)) if (!(name in known)) problems.push(`${k}: unknown name "${name}" (known: ${Object.keys(known).join(', ')})`);
    return v as Record<string, number>;
  };
  const cfg: GatewayRunConfig = {
    data: data ?? '',
    authorityUrls,
    inside,
    outside,
    attached: prefixes('attached'),
    tun,
    pathMtu: d.pathMtu === undefined ? undefined : num('pathMtu', 1500, 576, 65535),
    rawEspVpns: vpnIds('rawEspVpns'),
    allowPlain: prefixes('allowPlain') ?? [],
    statusSocket: str('statusSocket') ?? join(data ?? '.', 'status.sock'),
    metrics,
    routingTable: num('routingTable', 5150, 1, 0xfffffff0),
    timers: objectOf('timers', DEFAULT_TIMERS),
    limits: objectOf('limits', DEFAULT_LIMITS),
    keystore: keystoreOf(d.keystore, problems),
    ike: ikeOf(objectOf('ike', { port: 0, natPort: 0, idleTimeout: 0, ...DEFAULT_IKE_TIMERS }), problems),
    statusReport: statusReportOf(objectOf('statusReport', { interval: 0 }), problems),
    logLevel: str('logLevel') ?? 'info',
  };
  if (problems.length > 0) return err('bad-config', `${where}: ${problems.join('; ')}`);
  return ok(cfg);
}

export const DEFAULT_IKE_IDLE_TIMEOUT = 300_000;
export const DEFAULT_STATUS_REPORT_INTERVAL = 10_000;

/** The `statusReport` section: `{ interval: ms }` (0 turns the reports off; otherwise 2 s to 1 h). */
function statusReportOf(v: Record<string, number>, problems: string[]): GatewayRunConfig['statusReport'] {
  const interval = v.interval ?? DEFAULT_STATUS_REPORT_INTERVAL;
  if (interval !== 0 && (!Number.isInteger(interval) || interval < 2000 || interval > 3_600_000)) problems.push('statusReport.interval must be 0 (off) or from 2000 to 3600000 ms');
  return { interval };
}

/** The `ike` section: ports (default 500 and 4500), idle timeout, and engine timers by name. */
function ikeOf(v: Record<string, number>, problems: string[]): GatewayRunConfig['ike'] {
  const { port = 500, natPort = 4500, idleTimeout = DEFAULT_IKE_IDLE_TIMEOUT, ...timers } = v;
  for (const [k, p] of [['port', port], ['natPort', natPort]] as const) if (!Number.isInteger(p) || p < 1 || p > 65535) problems.push(`ike.${k} must be a port number`);
  if (port === natPort) problems.push('ike.port and ike.natPort must differ');
  if (idleTimeout < 1000) problems.push('ike.idleTimeout must be at least 1000 ms');
  return { port, natPort, idleTimeout, timers };
}

/** The `keystore` section: `{ pkcs11: { module, token, pinFile, key } }` (key: the key's label, default "kasane-ike"). */
function keystoreOf(v: unknown, problems: string[]): GatewayRunConfig['keystore'] {
  if (v === undefined) return undefined;
  const p = (v as { pkcs11?: Record<string, unknown> } | null)?.pkcs11;
  if (typeof v !== 'object' || v === null || Object.keys(v).some((k) => k !== 'pkcs11') || typeof p !== 'object' || p === null) {
    problems.push('keystore must be { pkcs11: { module, token, pinFile, key } }');
    return undefined;
  }
  for (const k of Object.keys(p)) if (!['module', 'token', 'pinFile', 'key'].includes(k)) problems.push(`keystore.pkcs11: unknown name "${k}" (known: module, token, pinFile, key)`);
  for (const k of ['module', 'token', 'pinFile']) if (typeof p[k] !== 'string' || p[k] === '') problems.push(`keystore.pkcs11.${k} must be a non-empty string`);
  if (p.key !== undefined && (typeof p.key !== 'string' || p.key === '')) problems.push('keystore.pkcs11.key must be a non-empty string');
  return { pkcs11: { module: String(p.module), token: String(p.token), pinFile: String(p.pinFile), key: typeof p.key === 'string' ? p.key : 'kasane-ike' } };
}

// Gateways' status reports: each gateway sends its key table, IKE SAs and counters over its
// mutual-TLS channel (POST /v1/gateway/status) every few seconds; the authority keeps the last one
// per gateway in its store (so every replica, and a restarted authority, shows it), and the web
// console and `kasane gateway list/show` read it. A report is wire data from a gateway: it is
// parsed field by field and bounded (size, entries, rate) before anything is kept.
import type { AuthorityContext } from './context.js';
import { ApiError, badRequest, notFound } from './errors.js';
import { checkName } from './validate.js';
import {
  REPORT_FORMAT,
  type GatewayReport,
  type GatewayStatusView,
  type ReportedIkeSa,
  type ReportedPath,
  type ReportSummary,
} from './wire.js';
import type { GatewayReportRow } from './storage/types.js';

/** Bounds of one report: what a gateway sends beyond them is refused, not truncated. */
export const REPORT_LIMITS = {
  /** Request body (the route's limit). */
  bytes: 256 * 1024,
  paths: 256,
  vpns: 1024,
  ike: 256,
  counters: 1024,
  /** Counter names, reasons, addresses. */
  text: 100,
  /** A gateway may report at most this often; faster reports are answered 429. */
  minGapMs: 1000,
  /** Its promised interval may not exceed this (a gateway silent for longer is offline anyway). */
  maxIntervalMs: 3_600_000,
} as const;

/** A gateway whose last report is older than its promised interval twice over, plus this, is offline. */
const ONLINE_MARGIN_MS = 5000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class ReportError extends Error {}
const fail = (m: string): never => {
  throw new ReportError(m);
};

function uint(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail(`${what} must be an integer from 0 to ${max}`);
  // -0 (a JavaScript caller's) is 0: what is kept reads back the same from its JSON.
  return (v as number) + 0;
}

function text(v: unknown, what: string, max: number = REPORT_LIMITS.text): string {
  if (typeof v !== 'string' || v.length > max || /\p{Cc}/u.test(v))
    fail(`${what} must be a string of at most ${max} characters without control characters`);
  return v as string;
}

function name(v: unknown, what: string): string {
  const r = checkName(what, v);
  if (!r.ok) fail(r.error.message);
  return (r as { value: string }).value;
}

function list<T>(v: unknown, what: string, max: number, item: (x: unknown, i: number) => T): T[] {
  if (!Array.isArray(v)) fail(`${what} must be an array`);
  const a = v as unknown[];
  if (a.length > max) fail(`${what} has ${a.length} entries; at most ${max} are accepted`);
  return a.map(item);
}

function optional<T>(o: Obj, key: string, read: (v: unknown) => T): T | undefined {
  return o[key] === undefined ? undefined : read(o[key]);
}

const ACTIONS = new Set(['encrypt', 'plain', 'discard', 'pending']);

function path(v: unknown, i: number): ReportedPath {
  const w = `paths[${i}]`;
  if (!isObj(v)) return fail(`${w} must be an object`);
  const action = text(v.action, `${w}.action`);
  if (!ACTIONS.has(action)) fail(`${w}.action must be encrypt, plain, discard or pending`);
  const p: ReportedPath = {
    local: text(v.local, `${w}.local`, 45),
    remote: text(v.remote, `${w}.remote`, 45),
    action: action as ReportedPath['action'],
    ageMs: uint(v.ageMs, `${w}.ageMs`),
    idleMs: uint(v.idleMs, `${w}.idleMs`),
    packets: uint(v.packets, `${w}.packets`),
    bytes: uint(v.bytes, `${w}.bytes`),
  };
  const vpnId = optional(v, 'vpnId', (x) => uint(x, `${w}.vpnId`, 0xffffffff));
  const vpnName = optional(v, 'vpnName', (x) => name(x, 'VPN'));
  const peer = optional(v, 'peer', (x) => text(x, `${w}.peer`, 200));
  const reason = optional(v, 'reason', (x) => text(x, `${w}.reason`));
  const mtu = optional(v, 'mtu', (x) => uint(x, `${w}.mtu`, 65535));
  const layers = optional(v, 'layers', (x) =>
    list(x, `${w}.layers`, 8, (l, j) => {
      if (!isObj(l) || !Array.isArray(l.gateways) || l.gateways.length !== 2)
        return fail(`${w}.layers[${j}] must be {vpnId, gateways: [a, b]}`);
      return {
        vpnId: uint(l.vpnId, `${w}.layers[${j}].vpnId`, 0xffffffff),
        gateways: [text(l.gateways[0], 'a layer gateway', 200), text(l.gateways[1], 'a layer gateway', 200)] as [
          string,
          string,
        ],
      };
    }),
  );
  return {
    ...p,
    ...(vpnId !== undefined && { vpnId }),
    ...(vpnName !== undefined && { vpnName }),
    ...(peer !== undefined && { peer }),
    ...(layers && { layers }),
    ...(reason !== undefined && { reason }),
    ...(mtu !== undefined && { mtu }),
  };
}

function ikeSa(v: unknown, i: number): ReportedIkeSa {
  const w = `ike[${i}]`;
  if (!isObj(v)) return fail(`${w} must be an object`);
  const peer = optional(v, 'peer', (x) => text(x, `${w}.peer`, 200));
  const vpnId = optional(v, 'vpnId', (x) => uint(x, `${w}.vpnId`, 0xffffffff));
  return {
    ...(peer !== undefined && { peer }),
    ...(vpnId !== undefined && { vpnId }),
    role: text(v.role, `${w}.role`),
    state: text(v.state, `${w}.state`),
    remote: text(v.remote, `${w}.remote`),
    ageMs: uint(v.ageMs, `${w}.ageMs`),
    childSas: uint(v.childSas, `${w}.childSas`, 1024),
  };
}

/** Parses a report (wire data from a gateway): every field checked and bounded. Throws ApiError 400. */
export function parseGatewayReport(v: unknown): GatewayReport {
  try {
    if (!isObj(v) || v.format !== REPORT_FORMAT) fail(`not a ${REPORT_FORMAT} report`);
    const o = v as Obj;
    const counters: Record<string, number> = {};
    if (!isObj(o.counters)) fail('counters must be an object of names to counts');
    const entries = Object.entries(o.counters as Obj);
    if (entries.length > REPORT_LIMITS.counters)
      fail(`counters has ${entries.length} entries; at most ${REPORT_LIMITS.counters} are accepted`);
    for (const [k, n] of entries) {
      text(k, 'a counter name');
      counters[k] = uint(n, `counter ${JSON.stringify(k)}`);
    }
    return {
      format: REPORT_FORMAT,
      intervalMs: Math.max(1000, uint(o.intervalMs, 'intervalMs', REPORT_LIMITS.maxIntervalMs)),
      uptimeMs: uint(o.uptimeMs, 'uptimeMs'),
      authorityVersion: uint(o.authorityVersion, 'authorityVersion'),
      vpns: list(o.vpns, 'vpns', REPORT_LIMITS.vpns, (x, i) => {
        if (!isObj(x)) return fail(`vpns[${i}] must be an object`);
        const epoch = optional(x, 'epoch', (e) => uint(e, `vpns[${i}].epoch`, 0xffffffff));
        return {
          id: uint(x.id, `vpns[${i}].id`, 0xffffffff),
          name: name(x.name, 'VPN'),
          mode: text(x.mode, `vpns[${i}].mode`),
          ...(epoch !== undefined && { epoch }),
        };
      }),
      paths: list(o.paths, 'paths', REPORT_LIMITS.paths, path),
      pathsTotal: uint(o.pathsTotal, 'pathsTotal'),
      ike: list(o.ike, 'ike', REPORT_LIMITS.ike, ikeSa),
      counters,
    };
  } catch (e) {
    if (e instanceof ReportError) throw badRequest('bad-report', e.message);
    throw e;
  }
}

/** Counters that count packets a gateway did not forward (docs/gateway.md, "Watching it"). */
export function isDropCounter(name: string): boolean {
  return (
    /^(executor\.)?drop\./.test(name) ||
    name === 'datapath.punt.dropped' ||
    name === 'datapath.rx.bad' ||
    /^kernel\.tun-[a-z]+\.queue-dropped$/.test(name) ||
    name.startsWith('datapath.udp-punt.')
  );
}

export function summarise(row: GatewayReportRow, now: number): ReportSummary {
  const r = JSON.parse(row.report) as GatewayReport;
  let drops = 0;
  let searches = 0;
  for (const [k, n] of Object.entries(r.counters)) {
    if (isDropCounter(k)) drops += n;
    if (k === 'search.started') searches += n;
  }
  return {
    receivedAt: row.receivedAt,
    online: isOnline(row.receivedAt, r.intervalMs, now),
    uptimeMs: r.uptimeMs,
    paths: r.pathsTotal,
    encrypting: r.paths.filter((p) => p.action === 'encrypt').length,
    drops,
    searches,
  };
}

function isOnline(receivedAt: number, intervalMs: number, now: number): boolean {
  return now - receivedAt <= 2 * intervalMs + ONLINE_MARGIN_MS;
}

export class GatewayReports {
  private readonly lastAccepted = new Map<string, number>();
  private readonly listeners = new Set<(gateway: string) => void>();

  constructor(private readonly ctx: AuthorityContext) {}

  /** A report from an authenticated gateway: parsed, rate-limited, kept as its last. */
  async accept(gateway: string, body: unknown): Promise<{ accepted: true; nextInMs: number }> {
    const now = this.ctx.now();
    const last = this.lastAccepted.get(gateway);
    if (last !== undefined && now - last < REPORT_LIMITS.minGapMs) {
      throw new ApiError(
        429,
        'report-too-frequent',
        `gateway ${gateway} reported ${now - last} ms ago; at most one report per ${REPORT_LIMITS.minGapMs} ms is accepted`,
      );
    }
    const report = parseGatewayReport(body);
    this.lastAccepted.set(gateway, now);
    await this.ctx.store.write((tx) =>
      tx.putGatewayReport({ gateway, receivedAt: now, report: JSON.stringify(report) }),
    );
    for (const l of this.listeners) l(gateway);
    return { accepted: true, nextInMs: report.intervalMs };
  }

  async get(gateway: string): Promise<GatewayStatusView> {
    const row = await this.ctx.store.read(async (tx) => {
      if (!(await tx.getGateway(gateway)))
        throw notFound('unknown-gateway', `there is no gateway ${JSON.stringify(gateway)}`);
      return tx.getGatewayReport(gateway);
    });
    if (!row) throw notFound('no-report', `gateway ${gateway} has not reported its status yet`);
    const report = JSON.parse(row.report) as GatewayReport;
    return {
      gateway,
      receivedAt: row.receivedAt,
      online: isOnline(row.receivedAt, report.intervalMs, this.ctx.now()),
      report,
    };
  }

  /** Called after each accepted report of this process (the console's live updates). */
  onReport(listener: (gateway: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

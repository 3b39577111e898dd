// Status reports to the authority: the gateway's key table (the paths used most recently, at most
// 256 of them), its IKE SAs and every counter, over its mutual-TLS channel, so that the web console
// and `kasane gateway list/show` see every gateway from one place. A report goes out at least every
// `interval` (the heartbeat that says the gateway is alive) and sooner, but never more often than
// every 2 s, when the key table gained or lost paths. A report that fails is not retried early:
// the next one carries the newer state anyway.
import type { Logger } from 'pino';
import type { PathView } from '../core/gateway-api.js';
import { AuthorityApiError, type AuthorityClient } from '../authority/client.js';
import { REPORT_FORMAT, type GatewayReport, type ReportedPath } from '../authority/wire.js';
import { REPORT_LIMITS } from '../authority/reports.js';
import type { GatewayStatus } from './status.js';

/** A report never follows the previous one sooner than this (the authority refuses faster ones). */
const MIN_GAP_MS = 2000;
/** How often the key table is looked at for new or gone paths. */
const LOOK_EVERY_MS = 1000;

/** The report of a status (pure): paths most recently used first, bounded; times as ages. */
export function reportOf(s: GatewayStatus, intervalMs: number): GatewayReport {
  const paths = [...s.paths]
    .sort((a, b) => b.lastUsed - a.lastUsed || b.installedAt - a.installedAt)
    .slice(0, REPORT_LIMITS.paths);
  const counters: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.stats).slice(0, REPORT_LIMITS.counters))
    if (Number.isSafeInteger(v) && v >= 0) counters[k] = v;
  return {
    format: REPORT_FORMAT,
    intervalMs,
    uptimeMs: Math.max(0, s.now - s.startedAt),
    authorityVersion: s.authorityVersion,
    vpns: s.vpns
      .slice(0, REPORT_LIMITS.vpns)
      .map((v) => ({ id: v.id, name: v.name, mode: v.mode, ...(v.epoch !== undefined && { epoch: v.epoch }) })),
    paths: paths.map((p) => reportedPath(p, s.now)),
    pathsTotal: s.paths.length,
    ike: (s.ike ?? []).slice(0, REPORT_LIMITS.ike).map((i) => ({
      ...(i.peer !== undefined && { peer: i.peer }),
      ...(i.vpnId !== undefined && { vpnId: i.vpnId }),
      role: i.role,
      state: i.state,
      remote: i.remote,
      ageMs: Math.max(0, Math.round(i.ageMs)),
      childSas: i.children.length,
    })),
    counters,
  };
}

function reportedPath(p: PathView, now: number): ReportedPath {
  return {
    local: p.local,
    remote: p.remote,
    action: p.action,
    ...(p.vpnId !== undefined && { vpnId: p.vpnId }),
    ...(p.vpnName !== undefined && { vpnName: p.vpnName }),
    ...(p.peer !== undefined && { peer: p.peer }),
    ...(p.layers &&
      p.layers.length > 0 && { layers: p.layers.slice(0, 8).map((l) => ({ vpnId: l.vpnId, gateways: l.gateways })) }),
    ...(p.reason !== undefined && { reason: p.reason.slice(0, REPORT_LIMITS.text) }),
    ...(p.mtu !== undefined && { mtu: p.mtu }),
    ageMs: Math.max(0, now - p.installedAt),
    idleMs: Math.max(0, now - p.lastUsed),
    packets: p.packets,
    bytes: p.bytes,
  };
}

/** What identifies the key table's paths (not their counters): a change of it sends a report early. */
function shapeOf(s: GatewayStatus): string {
  return s.paths
    .map((p) => `${p.local}>${p.remote}:${p.action}:${p.vpnId ?? ''}`)
    .sort()
    .join(',');
}

export class StatusReporter {
  private timer?: NodeJS.Timeout;
  private lastSent = -Infinity;
  private lastShape = '';
  private sending = false;
  private failures = 0;
  private readonly abort = new AbortController();

  constructor(
    private readonly o: {
      client: AuthorityClient;
      status: () => GatewayStatus;
      intervalMs: number;
      log: Logger;
      now?: () => number;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), LOOK_EVERY_MS);
    this.timer.unref();
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.abort.abort();
  }

  private tick(): void {
    if (this.sending) return;
    const now = (this.o.now ?? Date.now)();
    let status: GatewayStatus;
    try {
      status = this.o.status();
    } catch {
      return; // stopping: no core any more
    }
    const shape = shapeOf(status);
    const due =
      now - this.lastSent >= this.o.intervalMs || (shape !== this.lastShape && now - this.lastSent >= MIN_GAP_MS);
    if (!due) return;
    this.sending = true;
    this.lastSent = now;
    this.lastShape = shape;
    this.o.client
      .reportStatus(reportOf(status, this.o.intervalMs), this.abort.signal)
      .then(() => {
        if (this.failures > 0) this.o.log.info({ after: this.failures }, 'status reports reach the authority again');
        this.failures = 0;
      })
      .catch((e: unknown) => {
        if (this.abort.signal.aborted) return;
        // Said once, then quiet: the change stream already logs an unreachable authority.
        if (this.failures++ === 0)
          this.o.log.warn(
            { err: (e as Error).message, code: e instanceof AuthorityApiError ? e.code : undefined },
            'status report not delivered',
          );
      })
      .finally(() => (this.sending = false));
  }
}

/** A received report as the gateway's own status (for `renderStatus`), as of when it was received. */
export function statusOfReport(gateway: string, address: string, receivedAt: number, r: GatewayReport): GatewayStatus {
  return {
    gateway,
    address,
    authorityVersion: r.authorityVersion,
    vpns: r.vpns,
    startedAt: receivedAt - r.uptimeMs,
    now: receivedAt,
    paths: r.paths.map((p) => {
      const { ageMs, idleMs, ...rest } = p;
      return { ...rest, installedAt: receivedAt - ageMs, lastUsed: receivedAt - idleMs, expiresAt: 0 };
    }),
    stats: r.counters,
  };
}

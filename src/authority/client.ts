// Client library of the authority's API, used by the CLI (administrator token) and by gateways
// (mutual TLS with the enrolled certificate): admin calls, online enrollment, the change stream,
// and (re-exported) the helper that opens a delivery into the core's AuthoritySnapshot.
import { lookup } from 'node:dns';
import https from 'node:https';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { AuthoritySnapshot, VpnMode } from '../core/types.js';
import { createCsr } from '../pki/ca.js';
import { exportPkcs8Pem, fingerprint, generateKeyPair, joinPem, pemToDer } from '../pki/keys.js';
import { runPushSession, type PushSessionEnd, type PushSessionOptions } from './push-subscriber.js';
import { openDelivery } from './snapshot.js';
import {
  BUNDLE_FORMAT,
  type AdminTokenInfo,
  type AuditCriteria,
  type AuditEntry,
  type CaView,
  type DirectoryView,
  type EnrollResponse,
  type EnrollTokenView,
  type GatewayBundle,
  type GatewayChanges,
  type GatewayInfo,
  type GatewayReport,
  type GatewayStatusView,
  type MemberInfo,
  type PushOffer,
  type ReplicaView,
  type StatusView,
  type VpnDetail,
  type VpnInfo,
} from './wire.js';

export { openDelivery, parseDelivery } from './snapshot.js';
export type * from './wire.js';

/** An error answer of the API: HTTP status, the stable code and the message. */
import type { FederationView } from './federation.js';

export class AuthorityApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AuthorityApiError';
  }
}

export interface ClientOptions {
  /** https://host:port of the authority. */
  url: string;
  /**
   * Several URLs of one authority (its replicas): requests go to the one that answered last and
   * move on to the next when it cannot be reached. `url` is tried first. A host name with several
   * addresses counts as one URL per address.
   */
  urls?: string[];
  /** Trust anchor(s), PEM: the authority's root CA certificate. */
  ca: string | string[];
  /** Administrator token (admin calls). */
  adminToken?: string;
  /** Gateway identity for mutual TLS: certificate (optionally followed by its chain) and PKCS#8 key, PEM. */
  cert?: string;
  key?: string;
  /** Per-request timeout for ordinary calls (ms, default 30 s). */
  timeoutMs?: number;
  /** Resolves a host name to its addresses (default: the system resolver, every address). */
  resolve?: (host: string) => Promise<string[]>;
  /** Told when requests move to another replica (after `error` at `from`). */
  onFailover?: (e: { from: string; to: string; error: unknown }) => void;
}

interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  query?: Record<string, string | number | boolean | undefined>;
  /** On a connection of its own, closed after the answer (resuming the TLS session): a woken gateway's fetch. */
  fresh?: boolean;
}

/** How the change stream is followed (`watch`): the wake-up channel when the authority offers it. */
export interface PushWatchOptions {
  /** Use the wake-up channel when offered (default true); false: the long poll only. */
  enabled?: boolean;
  /** After a fallback to the long poll (no channel, or no answer): try the channel again this much later (ms). */
  retryMs?: number;
  /** Told when a session is subscribed, and when the gateway falls back to the long poll (and why). */
  onState?: (e: { state: 'subscribed' | 'fallback' | 'ended'; reason?: string; endpoint: string }) => void;
  /** Test hooks of the session (push-subscriber.ts). */
  session?: Pick<PushSessionOptions, 'dropWake' | 'ackTimeoutMs'>;
}

/** After a fallback, the wake-up channel is tried again this much later by default. */
const PUSH_RETRY_MS = 5 * 60_000;

/** One place to send requests to: a URL, and the address its host name resolved to (if it is a name). */
interface Endpoint {
  url: URL;
  address?: string;
}

const seg = (s: string): string => encodeURIComponent(s);

/** How long a resolved list of endpoints is used before the names are resolved again. */
const RESOLVE_TTL_MS = 30_000;

/**
 * Thrown when no replica could be reached. `maybeApplied`: a change was sent to one that then went
 * away before it answered, so it may or may not have been made.
 */
export class AuthorityUnreachableError extends Error {
  constructor(
    message: string,
    readonly maybeApplied: boolean,
    cause?: unknown,
  ) {
    super(message, { cause });
    this.name = 'AuthorityUnreachableError';
  }
}

function systemResolve(host: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    lookup(host, { all: true }, (e, addrs) => (e ? reject(e) : resolve(addrs.map((a) => a.address)))),
  );
}

/** Errors of reaching a replica (rather than of the request): the next replica may answer. */
function unreachable(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'EPIPE',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EHOSTDOWN',
      'ENOTFOUND',
      'EAI_AGAIN',
      'ECONNABORTED',
      'UND_ERR_SOCKET',
    ].includes(code) ||
    /socket hang up|no answer from|Client network socket disconnected/i.test((e as Error).message ?? '')
  );
}

export class AuthorityClient {
  private readonly agent: https.Agent;
  /** Connections closed after one answer, their TLS sessions resumed (`fresh` requests). */
  private readonly freshAgent: https.Agent;
  private readonly urls: URL[];
  private resolved: { at: number; list: Endpoint[] } | undefined;
  private current = 0;

  constructor(private readonly o: ClientOptions) {
    this.urls = [...new Set([o.url, ...(o.urls ?? [])])].map((u) => {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        const bare = /^[a-z]+:\/\/[^[/@]*:[^/]*:/i.test(u);
        throw new Error(
          `authority URL ${JSON.stringify(u)} is not a URL${bare ? ' (an IPv6 address goes in brackets: https://[::1]:7443)' : ''}`,
        );
      }
      if (url.protocol !== 'https:') throw new Error(`authority URL must be https://, got ${u}`);
      return url;
    });
    // One TLS context for every connection (the agent would parse the CA, certificate and key again
    // for each: a reconnection after a failover costs a handshake, not that too).
    const secureContext = createSecureContext({ ca: o.ca, cert: o.cert, key: o.key });
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, secureContext });
    // A woken gateway's fetch holds nothing on the authority once answered (docs/authority.md,
    // "Memory per gateway"); the session ticket makes the next handshake a resumption.
    this.freshAgent = new https.Agent({ keepAlive: false, maxCachedSessions: 8, secureContext });
  }

  /** The host requests go to now: the address its name resolved to, or the URL's host. */
  get host(): string {
    const e = this.resolved?.list[this.current];
    return e?.address ?? this.url.hostname.replace(/^\[|\]$/g, '');
  }

  /** The URL requests go to now (after a failover: the replica that answered). */
  get url(): URL {
    return this.resolved?.list[this.current]?.url ?? this.urls[0];
  }

  /** Where requests go now, for logs: the URL, with the address when its name has several. */
  get endpoint(): string {
    const e = this.resolved?.list[this.current];
    return e ? label(e) : this.urls[0].origin;
  }

  close(): void {
    this.agent.destroy();
    this.freshAgent.destroy();
  }

  /** One API call; resolves with the parsed JSON, rejects with AuthorityApiError on 4xx/5xx. */
  async request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const list = await this.endpoints(false);
    const idempotent = method === 'GET';
    let last: unknown;
    let sentSomewhere = false;
    for (let tried = 0; tried < list.length; tried++) {
      const i = (this.current + tried) % list.length;
      const at = list[i];
      let sent = false;
      try {
        const r = await this.withReuse<T>(at, method, path, body, opts, () => (sent = true));
        if (i !== this.current) this.o.onFailover?.({ from: label(list[this.current]), to: label(at), error: last });
        this.current = i;
        return r;
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        // A replica whose database is failing over (and did not commit anything): another may answer.
        const busy =
          e instanceof AuthorityApiError &&
          e.status === 503 &&
          e.code === 'database-unavailable' &&
          !/while committing/.test(e.message);
        if (!busy && !unreachable(e)) throw e;
        if (!busy && sent && !idempotent) {
          throw new AuthorityUnreachableError(
            `${label(at)} went away while handling ${method} ${path}: the change may or may not have been made; check before repeating it (${(e as Error).message})`,
            true,
            e,
          );
        }
        sentSomewhere ||= sent && !idempotent;
        last = e;
      }
    }
    // Nobody answered: look the names up again next time.
    this.resolved = undefined;
    if (last instanceof AuthorityApiError) throw last;
    throw new AuthorityUnreachableError(
      `no authority replica answered (${list.map(label).join(', ')}): ${(last as Error)?.message ?? 'no address'}`,
      sentSomewhere,
      last,
    );
  }

  /** The URLs as endpoints, one per address of a host name; resolved again after a while or when asked. */
  private async endpoints(refresh: boolean): Promise<Endpoint[]> {
    if (!refresh && this.resolved && Date.now() - this.resolved.at < RESOLVE_TTL_MS) return this.resolved.list;
    const was = this.resolved?.list[this.current];
    const list: Endpoint[] = [];
    for (const url of this.urls) {
      const host = url.hostname.replace(/^\[|\]$/g, '');
      if (isIP(host) || url.hostname === 'localhost') {
        list.push({ url });
        continue;
      }
      try {
        const addrs = await (this.o.resolve ?? systemResolve)(host);
        for (const address of addrs) list.push({ url, address });
        if (addrs.length === 0) list.push({ url });
      } catch {
        list.push({ url }); // the request reports the name that does not resolve
      }
    }
    // Stay with the replica that answered last if it is still listed.
    const keep = was ? list.findIndex((e) => e.url.href === was.url.href && e.address === was.address) : -1;
    this.current = keep >= 0 ? keep : 0;
    this.resolved = { at: Date.now(), list };
    return list;
  }

  private async withReuse<T>(
    at: Endpoint,
    method: string,
    path: string,
    body: unknown,
    opts: RequestOptions,
    onSent: () => void,
  ): Promise<T> {
    try {
      return await this.once<T>(at, method, path, body, opts, onSent);
    } catch (e) {
      // A kept-alive socket the server closed just as we reused it: a GET is safe to send again.
      if (method === 'GET' && (e as { reusedSocket?: boolean }).reusedSocket && !opts.signal?.aborted)
        return this.once<T>(at, method, path, body, opts, onSent);
      throw e;
    }
  }

  private once<T>(
    at: Endpoint,
    method: string,
    path: string,
    body: unknown,
    opts: RequestOptions,
    onSent: () => void,
  ): Promise<T> {
    const u = new URL(path, at.url);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (this.o.adminToken) headers.authorization = `Bearer ${this.o.adminToken}`;
    const timeout = opts.timeoutMs ?? this.o.timeoutMs ?? 30_000;
    // A name with several addresses: connect to this one, check the certificate against the name.
    const target = at.address
      ? { hostname: at.address, servername: u.hostname, headers: { ...headers, host: u.host } }
      : { headers };
    return new Promise<T>((resolve, reject) => {
      const agent = opts.fresh ? this.freshAgent : this.agent;
      const req = https.request(u, { method, agent, signal: opts.signal, ...target }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            reject(
              new AuthorityApiError(
                res.statusCode ?? 0,
                'bad-response',
                `the authority answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`,
              ),
            );
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            const e = json as { error?: string; message?: string } | undefined;
            reject(new AuthorityApiError(status, e?.error ?? `http-${status}`, e?.message ?? `HTTP ${status}`));
          } else resolve(json as T);
        });
      });
      req.on('socket', (sock) => {
        // Once connected (or on a kept-alive socket) the request is on its way.
        if ((sock as { connecting?: boolean }).connecting) sock.once('secureConnect', onSent);
        else onSent();
      });
      req.setTimeout(timeout, () => req.destroy(new Error(`no answer from ${label(at)} within ${timeout} ms`)));
      req.on('error', (e) => reject(Object.assign(e, { reusedSocket: req.reusedSocket })));
      req.end(payload);
    });
  }

  // --- public
  health(): Promise<{ ok: boolean; authority: string }> {
    return this.request('GET', '/v1/health');
  }
  ca(): Promise<CaView> {
    return this.request('GET', '/v1/ca');
  }
  crls(): Promise<{ root: string; issuing: string }> {
    return this.request('GET', '/v1/ca/crl');
  }

  // --- administrators
  status(): Promise<StatusView> {
    return this.request('GET', '/v1/status');
  }
  replicas(): Promise<ReplicaView[]> {
    return this.request('GET', '/v1/replicas');
  }
  listVpns(): Promise<VpnInfo[]> {
    return this.request('GET', '/v1/vpns');
  }
  createVpn(p: { name: string; id?: number; mode?: VpnMode; rotationPeriodMs?: number }): Promise<VpnDetail> {
    return this.request('POST', '/v1/vpns', p);
  }
  getVpn(name: string): Promise<VpnDetail> {
    return this.request('GET', `/v1/vpns/${seg(name)}`);
  }
  /** Gateway side: a certificate for an IKE key held elsewhere (a PKCS#11 token), from a CSR signed there. */
  requestIkeCertificate(csr: string): Promise<{ certificate: string }> {
    return this.request('POST', '/v1/gateway/ike-certificate', { csr });
  }
  federation(): Promise<FederationView> {
    return this.request('GET', '/v1/federation');
  }
  addPeer(p: { name: string; url: string; root: string }): Promise<FederationView> {
    return this.request('POST', '/v1/peers', p);
  }
  removePeer(name: string): Promise<{ removed: string }> {
    return this.request('DELETE', `/v1/peers/${seg(name)}`);
  }
  syncFederation(): Promise<FederationView> {
    return this.request('POST', '/v1/federation/sync', undefined, { timeoutMs: 120_000 });
  }
  shareVpn(vpn: string, peer: string): Promise<{ vpn: string; peer: string }> {
    return this.request('POST', `/v1/vpns/${seg(vpn)}/shares`, { peer });
  }
  unshareVpn(vpn: string, peer: string): Promise<{ vpn: string; unshared: string }> {
    return this.request('DELETE', `/v1/vpns/${seg(vpn)}/shares/${seg(peer)}`);
  }
  deleteVpn(name: string, force = false): Promise<{ deleted: string }> {
    return this.request('DELETE', `/v1/vpns/${seg(name)}`, undefined, { query: { force: force ? 'true' : undefined } });
  }
  rotateVpn(name: string, immediate = false): Promise<{ vpn: string; epoch: number; activeFrom: number }> {
    return this.request('POST', `/v1/vpns/${seg(name)}/rotate`, { immediate });
  }
  rotateAll(immediate = false): Promise<{ rotated: { vpn: string; epoch: number; activeFrom: number }[] }> {
    return this.request('POST', '/v1/rotate', { immediate }, { timeoutMs: 600_000 });
  }
  listMembers(vpn: string): Promise<MemberInfo[]> {
    return this.request('GET', `/v1/vpns/${seg(vpn)}/members`);
  }
  addMember(vpn: string, gateway: string, prefixes: string[]): Promise<MemberInfo> {
    return this.request('POST', `/v1/vpns/${seg(vpn)}/members`, { gateway, prefixes });
  }
  updateMember(
    vpn: string,
    gateway: string,
    p: { add?: string[]; remove?: string[] },
  ): Promise<{ member: MemberInfo | null }> {
    return this.request('PATCH', `/v1/vpns/${seg(vpn)}/members/${seg(gateway)}`, p);
  }
  removeMember(vpn: string, gateway: string): Promise<{ removed: { vpn: string; gateway: string } }> {
    return this.request('DELETE', `/v1/vpns/${seg(vpn)}/members/${seg(gateway)}`);
  }
  listGateways(): Promise<GatewayInfo[]> {
    return this.request('GET', '/v1/gateways');
  }
  addGateway(name: string, address: string): Promise<GatewayInfo> {
    return this.request('POST', '/v1/gateways', { name, address });
  }
  getGateway(name: string): Promise<GatewayInfo> {
    return this.request('GET', `/v1/gateways/${seg(name)}`);
  }
  updateGateway(name: string, p: { address?: string }): Promise<GatewayInfo> {
    return this.request('PATCH', `/v1/gateways/${seg(name)}`, p);
  }
  /** A gateway's last status report (its key table, IKE SAs, counters). */
  gatewayStatus(name: string): Promise<GatewayStatusView> {
    return this.request('GET', `/v1/gateways/${seg(name)}/status`);
  }
  gatewayCertificate(name: string): Promise<{ certificate: string; chain: string[] }> {
    return this.request('GET', `/v1/gateways/${seg(name)}/certificate`);
  }
  revokeGateway(name: string, p: { reason?: string; compromised?: boolean } = {}): Promise<GatewayInfo> {
    return this.request('POST', `/v1/gateways/${seg(name)}/revoke`, p);
  }
  createEnrollToken(name: string, p: { ttlSeconds?: number; replace?: boolean } = {}): Promise<EnrollTokenView> {
    return this.request('POST', `/v1/gateways/${seg(name)}/tokens`, p);
  }
  makeBundle(name: string, p: { replace?: boolean; validityDays?: number } = {}): Promise<GatewayBundle> {
    return this.request('POST', `/v1/gateways/${seg(name)}/bundle`, p);
  }
  directory(): Promise<DirectoryView> {
    return this.request('GET', '/v1/directory');
  }
  addDirectory(prefix: string, note?: string): Promise<DirectoryView> {
    return this.request('POST', '/v1/directory', note === undefined ? { prefix } : { prefix, note });
  }
  removeDirectory(prefix: string): Promise<DirectoryView> {
    return this.request('DELETE', '/v1/directory', undefined, { query: { prefix } });
  }
  audit(q: AuditCriteria & { after?: number; before?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    return this.request('GET', '/v1/audit', undefined, { query: q });
  }
  listAdminTokens(): Promise<AdminTokenInfo[]> {
    return this.request('GET', '/v1/admin-tokens');
  }
  createAdminToken(name: string): Promise<{ token: string; info: AdminTokenInfo }> {
    return this.request('POST', '/v1/admin-tokens', { name });
  }
  revokeAdminToken(id: string): Promise<{ revoked: string }> {
    return this.request('DELETE', `/v1/admin-tokens/${seg(id)}`);
  }

  // --- gateways (mutual TLS)
  self(): Promise<GatewayInfo> {
    return this.request('GET', '/v1/gateway/self');
  }

  /** Gateway side: its status report (key table, counters), at most one per second. */
  reportStatus(report: GatewayReport, signal?: AbortSignal): Promise<{ accepted: true; nextInMs: number }> {
    // On a connection of its own: a kept-alive one would stay open between reports, costing the
    // authority what the wake-up channel saves (docs/authority.md, "Memory per gateway").
    return this.request('POST', '/v1/gateway/status', report, { signal, timeoutMs: 15_000, fresh: true });
  }

  /**
   * The change stream: returns at once if anything this gateway receives changed after `since`
   * (with the complete current delivery), otherwise after up to `waitSeconds` (max 60) unchanged.
   */
  changes(
    since: number,
    opts: { waitSeconds?: number; signal?: AbortSignal; fresh?: boolean } = {},
  ): Promise<GatewayChanges> {
    const wait = Math.min(Math.max(Math.floor(opts.waitSeconds ?? 25), 0), 60);
    return this.request('GET', '/v1/gateway/changes', undefined, {
      query: { since, wait },
      signal: opts.signal,
      timeoutMs: wait * 1000 + 15_000,
      fresh: opts.fresh,
    });
  }

  /** Gateway side: the key of the wake-up channel (404 `push-off`: the authority has none). */
  pushOffer(signal?: AbortSignal): Promise<PushOffer> {
    return this.request('POST', '/v1/gateway/push', undefined, { signal, timeoutMs: 15_000, fresh: true });
  }

  /**
   * One session of the wake-up channel at the replica the API answers at (push-subscriber.ts):
   * fetches with `fresh` connections and hands each answer with a delivery to `onChanges`.
   * 'unsupported': the authority offers no channel.
   */
  async followPush(
    since: number,
    o: { signal?: AbortSignal; onChanges: (c: GatewayChanges) => void | Promise<void>; push?: PushWatchOptions },
  ): Promise<Omit<PushSessionEnd, 'end'> & { end: PushSessionEnd['end'] | 'unsupported' }> {
    let offer: PushOffer;
    try {
      offer = await this.pushOffer(o.signal);
    } catch (e) {
      if (e instanceof AuthorityApiError && e.status === 404)
        return { end: 'unsupported', cursor: since, acked: false, dropped: 0, delivered: 0, error: e };
      throw e;
    }
    const endpoint = this.endpoint;
    return runPushSession({
      ...o.push?.session,
      host: this.host,
      offer,
      cursor: since,
      signal: o.signal,
      onSubscribed: () => o.push?.onState?.({ state: 'subscribed', endpoint }),
      moved: () => this.endpoint !== endpoint,
      fetch: async (cursor) => {
        const c = await this.changes(cursor, { waitSeconds: 0, signal: o.signal, fresh: true });
        if (c.changed) await o.onChanges(c);
        return c.version;
      },
      apply: async (c) => {
        await o.onChanges(c);
        return c.version;
      },
    });
  }

  /**
   * Follows the change stream until `signal` aborts: calls `onChanges` for every answer that carries
   * a delivery, resumes from the last version after errors (with backoff), so nothing is missed
   * across disconnects. Stops with an error when the authority refuses the gateway (403).
   * Resolves with the last version seen.
   *
   * When the authority offers the wake-up channel, the gateway subscribes to it and fetches when
   * woken (no connection held open); without one, or when its datagrams do not get through, it
   * long-polls, and tries the channel again `push.retryMs` later.
   */
  async watch(o: {
    since?: number;
    waitSeconds?: number;
    signal?: AbortSignal;
    onChanges: (c: GatewayChanges) => void | Promise<void>;
    onError?: (e: unknown) => void;
    backoffMs?: { min: number; max: number };
    push?: PushWatchOptions;
  }): Promise<number> {
    let since = o.since ?? 0;
    const min = o.backoffMs?.min ?? 500;
    const max = o.backoffMs?.max ?? 10_000;
    let delay = min;
    let pushAfter = o.push?.enabled === false ? Infinity : 0;
    const refused = (e: unknown): boolean => e instanceof AuthorityApiError && (e.status === 403 || e.status === 401);
    while (!o.signal?.aborted) {
      if (performance.now() >= pushAfter) {
        const endpoint = this.endpoint;
        const started = performance.now();
        let r: Awaited<ReturnType<AuthorityClient['followPush']>>;
        try {
          r = await this.followPush(since, { signal: o.signal, onChanges: o.onChanges, push: o.push });
        } catch (e) {
          if (o.signal?.aborted) break;
          if (refused(e)) throw e;
          o.onError?.(e);
          await sleep(delay, o.signal);
          delay = Math.min(delay * 2, max);
          continue;
        }
        since = r.cursor;
        if (r.end === 'stopped') break;
        if (refused(r.error)) throw r.error;
        const reason = r.error instanceof Error ? `${r.end}: ${r.error.message}` : r.end;
        // A session that worked ended (its replica went away, the key is due): a new one at once,
        // through the client's failover; one that never got an answer: the long poll for a while.
        if (r.acked && r.end !== 'unsupported') {
          o.push?.onState?.({ state: 'ended', reason, endpoint });
          if (performance.now() - started < min) await sleep(delay, o.signal);
          continue;
        }
        o.push?.onState?.({ state: 'fallback', reason, endpoint });
        pushAfter = performance.now() + (o.push?.retryMs ?? PUSH_RETRY_MS);
      }
      try {
        const c = await this.changes(since, { waitSeconds: o.waitSeconds, signal: o.signal });
        if (c.changed) await o.onChanges(c);
        since = c.version;
        delay = min;
      } catch (e) {
        if (o.signal?.aborted) break;
        if (e instanceof AuthorityApiError && (e.status === 403 || e.status === 401)) throw e;
        o.onError?.(e);
        await sleep(delay, o.signal);
        delay = Math.min(delay * 2, max);
      }
    }
    return since;
  }
}

function label(e: Endpoint): string {
  return e.address ? `${e.url.origin} (${e.address})` : e.url.origin;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** SHA-256 fingerprint (colon hex) of a PEM certificate. */
export function certificateFingerprint(pem: string): string {
  return fingerprint(pemToDer(pem, 'CERTIFICATE'));
}

/**
 * Fetches the authority's root CA certificate without trusting anything yet, and accepts it only if
 * its SHA-256 fingerprint is the expected one (given to the gateway's operator with the token).
 * Nothing secret is sent on this unverified connection.
 */
export async function fetchAuthorityCa(url: string, expectedFingerprint: string): Promise<string> {
  const u = new URL('/v1/ca', url);
  const body = await new Promise<string>((resolve, reject) => {
    const req = https.request(u, { method: 'GET', rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer from ${u.origin}`)));
    req.on('error', reject);
    req.end();
  });
  const view = JSON.parse(body) as CaView;
  const got = certificateFingerprint(view.rootCertificate);
  const want = expectedFingerprint
    .toUpperCase()
    .replace(/[^0-9A-F]/g, '')
    .match(/../g)
    ?.join(':');
  if (got !== want)
    throw new Error(`the authority's CA fingerprint is ${got}, not the expected ${want}: refusing to trust it`);
  return view.rootCertificate;
}

export interface EnrollOptions {
  url: string;
  token: string;
  /** The root CA (PEM) to trust, or its fingerprint to fetch and pin it. One is required. */
  ca?: string;
  caFingerprint?: string;
  /**
   * The gateway's name, put in the CSR's CN and checked against the token; without it the CSR has no name and the token
   * decides.
   */
  name?: string;
  /** A key pair from the gateway's keystore; by default a new extractable P-256 pair is made. */
  keys?: CryptoKeyPair;
}

/**
 * Online enrollment: makes (or uses) the gateway's key pair, sends a CSR with the one-time token,
 * and returns the credentials in bundle form. `privateKey` is set only when the key was made here.
 */
export async function enroll(o: EnrollOptions): Promise<GatewayBundle> {
  const ca = o.ca ?? (o.caFingerprint ? await fetchAuthorityCa(o.url, o.caFingerprint) : undefined);
  if (!ca) throw new Error('enroll needs the authority CA certificate or its fingerprint');
  const keys = o.keys ?? (await generateKeyPair());
  const csr = await createCsr(keys, o.name);
  const client = new AuthorityClient({ url: o.url, ca });
  try {
    const r = await client.request<EnrollResponse>('POST', '/v1/enroll', { token: o.token, csr });
    return { ...r, ...(o.keys ? {} : { privateKey: await exportPkcs8Pem(keys.privateKey) }) };
  } finally {
    client.close();
  }
}

/** Parses and checks a bundle file (offline enrollment) or stored enrollment credentials. */
export function parseBundle(text: string): GatewayBundle {
  let b: GatewayBundle;
  try {
    b = JSON.parse(text) as GatewayBundle;
  } catch {
    throw new Error('the bundle is not JSON');
  }
  if (!b || b.format !== BUNDLE_FORMAT)
    throw new Error(`not a kasane gateway bundle (format ${JSON.stringify(b?.format)})`);
  if (
    typeof b.gateway?.name !== 'string' ||
    typeof b.authority?.url !== 'string' ||
    typeof b.authority?.caCertificate !== 'string' ||
    typeof b.certificate !== 'string'
  ) {
    throw new Error('the bundle lacks gateway.name, authority.url, authority.caCertificate or certificate');
  }
  const cert = new X509Certificate(b.certificate);
  const root = new X509Certificate(b.authority.caCertificate);
  if (certificateFingerprint(b.authority.caCertificate) !== b.authority.caFingerprint)
    throw new Error('the bundle CA certificate does not match its fingerprint');
  const issuing = b.chain?.[0] ? new X509Certificate(b.chain[0]) : undefined;
  if (!issuing || !cert.checkIssued(issuing) || !issuing.checkIssued(root) || !cert.verify(issuing.publicKey)) {
    throw new Error('the bundle certificate does not chain to its authority CA');
  }
  if (b.privateKey !== undefined && !cert.checkPrivateKey(createPrivateKey(b.privateKey)))
    throw new Error('the bundle private key does not match its certificate');
  return b;
}

/**
 * A gateway's client from its bundle (mutual TLS with its certificate and key). `more.urls`: the
 * authority's replicas (default: the bundle's URL), tried in order.
 */
export function gatewayClient(
  bundle: GatewayBundle,
  privateKey?: string,
  more: Pick<ClientOptions, 'urls' | 'resolve' | 'onFailover'> = {},
): AuthorityClient {
  const key = privateKey ?? bundle.privateKey;
  if (!key) throw new Error('the gateway private key is needed for mutual TLS');
  const [url, ...urls] = more.urls?.length ? more.urls : [bundle.authority.url];
  return new AuthorityClient({
    ...more,
    url,
    urls,
    ca: bundle.authority.caCertificate,
    cert: joinPem(bundle.certificate, bundle.chain[0]),
    key,
  });
}

/** Opens the delivery of a change-stream answer with the gateway's private key. */
export async function snapshotFromChanges(
  c: GatewayChanges,
  privateKey: string | CryptoKey,
  expect: { gateway: string; authority?: string },
): Promise<AuthoritySnapshot | undefined> {
  return c.delivery ? openDelivery(c.delivery, privateKey, expect) : undefined;
}

// The console's only way to the authority: the same /v1 API as the CLI, with the session cookie
// (sent by the browser, unreadable here) and, on every change, the session's CSRF token. No token,
// key or other secret is ever kept beyond the call that needs it.
import type {
  AuditEntry,
  FederationView,
  GatewayInfo,
  GatewayStatusView,
  SessionView,
  StatusView,
  VpnDetail,
  VpnInfo,
} from './types.js';

// The authority's own error class: an HTTP status, the API's stable code and the message.
import { ApiError } from '../../src/authority/errors.js';

export { ApiError };

let csrf: string | undefined;
let onSignedOut: (() => void) | undefined;

/** Called when the authority says the session has ended (the app shows the sign-in again). */
export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-kasane-csrf'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(
      res.status,
      'bad-response',
      `the authority answered ${res.status} with something that is not JSON`,
    );
  }
  if (!res.ok) {
    const e = json as { error?: string; message?: string } | undefined;
    if (res.status === 401 && path !== '/v1/session') {
      csrf = undefined;
      onSignedOut?.();
    }
    throw new ApiError(res.status, e?.error ?? `http-${res.status}`, e?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

const seg = encodeURIComponent;

export const api = {
  async session(): Promise<SessionView> {
    const s = await call<SessionView>('GET', '/v1/session');
    csrf = s.csrfToken;
    return s;
  },
  async signIn(token: string): Promise<SessionView> {
    const s = await call<SessionView>('POST', '/v1/session', { token });
    csrf = s.csrfToken;
    return s;
  },
  async signOut(): Promise<void> {
    try {
      await call('DELETE', '/v1/session');
    } finally {
      csrf = undefined;
    }
  },
  status: () => call<StatusView>('GET', '/v1/status'),
  vpns: () => call<VpnInfo[]>('GET', '/v1/vpns'),
  vpn: (name: string) => call<VpnDetail>('GET', `/v1/vpns/${seg(name)}`),
  createVpn: (p: { name: string; id?: number; mode?: 'group' | 'pairwise'; rotationPeriodMs?: number }) =>
    call<VpnDetail>('POST', '/v1/vpns', p),
  deleteVpn: (name: string, force: boolean) => call('DELETE', `/v1/vpns/${seg(name)}${force ? '?force=true' : ''}`),
  rotate: (name: string, immediate: boolean) =>
    call<{ epoch: number; activeFrom: number }>('POST', `/v1/vpns/${seg(name)}/rotate`, { immediate }),
  addMember: (vpn: string, gateway: string, prefixes: string[]) =>
    call('POST', `/v1/vpns/${seg(vpn)}/members`, { gateway, prefixes }),
  updateMember: (vpn: string, gateway: string, p: { add?: string[]; remove?: string[] }) =>
    call('PATCH', `/v1/vpns/${seg(vpn)}/members/${seg(gateway)}`, p),
  removeMember: (vpn: string, gateway: string) => call('DELETE', `/v1/vpns/${seg(vpn)}/members/${seg(gateway)}`),
  gateways: () => call<GatewayInfo[]>('GET', '/v1/gateways'),
  gateway: (name: string) => call<GatewayInfo>('GET', `/v1/gateways/${seg(name)}`),
  gatewayStatus: (name: string) => call<GatewayStatusView>('GET', `/v1/gateways/${seg(name)}/status`),
  gatewayCertificate: (name: string) =>
    call<{ certificate: string; chain: string[] }>('GET', `/v1/gateways/${seg(name)}/certificate`),
  addGateway: (name: string, address: string) => call<GatewayInfo>('POST', '/v1/gateways', { name, address }),
  revoke: (name: string, p: { reason?: string; compromised?: boolean }) =>
    call<GatewayInfo>('POST', `/v1/gateways/${seg(name)}/revoke`, p),
  enrollToken: (name: string, p: { ttlSeconds?: number; replace?: boolean }) =>
    call<{
      token: string;
      gateway: string;
      expiresAt: number;
      authority: { name: string; url: string; caFingerprint: string };
    }>('POST', `/v1/gateways/${seg(name)}/tokens`, p),
  bundle: (name: string, p: { replace?: boolean }) => call<unknown>('POST', `/v1/gateways/${seg(name)}/bundle`, p),
  audit: (q: Record<string, string | number | undefined>) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') u.set(k, String(v));
    return call<AuditEntry[]>('GET', `/v1/audit?${u.toString()}`);
  },
  federation: () => call<FederationView>('GET', '/v1/federation'),
};

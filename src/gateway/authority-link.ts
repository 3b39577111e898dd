// The gateway's link to its authority: the keys at start (from the authority, or the delivery
// cached in the data directory when no replica answers), then the change stream, followed from
// the cursor for as long as the gateway runs. With several authority URLs (replicas, or one name
// with several addresses) the client moves to another replica when its own goes away and resumes
// from the same cursor, so nothing is missed: the answer carries every change since the cursor.
// When the authority offers the wake-up channel (UDP, docs/authority.md) the link subscribes to it
// and fetches when woken instead of holding a long poll open; it falls back to the long poll when
// the channel is off or its datagrams do not get through, and tries again later.
// Every delivery is opened with the gateway's key (a delivery addressed to another gateway or
// authority, or one whose keys do not open, is refused), cached sealed, and handed on.
import type { Logger } from 'pino';
import {
  AuthorityApiError,
  gatewayClient,
  openDelivery,
  type AuthorityClient,
  type GatewayChanges,
  type PushWatchOptions,
} from '../authority/client.js';
import type { AuthoritySnapshot } from '../core/types.js';
import { importPrivateKey } from '../pki/keys.js';
import { loadDelivery, saveDelivery, type Credentials } from './credentials.js';

export class GatewayStartError extends Error {}

export interface AuthorityLinkOptions {
  /** The gateway's data directory (the cached delivery lives there). */
  data: string;
  creds: Credentials;
  /** The authority's URLs; default: the one in the enrollment credentials. */
  urls?: string[];
  log: Logger;
  /** Resolves host names (tests); default: the system resolver. */
  resolve?: (host: string) => Promise<string[]>;
  /** Long-poll wait per request (s). */
  waitSeconds?: number;
  /** Retry delays while no replica answers (ms). */
  backoffMs?: { min: number; max: number };
  /** The wake-up channel: off, when to try it again after a fallback, test hooks (default: on). */
  push?: PushWatchOptions;
}

export class AuthorityLink {
  readonly client: AuthorityClient;
  /** The version of the last delivery applied: the cursor. */
  version = 0;
  /** Deliveries applied since start (for status and tests). */
  applied = 0;
  /** The wake-up channel's last state: subscribed, ended, fallback (long poll), or not tried yet. */
  pushState: 'subscribed' | 'ended' | 'fallback' | undefined;
  /** The gateway's key for opening deliveries, imported once. */
  private privateKey: Promise<CryptoKey> | undefined;
  /** Group keys already opened: a delivery repeats every live key, only new ones cost an HPKE open. */
  private readonly opened = new Map<string, Uint8Array>();

  constructor(private readonly o: AuthorityLinkOptions) {
    const urls = o.urls?.length ? o.urls : [o.creds.bundle.authority.url];
    this.client = gatewayClient(o.creds.bundle, o.creds.privateKey, {
      urls,
      resolve: o.resolve,
      onFailover: (f) =>
        o.log.warn(
          { from: f.from, to: f.to, err: (f.error as Error | undefined)?.message, version: this.version },
          'authority replica unreachable; continuing with another from the same cursor',
        ),
    });
  }

  private get gateway(): string {
    return this.o.creds.bundle.gateway.name;
  }

  /** Keys at start: the authority if a replica answers soon, else the cached delivery (sealed to our key). */
  async initial(): Promise<AuthoritySnapshot> {
    try {
      const c = await this.client.changes(0, { waitSeconds: 0, signal: AbortSignal.timeout(5000), fresh: true });
      const s = await this.accept(c);
      if (s) return s;
    } catch (e) {
      if (e instanceof AuthorityApiError && (e.status === 401 || e.status === 403))
        throw new GatewayStartError(`the authority refuses this gateway: ${e.message}`);
      this.o.log.warn({ err: (e as Error).message }, 'authority unreachable at start; using the cached delivery');
    }
    const cached = loadDelivery(this.o.data);
    if (!cached)
      throw new GatewayStartError('no keys: the authority is unreachable and there is no cached delivery yet');
    const s = await openDelivery(cached, await this.key(), {
      gateway: this.gateway,
      authority: this.o.creds.bundle.authority.name,
      opened: this.opened,
    });
    this.version = s.version;
    return s;
  }

  /**
   * Follows the change stream until `signal` aborts, calling `apply` with every new snapshot. When
   * the authority refuses the gateway (revoked), calls `revoked` and ends: its keys must go.
   */
  async follow(
    signal: AbortSignal,
    apply: (s: AuthoritySnapshot, c: GatewayChanges) => void,
    revoked: (e: Error) => void,
  ): Promise<void> {
    try {
      await this.client.watch({
        since: this.version,
        waitSeconds: this.o.waitSeconds ?? 25,
        signal,
        backoffMs: this.o.backoffMs,
        push: {
          ...this.o.push,
          onState: (e) => {
            this.pushState = e.state;
            if (e.state === 'subscribed')
              this.o.log.info({ authority: e.endpoint }, 'subscribed to the wake-up channel');
            else
              this.o.log.warn(
                { authority: e.endpoint, reason: e.reason, version: this.version },
                e.state === 'fallback'
                  ? 'wake-up channel unavailable; following the long poll'
                  : 'wake-up channel session ended; subscribing again',
              );
            this.o.push?.onState?.(e);
          },
        },
        onChanges: async (c) => {
          const s = await this.accept(c);
          if (s) apply(s, c);
        },
        onError: (e) =>
          this.o.log.warn(
            { err: (e as Error).message, version: this.version },
            'authority unreachable; forwarding with cached keys',
          ),
      });
    } catch (e) {
      revoked(e as Error);
    }
  }

  private async accept(c: GatewayChanges): Promise<AuthoritySnapshot | undefined> {
    if (!c.delivery) return undefined;
    const s = await openDelivery(c.delivery, await this.key(), {
      gateway: this.gateway,
      authority: this.o.creds.bundle.authority.name,
      opened: this.opened,
    });
    saveDelivery(this.o.data, c.delivery);
    this.version = c.version;
    this.applied++;
    return s;
  }

  private key(): Promise<CryptoKey> {
    this.privateKey ??= importPrivateKey(this.o.creds.privateKey, 'ecdh');
    return this.privateKey;
  }

  close(): void {
    this.client.close();
  }
}

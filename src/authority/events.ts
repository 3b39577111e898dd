// Live events for administrators (the web console's server-sent events, GET /v1/events): a new
// configuration version after every committed change — of this process, or of another replica
// (the store's remote-change signal) — and a gateway's new status report. Events say only what
// changed; the console reads the new state through the ordinary API.
import type { AuthorityContext } from './context.js';

export type AdminEvent = { type: 'change'; version: number } | { type: 'report'; gateway: string };

/** Another replica's commits within this window make one event. */
const REMOTE_DEBOUNCE_MS = 50;

export class AdminEvents {
  private readonly listeners = new Set<(e: AdminEvent) => void>();
  private remoteTimer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: AuthorityContext) {
    ctx.store.onRemoteChange(() => {
      if (this.remoteTimer || this.listeners.size === 0) return;
      this.remoteTimer = setTimeout(() => {
        this.remoteTimer = undefined;
        this.ctx.store
          .read((tx) => tx.state())
          .then((s) => this.publish({ type: 'change', version: s.version }))
          .catch((e) => this.ctx.log?.warn({ err: e }, 'reading the version after a remote change failed'));
      }, REMOTE_DEBOUNCE_MS);
    });
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  subscribe(listener: (e: AdminEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(e: AdminEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.ctx.log?.warn({ err }, 'an event listener failed');
      }
    }
  }

  stop(): void {
    if (this.remoteTimer) clearTimeout(this.remoteTimer);
    this.remoteTimer = undefined;
  }
}

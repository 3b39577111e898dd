// Receive windows across restarts (docs/protocol.md §3.2). Anti-replay windows live in memory. A
// gateway that restarts within a key epoch has lost them: an earlier run may have accepted any ESP
// a sender sent under an SA of that epoch, and whoever captured it could deliver it again. So a
// receiving SA that an earlier run used (the edge says which: rxNeedsFloor) waits here, out of the
// executor, until this run has learned a floor for it from its sender: the next sequence number
// the sender claimed in a key search that this gateway originated. The claim's proof binds it to
// our own fresh transaction id, so it was made after the restart and lies above everything the
// sender had sent before; the SA is installed with everything below it counted as received.
// ESP on an SA that still waits is dropped ('unverified-sa') and starts such a search (one per SA
// at a time), so even a one-way flow resumes after one search. Searches we merely relay teach us
// nothing: their claims were made before we could have asked, and could be old ones replayed.
import type { Ip } from '../base/addr.js';
import type { Executor } from './executor.js';
import type { TraceEvent } from './gateway-api.js';
import type { KeyRing } from './key-ring.js';
import type { SearchMessage } from './packet/search-message.js';
import type { GatewayTimers } from './gateway-api.js';
import { packetDst, packetSrc } from './packet/ip.js';
import { espPeek } from '../crypto/esp.js';
import { groupEspOfPacket } from './packet/group-esp.js';
import type { GatewayId, Spi } from './types.js';

/**
 * What the floors use of the core: a narrow view of CoreContext (which the core passes), declared
 * here because the context holds the floors and a module must not import its holder.
 */
export interface FloorsHost {
  readonly config: { readonly id: GatewayId; readonly timers: GatewayTimers };
  readonly ring: Pick<KeyRing, 'peerMember' | 'rxSaOf'>;
  readonly executor: Pick<Executor, 'installRxSa'>;
  count(name: string, n?: number): void;
  drop(reason: string, bytes: Uint8Array): void;
  trace(event: TraceEvent): void;
}

/** The longest a search of ours can take: the source-search wait plus every destination attempt. */
function searchSpan(t: GatewayTimers): number {
  return t.sourceSearchTimeout + t.searchTimeout * (2 ** (t.searchRetries + 1) - 1);
}

export class ReceiveFloors {
  /** Receiving SAs held back until their floor is known. */
  private readonly waiting = new Set<Spi>();
  /** When the next learning search may start for a waiting SA. */
  private readonly nextAttempt = new Map<Spi, number>();

  /**
   * `search` starts a search of ours for the path (local, remote) unless one runs; false when none
   * runs and none may start (maxSearchesInFlight).
   */
  constructor(private readonly search: (local: Ip, remote: Ip, now: number) => boolean) {}

  get size(): number {
    return this.waiting.size;
  }

  hold(spi: Spi): void {
    this.waiting.add(spi);
  }

  /** The SA is gone (its epoch expired, its sender left the VPN). */
  release(spi: Spi): void {
    this.waiting.delete(spi);
    this.nextAttempt.delete(spi);
  }

  isWaiting(spi: Spi): boolean {
    return this.waiting.has(spi);
  }

  /**
   * ESP from outside with a path rule but an SPI the executor does not hold: ours if the SA waits
   * for its floor (then dropped, and a floor asked for). False: not a waiting SA.
   */
  onUnknownSpi(ctx: FloorsHost, packet: Uint8Array, now: number): boolean {
    if (this.waiting.size === 0) return false;
    const esp = groupEspOfPacket(packet);
    const peek = esp ? espPeek(esp) : undefined;
    if (!peek?.ok || !this.waiting.has(peek.value.spi)) return false;
    this.onEsp(ctx, packet, peek.value.spi, now);
    return true;
  }

  /** ESP for our terminal on an SA that waits for its floor: dropped; its sender is asked by a search. */
  onEsp(ctx: FloorsHost, packet: Uint8Array, spi: Spi, now: number): void {
    ctx.drop('unverified-sa', packet);
    if ((this.nextAttempt.get(spi) ?? 0) > now) return;
    const local = packetDst(packet);
    const remote = packetSrc(packet);
    // At the search limit the next ESP asks again.
    if (!this.search(local, remote, now)) return ctx.count('rx-floor.search-limit');
    this.nextAttempt.set(spi, now + searchSpan(ctx.config.timers));
    ctx.count('rx-floor.searches');
    ctx.trace({ event: 'floor-search', kind: 'data', detail: { local, remote, spi } });
  }

  /**
   * A destination search of ours completed with verified claims: every claim of a sender whose SA
   * waits gives that SA its floor (its claimed next sequence number).
   */
  learn(ctx: FloorsHost, msg: SearchMessage, unverifiable: ReadonlySet<string>): void {
    if (this.waiting.size === 0) return;
    msg.entries.forEach((e, i) => {
      if (e.gateway === ctx.config.id) return;
      for (const c of e.vpns) {
        if (unverifiable.has(`${i}/${c.vpnId}`)) continue;
        const sender = ctx.ring.peerMember(c.vpnId, e.gateway)?.gateway;
        const rx = sender === undefined ? undefined : ctx.ring.rxSaOf(c.vpnId, sender, c.epoch);
        if (!rx || !this.waiting.has(rx.spi)) continue;
        // Verified: we hold this VPN and epoch, so checkClaims checked the proof over c.seq.
        ctx.executor.installRxSa({
          spi: rx.spi,
          vpnId: rx.vpnId,
          epoch: rx.epoch,
          sender: rx.sender,
          key: rx.key,
          salt: rx.salt,
          floor: c.seq,
        });
        this.release(rx.spi);
        ctx.count('rx-floor.learned');
        ctx.trace({
          event: 'floor-learned',
          kind: 'data',
          detail: { spi: rx.spi, vpnId: rx.vpnId, epoch: rx.epoch, sender: rx.sender, floor: c.seq.toString() },
        });
      }
    });
  }
}

// A point-to-point link: latency, MTU, loss, and what crossed it. A packet larger than the MTU is
// dropped and counted (the core must never emit one, so this has to be visible).
import { uniform, type RandomBytes } from './random.js';
import type { LinkSpec } from './topology.js';

export type LinkVerdict = 'pass' | 'mtu' | 'search-loss' | 'random-loss';

export interface LinkCounters {
  packets: number;
  bytes: number;
  /** Drops by reason (mtu, search-loss, random-loss, tap). */
  drops: Record<string, number>;
  /** The deepest VPN nesting (ESP layers) seen on this link. */
  maxLayers: number;
}

export class Link {
  readonly name: string;
  readonly counters: LinkCounters = { packets: 0, bytes: 0, drops: {}, maxLayers: 0 };
  private searchDropsLeft: number;

  constructor(
    readonly spec: LinkSpec,
    private readonly random: RandomBytes,
  ) {
    this.name = `${spec.a}-${spec.b}`;
    this.searchDropsLeft = spec.loss.searchPackets;
  }

  /** A WAN link: neither a terminal nor a gateway's inside interface is on it. */
  get wan(): boolean {
    return !this.spec.lan;
  }

  other(end: string): string {
    return end === this.spec.a ? this.spec.b : this.spec.a;
  }

  /**
   * Decides whether a packet sent by `from` crosses. `isSearch` is only evaluated when the link
   * drops search packets, so links without that setting never parse what they carry.
   */
  admit(size: number, from: string, isSearch: () => boolean): LinkVerdict {
    if (size > this.spec.mtu) return this.dropped('mtu');
    const loss = this.spec.loss;
    if (this.searchDropsLeft > 0 && (loss.searchFrom === undefined || loss.searchFrom === from) && isSearch()) {
      this.searchDropsLeft--;
      return this.dropped('search-loss');
    }
    if (loss.rate > 0 && uniform(this.random) < loss.rate) return this.dropped('random-loss');
    this.counters.packets++;
    this.counters.bytes += size;
    return 'pass';
  }

  countDrop(reason: string): void {
    this.counters.drops[reason] = (this.counters.drops[reason] ?? 0) + 1;
  }

  private dropped(reason: Exclude<LinkVerdict, 'pass'>): LinkVerdict {
    this.countDrop(reason);
    return reason;
  }
}

// TEMPORARY STUB (being replaced by the real key-search core): the signature is final.
import type { AuthoritySnapshot } from './types.js';
import type { Executor, Side } from './executor.js';
import type { CoreAction, GatewayConfig, PathView } from './gateway-api.js';

export interface GatewayCoreOptions {
  config: GatewayConfig;
  snapshot: AuthoritySnapshot;
  /** Initial clock, ms. */
  now: number;
  /** Randomness for transaction ids; CSPRNG by default, the simulator injects a seeded one. */
  random?: (n: number) => Uint8Array;
  /** The TypeScript reference executor by default. */
  executor?: Executor;
}

export class GatewayCore {
  readonly id: string;
  constructor(opts: GatewayCoreOptions) {
    this.id = opts.config.id;
  }
  onPacket(_from: Side, bytes: Uint8Array, _now: number): CoreAction[] {
    return [{ type: 'emit', bytes, note: { op: 'plain' } }];
  }
  onTick(_now: number): CoreAction[] {
    return [];
  }
  nextDeadline(): number | undefined {
    return undefined;
  }
  applySnapshot(_s: AuthoritySnapshot, _now: number): CoreAction[] {
    return [];
  }
  paths(_now: number): PathView[] {
    return [];
  }
  stats(): Record<string, number> {
    return {};
  }
}

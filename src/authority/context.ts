// What each concern of the authority (VPNs, the directory, epochs, gateways, certificates,
// enrollment, administration, delivery, the change stream) gets from the facade in service.ts:
// the store, the authority's identity, its clock and randomness, and the one way to change
// anything. The concerns never open transactions of their own, so every change gets a version,
// an audit entry and its wake-ups the same way.
import type { Logger } from 'pino';
import type { RandomSource } from '../base/random.js';
import type { Change } from './change.js';
import type { Store } from './storage/types.js';
import type { AuthorityIdentity } from './wire.js';

export interface AuthorityContext {
  readonly store: Store;
  /** The authority's name as its database records it (known once the facade has started). */
  readonly name: string;
  /** Name, advertised URL and root CA fingerprint: what bundles and enrollment answers carry. */
  identity(): AuthorityIdentity;
  now(): number;
  readonly random: RandomSource;
  readonly log?: Logger;
  /**
   * Runs `fn` as one change: one transaction that first takes the next version (which also
   * serialises writers) and ends with the change's audit rows; after the commit, the gateways it
   * touched hear of it.
   */
  change<T>(actor: string, fn: (c: Change) => Promise<T>): Promise<T>;
}

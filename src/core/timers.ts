// The core's timers, one kind per reason to wake up. The queue identifies a timer by `timerId`
// (arming the same timer again moves it); the core dispatches on `kind`, never by parsing strings.
import type { GatewayId, VpnId } from './types.js';

export type CoreTimer =
  /** Ages out idle and expired key-table entries. */
  | { readonly kind: 'sweep' }
  /** The next key epoch starts or ends: sending and receiving SAs change. */
  | { readonly kind: 'epoch' }
  /** A learned path MTU (for paths sharing `path`, see pmtuKey) ages out. */
  | { readonly kind: 'pmtu'; readonly path: string }
  /** IKE did not bring the Child SA with `peer` for `vpnId` in time. */
  | { readonly kind: 'ike'; readonly peer: GatewayId; readonly vpnId: VpnId }
  /** A key search this gateway originated (transaction `tx`) got no answer in time. */
  | { readonly kind: 'origin'; readonly tx: string }
  /** A relayed search's state (`search` = transaction/phase) is forgotten. */
  | { readonly kind: 'relay'; readonly search: string }
  /** A first-stage gateway answers a relayed search for its silent terminal. */
  | { readonly kind: 'proxy'; readonly search: string };

export type TimerOf<K extends CoreTimer['kind']> = Extract<CoreTimer, { kind: K }>;

/** A timer's identity in the queue: equal for the same timer, distinct for every other. */
export function timerId(t: CoreTimer): string {
  switch (t.kind) {
    case 'sweep':
    case 'epoch':
      return t.kind;
    case 'pmtu':
      return `pmtu ${t.path}`;
    case 'ike':
      return `ike ${t.vpnId} ${t.peer}`;
    case 'origin':
      return `origin ${t.tx}`;
    case 'relay':
    case 'proxy':
      return `${t.kind} ${t.search}`;
  }
}

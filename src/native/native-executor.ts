// The native executor: the same semantics as the TypeScript reference (docs/executor.md,
// src/core/ts-executor.ts), carried out by the C addon so that the TUN datapath's reader threads
// share its state (rules, SAs, sequence numbers, replay windows, counters). process() here is for
// the shared vectors and for packets the core injects; the fast path never enters JavaScript.
import { ipFamily, ipFromBytes, ipToBytes, type Ip } from '../core/addr.js';
import type {
  DropReason,
  Executor,
  PathAction,
  PathRule,
  PathStats,
  PuntReason,
  RxSa,
  Side,
  TxSa,
  Verdict,
} from '../core/executor.js';
import { ok, type Result } from '../core/result.js';
import type { Spi, VpnId } from '../core/types.js';
import { loadNative, type ExecutorHandle, type NativeBinding } from './binding.js';

/** Verdict codes of the addon: drop and punt codes are counter indexes (native/src/executor.h). */
export const DROP_REASONS: readonly DropReason[] = [
  'malformed',
  'discard',
  'replay',
  'auth-failed',
  'vpn-mismatch',
  'peer-mismatch',
  'unsolicited-plain',
  'fragment',
  'no-sa',
];
export const PUNT_REASONS: readonly PuntReason[] = ['search', 'miss', 'pending', 'unknown-spi', 'too-big'];
export const COUNTER_NAMES: readonly string[] = [
  ...DROP_REASONS.map((r) => `drop.${r}`),
  ...PUNT_REASONS.map((r) => `punt.${r}`),
  'encrypt.packets',
  'encrypt.bytes',
  'decrypt.packets',
  'decrypt.bytes',
  'plain.packets',
  'plain.bytes',
];
const FORWARD_PLAIN = 100;
const FORWARD_ENCRYPT = 101;
const FORWARD_DECRYPT = 102;
const ACTIONS: readonly PathAction[] = ['encrypt', 'plain', 'discard', 'pending'];

export function sideCode(side: Side): 0 | 1 {
  return side === 'inside' ? 0 : 1;
}

/** Maps an addon verdict code to a drop or punt verdict. */
export function codeVerdict(code: number): Verdict {
  if (code < DROP_REASONS.length) return { kind: 'drop', reason: DROP_REASONS[code] };
  const p = PUNT_REASONS[code - DROP_REASONS.length];
  if (p === undefined) throw new Error(`unknown native verdict code ${code}`);
  return { kind: 'punt', reason: p };
}

export interface PathEntryStats extends PathStats {
  local: Ip;
  remote: Ip;
  action: PathAction;
}

export class NativeExecutor implements Executor {
  private constructor(
    readonly binding: NativeBinding,
    /** The addon's executor; a NativeDatapath opened on it runs packets through the same state. */
    readonly handle: ExecutorHandle,
  ) {}

  /** A new native executor, or why the addon is unavailable. */
  static create(): Result<NativeExecutor> {
    const b = loadNative();
    if (!b.ok) return b;
    return ok(new NativeExecutor(b.value, b.value.executorNew()));
  }

  installPath(rule: PathRule): void {
    const [family, local, remote] = addrs(rule.local, rule.remote);
    const mtu = rule.mtu === undefined ? -1 : rule.mtu;
    this.binding.installPath(this.handle, family, local, remote, ACTIONS.indexOf(rule.action), rule.vpnId ?? 0, rule.peer, mtu);
  }

  removePath(local: Ip, remote: Ip): void {
    const [family, l, r] = addrs(local, remote);
    this.binding.removePath(this.handle, family, l, r);
  }

  installTxSa(tx: TxSa): void {
    this.binding.installTxSa(this.handle, tx.spi, tx.vpnId, tx.epoch, tx.key, tx.salt, tx.nextSeq);
  }

  removeTxSa(vpnId: VpnId): void {
    this.binding.removeTxSa(this.handle, vpnId);
  }

  installRxSa(rx: RxSa): void {
    this.binding.installRxSa(this.handle, rx.spi, rx.vpnId, rx.epoch, rx.sender, rx.key, rx.salt);
  }

  removeRxSa(spi: Spi): void {
    this.binding.removeRxSa(this.handle, spi);
  }

  process(from: Side, packet: Uint8Array, now: number): Verdict {
    const r = this.binding.process(this.handle, sideCode(from), packet, now);
    if (typeof r === 'number') return codeVerdict(r);
    const [code, buf, vpnId, spi, seq, sender] = r;
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    if (code === FORWARD_PLAIN) return { kind: 'forward', bytes, note: { op: 'plain' } };
    if (code === FORWARD_ENCRYPT) return { kind: 'forward', bytes, note: { op: 'encrypt', vpnId: vpnId!, spi: spi!, seq: seq! } };
    if (code === FORWARD_DECRYPT) {
      return { kind: 'forward', bytes, note: { op: 'decrypt', vpnId: vpnId!, spi: spi!, seq: seq!, sender: sender! } };
    }
    throw new Error(`unknown native verdict code ${code}`);
  }

  pathStats(local: Ip, remote: Ip): PathStats | undefined {
    const [family, l, r] = addrs(local, remote);
    const s = this.binding.pathStats(this.handle, family, l, r);
    return s ? { packets: s[0], bytes: s[1], lastUsed: s[2] } : undefined;
  }

  /** Every rule with its counters, in one call (for aging many paths at once). */
  allPathStats(): PathEntryStats[] {
    const [keys, stats] = this.binding.allPathStats(this.handle);
    const out: PathEntryStats[] = [];
    for (let i = 0; i < stats.length / 4; i++) {
      const family = keys[i * 33] === 6 ? 6 : 4;
      out.push({
        local: ipFromBytes(keys, i * 33 + 1, family),
        remote: ipFromBytes(keys, i * 33 + 17, family),
        action: ACTIONS[stats[i * 4]],
        packets: stats[i * 4 + 1],
        bytes: stats[i * 4 + 2],
        lastUsed: stats[i * 4 + 3],
      });
    }
    return out;
  }

  /** Counters that have moved, by name (as the reference executor reports them). */
  counters(): Record<string, number> {
    const c = this.binding.counters(this.handle);
    const out: Record<string, number> = {};
    COUNTER_NAMES.forEach((name, i) => {
      if (c[i] !== 0) out[name] = c[i];
    });
    return out;
  }

  /** The next sequence number the VPN's sending SA will use (0n when there is no sending SA). */
  txNextSeq(vpnId: VpnId): bigint {
    return this.binding.txNextSeq(this.handle, vpnId);
  }
}

function addrs(local: Ip, remote: Ip): [4 | 6, Uint8Array, Uint8Array] {
  const family = ipFamily(local);
  if (ipFamily(remote) !== family) throw new RangeError(`path ${local} -> ${remote} mixes address families`);
  return [family, ipToBytes(local), ipToBytes(remote)];
}

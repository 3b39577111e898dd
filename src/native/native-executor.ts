// The native executor: the same semantics as the TypeScript reference (docs/executor.md,
// src/core/ts-executor.ts), carried out by the C addon so that the TUN datapath's reader threads
// share its state (rules, SAs, sequence numbers, replay windows, counters). process() here is for
// the shared vectors and for packets the core injects; the fast path never enters JavaScript.
import { ipFamily, ipFromBytes, ipToBytes, type Ip } from '../base/addr.js';
import {
  TUNNEL_SEQ_MAX,
  TUNNEL_SOFT_SEQ_DEFAULT,
  type AddressRange,
  type DropReason,
  type PathAction,
  type PathRule,
  type PathStats,
  type PuntReason,
  type RxSa,
  type Side,
  type TunnelExecutor,
  type TunnelRxSa,
  type TunnelRxStats,
  type TunnelSaStats,
  type TunnelTxSa,
  type TunnelTxStats,
  type TxSa,
  type Verdict,
} from '../core/executor.js';
import { err, ok, type Result } from '../base/result.js';
import type { Spi, VpnId } from '../core/types.js';
import { loadNative, type ExecutorHandle, type NativeBinding, type TunnelSaArgs } from './binding.js';

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
  'selector',
  'tunnel-keepalive',
  'tunnel-seq-exhausted',
  'tunnel-dummy',
  'bad-ipv6',
];
export const PUNT_REASONS: readonly PuntReason[] = ['search', 'miss', 'pending', 'unknown-spi', 'too-big', 'ike'];
export const COUNTER_NAMES: readonly string[] = [
  ...DROP_REASONS.map((r) => `drop.${r}`),
  ...PUNT_REASONS.map((r) => `punt.${r}`),
  'encrypt.packets',
  'encrypt.bytes',
  'decrypt.packets',
  'decrypt.bytes',
  'plain.packets',
  'plain.bytes',
  'tunnel-encrypt.packets',
  'tunnel-encrypt.bytes',
  'tunnel-decrypt.packets',
  'tunnel-decrypt.bytes',
  'encrypt.fragments',
  'pass.packets',
  'pass.bytes',
];
const FORWARD_PLAIN = 100;
const FORWARD_ENCRYPT = 101;
const FORWARD_DECRYPT = 102;
const FORWARD_TUNNEL_ENCRYPT = 103;
const FORWARD_TUNNEL_DECRYPT = 104;
const FORWARD_PASS = 105;
const ACTIONS: readonly PathAction[] = ['encrypt', 'plain', 'discard', 'pending'];
/** A traffic selector for the addon: family, start (16 bytes), end (16 bytes); IPv4 in the first 4. */
const RANGE_BYTES = 33;

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

export class NativeExecutor implements TunnelExecutor {
  private constructor(
    readonly binding: NativeBinding,
    /** The addon's executor; a NativeDatapath opened on it runs packets through the same state. */
    readonly handle: ExecutorHandle,
  ) {}

  /** A new native executor, or why the addon is unavailable. */
  static create(): Result<NativeExecutor> {
    const b = loadNative();
    if (!b.ok) return b;
    // Verdict codes are counter indexes: an addon built from other sources would mislabel every punt.
    if (b.value.counterCount !== COUNTER_NAMES.length) {
      return err(
        'native-unavailable',
        `the native addon has ${b.value.counterCount} counters, this code expects ${COUNTER_NAMES.length}: it was built from other sources; rebuild it with \`node scripts/build-native.mjs\``,
      );
    }
    return ok(new NativeExecutor(b.value, b.value.executorNew()));
  }

  installPath(rule: PathRule): void {
    const [family, local, remote] = addrs(rule.local, rule.remote);
    const mtu = rule.mtu === undefined ? -1 : rule.mtu;
    const tunnel = rule.tunnel === undefined ? -1 : rule.tunnel.spi;
    this.binding.installPath(
      this.handle,
      family,
      local,
      remote,
      ACTIONS.indexOf(rule.action),
      rule.vpnId ?? 0,
      rule.peer,
      mtu,
      tunnel,
    );
  }

  removePath(local: Ip, remote: Ip): void {
    const [family, l, r] = addrs(local, remote);
    this.binding.removePath(this.handle, family, l, r);
  }

  installTxSa(tx: TxSa): void {
    this.binding.installTxSa(
      this.handle,
      tx.spi,
      tx.vpnId,
      tx.epoch,
      tx.key,
      tx.salt,
      tx.nextSeq,
      tx.encapsulation === 'esp',
    );
  }

  removeTxSa(vpnId: VpnId): void {
    this.binding.removeTxSa(this.handle, vpnId);
  }

  installRxSa(rx: RxSa): void {
    this.binding.installRxSa(this.handle, rx.spi, rx.vpnId, rx.epoch, rx.sender, rx.key, rx.salt, rx.floor ?? 0n);
  }

  removeRxSa(spi: Spi): void {
    this.binding.removeRxSa(this.handle, spi);
  }

  process(from: Side, packet: Uint8Array, now: number, recheck = false): Verdict {
    return resultVerdict(this.binding.process(this.handle, sideCode(from), packet, now, recheck));
  }

  installTunnelTx(sa: TunnelTxSa): void {
    this.binding.installTunnelTx(...this.tunnelSaArgs(sa), sa.nextSeq ?? 1, sa.softSeqLimit ?? TUNNEL_SOFT_SEQ_DEFAULT);
  }

  removeTunnelTx(spi: Spi): void {
    this.binding.removeTunnelTx(this.handle, spi);
  }

  installTunnelRx(sa: TunnelRxSa): void {
    const all = [...sa.localSelectors, ...sa.remoteSelectors];
    const ranges = new Uint8Array(all.length * RANGE_BYTES);
    all.forEach((r: AddressRange, i) => {
      const family = ipFamily(r.start);
      if (ipFamily(r.end) !== family) throw new RangeError(`selector ${r.start}-${r.end} mixes address families`);
      ranges[i * RANGE_BYTES] = family;
      ranges.set(ipToBytes(r.start), i * RANGE_BYTES + 1);
      ranges.set(ipToBytes(r.end), i * RANGE_BYTES + 17);
    });
    this.binding.installTunnelRx(...this.tunnelSaArgs(sa), ranges, sa.localSelectors.length, sa.replayWindow ?? 1024);
  }

  private tunnelSaArgs(sa: TunnelTxSa | TunnelRxSa): TunnelSaArgs {
    const [local, remote] = outerAddrs(sa.localAddr, sa.remoteAddr);
    return [this.handle, sa.spi, sa.vpnId, sa.peer, sa.key, sa.salt, local, sa.localPort, remote, sa.remotePort];
  }

  removeTunnelRx(spi: Spi): void {
    this.binding.removeTunnelRx(this.handle, spi);
  }

  processUdp(src: Ip, srcPort: number, payload: Uint8Array, now: number): Verdict {
    return resultVerdict(this.binding.processUdp(this.handle, ipToBytes(src), srcPort, payload, now));
  }

  tunnelTxStats(spi: Spi): TunnelTxStats | undefined {
    const r = this.binding.tunnelTxStats(this.handle, spi);
    if (!r) return undefined;
    const [s, peer] = r;
    return {
      ...saStats(spi, s, peer),
      nextSeq: s[4],
      rekeyNeeded: s[4] >= s[5],
      exhausted: s[4] > TUNNEL_SEQ_MAX,
    };
  }

  tunnelRxStats(spi: Spi): TunnelRxStats | undefined {
    const r = this.binding.tunnelRxStats(this.handle, spi);
    if (!r) return undefined;
    const [s, peer, last] = r;
    const out: TunnelRxStats = {
      ...saStats(spi, s, peer),
      highestSeq: s[4],
      replayDrops: s[5],
      authFailures: s[6],
      selectorDrops: s[7],
    };
    if (s[8] !== 0) out.lastSource = { addr: ipFromBytes(last, 0, s[8] === 6 ? 6 : 4), port: s[9] };
    return out;
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

function resultVerdict(r: number | [number, Uint8Array, number?, number?, bigint?, string?, number?]): Verdict {
  if (typeof r === 'number') return codeVerdict(r);
  const [code, buf, vpnId, spi, seq, sender, count = 1] = r;
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (code === FORWARD_PLAIN) return { kind: 'forward', bytes, note: { op: 'plain' } };
  if (code === FORWARD_PASS) return { kind: 'forward', bytes, note: { op: 'pass' } };
  if (code === FORWARD_ENCRYPT) {
    const note = { op: 'encrypt' as const, vpnId: vpnId!, spi: spi!, seq: seq! };
    if (count === 1) return { kind: 'forward', bytes, note };
    // Fragmented before encryption: `count` IPv4 packets back to back.
    const packets: Uint8Array[] = [];
    for (let at = 0; packets.length < count;) {
      const n = (bytes[at + 2] << 8) | bytes[at + 3];
      packets.push(bytes.subarray(at, at + n));
      at += n;
    }
    return { kind: 'forward', bytes: packets[0], note, more: packets.slice(1) };
  }
  if (code === FORWARD_DECRYPT) {
    return { kind: 'forward', bytes, note: { op: 'decrypt', vpnId: vpnId!, spi: spi!, seq: seq!, sender: sender! } };
  }
  if (code === FORWARD_TUNNEL_ENCRYPT || code === FORWARD_TUNNEL_DECRYPT) {
    const op = code === FORWARD_TUNNEL_ENCRYPT ? 'tunnel-encrypt' : 'tunnel-decrypt';
    return { kind: 'forward', bytes, note: { op, vpnId: vpnId!, peer: sender!, spi: spi!, seq: Number(seq!) } };
  }
  throw new Error(`unknown native verdict code ${code}`);
}

/** What the addon's tunnelTxStats and tunnelRxStats both report first (s[0..3]). */
function saStats(spi: Spi, s: Float64Array, peer: string): TunnelSaStats {
  return { spi, vpnId: s[0], peer, packets: s[1], bytes: s[2], lastUsed: s[3] };
}

/** A tunnel SA's outer addresses: one family, IPv4 or IPv6. */
function outerAddrs(local: Ip, remote: Ip): [Uint8Array, Uint8Array] {
  const [, l, r] = addrs(local, remote);
  return [l, r];
}

function addrs(local: Ip, remote: Ip): [4 | 6, Uint8Array, Uint8Array] {
  const family = ipFamily(local);
  if (ipFamily(remote) !== family) throw new RangeError(`path ${local} -> ${remote} mixes address families`);
  return [family, ipToBytes(local), ipToBytes(remote)];
}

// The executor carries out what the core installed: per path (local terminal, remote terminal)
// encrypt with a VPN's SA, relay plain, or drop; per SPI decrypt with anti-replay. Anything that
// needs a decision (key-search messages, misses, unknown SPIs) is punted to the core.
//
// Two implementations pass the same vectors: the TypeScript reference (src/core/ts-executor.ts,
// used by the simulator) and the native addon (native/, used by the gateway's fast path).
import type { Ip } from './addr.js';
import type { Epoch, GatewayId, Spi, VpnId } from './types.js';

/** Which side of the gateway a packet came from: inside = the terminals' LANs, outside = the WAN. */
export type Side = 'inside' | 'outside';

export type PathAction = 'encrypt' | 'plain' | 'discard' | 'pending';

/** A key-table entry as the executor sees it. */
export interface PathRule {
  local: Ip;
  remote: Ip;
  action: PathAction;
  /** encrypt: the VPN whose current sending SA encrypts outbound packets. */
  vpnId?: VpnId;
  /** encrypt: the peer gateway; inbound ESP must come from this sender under vpnId. */
  peer?: GatewayId;
  /**
   * Largest IP packet (bytes) this gateway may emit toward the remote after its own encryption,
   * accounting for the layers applied further out (path MTU strategy). Outbound packets with DF
   * that would exceed it are punted as 'too-big'; TCP SYNs get their MSS clamped to fit.
   */
  mtu?: number;
}

/** An outbound (sending) SA: this gateway's own derived key for one VPN and epoch. */
export interface TxSa {
  spi: Spi;
  vpnId: VpnId;
  epoch: Epoch;
  /** AES-256-GCM key, 32 bytes. */
  key: Uint8Array;
  /** 4-byte GCM salt (RFC 4106 nonce = salt || 8-byte IV). */
  salt: Uint8Array;
  /** Next 64-bit sequence number to send; the IV carries it whole. Starts at 1. */
  nextSeq: bigint;
}

/** An inbound SA: a peer's sending key for one VPN and epoch, with an anti-replay window. */
export interface RxSa {
  spi: Spi;
  vpnId: VpnId;
  epoch: Epoch;
  sender: GatewayId;
  key: Uint8Array;
  salt: Uint8Array;
}

export type ForwardNote =
  | { op: 'encrypt'; vpnId: VpnId; spi: Spi; seq: bigint }
  | { op: 'decrypt'; vpnId: VpnId; spi: Spi; seq: bigint; sender: GatewayId }
  | { op: 'plain' };

export type PuntReason =
  /** ICMP echo request/reply carrying the kasane key-search payload. */
  | 'search'
  /** No key-table entry for the path. */
  | 'miss'
  /** The entry is pending (a search is under way): the core buffers the packet. */
  | 'pending'
  /** Inbound ESP with no key-table entry, or an SPI the executor does not hold. */
  | 'unknown-spi'
  /** Outbound packet with DF set that would not fit the path MTU after encryption. */
  | 'too-big';

export type DropReason =
  | 'malformed'
  | 'discard'
  | 'replay'
  | 'auth-failed'
  | 'vpn-mismatch'
  | 'peer-mismatch'
  | 'unsolicited-plain'
  | 'fragment'
  | 'no-sa';

export type Verdict =
  | { kind: 'forward'; bytes: Uint8Array; note: ForwardNote }
  | { kind: 'drop'; reason: DropReason }
  | { kind: 'punt'; reason: PuntReason };

export interface PathStats {
  packets: number;
  bytes: number;
  /** ms timestamp of the last packet that matched the rule (0 if none yet). */
  lastUsed: number;
}

export interface Executor {
  installPath(rule: PathRule): void;
  removePath(local: Ip, remote: Ip): void;
  /** Installs the sending SA for tx.vpnId; it replaces the previous sending SA of that VPN. */
  installTxSa(tx: TxSa): void;
  removeTxSa(vpnId: VpnId): void;
  installRxSa(rx: RxSa): void;
  removeRxSa(spi: Spi): void;
  /** One packet from one side. `now` is the injected clock in ms. */
  process(from: Side, packet: Uint8Array, now: number): Verdict;
  pathStats(local: Ip, remote: Ip): PathStats | undefined;
  /** The next sequence number the sending SA of a VPN will use (for persisting a high-water mark). */
  txNextSeq(vpnId: VpnId): bigint | undefined;
  /** Drop and punt counters by reason, plus packets/bytes encrypted and decrypted. */
  counters(): Record<string, number>;
}

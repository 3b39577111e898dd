// The executor carries out what the core installed: per path (local terminal, remote terminal)
// encrypt with a VPN's SA, relay plain, or drop; per SPI decrypt with anti-replay. Anything that
// needs a decision (key-search messages, misses, unknown SPIs) is punted to the core.
//
// Two implementations pass the same vectors: the TypeScript reference (src/core/ts-executor.ts,
// used by the simulator) and the native addon (native/, used by the gateway's fast path).
import type { Ip } from '../base/addr.js';
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
  /**
   * encrypt, tunnel mode (pairwise VPNs' IKE Child SAs): outbound packets are encapsulated with the
   * tunnel sending SA of this SPI (ESP in UDP, RFC 3948) instead of the VPN's group sending SA.
   * Without it, `encrypt` is the group (bump-in-the-wire) format.
   */
  tunnel?: { spi: Spi };
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
  /**
   * How this VPN's ESP leaves: 'udp' (the default) puts a UDP header (port 4500 to 4500,
   * RFC 3948) between the IP header and ESP, so the kernel can carry a run of them as one UDP GSO
   * super-packet; 'esp' is raw ESP (IP protocol 50). Receivers accept both (docs/executor.md).
   */
  encapsulation?: GroupEncapsulation;
}

export type GroupEncapsulation = 'udp' | 'esp';

/** An inbound SA: a peer's sending key for one VPN and epoch, with an anti-replay window. */
export interface RxSa {
  spi: Spi;
  vpnId: VpnId;
  epoch: Epoch;
  sender: GatewayId;
  key: Uint8Array;
  salt: Uint8Array;
  /**
   * Sequence numbers below it count as already received (the window starts at floor − 1): a
   * restarted receiver installs an SA only with the floor it learned from the sender
   * (docs/protocol.md §3.2). On a reinstall it only ever raises the kept window. Default: none.
   */
  floor?: bigint;
}

export type ForwardNote =
  | { op: 'encrypt'; vpnId: VpnId; spi: Spi; seq: bigint }
  | { op: 'decrypt'; vpnId: VpnId; spi: Spi; seq: bigint; sender: GatewayId }
  | { op: 'plain' }
  /**
   * IPv6 the link needs (docs/protocol.md §2.8: link-local, multicast, the unspecified source, ND,
   * RA, MLD and other link-scoped ICMPv6): `bytes` is the packet as it came, never searched,
   * encrypted or counted against a path.
   */
  | { op: 'pass' }
  /** Tunnel mode: `bytes` is the outer IPv4 or IPv6 / UDP / ESP packet, to be sent from localAddr:localPort. */
  | { op: 'tunnel-encrypt'; vpnId: VpnId; peer: GatewayId; spi: Spi; seq: number }
  /** Tunnel mode: `bytes` is the inner IPv4 or IPv6 packet, for the inside. */
  | { op: 'tunnel-decrypt'; vpnId: VpnId; peer: GatewayId; spi: Spi; seq: number };

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
  | 'too-big'
  /** Tunnel port datagram behind the non-ESP marker (4 zero bytes): an IKE message (RFC 3948 §2.2). */
  | 'ike';

export type DropReason =
  | 'malformed'
  /** IPv6 whose fixed header or extension-header chain does not hold (docs/protocol.md §2.8). */
  | 'bad-ipv6'
  | 'discard'
  | 'replay'
  | 'auth-failed'
  | 'vpn-mismatch'
  | 'peer-mismatch'
  | 'unsolicited-plain'
  | 'fragment'
  | 'no-sa'
  /** Tunnel mode: the decrypted packet is outside the SA's traffic selectors. */
  | 'selector'
  /** Tunnel port: a NAT-keepalive (one 0xFF byte, RFC 3948 §2.3). Counted, never answered. */
  | 'tunnel-keepalive'
  /** Tunnel mode: the sending SA used its last 32-bit sequence number; it must be rekeyed. */
  | 'tunnel-seq-exhausted'
  /** Tunnel mode: an authenticated dummy packet (next header 59, RFC 4303 §2.6), discarded. */
  | 'tunnel-dummy'
  /** IPv6: a malformed fixed header or extension-header chain (issue 14, V6 decisions). */
  | 'bad-ipv6';

export type Verdict =
  /**
   * `more`: the packets after `bytes` when one packet became several (group encryption of a packet
   * larger than the path without DF: each fragment in its own ESP packet, sequence numbers from
   * note.seq on). Whoever sends a forward verdict sends all of them, in order.
   */
  | { kind: 'forward'; bytes: Uint8Array; note: ForwardNote; more?: Uint8Array[] }
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
  /**
   * One packet from one side. `now` is the injected clock in ms. `recheck`: this packet was punted
   * already (by the datapath's executor, or by an earlier call of the core) and its punt counted;
   * the core runs it again because the table may have changed since. A punt verdict now is not
   * counted a second time (one packet, one count); forwards and drops are counted as usual.
   */
  process(from: Side, packet: Uint8Array, now: number, recheck?: boolean): Verdict;
  pathStats(local: Ip, remote: Ip): PathStats | undefined;
  /** The next sequence number the sending SA of a VPN will use (for persisting a high-water mark). */
  txNextSeq(vpnId: VpnId): bigint | undefined;
  /** Drop and punt counters by reason, plus packets/bytes encrypted and decrypted. */
  counters(): Record<string, number>;
}

/** The UDP port of group ESP in UDP, both ends (RFC 3948's NAT-T port). */
export const GROUP_UDP_PORT = 4500;
/**
 * The anti-replay window of a group receiving SA, in packets. Wide because several reader threads
 * of one gateway seal with the same SA, and several queues of the receiving one open it, each at
 * its own pace (docs/executor.md, "Receiving SAs"): a queue that falls behind the others must not
 * see its packets refused as old.
 */
export const GROUP_REPLAY_WINDOW = 32768;
/** The largest anti-replay window of a tunnel-mode (IKE Child SA) receiving SA, in packets. */
export const TUNNEL_REPLAY_WINDOW_MAX = 4096;
/** Bytes the UDP encapsulation adds in front of group ESP. */
export const GROUP_UDP_HEADER = 8;
/** Largest growth of a packet in the transport form of group ESP in UDP: UDP (8) + ESP_OVERHEAD_MAX (37). */
export const GROUP_OVERHEAD_MAX = 45;
/**
 * Largest growth of a packet in the carried form of group ESP (no DF, or a fragment): the outer
 * IPv4 header (20) and UDP header (8) in front of the whole inner packet, plus ESP_OVERHEAD_MAX (37).
 * Raw ESP ('esp' encapsulation) grows by 8 bytes less in both forms.
 */
export const CARRIED_OVERHEAD_MAX = 65;
/**
 * Largest growth of an IPv6 packet in the carried form (next header 41 or 4): a copy of the fixed
 * header (40) and UDP (8) in front of the whole packet, plus ESP_OVERHEAD_MAX (37). The transport
 * form of IPv6 grows by GROUP_OVERHEAD_MAX, as IPv4's does.
 */
export const CARRIED6_OVERHEAD_MAX = 85;
/** A packet without DF is fragmented into at most this many ESP packets; beyond, it is punted 'too-big'. */
export const MAX_FRAGMENTS = 64;

// ---- Tunnel mode: the data plane of pairwise VPNs' IKE Child SAs (docs/executor.md) ----------

/**
 * Largest growth of an IPv4 packet in tunnel mode: outer IPv4 (20) + UDP (8) + ESP header (8) +
 * IV (8) + padding (≤ 3) + pad length and next header (2) + ICV (16).
 */
export const UDP_ESP_TUNNEL_OVERHEAD_MAX = 65;
/** The same with an outer IPv6 header (40 instead of 20): the tunnel to a peer's IPv6 address. */
export const UDP_ESP_TUNNEL6_OVERHEAD_MAX = 85;
/** The IKE/ESP port of RFC 3948. */
export const TUNNEL_PORT = 4500;
/** Sending SAs report `rekeyNeeded` from this sequence number on unless they say otherwise. */
export const TUNNEL_SOFT_SEQ_DEFAULT = 0xf0000000;
/** The last sequence number a sending SA may use (32-bit sequence numbers, no ESN). */
export const TUNNEL_SEQ_MAX = 0xffffffff;

/**
 * An inclusive address range, both ends of one family (an IKEv2 traffic selector's addresses,
 * RFC 7296 §3.13.1: TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE).
 */
export interface AddressRange {
  start: Ip;
  end: Ip;
}

/** What both halves of an IKE Child SA are installed with: ESP in UDP, tunnel mode, AES-GCM with a 16-byte ICV. */
export interface TunnelSa {
  /**
   * The SPI of the packets this half carries: for the sending half the peer's inbound SPI (what it chose; path
   * rules name it in `tunnel.spi`), for the receiving half ours (what this gateway chose).
   */
  spi: Spi;
  vpnId: VpnId;
  peer: GatewayId;
  /** AES-GCM key, 16 or 32 bytes (AES-128 or AES-256), from the Child SA's KEYMAT. */
  key: Uint8Array;
  /** 4-byte salt, the KEYMAT bytes that follow the key (RFC 4106 §8.1). */
  salt: Uint8Array;
  /** Outer source: this gateway's outside address and port (4500). */
  localAddr: Ip;
  localPort: number;
  /**
   * Outer destination: the peer's address and port (4500, or the port its NAT mapped). The receiving half still
   * counts datagrams from elsewhere (NAT rebinding) and shows their source in lastSource.
   */
  remoteAddr: Ip;
  remotePort: number;
}

/** The sending half of an IKE Child SA. */
export interface TunnelTxSa extends TunnelSa {
  /** First sequence number to send, 1..2^32-1 (default 1). A reinstall never moves it back. */
  nextSeq?: number;
  /** From this sequence number on the SA reports rekeyNeeded (default TUNNEL_SOFT_SEQ_DEFAULT). */
  softSeqLimit?: number;
}

/** The receiving half of an IKE Child SA. */
export interface TunnelRxSa extends TunnelSa {
  /** Traffic selectors: the inner destination must be in one of `local`, the inner source in one of `remote`. */
  localSelectors: AddressRange[];
  remoteSelectors: AddressRange[];
  /** Anti-replay window in packets: a multiple of 32 in 64..TUNNEL_REPLAY_WINDOW_MAX (4096; default 1024). */
  replayWindow?: number;
}

/** Per-SA counters, as path rules have them (for `gateway status` and aging). */
export interface TunnelSaStats {
  spi: Spi;
  vpnId: VpnId;
  peer: GatewayId;
  /** Packets and inner-packet bytes protected (tx) or accepted (rx). */
  packets: number;
  bytes: number;
  /** ms of the last packet (0: none yet). */
  lastUsed: number;
}

export interface TunnelTxStats extends TunnelSaStats {
  /** The next sequence number; 2^32 once the last one was used. */
  nextSeq: number;
  /** nextSeq reached softSeqLimit: IKE should rekey the Child SA now. */
  rekeyNeeded: boolean;
  /** No sequence number is left: packets are dropped ('tunnel-seq-exhausted'). */
  exhausted: boolean;
}

export interface TunnelRxStats extends TunnelSaStats {
  /** Highest authenticated sequence number (0: none yet). */
  highestSeq: number;
  replayDrops: number;
  authFailures: number;
  selectorDrops: number;
  /** Source of the last authenticated datagram: differs from remoteAddr/remotePort when a NAT remapped the peer. */
  lastSource?: { addr: Ip; port: number };
}

/**
 * An executor that also carries the tunnel-mode data plane. Additive to Executor: group-mode
 * behaviour is unchanged; packets only meet tunnel state through rules with `tunnel` and
 * through processUdp().
 */
export interface TunnelExecutor extends Executor {
  /**
   * Installs (or updates: ports, addresses, soft limit; the sequence number never goes back) a sending SA, keyed by
   * SPI.
   */
  installTunnelTx(sa: TunnelTxSa): void;
  removeTunnelTx(spi: Spi): void;
  /** Installs a receiving SA keyed by SPI; a reinstall keeps its replay window and counters. */
  installTunnelRx(sa: TunnelRxSa): void;
  removeTunnelRx(spi: Spi): void;
  /**
   * One UDP datagram that arrived on the tunnel port, from src:srcPort (`payload` = UDP payload).
   * ESP: forward 'tunnel-decrypt' (bytes = the inner packet, for the inside) or a drop/punt;
   * the non-ESP marker: punt 'ike'; a NAT-keepalive: drop 'tunnel-keepalive'.
   */
  processUdp(src: Ip, srcPort: number, payload: Uint8Array, now: number): Verdict;
  tunnelTxStats(spi: Spi): TunnelTxStats | undefined;
  tunnelRxStats(spi: Spi): TunnelRxStats | undefined;
}

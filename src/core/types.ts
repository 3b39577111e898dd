// The vocabulary shared by the core, the authority and the gateway (see docs/glossary in
// docs/protocol.md). These are plain data: the authority produces them, the gateway consumes them.
import type { Ip, Prefix } from '../base/addr.js';

/** VPN identifier (paper: VPN ID). Unsigned 32-bit, 1:1 with the VPN's group key. 0 is reserved. */
export type VpnId = number;
/** Key epoch of a VPN's group key. Unsigned 32-bit, increases by one at every rotation. */
export type Epoch = number;
/** ESP Security Parameter Index. Unsigned 32-bit; 0..255 are reserved by RFC 4303. */
export type Spi = number;
/** A gateway's name, unique within its authority: 1..63 bytes of UTF-8, no control characters. */
export type GatewayId = string;

export type VpnMode = 'group' | 'pairwise';

/** One epoch of a group VPN's key, as delivered (decrypted) to a member gateway. */
export interface VpnKeyEpoch {
  epoch: Epoch;
  /** 32 bytes from a CSPRNG, made by the authority. */
  key: Uint8Array;
  /** ms since the Unix epoch: senders start using this epoch at this time. */
  activeFrom: number;
  /** ms since the Unix epoch: receivers stop accepting this epoch after this time. */
  expiresAt: number;
}

/** One member gateway of a VPN and the terminals it puts in that VPN (seed 000 Figure 2(3)). */
export interface VpnMember {
  gateway: GatewayId;
  /** The gateway's outside address. */
  address: Ip;
  /** The terminal prefixes this gateway puts into the VPN. */
  prefixes: Prefix[];
  /** SPI this member sends with, per key epoch (assigned by the authority per VPN, sender, epoch). */
  spis: { epoch: Epoch; spi: Spi }[];
  /** Pairwise VPNs, other members: their gateway certificate (DER) as our authority verified it (pinned in IKE). */
  certificate?: Uint8Array;
  /** Pairwise VPNs, other members: the permit (DER) we present to this member, issued by its authority. */
  permit?: Uint8Array;
  permitNotAfter?: number;
}

/** A VPN as one member gateway sees it. */
export interface VpnView {
  id: VpnId;
  name: string;
  mode: VpnMode;
  /** Group mode: the key epochs the gateway currently holds (current and overlapping ones). */
  epochs: VpnKeyEpoch[];
  members: VpnMember[];
}

/**
 * Everything a gateway's core needs from its authority: the VPNs the gateway belongs to (keys,
 * members, SPIs) and the directory of protected prefixes (every prefix any gateway of the
 * authority puts into any VPN), which prevents downgrade to plain when search entries are stripped.
 */
export interface AuthoritySnapshot {
  /** Monotonic version of the authority's configuration this snapshot reflects. */
  version: number;
  protectedPrefixes: Prefix[];
  vpns: VpnView[];
  /** Our own authority's attribute-authority certificate (DER): peers' permits must be signed by it. */
  attributeAuthority?: Uint8Array;
}

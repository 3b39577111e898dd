// What the IKEv2 engine needs from its gateway and what it gives back. The engine is pure: the
// gateway hands it datagrams with the clock, and sends, installs and logs what comes out.
import type { Prefix } from '../../base/addr.js';
import type { AuthSigner } from '../crypto/signature.js';
import type { AeadKey } from '../crypto/keys.js';

export interface Endpoint {
  address: string;
  port: number;
}

/** An endpoint as text: `192.0.2.1:500`, `[2001:db8::1]:500` (RFC 5952 §6). */
export function endpointText(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** This gateway: its certificate (DER) and a signer for its key (file keystore or PKCS#11 token). */
export interface LocalIdentity {
  certificate: Uint8Array;
  signer: AuthSigner;
  /**
   * This gateway's own authority's attribute-authority certificate (DER): a peer's permit must be
   * signed by it (seed 001: each side verifies with its OWN authority's key).
   */
  attributeAuthority: Uint8Array;
  /**
   * CA certificates (DER) named in our CERTREQ payloads (RFC 7296 §3.7: SHA-1 of each one's
   * SubjectPublicKeyInfo): our own authority's, which is where our peers' certificates are
   * verified from. Peers send their certificate either way; kasane always sends its own.
   */
  certificateAuthorities?: Uint8Array[];
}

/** A peer of a pairwise VPN, as this gateway's authority delivered it. */
export interface IkePeer {
  /** The peer's gateway id (qualified for foreign authorities). */
  id: string;
  vpnId: number;
  /** The group value permits must carry: the VPN's name. */
  vpnName: string;
  endpoint: Endpoint;
  /** The peer's certificate as the authority delivered it (pinned: byte-equal or refused). */
  certificate: Uint8Array;
  /** The permit this gateway presents to that peer (issued by the PEER's authority, held by our certificate). */
  permit: Uint8Array;
  /** Traffic selectors: our prefixes in the VPN, and the peer's. */
  localPrefixes: Prefix[];
  remotePrefixes: Prefix[];
}

/** A Child SA to install in the executor (tunnel mode, ESP in UDP). */
export interface ChildSaInstall {
  peer: string;
  vpnId: number;
  /** SPI and key material the peer sends with (we decrypt with them). */
  inbound: { spi: number; key: AeadKey };
  /** SPI and key material we send with. */
  outbound: { spi: number; key: AeadKey };
  local: Endpoint;
  remote: Endpoint;
  localPrefixes: Prefix[];
  remotePrefixes: Prefix[];
}

/**
 * A Child SA to take out of the executor (deleted, expired, rekeyed away, or its IKE SA died).
 * SPIs 0: no SA was ever installed (the attempt failed); only `last` matters then.
 */
export interface ChildSaRemove {
  peer: string;
  vpnId: number;
  inboundSpi: number;
  outboundSpi: number;
  /** No other Child SA with this peer for this VPN remains (the core's onChildSaDown). */
  last: boolean;
  reason: string;
}

/** One step the engine reports: for logs, metrics and tests. */
export interface IkeEvent {
  event:
    | 'ike-up'
    | 'ike-down'
    | 'ike-rekeyed'
    | 'child-up'
    | 'child-rekeyed'
    | 'child-down'
    | 'auth-failed'
    | 'failed'
    | 'dropped'
    | 'cookie-sent';
  peer?: string;
  vpnId?: number;
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface IkeOutput {
  /** Datagrams to send from our `localPort` (500, or 4500 with the non-ESP marker added by the edge). */
  send: { to: Endpoint; bytes: Buffer; localPort: number }[];
  /** Child SAs to install; each becomes the one the executor sends with for its (peer, VPN). */
  install: ChildSaInstall[];
  remove: ChildSaRemove[];
  events: IkeEvent[];
}

export const emptyOutput = (): IkeOutput => ({ send: [], install: [], remove: [], events: [] });

/** Timers and limits; every one has a default an operator may override. */
export interface IkeTimers {
  /** First retransmission after this many ms, doubling each time (RFC 7296 §2.4). */
  retransmitBase: number;
  /** Retransmissions before the peer is declared dead. */
  retransmitTries: number;
  /** Half-open responder SAs (IKE_SA_INIT answered, no IKE_AUTH) are forgotten after this. */
  halfOpenTimeout: number;
  /**
   * From this many half-open SAs on (responder SAs between IKE_SA_INIT and IKE_AUTH), a new IKE_SA_INIT must bring a
   * cookie (§2.6).
   */
  cookieThreshold: number;
  /**
   * At most this many half-open SAs exist; beyond, a request with a cookie replaces one made without (see half-open.ts)
   * or is dropped.
   */
  maxHalfOpen: number;
  /** At most this many from one source address (IPv6: one /64). */
  maxHalfOpenPerAddress: number;
  /** At most this many from one source prefix (IPv4 /24, IPv6 /48). */
  maxHalfOpenPerPrefix: number;
  /** Cookie secrets change this often (the previous one stays valid once). */
  cookieRotate: number;
  /** Child SA lifetime: rekeyed before it ends (the IKE SA initiator at 90 %, the responder at 95 %). */
  childLifetime: number;
  /** IKE SA lifetime: rekeyed with CREATE_CHILD_SA the same way. */
  ikeLifetime: number;
  /** An INFORMATIONAL liveness check after this long without an authenticated message from the peer. */
  dpdDelay: number;
  /** Bytes of an incomplete fragmented message one IKE SA may hold (RFC 7383 reassembly). */
  maxFragmentBytesPerSa: number;
  /** Bytes of incomplete fragmented messages all IKE SAs may hold together. */
  maxFragmentBytesTotal: number;
  /** Largest IP packet an IKE message may make; larger encrypted messages are fragmented (RFC 7383). */
  fragmentSize: number;
  /** The gateway with the higher address waits this long for the peer's IKE_SA_INIT before starting its own. */
  collisionDelay: number;
}

export const DEFAULT_IKE_TIMERS: IkeTimers = {
  retransmitBase: 500,
  retransmitTries: 5,
  halfOpenTimeout: 30_000,
  cookieThreshold: 64,
  maxHalfOpen: 4096,
  maxHalfOpenPerAddress: 16,
  maxHalfOpenPerPrefix: 64,
  cookieRotate: 300_000,
  childLifetime: 3_600_000,
  ikeLifetime: 4 * 3_600_000,
  dpdDelay: 30_000,
  fragmentSize: 1280,
  maxFragmentBytesPerSa: 64 * 1024,
  maxFragmentBytesTotal: 16 * 1024 * 1024,
  collisionDelay: 1000,
};

// What the IKEv2 engine needs from its gateway and what it gives back. The engine is pure: the
// gateway hands it datagrams with the clock, and sends, installs and logs what comes out.
import type { Prefix } from '../../core/addr.js';
import type { AuthSigner } from '../crypto/signature.js';
import type { AeadKey } from '../crypto/keys.js';

export interface Endpoint {
  address: string;
  port: number;
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

/** One step the engine reports: for logs, metrics and tests. */
export interface IkeEvent {
  event: 'ike-up' | 'child-up' | 'auth-failed' | 'failed' | 'dropped';
  peer?: string;
  vpnId?: number;
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface IkeOutput {
  send: { to: Endpoint; bytes: Buffer }[];
  install: ChildSaInstall[];
  events: IkeEvent[];
}

export const emptyOutput = (): IkeOutput => ({ send: [], install: [], events: [] });

// The JSON the authority's API sends and receives (see docs/openapi.yaml). Times are ms since the
// Unix epoch; binary values are base64; certificates and keys are PEM.
import type { PathView } from '../core/gateway-api.js';
import type { VpnMode } from '../core/types.js';

export interface ApiErrorBody {
  error: string;
  message: string;
}

export interface StatusView {
  authority: string;
  url: string;
  version: number;
  store: 'sqlite' | 'postgres';
  schemaVersion: number;
  caFingerprint: string;
  vpns: number;
  memberships: number;
  gateways: { pending: number; active: number; revoked: number };
  /** Gateways waiting on the change stream of this replica right now. */
  waitingGateways: number;
  /** The wake-up channel of this replica (absent when it is off). */
  push?: PushStatus;
  now: number;
  startedAt: number;
}

/** POST /v1/gateway/push: the key a gateway SUBSCRIBEs to the wake-up channel with. */
export interface PushOffer {
  /** The gateway's name, as the datagrams carry it. */
  gateway: string;
  /** The key's id: its issue time (s since the Unix epoch). */
  keyId: number;
  /** 32 bytes, base64. */
  key: string;
  /** Ask for a new key before this (ms since the Unix epoch). */
  expiresAt: number;
  /** The UDP port of the wake-up channel, on the host the gateway reached the API at. */
  port: number;
  /** SUBSCRIBE again this often (s): it keeps the subscription and NAT mappings alive. */
  refreshSeconds: number;
  /** The authority's clock (ms): SUBSCRIBE sequence numbers follow it. */
  now: number;
  /** The newest protocol version the authority speaks (absent: 1); 2 and 3 send answers in DELIVERs. */
  protocol?: number;
}

/** The wake-up channel's counters on one replica. */
export interface PushStatus {
  port: number;
  subscriptions: number;
  pendingWakes: number;
  /** Datagrams dropped, by reason (never answered). */
  drops: Record<string, number>;
  wakes: number;
  resends: number;
  acks: number;
  /** Answers sent in a DELIVER (no fetch needed). */
  delivers: number;
  /** Answers too large for a DELIVER: a WAKE instead. */
  tooLarge: number;
}

/** One `kasane authority serve` process over the authority's database (GET /v1/replicas). */
export interface ReplicaView {
  id: string;
  /** Its advertised URL. */
  url: string;
  host: string;
  pid: number;
  startedAt: number;
  /** Its last heartbeat (the database's clock). */
  lastSeen: number;
  /** Heard of within the last lease: running. */
  alive: boolean;
  /** Holds the jobs lease: runs the scheduled rotations, permit renewals and federation exchanges. */
  runsJobs: boolean;
  waitingGateways: number;
  /** The version it had seen at its last heartbeat. */
  version: number;
  /** The replica that answered. */
  self: boolean;
}

export interface EpochInfo {
  epoch: number;
  activeFrom: number;
  expiresAt: number;
  createdAt: number;
}

export interface MemberInfo {
  vpn: string;
  vpnId: number;
  gateway: string;
  gatewayStatus: 'pending' | 'active' | 'revoked';
  address: string;
  prefixes: string[];
  /** True when the gateway is active, i.e. it holds the VPN's keys and the other members list it. */
  effective: boolean;
}

export interface VpnInfo {
  id: number;
  name: string;
  mode: VpnMode;
  rotationPeriodMs: number;
  nextRotationAt: number | null;
  currentEpoch: number | null;
  members: number;
  createdAt: number;
}

export interface VpnDetail extends VpnInfo {
  epochs: EpochInfo[];
  memberList: MemberInfo[];
}

export interface CertificateInfo {
  serial: string;
  fingerprint: string;
  issuedAt: number;
  notAfter: number;
  method: 'bundle' | 'csr' | 'ike';
  revokedAt: number | null;
  revokeReason: string | null;
}

export interface GatewayInfo {
  name: string;
  address: string;
  status: 'pending' | 'active' | 'revoked';
  certificate: CertificateInfo | null;
  vpns: string[];
  createdAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
  revokeReason: string | null;
  /** Its last status report, summed up (null before the first). */
  lastReport: ReportSummary | null;
}

export interface EnrollTokenView {
  token: string;
  gateway: string;
  expiresAt: number;
  replace: boolean;
  /** Where and whom the enrolling gateway talks to. */
  authority: AuthorityIdentity;
}

export interface AuthorityIdentity {
  name: string;
  url: string;
  /** SHA-256 fingerprint of the root CA certificate (colon-separated hex). */
  caFingerprint: string;
}

export const BUNDLE_FORMAT = 'kasane-gateway-bundle/1';

/** What a gateway needs to run: its key and certificate, and how to reach and trust its authority. */
export interface GatewayBundle {
  format: typeof BUNDLE_FORMAT;
  gateway: { name: string; address: string };
  authority: AuthorityIdentity & { caCertificate: string };
  /** PKCS#8 PEM. Absent from what online enrollment returns: there the key never left the gateway. */
  privateKey?: string;
  certificate: string;
  /** Issuing CA then root CA, PEM. */
  chain: string[];
}

export interface EnrollRequest {
  token: string;
  /** PKCS#10 PEM. */
  csr: string;
}

export type EnrollResponse = Omit<GatewayBundle, 'privateKey'>;

export interface CaView {
  authority: string;
  rootCertificate: string;
  issuingCertificate: string;
  fingerprint: string;
}

/**
 * What a listing of the audit log can be narrowed to: the API's query and the store's filter alike (a type, not an
 * interface, so that it is also a record of query parameters).
 */
export type AuditCriteria = {
  vpn?: string;
  gateway?: string;
  /** Exact actor (`admin:alice`, `federation`, ...). */
  actor?: string;
  /** An action (`member.add`) or a family of actions (`member.`, ending in a dot). */
  action?: string;
  /** Times (ms since the epoch), inclusive. */
  from?: number;
  to?: number;
  /** 'desc': newest first. */
  order?: 'asc' | 'desc';
};

export interface AuditEntry {
  id: number;
  version: number;
  at: number;
  actor: string;
  action: string;
  vpn: string | null;
  gateway: string | null;
  detail: Record<string, unknown>;
}

export interface AdminTokenInfo {
  id: string;
  name: string;
  createdAt: number;
  revokedAt: number | null;
}

export interface DirectoryEntry {
  prefix: string;
  note: string;
  addedAt: number;
}

export interface DirectoryView {
  /** Prefixes put in the directory by hand. */
  entries: DirectoryEntry[];
  /** What gateways receive: every membership prefix and every entry, compacted. */
  protectedPrefixes: string[];
}

export const DELIVERY_FORMAT = 'kasane-delivery/1';

export interface DeliveredEpoch {
  epoch: number;
  activeFrom: number;
  expiresAt: number;
  /** HPKE encapsulated key, base64. */
  enc: string;
  /** HPKE ciphertext of the 32-byte group key, base64. */
  ct: string;
}

export interface DeliveredMember {
  gateway: string;
  address: string;
  prefixes: string[];
  spis: { epoch: number; spi: number }[];
  /** Pairwise VPNs, other members: their gateway certificate (base64 DER), verified by this authority. */
  certificate?: string;
  /**
   * Pairwise VPNs, other members: the permit (base64 DER) the receiving gateway presents to this one, issued by its
   * authority.
   */
  permit?: { der: string; notAfter: number };
}

export interface DeliveredVpn {
  id: number;
  name: string;
  mode: VpnMode;
  epochs: DeliveredEpoch[];
  members: DeliveredMember[];
}

/** Everything one gateway receives, keys sealed to it (see docs/authority.md, key delivery). */
export interface GatewayDelivery {
  format: typeof DELIVERY_FORMAT;
  authority: string;
  gateway: string;
  version: number;
  issuedAt: number;
  protectedPrefixes: string[];
  vpns: DeliveredVpn[];
  /**
   * The attribute authority (base64 DER) of the receiving gateway's own authority: peers' permits must be signed by it.
   */
  attributeAuthority?: string;
}

export interface ChangeEvent {
  version: number;
  at: number;
  action: string;
  vpn: string | null;
  gateway: string | null;
}

export interface GatewayChanges {
  /** The authority's version this answer reflects: pass it as `since` next time. */
  version: number;
  /** False when nothing this gateway receives changed after `since` (long poll timed out). */
  changed: boolean;
  /** True when `since` is ahead of the authority (it was restored or replaced): resynchronise. */
  reset: boolean;
  /** Present when changed: the complete current state for this gateway. */
  delivery?: GatewayDelivery;
  /** The changes after `since` that concern this gateway, oldest first. */
  events: ChangeEvent[];
  eventsTruncated: boolean;
}

export const REPORT_FORMAT = 'kasane-gateway-report/1';

/** One key-table path as a gateway reports it (times as ages, so the gateway's clock does not matter). */
export type ReportedPath = Omit<PathView, 'installedAt' | 'lastUsed' | 'expiresAt'> & { ageMs: number; idleMs: number };

export interface ReportedIkeSa {
  peer?: string;
  vpnId?: number;
  role: string;
  state: string;
  remote: string;
  ageMs: number;
  childSas: number;
}

/**
 * A gateway's status report (POST /v1/gateway/status, mutual TLS): its key table (the paths used
 * most recently, at most 256), IKE SAs, and every counter (search, drops by reason, datapath).
 */
export interface GatewayReport {
  format: typeof REPORT_FORMAT;
  /** The longest the gateway waits between two reports (ms): later than that it is offline. */
  intervalMs: number;
  /** How long the gateway process has run (ms). */
  uptimeMs: number;
  authorityVersion: number;
  vpns: { id: number; name: string; mode: string; epoch?: number }[];
  paths: ReportedPath[];
  /** Paths in the key table (paths may hold fewer). */
  pathsTotal: number;
  ike: ReportedIkeSa[];
  counters: Record<string, number>;
}

/** What the authority keeps of a gateway's last report, for GatewayInfo and `kasane gateway list`. */
export interface ReportSummary {
  receivedAt: number;
  /** Heard from within its promised interval (with a margin). */
  online: boolean;
  uptimeMs: number;
  paths: number;
  encrypting: number;
  /** Every packet the gateway did not forward, summed over the drop counters. */
  drops: number;
  searches: number;
}

/** GET /v1/gateways/{gateway}/status */
export interface GatewayStatusView {
  gateway: string;
  receivedAt: number;
  online: boolean;
  report: GatewayReport;
}

/** GET /v1/federation: peer authorities, shared VPNs with their foreign members, permits. */
export interface FederationView {
  peers: {
    name: string;
    url: string;
    addedAt: number;
    lastSyncAt: number | null;
    lastError: string | null;
    rootFingerprint: string;
  }[];
  shares: {
    vpn: string;
    vpnId: number;
    peer: string;
    foreignMembers: { gateway: string; address: string; prefixes: string[] }[];
    permitsIn: number;
    permitsOut: number;
  }[];
  /** Every permit: issued to a peer's gateway ('out'), received for ours ('in'), or local; with its end. */
  permits: {
    vpn: string;
    vpnId: number;
    peer: string;
    holder: string;
    direction: 'in' | 'out' | 'local';
    notAfter: number;
  }[];
  /** How long this authority's permits are valid; they are renewed when a third of it is left. */
  permitValidityMs: number;
}

/** What a signed-in console is told about its own session (GET /v1/session). */
export interface SessionView {
  actor: string;
  /** Send it back in the X-Kasane-CSRF header with every change. */
  csrfToken: string;
  createdAt: number;
  /** When the session ends unless used before (idle), and at the latest. */
  idleExpiresAt: number;
  expiresAt: number;
}

// The authority's storage interface. Two implementations: SQLite (embedded, the default) and
// PostgreSQL (shared by several authority replicas). Every change runs inside `write`, one
// transaction that either commits whole or leaves nothing; `read` sees one consistent snapshot.
import type { VpnMode } from '../../core/types.js';
import type { AuditCriteria } from '../wire.js';

export type GatewayStatus = 'pending' | 'active' | 'revoked';

export interface StateRow {
  authority: string;
  /** The configuration version: +1 per committed change. */
  version: number;
  nextSpi: number;
  /** The version at which the directory of protected prefixes last changed. */
  directoryVersion: number;
  /** The version of the last revocation: replicas rebuild their CRLs when it moves. */
  crlVersion: number;
  createdAt: number;
}

export interface VpnRow {
  id: number;
  name: string;
  mode: VpnMode;
  rotationPeriodMs: number;
  nextRotationAt: number | null;
  lastEpoch: number;
  changedVersion: number;
  createdAt: number;
}

export interface GatewayRow {
  name: string;
  address: string;
  status: GatewayStatus;
  certSerial: string | null;
  /** SubjectPublicKeyInfo DER of the current certificate's key. */
  publicKey: Uint8Array | null;
  /** The last version that changed what this gateway receives. */
  changedVersion: number;
  createdAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
  revokeReason: string | null;
  /** The certificate of the gateway's IKE identity when that key lives elsewhere (a PKCS#11 token). */
  ikeCertSerial?: string | null;
}

export interface CertificateRow {
  serial: string;
  gateway: string;
  der: Uint8Array;
  issuedAt: number;
  notAfter: number;
  method: 'bundle' | 'csr' | 'ike';
  revokedAt: number | null;
  revokeReason: string | null;
}

export interface MemberPrefixRow {
  vpnId: number;
  gateway: string;
  prefix: string;
  addedAt: number;
}

export interface DirectoryRow {
  prefix: string;
  note: string;
  addedAt: number;
}

export interface EpochRow {
  vpnId: number;
  epoch: number;
  wrappedKey: Uint8Array;
  activeFrom: number;
  expiresAt: number;
  createdAt: number;
}

export interface SealedKeyRow {
  vpnId: number;
  epoch: number;
  gateway: string;
  enc: Uint8Array;
  ct: Uint8Array;
}

export interface SpiRow {
  spi: number;
  vpnId: number;
  gateway: string;
  epoch: number;
}

export interface EnrollTokenRow {
  id: string;
  secretHash: string;
  gateway: string;
  replaceCert: boolean;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  createdBy: string;
}

export interface AdminTokenRow {
  id: string;
  name: string;
  secretHash: string;
  createdAt: number;
  revokedAt: number | null;
}

/** Who should hear about a change: nobody (admin-only state), the members of a VPN, or every gateway. */
export type AuditScope = 'none' | 'vpn' | 'gateway' | 'all';

export interface AuditRow {
  id: number;
  version: number;
  at: number;
  actor: string;
  action: string;
  vpnId: number | null;
  vpn: string | null;
  gateway: string | null;
  scope: AuditScope;
  detail: Record<string, unknown>;
}

export type NewAuditRow = Omit<AuditRow, 'id'>;

/** Which audit entries to list (every filter optional; `order` 'desc' = newest first). */
export interface AuditFilter extends AuditCriteria {
  afterId?: number;
  beforeId?: number;
  limit: number;
}

/** A signed-in web console session: the cookie's value is known only as its SHA-256. */
export interface SessionRow {
  idHash: string;
  /** The administrator token it was opened with: revoking the token ends the session. */
  tokenId: string;
  /** The session's CSRF token, sent back by the console with every change. */
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute end, whatever the activity. */
  expiresAt: number;
}

/** The last status report of a gateway (JSON of GatewayReport, wire.ts). */
export interface GatewayReportRow {
  gateway: string;
  receivedAt: number;
  report: string;
}

export interface StoreOps {
  /** Creates the state row of a new authority; false if the database already has one. */
  initState(authority: string, now: number): Promise<boolean>;
  state(): Promise<StateRow>;
  /** Takes the next version (and, on PostgreSQL, the lock that serialises writers). */
  bumpVersion(): Promise<number>;
  /** Reserves `count` consecutive SPIs and returns the first. */
  allocSpis(count: number): Promise<number>;
  setDirectoryVersion(version: number): Promise<void>;
  /** Records that a certificate was revoked at `version` (every replica rebuilds its CRLs). */
  setCrlVersion(version: number): Promise<void>;

  insertVpn(row: VpnRow): Promise<void>;
  /**
   * A rotation of these VPNs: each one's last epoch moves up by one, its next scheduled rotation to `now` + its period
   * (none without one).
   */
  advanceEpochs(ids: readonly number[], now: number): Promise<void>;
  /** Marks these VPNs changed at `version` (what a member receives of them changed). */
  setVpnsChanged(ids: readonly number[], version: number): Promise<void>;
  /** Deletes the VPN with its memberships, epochs, sealed keys and SPIs. */
  deleteVpn(id: number): Promise<void>;
  getVpnByName(name: string): Promise<VpnRow | undefined>;
  getVpnById(id: number): Promise<VpnRow | undefined>;
  getVpnsByIds(ids: readonly number[]): Promise<VpnRow[]>;
  listVpns(): Promise<VpnRow[]>;
  dueRotations(now: number): Promise<VpnRow[]>;

  insertGateway(row: GatewayRow): Promise<void>;
  updateGateway(name: string, patch: Partial<Omit<GatewayRow, 'name'>>): Promise<void>;
  getGateway(name: string): Promise<GatewayRow | undefined>;
  /** Several gateways at once (the change stream answers many from one snapshot). */
  getGateways(names: readonly string[]): Promise<GatewayRow[]>;
  listGateways(): Promise<GatewayRow[]>;
  touchGateways(names: readonly string[], version: number): Promise<void>;
  gatewaysChangedAfter(version: number): Promise<{ name: string; changedVersion: number }[]>;

  insertCertificate(row: CertificateRow): Promise<void>;
  getCertificate(serial: string): Promise<CertificateRow | undefined>;
  revokeCertificate(serial: string, at: number, reason: string): Promise<void>;
  listRevokedCertificates(notAfterAfter: number): Promise<CertificateRow[]>;
  listCertificates(gateway: string): Promise<CertificateRow[]>;

  listMemberPrefixes(filter: { vpnId?: number; gateway?: string }): Promise<MemberPrefixRow[]>;
  /** The membership rows of several gateways. */
  listMemberPrefixesOf(gateways: readonly string[]): Promise<MemberPrefixRow[]>;
  /** A VPN's membership rows joined with their gateways (one query). */
  listVpnMembers(vpnId: number): Promise<(MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>)[]>;
  /** The same for several VPNs (one query per 200). */
  listVpnMembersOf(
    vpnIds: readonly number[],
  ): Promise<(MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>)[]>;
  insertMemberPrefixes(rows: readonly MemberPrefixRow[]): Promise<void>;
  deleteMemberPrefixes(vpnId: number, gateway: string, prefixes?: readonly string[]): Promise<void>;
  /** How many memberships and directory entries list exactly this prefix. */
  countPrefixUses(prefix: string): Promise<number>;
  /** Every distinct prefix of every membership and of the directory. */
  listAllPrefixes(): Promise<string[]>;

  listDirectory(): Promise<DirectoryRow[]>;
  insertDirectory(row: DirectoryRow): Promise<void>;
  deleteDirectory(prefix: string): Promise<boolean>;

  insertEpoch(row: EpochRow): Promise<void>;
  insertEpochs(rows: readonly EpochRow[]): Promise<void>;
  listEpochs(vpnId: number): Promise<EpochRow[]>;
  /** The epochs of several VPNs (one query per 200), by VPN then epoch. */
  listEpochsOf(vpnIds: readonly number[]): Promise<EpochRow[]>;
  /** Deletes the epochs of these VPNs that ended by `now`, with their sealed keys and SPIs. */
  deleteEndedEpochs(vpnIds: readonly number[], now: number): Promise<void>;
  /** Every epoch of these VPNs that ends after `end` ends at `end` instead (the previous epochs at a rotation). */
  capEpochExpiry(vpnIds: readonly number[], end: number): Promise<void>;

  insertSealedKeys(rows: readonly SealedKeyRow[]): Promise<void>;
  listSealedKeys(gateway: string): Promise<SealedKeyRow[]>;
  listSealedKeysOf(gateways: readonly string[]): Promise<SealedKeyRow[]>;
  deleteSealedKeys(filter: { vpnId?: number; gateway?: string; epochs?: readonly number[] }): Promise<void>;

  insertSpis(rows: readonly SpiRow[]): Promise<void>;
  listSpis(vpnId: number): Promise<SpiRow[]>;
  /** The SPIs of several VPNs (one query per 200), by VPN, gateway, epoch. */
  listSpisOf(vpnIds: readonly number[]): Promise<SpiRow[]>;
  deleteSpis(filter: { vpnId: number; gateway?: string; epochs?: readonly number[] }): Promise<void>;

  insertEnrollToken(row: EnrollTokenRow): Promise<void>;
  getEnrollToken(id: string): Promise<EnrollTokenRow | undefined>;
  /** Marks the token used if it is still unused; false when it was already used. */
  useEnrollToken(id: string, at: number): Promise<boolean>;

  insertAdminToken(row: AdminTokenRow): Promise<void>;
  getAdminToken(id: string): Promise<AdminTokenRow | undefined>;
  listAdminTokens(): Promise<AdminTokenRow[]>;
  revokeAdminToken(id: string, at: number): Promise<boolean>;

  insertAudit(rows: readonly NewAuditRow[]): Promise<void>;
  listAudit(q: AuditFilter): Promise<AuditRow[]>;
  /** Changes a gateway should hear about after `since`: its own, its VPNs', everyone's. */
  eventsFor(gateway: string, vpnIds: readonly number[], since: number, limit: number): Promise<AuditRow[]>;
  /** Every change gateways hear about (scope other than 'none') after `since`, oldest first. */
  eventsSince(since: number, limit: number): Promise<AuditRow[]>;

  /** The database's clock (ms since 1970): what leases are measured with, the same for every replica. */
  clock(): Promise<number>;
  /**
   * Takes or renews the lease `name` for `holder` until the database's clock + `ttlMs`, unless
   * another holder has it and it has not expired. Returns the lease as it is now (its holder may
   * be another replica); `term` grows each time the lease changes hands.
   */
  claimLease(name: string, holder: string, ttlMs: number): Promise<LeaseRow>;
  /** Ends `holder`'s lease at once (a replica stopping cleanly), so that another takes it without waiting. */
  releaseLease(name: string, holder: string): Promise<void>;
  getLease(name: string): Promise<LeaseRow | undefined>;
  putReplica(row: ReplicaRow): Promise<void>;
  deleteReplica(id: string): Promise<void>;
  listReplicas(): Promise<ReplicaRow[]>;
  /** Forgets replicas not seen since `seenBefore` (database clock). */
  pruneReplicas(seenBefore: number): Promise<void>;

  insertSession(row: SessionRow): Promise<void>;
  getSession(idHash: string): Promise<SessionRow | undefined>;
  touchSession(idHash: string, at: number): Promise<void>;
  deleteSession(idHash: string): Promise<void>;
  /** Deletes sessions that ended before `now` (absolute end) or were idle since before `idleBefore`. */
  deleteExpiredSessions(now: number, idleBefore: number): Promise<number>;

  putGatewayReport(row: GatewayReportRow): Promise<void>;
  getGatewayReport(gateway: string): Promise<GatewayReportRow | undefined>;
  listGatewayReports(): Promise<GatewayReportRow[]>;

  listPeers(): Promise<PeerRow[]>;
  getPeer(name: string): Promise<PeerRow | undefined>;
  insertPeer(row: PeerRow): Promise<void>;
  updatePeer(name: string, patch: Partial<Omit<PeerRow, 'name'>>): Promise<void>;
  /** Deletes the peer with its shares, foreign members and permits. */
  deletePeer(name: string): Promise<void>;
  listShares(filter: { vpnId?: number; peer?: string }): Promise<ShareRow[]>;
  insertShare(row: ShareRow): Promise<void>;
  /** Deletes the share with the foreign members and permits it brought. */
  deleteShare(vpnId: number, peer: string): Promise<void>;
  listForeignMembers(filter: { vpnId?: number; peer?: string }): Promise<ForeignMemberRow[]>;
  replaceForeignMembers(vpnId: number, peer: string, rows: readonly ForeignMemberRow[]): Promise<void>;
  listPermits(filter: {
    vpnId?: number;
    peer?: string;
    holder?: string;
    direction?: PermitRow['direction'];
  }): Promise<PermitRow[]>;
  putPermit(row: PermitRow): Promise<void>;
  deletePermits(filter: {
    vpnId?: number;
    peer?: string;
    holder?: string;
    direction?: PermitRow['direction'];
  }): Promise<void>;
}

/** A lease of cluster-wide work (e.g. the scheduled jobs): one replica holds it at a time. */
export interface LeaseRow {
  name: string;
  holder: string;
  /** Database clock (ms). */
  expiresAt: number;
  /** +1 each time the lease passes to another holder. */
  term: number;
}

/** A running authority process over this database, as its last heartbeat said. */
export interface ReplicaRow {
  id: string;
  url: string;
  host: string;
  pid: number;
  startedAt: number;
  /** Database clock (ms) of the last heartbeat. */
  seenAt: number;
  /** Gateways waiting on its change stream. */
  waiting: number;
  /** The last version it had seen. */
  version: number;
}

/** A peer authority (federation): its name, where it serves, and the root the operator exchanged. */
export interface PeerRow {
  name: string;
  url: string;
  rootPem: string;
  addedAt: number;
  lastSyncAt: number | null;
  lastError: string | null;
}

/** A pairwise VPN of ours shared with a peer authority (both must share it, under one name and id). */
export interface ShareRow {
  vpnId: number;
  peer: string;
  addedAt: number;
}

/** A member gateway of a shared VPN under a peer authority, as that authority told us (certificate verified). */
export interface ForeignMemberRow {
  vpnId: number;
  peer: string;
  gateway: string;
  address: string;
  /** JSON array of CIDR strings. */
  prefixes: string;
  certDer: Uint8Array;
  updatedAt: number;
}

/**
 * A permit (RFC 5755 attribute certificate): 'out' = we issued it to a peer's gateway `holder`;
 * 'in' = a peer issued it to our gateway `holder`; 'local' = we issued it to our own gateway for
 * the other local members of a pairwise VPN (peer '').
 */
export interface PermitRow {
  vpnId: number;
  peer: string;
  holder: string;
  direction: 'in' | 'out' | 'local';
  der: Uint8Array;
  notAfter: number;
  /** SHA-256 of the holder certificate the permit names: a new certificate needs a new permit. */
  holderFingerprint: string;
}

/** What other replicas should know of a change besides its version (carried by the notification). */
export interface ChangeHint {
  /** Peer authorities should hear of it (the replica that runs the federation's exchanges starts one). */
  peers?: boolean;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Runs `fn` in one transaction; everything it wrote is rolled back if it throws. */
  write<T>(fn: (tx: StoreOps) => Promise<T>, hint?: ChangeHint): Promise<T>;
  /** Runs `fn` over one consistent snapshot. */
  read<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  /**
   * Called when another process committed a change (PostgreSQL replicas: its version when known,
   * none after the store reconnected and changes may have been missed); never for SQLite.
   */
  onRemoteChange(listener: (version?: number, hint?: ChangeHint) => void): void;
  /** The schema version the database is at. */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}

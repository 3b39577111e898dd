// The authority's logic over its store, without HTTP: the API (server.ts), the lifecycle
// (lifecycle.ts) and the tests call it. This facade is the authority's identity and runs every
// change (`change()`); each concern is a module over the same context (context.ts), reachable as
// a field and testable against a store alone:
//
//   vpns             vpns.ts            VPNs and their memberships
//   prefixDirectory  directory.ts       the directory of protected prefixes
//   epochs           epochs.ts          group keys by epoch: rotation, SPIs, sealing to members
//   gateways         gateways.ts        the gateway registry and revocation
//   certificates     certificates.ts    gateway certificates, CRLs, TLS client authentication
//   enrollment       enrollment.ts      tokens and CSRs, bundles
//   admin            admin.ts           status, the audit log, administrator tokens
//   delivery         delivery.ts        what a gateway receives
//   changeStream     change-stream.ts   the gateways' long poll and its wake-ups
//   federation       federation.ts      peer authorities and permits
//   replicas         replicas.ts        the processes over one database: heartbeats, the jobs lease
//   sessions         sessions.ts        web console sessions (sign-in, CSRF, expiry)
//   reports          reports.ts         gateways' status reports
//   events           events.ts          live events for administrators (the console)
//
// The periodic jobs (scheduled rotation, CRL refresh, heartbeats) are started by lifecycle.ts.
import type { Logger } from 'pino';
import type { AuthorityCa } from '../pki/ca.js';
import { fingerprint } from '../pki/keys.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';
import type { x509 } from '../pki/x509.js';
import { Administration, type AuditQuery } from './admin.js';
import { Certificates, type Crls } from './certificates.js';
import { Change, Unchanged } from './change.js';
import { ChangeStream } from './change-stream.js';
import type { RotationConfig } from './config.js';
import type { AuthorityContext } from './context.js';
import { Delivery } from './delivery.js';
import { Directory } from './directory.js';
import { Enrollment, type BundleOptions, type TokenOptions } from './enrollment.js';
import { AdminEvents } from './events.js';
import type { WaitStop } from './hub.js';
import { GatewayReports } from './reports.js';
import { ConsoleSessions, DEFAULT_SESSIONS, type SessionConfig } from './sessions.js';
import { Epochs } from './epochs.js';
import { DEFAULT_PERMIT_VALIDITY_MS, Federation } from './federation.js';
import { Gateways, type Revocation } from './gateways.js';
import { DEFAULT_LEASE_MS, Replicas } from './replicas.js';
import type { Store } from './storage/types.js';
import { Vpns, type MembershipChange, type VpnSpec } from './vpns.js';
import type { AuthorityIdentity } from './wire.js';

export interface ServiceOptions {
  store: Store;
  ca: AuthorityCa;
  /** Key-encryption key for group keys at rest (32 bytes). */
  kek: Uint8Array;
  url: string;
  rotation: RotationConfig;
  enrollment: { tokenTtlMs: number; certificateDays: number };
  random?: RandomSource;
  now?: () => number;
  log?: Logger;
  /** The attribute authority (permits) and the TLS identity shown to peer authorities: federation needs both. */
  attributeAuthority?: { cert: x509.X509Certificate; key: CryptoKey };
  tls?: { cert: string; key: string };
  federation?: { permitValidityMs?: number };
  /** The jobs lease between replicas (replicas.ts). */
  jobs?: { leaseMs?: number };
  /** Web console sessions: idle and absolute lifetimes. */
  sessions?: Partial<SessionConfig>;
}

export class AuthorityService implements AuthorityContext {
  readonly startedAt: number;
  readonly store: Store;
  readonly random: RandomSource;
  readonly log: Logger | undefined;
  readonly vpns: Vpns;
  readonly prefixDirectory: Directory;
  readonly epochs: Epochs;
  readonly gateways: Gateways;
  readonly certificates: Certificates;
  readonly enrollment: Enrollment;
  readonly admin: Administration;
  readonly delivery: Delivery;
  readonly changeStream: ChangeStream;
  readonly replicas: Replicas;
  /** Peering with other authorities and the permits of pairwise VPNs (absent without an attribute authority). */
  readonly federation?: Federation;
  readonly sessions: ConsoleSessions;
  readonly reports: GatewayReports;
  readonly events: AdminEvents;
  private readonly ca: AuthorityCa;
  private readonly clock: () => number;
  private authorityName = '';
  private caFingerprint = '';
  private advertisedUrl: string;

  constructor(o: ServiceOptions) {
    this.store = o.store;
    this.ca = o.ca;
    this.advertisedUrl = o.url;
    this.random = o.random ?? cryptoRandom;
    this.clock = o.now ?? Date.now;
    this.log = o.log;
    this.startedAt = this.clock();
    this.epochs = new Epochs(this, { kek: o.kek, rotation: o.rotation });
    this.prefixDirectory = new Directory(this);
    if (o.attributeAuthority) {
      const self = this;
      this.federation = new Federation({
        get name() {
          return self.authorityName;
        },
        ca: this.ca,
        aa: o.attributeAuthority,
        tls: o.tls ?? { cert: '', key: '' },
        now: () => this.clock(),
        random: this.random,
        log: this.log,
        permitValidityMs: o.federation?.permitValidityMs ?? DEFAULT_PERMIT_VALIDITY_MS,
        // The periodic exchanges and permit renewals run on the replica that holds the jobs lease.
        active: () => this.replicas.holdsJobs,
        read: (fn) => this.store.read(fn),
        note: (fn) => this.store.write(fn),
        change: (actor, fn) =>
          this.change(actor, (c) =>
            fn(
              c.tx,
              (names) => c.touch(names),
              (action, vpn, detail) => c.audit(action, { vpn, scope: vpn ? 'vpn' : 'none', detail }),
            ),
          ),
      });
    }
    this.delivery = new Delivery(this, {
      directory: this.prefixDirectory,
      federation: this.federation,
      attributeAuthority: o.attributeAuthority,
    });
    this.certificates = new Certificates(this, { ca: this.ca, certificateDays: o.enrollment.certificateDays });
    this.changeStream = new ChangeStream(this, {
      delivery: this.delivery,
      onCrlChange: () => this.certificates.refreshCrls(),
    });
    this.replicas = new Replicas(this, {
      leaseMs: o.jobs?.leaseMs ?? DEFAULT_LEASE_MS,
      waiting: () => this.changeStream.waiting,
    });
    // Changes made through other replicas that peers should hear of: the jobs' holder tells them.
    this.store.onRemoteChange((_version, hint) => {
      if (hint?.peers && this.replicas.holdsJobs) this.federation?.kick();
    });
    this.replicas.onJobs(() => this.federation?.kick(0));
    this.vpns = new Vpns(this, {
      defaultRotationPeriodMs: o.rotation.periodMs,
      epochs: this.epochs,
      directory: this.prefixDirectory,
      delivery: this.delivery,
    });
    this.gateways = new Gateways(this, { epochs: this.epochs });
    this.enrollment = new Enrollment(this, {
      tokenTtlMs: o.enrollment.tokenTtlMs,
      certificates: this.certificates,
      epochs: this.epochs,
      gateways: this.gateways,
    });
    this.admin = new Administration(this, { startedAt: this.startedAt, changeStream: this.changeStream });
    this.sessions = new ConsoleSessions(this, { admin: this.admin, config: { ...DEFAULT_SESSIONS, ...o.sessions } });
    this.reports = new GatewayReports(this);
    this.events = new AdminEvents(this);
    this.reports.onReport((gateway) => this.events.publish({ type: 'report', gateway }));
  }

  /** Loads the authority's identity from the store and builds the CRLs. */
  async start(): Promise<void> {
    const state = await this.store.read((tx) => tx.state());
    this.authorityName = state.authority;
    this.caFingerprint = fingerprint(new Uint8Array(this.ca.root.cert.rawData));
    await this.certificates.refreshCrls();
    await this.changeStream.start();
  }

  /**
   * Stops the federation's exchanges and ends every waiting change stream (answered "unchanged");
   * resolves once a federation round under way has ended (it still uses the store).
   */
  async stop(): Promise<void> {
    const federation = this.federation?.stop();
    this.changeStream.stop();
    this.events.stop();
    await federation;
    await this.replicas.stop();
    await this.epochs.close();
  }

  get name(): string {
    return this.authorityName;
  }

  /** The URL put into bundles and enrollment answers. */
  get url(): string {
    return this.advertisedUrl;
  }

  set url(u: string) {
    this.advertisedUrl = u;
  }

  now(): number {
    return this.clock();
  }

  identity(): AuthorityIdentity {
    return { name: this.authorityName, url: this.url, caFingerprint: this.caFingerprint };
  }

  /**
   * Runs `fn` as one change: one transaction that first takes the next version (which also
   * serialises writers), then records who changed what in the audit log, and marks the gateways
   * whose delivery changed so that their waiting change streams wake up after the commit.
   */
  async change<T>(actor: string, fn: (c: Change) => Promise<T>): Promise<T> {
    // Members, certificates and VPNs are what peers and permits are made of: tell them soon.
    const peers = Boolean(this.federation) && actor !== 'federation' && !actor.startsWith('peer:');
    let written: { result: T; change: Change };
    try {
      written = await this.store.write(
        async (tx) => {
          const version = await tx.bumpVersion();
          const c = new Change(tx, version, actor, this.clock());
          const result = await fn(c);
          await c.flush();
          return { result, change: c };
        },
        { peers },
      );
    } catch (e) {
      if (e instanceof Unchanged) return e.result as T;
      throw e;
    }
    const { result, change } = written;
    this.changeStream.published(change);
    this.events.publish({ type: 'change', version: change.version });
    if (change.auditRows.length)
      this.log?.info(
        { actor, version: change.version, actions: change.auditRows.map((r) => r.action) },
        'change committed',
      );
    if (change.crlChanged) await this.certificates.refreshCrls();
    if (peers) this.federation!.kick();
    return result;
  }

  // The API's calls (server.ts), by the names it uses, each answered by its module.
  readonly status = () => this.admin.status();
  readonly audit = (q: AuditQuery) => this.admin.audit(q);
  readonly listAdminTokens = () => this.admin.listTokens();
  readonly createAdminToken = (actor: string, name: string) => this.admin.createToken(actor, name);
  readonly revokeAdminToken = (actor: string, id: string) => this.admin.revokeToken(actor, id);
  readonly authenticateAdmin = (header: string | undefined) => this.admin.authenticate(header);

  readonly listVpns = () => this.vpns.list();
  readonly createVpn = (actor: string, p: VpnSpec) => this.vpns.create(actor, p);
  readonly getVpn = (name: string) => this.vpns.get(name);
  readonly deleteVpn = (actor: string, name: string, force: boolean) => this.vpns.delete(actor, name, force);
  readonly listMembers = (vpn: string) => this.vpns.members(vpn);
  readonly updateMembership = (actor: string, vpn: string, gateway: string, p: MembershipChange) =>
    this.vpns.updateMembership(actor, vpn, gateway, p);
  readonly rotateVpn = (actor: string, vpn: string, immediate: boolean) => this.epochs.rotate(actor, vpn, immediate);
  readonly rotateAll = (actor: string, immediate: boolean) => this.epochs.rotateAll(actor, immediate);

  readonly directory = () => this.prefixDirectory.view();
  readonly addDirectory = (actor: string, prefix: string, note: string) =>
    this.prefixDirectory.add(actor, prefix, note);
  readonly removeDirectory = (actor: string, prefix: string) => this.prefixDirectory.remove(actor, prefix);

  readonly listGateways = () => this.gateways.list();
  readonly addGateway = (actor: string, p: { name: string; address: string }) => this.gateways.add(actor, p);
  readonly getGateway = (name: string) => this.gateways.get(name);
  readonly gatewaySelf = (name: string) => this.gateways.get(name);
  readonly updateGateway = (actor: string, name: string, p: { address?: string }) =>
    this.gateways.update(actor, name, p);
  readonly revokeGateway = (actor: string, name: string, p: Revocation) => this.gateways.revoke(actor, name, p);

  readonly caView = () => this.certificates.caView();
  readonly currentCrls = () => this.certificates.currentCrls();
  readonly onCrlChange = (listener: (crls: Crls) => void) => this.certificates.onCrlChange(listener);
  readonly gatewayCertificate = (name: string) => this.certificates.ofGateway(name);
  readonly authenticateConnection = (connection: object, peer: () => { der: Uint8Array; serial: string }) =>
    this.certificates.authenticateConnection(connection, peer);
  readonly issueIkeCertificate = (gateway: string, csrPem: string) => this.certificates.issueIke(gateway, csrPem);

  readonly createEnrollToken = (actor: string, gateway: string, p: TokenOptions) =>
    this.enrollment.createToken(actor, gateway, p);
  readonly makeBundle = (actor: string, gateway: string, p: BundleOptions) =>
    this.enrollment.makeBundle(actor, gateway, p);
  readonly enroll = (p: { token: string; csr: string }) => this.enrollment.enroll(p);

  readonly listReplicas = () => this.replicas.list();
  readonly reportStatus = (gateway: string, body: unknown) => this.reports.accept(gateway, body);
  readonly gatewayStatus = (name: string) => this.reports.get(name);

  readonly changes = (gateway: string, since: number, waitMs: number, stop?: WaitStop) =>
    this.changeStream.changes(gateway, since, waitMs, stop);
}

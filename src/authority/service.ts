// The authority's logic over its store: the configuration table (VPNs, gateways, memberships, the
// directory of protected prefixes), enrollment, group keys by epoch and their delivery, tokens and
// the audit log. No HTTP here: the API (server.ts) and the tests call these methods.
//
// Every change runs in `change()`: one transaction that first takes the next version (which also
// serialises writers), then records who changed what in the audit log, and marks the gateways whose
// delivery changed so that their waiting change streams wake up after the commit.
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { Prefix } from '../core/addr.js';
import type { Result } from '../core/result.js';
import type { VpnMode } from '../core/types.js';
import { createCrl, issueGatewayCertificate, verifyCsr, type AuthorityCa, type CrlEntry } from '../pki/ca.js';
import { derToPem, exportPkcs8Pem, exportSpkiDer, fingerprint, generateKeyPair, joinPem, sha256Hex, systemRandom, type RandomSource } from '../pki/keys.js';
import { x509 } from '../pki/x509.js';
import type { RotationConfig } from './config.js';
import { ApiError, badRequest, conflict, forbidden, notFound, unauthorized } from './errors.js';
import { deliveryContext, GROUP_KEY_BYTES, sealGroupKey, unwrapGroupKey, wrapGroupKey } from './group-keys.js';
import { ChangeHub } from './hub.js';
import { DEFAULT_PERMIT_VALIDITY_MS, DEFAULT_SYNC_INTERVAL_MS, Federation } from './federation.js';
import type { AuditScope, GatewayRow, NewAuditRow, SealedKeyRow, SpiRow, StateRow, Store, StoreOps, VpnRow } from './storage/types.js';
import { checkAddress, checkMembershipAdd, checkName, checkPrefixes, checkVpnId, compactPrefixes } from './validate.js';
import {
  BUNDLE_FORMAT,
  DELIVERY_FORMAT,
  type AdminTokenInfo,
  type AuditEntry,
  type AuthorityIdentity,
  type CaView,
  type CertificateInfo,
  type DeliveredMember,
  type DeliveredVpn,
  type DirectoryView,
  type EnrollResponse,
  type EnrollTokenView,
  type EpochInfo,
  type GatewayBundle,
  type GatewayChanges,
  type GatewayDelivery,
  type GatewayInfo,
  type MemberInfo,
  type StatusView,
  type VpnDetail,
  type VpnInfo,
} from './wire.js';

/** An epoch that is not scheduled to expire (until the next rotation sets its end). */
export const NEVER = Number.MAX_SAFE_INTEGER;
export const MAX_WAIT_MS = 60_000;
export const MIN_ROTATION_PERIOD_MS = 1000;
export const MAX_TOKEN_TTL_MS = 30 * 86_400_000;
const EVENTS_LIMIT = 500;

const ADMIN_TOKEN_RE = /^kasane-admin-v1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
const ENROLL_TOKEN_RE = /^kasane-enroll-v1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

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
  federation?: { permitValidityMs?: number; syncIntervalMs?: number };
}

interface GatewayKey {
  name: string;
  publicKey: Uint8Array;
}

type MemberGateway = Pick<GatewayRow, 'name' | 'status' | 'address' | 'publicKey'>;

interface PreparedRotation {
  vpnId: number;
  epoch: number;
  key: Uint8Array;
  /** Member name -> the key it was sealed to and the sealed group key. */
  sealed: Map<string, { publicKey: Uint8Array; enc: Uint8Array; ct: Uint8Array }>;
}

/** The state of one change while its transaction runs. */
class Change {
  touched = new Set<string>();
  all = false;
  directoryChanged = false;
  readonly directoryAdded: string[] = [];
  readonly directoryRemoved: string[] = [];
  crlChanged = false;
  readonly vpnsChanged = new Set<number>();
  readonly auditRows: NewAuditRow[] = [];

  constructor(
    readonly tx: StoreOps,
    readonly version: number,
    readonly actor: string,
    readonly now: number,
  ) {}

  touch(names: Iterable<string>): void {
    for (const n of names) this.touched.add(n);
  }

  audit(action: string, a: { vpn?: VpnRow; gateway?: string; scope: AuditScope; detail?: Record<string, unknown> }): void {
    this.auditRows.push({
      version: this.version,
      at: this.now,
      actor: this.actor,
      action,
      vpnId: a.vpn?.id ?? null,
      vpn: a.vpn?.name ?? null,
      gateway: a.gateway ?? null,
      scope: a.scope,
      detail: a.detail ?? {},
    });
  }

  async flush(): Promise<void> {
    for (const id of this.vpnsChanged) await this.tx.updateVpn(id, { changedVersion: this.version });
    // A directory change concerns every gateway: they compare their cursor with the directory's
    // version at read time, so no per-gateway row is written for it.
    if (this.directoryChanged) {
      await this.tx.setDirectoryVersion(this.version);
      this.all = true;
      // Every gateway hears of it in its events, whatever VPN the change was about.
      if (!this.auditRows.some((r) => r.scope === 'all')) {
        this.audit('directory.change', { scope: 'all', detail: { added: this.directoryAdded, removed: this.directoryRemoved } });
      }
    }
    if (this.touched.size) await this.tx.touchGateways([...this.touched], this.version);
    if (this.auditRows.length) await this.tx.insertAudit(this.auditRows);
  }
}

interface VpnViewCache {
  changedVersion: number;
  vpn: VpnRow;
  epochs: { epoch: number; activeFrom: number; expiresAt: number }[];
  members: DeliveredMember[];
}

export class AuthorityService {
  readonly hub = new ChangeHub();
  readonly startedAt: number;
  private readonly store: Store;
  private readonly ca: AuthorityCa;
  private readonly kek: Uint8Array;
  private readonly random: RandomSource;
  private readonly clock: () => number;
  private readonly log: Logger | undefined;
  private readonly rotation: RotationConfig;
  private readonly enrollment: { tokenTtlMs: number; certificateDays: number };
  private authorityName = '';
  private caFingerprint = '';
  private advertisedUrl: string;
  private readonly vpnCache = new Map<number, VpnViewCache>();
  private readonly vpnBuilds = new Map<string, Promise<VpnViewCache>>();
  private directoryCache: { version: number; prefixes: string[] } | undefined;
  private crls: { root: string; issuing: string } | undefined;
  private readonly crlListeners: ((crls: { root: string; issuing: string }) => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private rotating = false;
  private stopping = false;
  private remoteCheck: NodeJS.Timeout | undefined;
  /** Peering with other authorities and the permits of pairwise VPNs (absent without an attribute authority). */
  readonly federation?: Federation;
  private readonly attributeAuthority?: { cert: x509.X509Certificate; key: CryptoKey };
  private readonly syncIntervalMs: number;

  constructor(o: ServiceOptions) {
    this.store = o.store;
    this.ca = o.ca;
    this.kek = o.kek;
    this.advertisedUrl = o.url;
    this.rotation = o.rotation;
    this.enrollment = o.enrollment;
    this.random = o.random ?? systemRandom;
    this.clock = o.now ?? Date.now;
    this.log = o.log;
    this.startedAt = this.clock();
    if (this.kek.length !== 32) throw new Error('the key-encryption key must be 32 bytes');
    this.store.onRemoteChange(() => this.scheduleRemoteCheck());
    this.syncIntervalMs = o.federation?.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    if (o.attributeAuthority) {
      this.attributeAuthority = o.attributeAuthority;
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
        read: (fn) => this.store.read(fn),
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
  }

  /** Loads the authority's identity from the store and builds the CRLs. */
  async start(): Promise<void> {
    const state = await this.store.read((tx) => tx.state());
    this.authorityName = state.authority;
    this.caFingerprint = fingerprint(new Uint8Array(this.ca.root.cert.rawData));
    await this.refreshCrls();
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

  /** Starts scheduled rotation (checked every `intervalMs`) and periodic CRL refresh. */
  startScheduler(intervalMs = 1000): void {
    const tick = setInterval(() => void this.runDueRotations().catch((e) => this.log?.error({ err: e }, 'scheduled rotation failed')), intervalMs);
    const crl = setInterval(() => void this.refreshCrls().catch((e) => this.log?.error({ err: e }, 'CRL refresh failed')), 12 * 3_600_000);
    tick.unref();
    crl.unref();
    this.timers.push(tick, crl);
    this.federation?.start(this.syncIntervalMs);
  }

  /** Stops timers and ends every waiting change stream (answered "unchanged"). */
  stop(): void {
    this.stopping = true;
    this.federation?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.remoteCheck) clearTimeout(this.remoteCheck);
    this.hub.notify('all');
  }

  // ------------------------------------------------------------------ changes

  private async change<T>(actor: string, fn: (c: Change) => Promise<T>): Promise<T> {
    const { result, change } = await this.store.write(async (tx) => {
      const version = await tx.bumpVersion();
      const c = new Change(tx, version, actor, this.clock());
      const result = await fn(c);
      await c.flush();
      return { result, change: c };
    });
    if (change.all) this.hub.notify('all');
    else if (change.touched.size) this.hub.notify(change.touched);
    if (change.auditRows.length) this.log?.info({ actor, version: change.version, actions: change.auditRows.map((r) => r.action) }, 'change committed');
    if (change.crlChanged) await this.refreshCrls();
    // Members, certificates and VPNs are what peers and permits are made of: tell them soon.
    if (this.federation && actor !== 'federation' && !actor.startsWith('peer:')) this.federation.kick();
    return result;
  }

  private scheduleRemoteCheck(): void {
    if (this.remoteCheck) return;
    this.remoteCheck = setTimeout(() => {
      this.remoteCheck = undefined;
      const since = this.hub.minSince();
      if (since === undefined) return;
      this.store
        .read(async (tx) => ({ state: await tx.state(), rows: await tx.gatewaysChangedAfter(since) }))
        .then(({ state, rows }) => this.hub.notify(state.directoryVersion > since ? 'all' : rows.map((r) => r.name)))
        .catch((e) => this.log?.warn({ err: e }, 'checking remote changes failed'));
    }, 20);
  }

  // ------------------------------------------------------------------ helpers

  private static must<T>(r: Result<T>, status = 400): T {
    if (!r.ok) throw new ApiError(status, r.error.code, r.error.message);
    return r.value;
  }

  private async vpnOrThrow(tx: StoreOps, name: string): Promise<VpnRow> {
    const v = await tx.getVpnByName(name);
    if (!v) throw notFound('unknown-vpn', `there is no VPN named ${JSON.stringify(name)}`);
    return v;
  }

  private async gatewayOrThrow(tx: StoreOps, name: string): Promise<GatewayRow> {
    const g = await tx.getGateway(name);
    if (!g) throw notFound('unknown-gateway', `there is no gateway named ${JSON.stringify(name)}`);
    return g;
  }

  /** Memberships of a VPN: gateway -> prefixes, and the gateways' status, address and key. */
  private async membersOf(tx: StoreOps, vpnId: number): Promise<{ prefixes: Map<string, Prefix[]>; gateways: Map<string, MemberGateway> }> {
    const prefixes = new Map<string, Prefix[]>();
    const gateways = new Map<string, MemberGateway>();
    for (const r of await tx.listVpnMembers(vpnId)) {
      const list = prefixes.get(r.gateway) ?? [];
      list.push(Prefix.from(r.prefix));
      prefixes.set(r.gateway, list);
      if (!gateways.has(r.gateway)) gateways.set(r.gateway, { name: r.gateway, status: r.status, address: r.address, publicKey: r.publicKey });
    }
    return { prefixes, gateways };
  }

  private static activeKeys(gateways: Map<string, MemberGateway>): GatewayKey[] {
    const out: GatewayKey[] = [];
    for (const g of gateways.values()) if (g.status === 'active' && g.publicKey) out.push({ name: g.name, publicKey: g.publicKey });
    return out;
  }

  /** The live epochs of a VPN with their keys in the clear (for sealing to a member). */
  private async liveKeys(tx: StoreOps, vpnId: number, now: number): Promise<{ epoch: number; key: Uint8Array }[]> {
    const rows = await tx.listEpochs(vpnId);
    return rows.filter((e) => e.expiresAt > now).map((e) => ({ epoch: e.epoch, key: unwrapGroupKey(this.kek, vpnId, e.epoch, e.wrappedKey) }));
  }

  /** Seals the given epochs' keys to the given gateways; with `spis`, also assigns their SPIs. */
  private async provision(c: Change, vpn: VpnRow, epochs: { epoch: number; key: Uint8Array }[], gateways: GatewayKey[], spis: boolean): Promise<void> {
    if (epochs.length === 0 || gateways.length === 0) return;
    if (spis) {
      let next = await c.tx.allocSpis(epochs.length * gateways.length);
      const rows: SpiRow[] = [];
      for (const g of gateways) for (const e of epochs) rows.push({ spi: next++, vpnId: vpn.id, gateway: g.name, epoch: e.epoch });
      await c.tx.insertSpis(rows);
    }
    const jobs: Promise<SealedKeyRow>[] = [];
    for (const g of gateways) {
      for (const e of epochs) {
        const ctx = deliveryContext(this.authorityName, g.name, vpn.id, e.epoch);
        jobs.push(sealGroupKey(e.key, g.publicKey, ctx).then((s) => ({ vpnId: vpn.id, epoch: e.epoch, gateway: g.name, enc: s.enc, ct: s.ct })));
      }
    }
    await c.tx.insertSealedKeys(await Promise.all(jobs));
  }

  /**
   * Makes the next epoch of a group VPN. Scheduled/manual: active after the overlap, so every member
   * holds it before anyone sends with it; the previous epochs end `grace` after that. Urgent (a
   * member left or was revoked): active at once, previous epochs end after the short urgent grace.
   */
  private async rotateInTx(c: Change, vpn: VpnRow, kind: 'scheduled' | 'manual' | 'urgent', prepared?: PreparedRotation): Promise<{ epoch: number; activeFrom: number }> {
    const now = c.now;
    const epochs = await c.tx.listEpochs(vpn.id);
    const expired = epochs.filter((e) => e.expiresAt <= now).map((e) => e.epoch);
    if (expired.length) {
      await c.tx.deleteSealedKeys({ vpnId: vpn.id, epochs: expired });
      await c.tx.deleteSpis({ vpnId: vpn.id, epochs: expired });
      await c.tx.deleteEpochs(vpn.id, expired);
    }
    const urgent = kind === 'urgent';
    const activeFrom = urgent ? now : now + this.rotation.overlapMs;
    const oldEnd = urgent ? now + this.rotation.urgentGraceMs : activeFrom + this.rotation.graceMs;
    for (const e of epochs) if (e.expiresAt > now && e.expiresAt > oldEnd) await c.tx.setEpochExpiry(vpn.id, e.epoch, oldEnd);
    const epoch = vpn.lastEpoch + 1;
    if (epoch > 0xffffffff) throw conflict('epochs-exhausted', `VPN ${vpn.name} has used every epoch number`);
    // A key sealed before the transaction is used only if it was made for this very epoch.
    const pre = prepared && prepared.vpnId === vpn.id && prepared.epoch === epoch ? prepared : undefined;
    const key = pre ? pre.key : this.random(GROUP_KEY_BYTES);
    await c.tx.insertEpoch({ vpnId: vpn.id, epoch, wrappedKey: wrapGroupKey(this.kek, vpn.id, epoch, key, this.random), activeFrom, expiresAt: NEVER, createdAt: now });
    const { gateways } = await this.membersOf(c.tx, vpn.id);
    const members = AuthorityService.activeKeys(gateways);
    let spi = await c.tx.allocSpis(members.length);
    await c.tx.insertSpis(members.map((m) => ({ spi: spi++, vpnId: vpn.id, gateway: m.name, epoch })));
    const sealed = await Promise.all(
      members.map(async (m): Promise<SealedKeyRow> => {
        const ready = pre?.sealed.get(m.name);
        // Reuse a prepared seal only for the same member key (it may have re-enrolled meanwhile).
        if (ready && Buffer.compare(Buffer.from(ready.publicKey), Buffer.from(m.publicKey)) === 0) return { vpnId: vpn.id, epoch, gateway: m.name, enc: ready.enc, ct: ready.ct };
        const s = await sealGroupKey(key, m.publicKey, deliveryContext(this.authorityName, m.name, vpn.id, epoch));
        return { vpnId: vpn.id, epoch, gateway: m.name, enc: s.enc, ct: s.ct };
      }),
    );
    await c.tx.insertSealedKeys(sealed);
    const nextRotationAt = vpn.rotationPeriodMs > 0 ? now + vpn.rotationPeriodMs : null;
    await c.tx.updateVpn(vpn.id, { lastEpoch: epoch, nextRotationAt });
    vpn.lastEpoch = epoch;
    vpn.nextRotationAt = nextRotationAt;
    c.vpnsChanged.add(vpn.id);
    c.touch(members.map((m) => m.name));
    c.audit('vpn.rotate', { vpn, scope: 'vpn', detail: { epoch, activeFrom, previousEpochsEndAt: oldEnd, reason: kind, members: members.length } });
    return { epoch, activeFrom };
  }

  /**
   * Makes the next epoch's key and seals it to the current members outside any transaction, so
   * that the transaction (which serialises every writer) does no public-key work. rotateInTx
   * checks that it still fits (same epoch, same member keys) and seals what changed meanwhile.
   */
  private async prepareRotation(vpnId: number): Promise<PreparedRotation | undefined> {
    const r = await this.store.read(async (tx) => {
      const v = await tx.getVpnById(vpnId);
      if (!v || v.mode !== 'group') return undefined;
      return { v, members: AuthorityService.activeKeys((await this.membersOf(tx, vpnId)).gateways) };
    });
    if (!r) return undefined;
    const epoch = r.v.lastEpoch + 1;
    const key = this.random(GROUP_KEY_BYTES);
    const sealed = new Map<string, { publicKey: Uint8Array; enc: Uint8Array; ct: Uint8Array }>();
    await Promise.all(
      r.members.map(async (m) => {
        const s = await sealGroupKey(key, m.publicKey, deliveryContext(this.authorityName, m.name, vpnId, epoch));
        sealed.set(m.name, { publicKey: m.publicKey, enc: s.enc, ct: s.ct });
      }),
    );
    return { vpnId, epoch, key, sealed };
  }

  /** Rotates VPNs one transaction each, preparing the next ones' keys while committing. */
  private async rotateMany(actor: string, ids: readonly number[], kind: 'scheduled' | 'manual' | 'urgent', onlyIfDue: boolean): Promise<{ vpn: string; epoch: number; activeFrom: number }[]> {
    const AHEAD = 8;
    const prepared: Promise<PreparedRotation | undefined>[] = [];
    const prepare = (k: number): void => {
      if (k < ids.length) prepared[k] = this.prepareRotation(ids[k]).catch(() => undefined);
    };
    for (let k = 0; k < AHEAD; k++) prepare(k);
    const out: { vpn: string; epoch: number; activeFrom: number }[] = [];
    for (let k = 0; k < ids.length; k++) {
      const p = await prepared[k];
      prepare(k + AHEAD);
      const r = await this.change(actor, async (c) => {
        const v = await c.tx.getVpnById(ids[k]);
        if (!v || v.mode !== 'group') return undefined;
        // Another replica may have rotated it meanwhile.
        if (onlyIfDue && (v.nextRotationAt === null || v.nextRotationAt > c.now)) return undefined;
        return { vpn: v.name, ...(await this.rotateInTx(c, v, kind, p)) };
      });
      if (r) out.push(r);
    }
    return out;
  }

  /** Marks the directory changed if `prefix` now appears or disappears. */
  private async noteDirectory(c: Change, prefixes: readonly string[], added: boolean): Promise<void> {
    for (const p of prefixes) {
      const uses = await c.tx.countPrefixUses(p);
      if ((added && uses === 1) || (!added && uses === 0)) {
        c.directoryChanged = true;
        (added ? c.directoryAdded : c.directoryRemoved).push(p);
      }
    }
  }

  // ------------------------------------------------------------------ status, CA

  async status(): Promise<StatusView> {
    const { state, vpns, gateways, memberships } = await this.store.read(async (tx) => ({
      state: await tx.state(),
      vpns: await tx.listVpns(),
      gateways: await tx.listGateways(),
      memberships: await tx.listMemberPrefixes({}),
    }));
    const count = { pending: 0, active: 0, revoked: 0 };
    for (const g of gateways) count[g.status]++;
    return {
      authority: state.authority,
      url: this.url,
      version: state.version,
      store: this.store.kind,
      schemaVersion: await this.store.schemaVersion(),
      caFingerprint: this.caFingerprint,
      vpns: vpns.length,
      memberships: new Set(memberships.map((m) => `${m.vpnId}\u0000${m.gateway}`)).size,
      gateways: count,
      waitingGateways: this.hub.size,
      now: this.clock(),
      startedAt: this.startedAt,
    };
  }

  caView(): CaView {
    return {
      authority: this.authorityName,
      rootCertificate: joinPem(this.ca.root.cert.toString('pem')),
      issuingCertificate: joinPem(this.ca.issuing.cert.toString('pem')),
      fingerprint: this.caFingerprint,
    };
  }

  /** The current CRLs (PEM) of the root and the issuing CA. */
  currentCrls(): { root: string; issuing: string } {
    if (!this.crls) throw new Error('CRLs are not built yet (call start())');
    return this.crls;
  }

  onCrlChange(listener: (crls: { root: string; issuing: string }) => void): void {
    this.crlListeners.push(listener);
  }

  async refreshCrls(): Promise<void> {
    const now = this.clock();
    const revoked = await this.store.read((tx) => tx.listRevokedCertificates(now));
    const entries: CrlEntry[] = revoked.map((r) => ({
      serial: r.serial,
      revokedAt: r.revokedAt!,
      reason: r.revokeReason === 'superseded' ? 'superseded' : r.revokeReason === 'key-compromise' ? 'keyCompromise' : 'cessationOfOperation',
    }));
    const nextUpdate = now + 7 * 86_400_000;
    const [root, issuing] = await Promise.all([
      createCrl({ issuer: this.ca.root, entries: [], now, nextUpdate }),
      createCrl({ issuer: this.ca.issuing, entries, now, nextUpdate }),
    ]);
    this.crls = { root: derToPem(root.rawData, 'X509 CRL'), issuing: derToPem(issuing.rawData, 'X509 CRL') };
    for (const l of this.crlListeners) l(this.crls);
  }

  // ------------------------------------------------------------------ VPNs

  async createVpn(actor: string, p: { name: string; id?: number; mode?: VpnMode; rotationPeriodMs?: number }): Promise<VpnDetail> {
    const name = AuthorityService.must(checkName('VPN', p.name));
    const mode = p.mode ?? 'group';
    if (p.id !== undefined) AuthorityService.must(checkVpnId(p.id));
    const period = p.rotationPeriodMs ?? this.rotation.periodMs;
    if (!Number.isSafeInteger(period) || (period !== 0 && period < MIN_ROTATION_PERIOD_MS)) {
      throw badRequest('bad-rotation-period', `rotation period must be 0 (rotate only on demand) or at least ${MIN_ROTATION_PERIOD_MS} ms, got ${period}`);
    }
    await this.change(actor, async (c) => {
      if (await c.tx.getVpnByName(name)) throw conflict('vpn-exists', `a VPN named ${JSON.stringify(name)} already exists`);
      let id = p.id;
      if (id !== undefined) {
        const other = await c.tx.getVpnById(id);
        if (other) throw conflict('vpn-id-taken', `VPN id ${id} already belongs to VPN ${JSON.stringify(other.name)}`);
      } else {
        const ids = (await c.tx.listVpns()).map((v) => v.id);
        id = ids.length === 0 ? 1 : Math.max(...ids) + 1;
        if (id > 0xffffffff) {
          const used = new Set(ids);
          id = 1;
          while (used.has(id)) id++;
        }
      }
      const group = mode === 'group';
      const vpn: VpnRow = {
        id,
        name,
        mode,
        rotationPeriodMs: group ? period : 0,
        nextRotationAt: group && period > 0 ? c.now + period : null,
        lastEpoch: group ? 1 : 0,
        changedVersion: c.version,
        createdAt: c.now,
      };
      await c.tx.insertVpn(vpn);
      if (group) {
        const key = this.random(GROUP_KEY_BYTES);
        await c.tx.insertEpoch({ vpnId: id, epoch: 1, wrappedKey: wrapGroupKey(this.kek, id, 1, key, this.random), activeFrom: c.now, expiresAt: NEVER, createdAt: c.now });
      }
      c.audit('vpn.create', { vpn, scope: 'none', detail: { id, mode, rotationPeriodMs: vpn.rotationPeriodMs } });
    });
    return this.getVpn(name);
  }

  async listVpns(): Promise<VpnInfo[]> {
    return this.store.read(async (tx) => {
      const members = await tx.listMemberPrefixes({});
      const out: VpnInfo[] = [];
      for (const v of await tx.listVpns()) out.push(this.vpnInfo(v, new Set(members.filter((m) => m.vpnId === v.id).map((m) => m.gateway)).size));
      return out;
    });
  }

  private vpnInfo(v: VpnRow, members: number): VpnInfo {
    return {
      id: v.id,
      name: v.name,
      mode: v.mode,
      rotationPeriodMs: v.rotationPeriodMs,
      nextRotationAt: v.nextRotationAt,
      currentEpoch: v.mode === 'group' ? v.lastEpoch : null,
      members,
      createdAt: v.createdAt,
    };
  }

  async getVpn(name: string): Promise<VpnDetail> {
    const now = this.clock();
    return this.store.read(async (tx) => {
      const v = await this.vpnOrThrow(tx, name);
      const { prefixes, gateways } = await this.membersOf(tx, v.id);
      const epochs: EpochInfo[] = (await tx.listEpochs(v.id))
        .filter((e) => e.expiresAt > now)
        .map((e) => ({ epoch: e.epoch, activeFrom: e.activeFrom, expiresAt: e.expiresAt, createdAt: e.createdAt }));
      const memberList: MemberInfo[] = [...prefixes].map(([g, ps]) => this.memberInfo(v, gateways.get(g)!, ps));
      return { ...this.vpnInfo(v, prefixes.size), epochs, memberList };
    });
  }

  private memberInfo(v: VpnRow, g: MemberGateway, prefixes: Prefix[]): MemberInfo {
    return {
      vpn: v.name,
      vpnId: v.id,
      gateway: g.name,
      gatewayStatus: g.status,
      address: g.address,
      prefixes: prefixes.map(String),
      effective: g.status === 'active',
    };
  }

  async deleteVpn(actor: string, name: string, force: boolean): Promise<void> {
    await this.change(actor, async (c) => {
      const v = await this.vpnOrThrow(c.tx, name);
      const { prefixes, gateways } = await this.membersOf(c.tx, v.id);
      if (prefixes.size && !force) {
        throw conflict('vpn-has-members', `VPN ${name} still has ${prefixes.size} member(s) (${[...prefixes.keys()].join(', ')}); remove them first or delete with force`);
      }
      const allPrefixes = [...new Set([...prefixes.values()].flat().map(String))];
      await c.tx.deleteVpn(v.id);
      this.vpnCache.delete(v.id);
      await this.noteDirectory(c, allPrefixes, false);
      c.touch(AuthorityService.activeKeys(gateways).map((g) => g.name));
      c.audit('vpn.delete', { vpn: v, scope: prefixes.size ? 'all' : 'none', detail: { members: [...prefixes.keys()] } });
    });
  }

  async rotateVpn(actor: string, name: string, immediate: boolean): Promise<{ vpn: string; epoch: number; activeFrom: number }> {
    const found = await this.store.read((tx) => this.vpnOrThrow(tx, name));
    if (found.mode !== 'group') throw conflict('not-group-vpn', `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`);
    const prepared = await this.prepareRotation(found.id);
    return this.change(actor, async (c) => {
      const v = await this.vpnOrThrow(c.tx, name);
      if (v.mode !== 'group') throw conflict('not-group-vpn', `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`);
      const r = await this.rotateInTx(c, v, immediate ? 'urgent' : 'manual', prepared);
      return { vpn: v.name, ...r };
    });
  }

  /** Rotates every group VPN (one transaction each). */
  async rotateAll(actor: string, immediate: boolean): Promise<{ vpn: string; epoch: number; activeFrom: number }[]> {
    const vpns = await this.store.read((tx) => tx.listVpns());
    return this.rotateMany(
      actor,
      vpns.filter((v) => v.mode === 'group').map((v) => v.id),
      immediate ? 'urgent' : 'manual',
      false,
    );
  }

  /** Rotates the VPNs whose scheduled rotation is due. */
  async runDueRotations(): Promise<number> {
    if (this.rotating) return 0;
    this.rotating = true;
    try {
      const due = await this.store.read((tx) => tx.dueRotations(this.clock()));
      return (
        await this.rotateMany(
          'authority:scheduler',
          due.map((d) => d.id),
          'scheduled',
          true,
        )
      ).length;
    } finally {
      this.rotating = false;
    }
  }

  // ------------------------------------------------------------------ gateways

  async addGateway(actor: string, p: { name: string; address: string }): Promise<GatewayInfo> {
    const name = AuthorityService.must(checkName('gateway', p.name));
    const address = AuthorityService.must(checkAddress(p.address));
    await this.change(actor, async (c) => {
      if (await c.tx.getGateway(name)) throw conflict('gateway-exists', `a gateway named ${JSON.stringify(name)} already exists`);
      await c.tx.insertGateway({
        name,
        address,
        status: 'pending',
        certSerial: null,
        publicKey: null,
        changedVersion: c.version,
        createdAt: c.now,
        enrolledAt: null,
        revokedAt: null,
        revokeReason: null,
      });
      c.audit('gateway.add', { gateway: name, scope: 'none', detail: { address } });
    });
    return this.getGateway(name);
  }

  async updateGateway(actor: string, name: string, p: { address?: string }): Promise<GatewayInfo> {
    const address = p.address === undefined ? undefined : AuthorityService.must(checkAddress(p.address));
    await this.change(actor, async (c) => {
      const g = await this.gatewayOrThrow(c.tx, name);
      if (address === undefined || address === g.address) return;
      await c.tx.updateGateway(name, { address });
      const vpnIds = [...new Set((await c.tx.listMemberPrefixes({ gateway: name })).map((m) => m.vpnId))];
      c.touch([name]);
      c.audit('gateway.update', { gateway: name, scope: 'gateway', detail: { address, previous: g.address } });
      if (g.status !== 'active') return;
      for (const id of vpnIds) {
        c.vpnsChanged.add(id);
        const { gateways } = await this.membersOf(c.tx, id);
        c.touch(AuthorityService.activeKeys(gateways).map((x) => x.name));
        const v = (await c.tx.getVpnById(id))!;
        c.audit('member.address', { vpn: v, gateway: name, scope: 'vpn', detail: { address } });
      }
    });
    return this.getGateway(name);
  }

  async listGateways(): Promise<GatewayInfo[]> {
    return this.store.read(async (tx) => {
      const vpns = new Map((await tx.listVpns()).map((v) => [v.id, v.name]));
      const byGateway = new Map<string, Set<string>>();
      for (const m of await tx.listMemberPrefixes({})) {
        const set = byGateway.get(m.gateway) ?? new Set<string>();
        set.add(vpns.get(m.vpnId)!);
        byGateway.set(m.gateway, set);
      }
      const out: GatewayInfo[] = [];
      for (const g of await tx.listGateways()) {
        const cert = g.certSerial ? await tx.getCertificate(g.certSerial) : undefined;
        out.push(this.gatewayInfo(g, cert, [...(byGateway.get(g.name) ?? [])]));
      }
      return out;
    });
  }

  async getGateway(name: string): Promise<GatewayInfo> {
    return this.store.read(async (tx) => {
      const g = await this.gatewayOrThrow(tx, name);
      const cert = g.certSerial ? await tx.getCertificate(g.certSerial) : undefined;
      const vpnIds = [...new Set((await tx.listMemberPrefixes({ gateway: name })).map((m) => m.vpnId))];
      const names: string[] = [];
      for (const id of vpnIds) names.push((await tx.getVpnById(id))!.name);
      return this.gatewayInfo(g, cert, names);
    });
  }

  private gatewayInfo(g: GatewayRow, cert: { serial: string; der: Uint8Array; issuedAt: number; notAfter: number; method: 'bundle' | 'csr' | 'ike'; revokedAt: number | null; revokeReason: string | null } | undefined, vpns: string[]): GatewayInfo {
    const certificate: CertificateInfo | null = cert
      ? { serial: cert.serial, fingerprint: fingerprint(cert.der), issuedAt: cert.issuedAt, notAfter: cert.notAfter, method: cert.method, revokedAt: cert.revokedAt, revokeReason: cert.revokeReason }
      : null;
    return {
      name: g.name,
      address: g.address,
      status: g.status,
      certificate,
      vpns,
      createdAt: g.createdAt,
      enrolledAt: g.enrolledAt,
      revokedAt: g.revokedAt,
      revokeReason: g.revokeReason,
    };
  }

  /** The gateway's certificate (PEM) and chain, for `gateway show --certificate`. */
  async gatewayCertificate(name: string): Promise<{ certificate: string; chain: string[] }> {
    const cert = await this.store.read(async (tx) => {
      const g = await this.gatewayOrThrow(tx, name);
      if (!g.certSerial) throw notFound('no-certificate', `gateway ${name} has not enrolled yet`);
      return (await tx.getCertificate(g.certSerial))!;
    });
    return { certificate: derToPem(cert.der, 'CERTIFICATE'), chain: this.chainPem() };
  }

  private chainPem(): string[] {
    return [joinPem(this.ca.issuing.cert.toString('pem')), joinPem(this.ca.root.cert.toString('pem'))];
  }

  /**
   * Revokes a gateway: its certificate goes on the CRL, it stops authenticating, it loses its
   * SPIs and sealed keys, and every VPN it was in rotates at once. Its memberships stay configured
   * (its prefixes stay in the directory, so nobody falls back to plain toward them); a later
   * re-enrollment brings it back into them.
   */
  async revokeGateway(actor: string, name: string, p: { reason?: string; compromised?: boolean }): Promise<GatewayInfo> {
    await this.change(actor, async (c) => {
      const g = await this.gatewayOrThrow(c.tx, name);
      if (g.status === 'revoked') throw conflict('already-revoked', `gateway ${name} is already revoked`);
      const reason = p.compromised ? 'key-compromise' : 'cessation-of-operation';
      if (g.certSerial) {
        await c.tx.revokeCertificate(g.certSerial, c.now, reason);
        c.crlChanged = true;
      }
      if (g.ikeCertSerial) await c.tx.revokeCertificate(g.ikeCertSerial, c.now, reason);
      await c.tx.updateGateway(name, { status: 'revoked', ikeCertSerial: null, revokedAt: c.now, revokeReason: p.reason ?? reason });
      c.touch([name]);
      c.audit('gateway.revoke', { gateway: name, scope: 'gateway', detail: { reason: p.reason ?? null, compromised: Boolean(p.compromised), serial: g.certSerial } });
      if (g.status !== 'active') return;
      const vpnIds = [...new Set((await c.tx.listMemberPrefixes({ gateway: name })).map((m) => m.vpnId))];
      for (const id of vpnIds) {
        const v = (await c.tx.getVpnById(id))!;
        await c.tx.deleteSealedKeys({ vpnId: id, gateway: name });
        await c.tx.deleteSpis({ vpnId: id, gateway: name });
        c.vpnsChanged.add(id);
        if (v.mode === 'group') await this.rotateInTx(c, v, 'urgent');
        else {
          const { gateways } = await this.membersOf(c.tx, id);
          c.touch(AuthorityService.activeKeys(gateways).map((x) => x.name));
        }
      }
    });
    return this.getGateway(name);
  }

  /**
   * Installs a new certificate for a gateway. A pending or revoked gateway becomes active and joins
   * the VPNs configured for it (SPIs and sealed keys of every live epoch); an active one (re-keyed)
   * gets every live key sealed again to its new key, and its old certificate is superseded.
   */
  private async installCertificate(c: Change, g: GatewayRow, spki: Uint8Array, method: 'bundle' | 'csr', validityDays: number | undefined): Promise<x509.X509Certificate> {
    const cert = await issueGatewayCertificate({
      issuing: this.ca.issuing,
      authority: this.authorityName,
      gateway: g.name,
      publicKey: spki,
      now: c.now,
      validityDays: validityDays ?? this.enrollment.certificateDays,
      random: this.random,
    });
    await c.tx.insertCertificate({
      serial: cert.serialNumber,
      gateway: g.name,
      der: new Uint8Array(cert.rawData),
      issuedAt: c.now,
      notAfter: cert.notAfter.getTime(),
      method,
      revokedAt: null,
      revokeReason: null,
    });
    if (g.certSerial) {
      await c.tx.revokeCertificate(g.certSerial, c.now, 'superseded');
      c.crlChanged = true;
    }
    const wasActive = g.status === 'active';
    await c.tx.updateGateway(g.name, { status: 'active', certSerial: cert.serialNumber, publicKey: spki, enrolledAt: c.now, revokedAt: null, revokeReason: null });
    const me: GatewayKey = { name: g.name, publicKey: spki };
    const vpnIds = [...new Set((await c.tx.listMemberPrefixes({ gateway: g.name })).map((m) => m.vpnId))];
    if (wasActive) await c.tx.deleteSealedKeys({ gateway: g.name });
    for (const id of vpnIds) {
      const v = (await c.tx.getVpnById(id))!;
      if (v.mode === 'group') await this.provision(c, v, await this.liveKeys(c.tx, id, c.now), [me], !wasActive);
      if (!wasActive) {
        c.vpnsChanged.add(id);
        const { gateways } = await this.membersOf(c.tx, id);
        c.touch(AuthorityService.activeKeys(gateways).map((x) => x.name));
        c.audit('member.join', { vpn: v, gateway: g.name, scope: 'vpn', detail: {} });
      }
    }
    c.touch([g.name]);
    c.audit('gateway.enroll', { gateway: g.name, scope: 'gateway', detail: { method, serial: cert.serialNumber, notAfter: cert.notAfter.getTime(), rekey: wasActive } });
    return cert;
  }

  async createEnrollToken(actor: string, name: string, p: { ttlMs?: number; replace?: boolean }): Promise<EnrollTokenView> {
    const ttl = p.ttlMs ?? this.enrollment.tokenTtlMs;
    if (!Number.isSafeInteger(ttl) || ttl < 1000 || ttl > MAX_TOKEN_TTL_MS) {
      throw badRequest('bad-ttl', `token lifetime must be between 1 s and 30 days, got ${ttl} ms`);
    }
    const id = Buffer.from(this.random(8)).toString('hex');
    const secret = Buffer.from(this.random(32)).toString('base64url');
    const expiresAt = await this.change(actor, async (c) => {
      const g = await this.gatewayOrThrow(c.tx, name);
      if (g.status === 'active' && !p.replace) {
        throw conflict('gateway-enrolled', `gateway ${name} is already enrolled; make the token with replace to re-enroll it with a new key`);
      }
      const expiresAt = c.now + ttl;
      await c.tx.insertEnrollToken({ id, secretHash: sha256Hex(secret), gateway: name, replaceCert: Boolean(p.replace), createdAt: c.now, expiresAt, usedAt: null, createdBy: actor });
      c.audit('token.create', { gateway: name, scope: 'none', detail: { tokenId: id, expiresAt, replace: Boolean(p.replace) } });
      return expiresAt;
    });
    return { token: `kasane-enroll-v1.${id}.${secret}`, gateway: name, expiresAt, replace: Boolean(p.replace), authority: this.identity() };
  }

  /** Online enrollment: a one-time token and a CSR made with the gateway's own key. */
  async enroll(p: { token: string; csr: string }): Promise<EnrollResponse> {
    const m = ENROLL_TOKEN_RE.exec(p.token);
    if (!m) throw unauthorized('bad-token', 'the enrollment token is malformed (expected kasane-enroll-v1.<id>.<secret>)');
    const [, id, secret] = m;
    const check = async (tx: StoreOps, now: number) => {
      const t = await tx.getEnrollToken(id);
      if (!t || !safeEqualHex(t.secretHash, sha256Hex(secret))) throw unauthorized('bad-token', 'the enrollment token is not valid');
      if (t.usedAt !== null) throw unauthorized('token-used', `the enrollment token was already used at ${new Date(t.usedAt).toISOString()}; tokens are single-use`);
      if (t.expiresAt <= now) throw unauthorized('token-expired', `the enrollment token expired at ${new Date(t.expiresAt).toISOString()}`);
      const g = (await tx.getGateway(t.gateway))!;
      if (g.revokedAt !== null && g.revokedAt >= t.createdAt) throw unauthorized('token-revoked', `gateway ${g.name} was revoked after this token was made`);
      if (g.status === 'active' && !t.replaceCert) throw conflict('gateway-enrolled', `gateway ${g.name} enrolled after this token was made`);
      return { t, g };
    };
    const { g: pre } = await this.store.read((tx) => check(tx, this.clock()));
    const csr = await verifyCsr(p.csr);
    if (!csr.ok) throw badRequest(csr.error.code, csr.error.message);
    if (csr.value.commonName !== undefined && csr.value.commonName !== pre.name) {
      throw badRequest('csr-name-mismatch', `the CSR names ${JSON.stringify(csr.value.commonName)} but the token is for gateway ${JSON.stringify(pre.name)}`);
    }
    const cert = await this.change(`gateway:${pre.name}`, async (c) => {
      const { g } = await check(c.tx, c.now);
      if (!(await c.tx.useEnrollToken(id, c.now))) throw unauthorized('token-used', 'the enrollment token was already used; tokens are single-use');
      c.audit('token.use', { gateway: g.name, scope: 'none', detail: { tokenId: id } });
      return this.installCertificate(c, g, csr.value.spki, 'csr', undefined);
    });
    const gw = await this.getGateway(pre.name);
    return {
      format: BUNDLE_FORMAT,
      gateway: { name: gw.name, address: gw.address },
      authority: { ...this.identity(), caCertificate: joinPem(this.ca.root.cert.toString('pem')) },
      certificate: joinPem(cert.toString('pem')),
      chain: this.chainPem(),
    };
  }

  /** Offline enrollment (seed 000): the authority makes the key pair and certificate. */
  async makeBundle(actor: string, name: string, p: { replace?: boolean; validityDays?: number }): Promise<GatewayBundle> {
    if (p.validityDays !== undefined && (!Number.isInteger(p.validityDays) || p.validityDays < 1 || p.validityDays > 3650)) {
      throw badRequest('bad-validity', `certificate validity must be 1..3650 days, got ${p.validityDays}`);
    }
    const keys = await generateKeyPair();
    const spki = await exportSpkiDer(keys.publicKey);
    const { cert, gw } = await this.change(actor, async (c) => {
      const g = await this.gatewayOrThrow(c.tx, name);
      if (g.status === 'active' && !p.replace) {
        throw conflict('gateway-enrolled', `gateway ${name} is already enrolled; pass replace to issue a new key and certificate (the old one is superseded)`);
      }
      const cert = await this.installCertificate(c, g, spki, 'bundle', p.validityDays);
      return { cert, gw: g };
    });
    return {
      format: BUNDLE_FORMAT,
      gateway: { name: gw.name, address: gw.address },
      authority: { ...this.identity(), caCertificate: joinPem(this.ca.root.cert.toString('pem')) },
      privateKey: await exportPkcs8Pem(keys.privateKey),
      certificate: joinPem(cert.toString('pem')),
      chain: this.chainPem(),
    };
  }

  // ------------------------------------------------------------------ memberships

  async listMembers(vpnName: string): Promise<MemberInfo[]> {
    return (await this.getVpn(vpnName)).memberList;
  }

  /**
   * Changes one membership in one transaction: removes `remove`, adds `add` (checked against the
   * overlap rule), or removes the whole membership (`removeAll`, or when no prefix is left). A
   * member that leaves makes its VPN rotate at once.
   */
  async updateMembership(actor: string, vpnName: string, gatewayName: string, p: { add?: string[]; remove?: string[]; removeAll?: boolean; create?: boolean }): Promise<MemberInfo | null> {
    const add = AuthorityService.must(checkPrefixes(p.add ?? [])).map(String);
    const remove = AuthorityService.must(checkPrefixes(p.remove ?? [])).map(String);
    if (p.create && add.length === 0) throw badRequest('no-prefixes', 'a membership needs at least one prefix (the terminals the gateway puts into the VPN)');
    return this.change(actor, async (c) => {
      const v = await this.vpnOrThrow(c.tx, vpnName);
      const g = await this.gatewayOrThrow(c.tx, gatewayName);
      const { prefixes } = await this.membersOf(c.tx, v.id);
      const current = (prefixes.get(g.name) ?? []).map(String);
      const wasMember = current.length > 0;
      if (!wasMember && !p.create) throw notFound('not-member', `gateway ${g.name} is not a member of VPN ${v.name}`);
      for (const r of remove) if (!current.includes(r)) throw notFound('unknown-prefix', `${r} is not in ${g.name}'s membership of VPN ${v.name} (it has ${current.join(', ')})`);
      const removed = p.removeAll ? current : remove;
      const kept = current.filter((x) => !removed.includes(x));
      const others = new Map(prefixes);
      others.set(g.name, kept.map((x) => Prefix.from(x)));
      const fresh = AuthorityService.must(
        checkMembershipAdd(
          v.name,
          others,
          g.name,
          add.map((x) => Prefix.from(x)),
        ),
        409,
      ).map(String);
      const after = [...kept, ...fresh];
      if (removed.length === 0 && fresh.length === 0) return this.memberInfo(v, g, current.map((x) => Prefix.from(x)));
      if (removed.length) await c.tx.deleteMemberPrefixes(v.id, g.name, removed);
      if (fresh.length) await c.tx.insertMemberPrefixes(fresh.map((prefix) => ({ vpnId: v.id, gateway: g.name, prefix, addedAt: c.now })));
      await this.noteDirectory(c, removed, false);
      await this.noteDirectory(c, fresh, true);
      c.vpnsChanged.add(v.id);
      const active = g.status === 'active';
      const { gateways } = await this.membersOf(c.tx, v.id);
      if (after.length === 0) {
        c.audit('member.remove', { vpn: v, gateway: g.name, scope: 'vpn', detail: { prefixes: removed } });
        if (active) {
          await c.tx.deleteSealedKeys({ vpnId: v.id, gateway: g.name });
          await c.tx.deleteSpis({ vpnId: v.id, gateway: g.name });
          c.touch([g.name]);
          if (v.mode === 'group') await this.rotateInTx(c, v, 'urgent');
          else c.touch(AuthorityService.activeKeys(gateways).map((x) => x.name));
        }
        return null;
      }
      if (!wasMember) {
        c.audit('member.add', { vpn: v, gateway: g.name, scope: 'vpn', detail: { prefixes: fresh } });
        if (active && v.mode === 'group' && g.publicKey) {
          await this.provision(c, v, await this.liveKeys(c.tx, v.id, c.now), [{ name: g.name, publicKey: g.publicKey }], true);
        }
      } else {
        c.audit('member.update', { vpn: v, gateway: g.name, scope: 'vpn', detail: { added: fresh, removed } });
      }
      if (active) c.touch(AuthorityService.activeKeys(gateways).map((x) => x.name));
      return this.memberInfo(
        v,
        g,
        after.map((x) => Prefix.from(x)),
      );
    });
  }

  // ------------------------------------------------------------------ directory

  async directory(): Promise<DirectoryView> {
    return this.store.read(async (tx) => ({
      entries: await tx.listDirectory(),
      protectedPrefixes: await this.directoryPrefixes(tx),
    }));
  }

  async addDirectory(actor: string, prefixText: string, note: string): Promise<DirectoryView> {
    const prefix = AuthorityService.must(checkPrefixes([prefixText]))[0].toString();
    await this.change(actor, async (c) => {
      if ((await c.tx.listDirectory()).some((d) => d.prefix === prefix)) throw conflict('directory-entry-exists', `${prefix} is already in the directory`);
      await c.tx.insertDirectory({ prefix, note, addedAt: c.now });
      await this.noteDirectory(c, [prefix], true);
      c.audit('directory.add', { scope: c.directoryChanged ? 'all' : 'none', detail: { prefix, note } });
    });
    return this.directory();
  }

  async removeDirectory(actor: string, prefixText: string): Promise<DirectoryView> {
    const prefix = AuthorityService.must(checkPrefixes([prefixText]))[0].toString();
    await this.change(actor, async (c) => {
      if (!(await c.tx.deleteDirectory(prefix))) throw notFound('unknown-directory-entry', `${prefix} is not a directory entry`);
      await this.noteDirectory(c, [prefix], false);
      c.audit('directory.remove', { scope: c.directoryChanged ? 'all' : 'none', detail: { prefix } });
    });
    return this.directory();
  }

  private async directoryPrefixes(tx: StoreOps, known?: StateRow): Promise<string[]> {
    const state = known ?? (await tx.state());
    if (this.directoryCache?.version === state.directoryVersion) return this.directoryCache.prefixes;
    const prefixes = compactPrefixes((await tx.listAllPrefixes()).map((p) => Prefix.from(p))).map(String);
    this.directoryCache = { version: state.directoryVersion, prefixes };
    return prefixes;
  }

  // ------------------------------------------------------------------ audit, admin tokens

  async audit(q: { afterId?: number; limit?: number; vpn?: string; gateway?: string }): Promise<AuditEntry[]> {
    const rows = await this.store.read((tx) => tx.listAudit({ afterId: q.afterId, limit: Math.min(q.limit ?? 100, 1000), vpn: q.vpn, gateway: q.gateway }));
    return rows.map((r) => ({ id: r.id, version: r.version, at: r.at, actor: r.actor, action: r.action, vpn: r.vpn, gateway: r.gateway, detail: r.detail }));
  }

  async createAdminToken(actor: string, name: string): Promise<{ token: string; info: AdminTokenInfo }> {
    const n = AuthorityService.must(checkName('token', name));
    const id = Buffer.from(this.random(8)).toString('hex');
    const secret = Buffer.from(this.random(32)).toString('base64url');
    const createdAt = await this.change(actor, async (c) => {
      await c.tx.insertAdminToken({ id, name: n, secretHash: sha256Hex(secret), createdAt: c.now, revokedAt: null });
      c.audit('admin-token.create', { scope: 'none', detail: { id, name: n } });
      return c.now;
    });
    return { token: `kasane-admin-v1.${id}.${secret}`, info: { id, name: n, createdAt, revokedAt: null } };
  }

  async listAdminTokens(): Promise<AdminTokenInfo[]> {
    return (await this.store.read((tx) => tx.listAdminTokens())).map((t) => ({ id: t.id, name: t.name, createdAt: t.createdAt, revokedAt: t.revokedAt }));
  }

  async revokeAdminToken(actor: string, id: string): Promise<void> {
    await this.change(actor, async (c) => {
      const tokens = await c.tx.listAdminTokens();
      const t = tokens.find((x) => x.id === id);
      if (!t) throw notFound('unknown-token', `there is no administrator token ${id}`);
      if (t.revokedAt !== null) throw conflict('already-revoked', `administrator token ${id} is already revoked`);
      if (tokens.filter((x) => x.revokedAt === null).length === 1) throw conflict('last-admin-token', 'refusing to revoke the last administrator token (create another one first)');
      await c.tx.revokeAdminToken(id, c.now);
      c.audit('admin-token.revoke', { scope: 'none', detail: { id, name: t.name } });
    });
  }

  /** Checks an `Authorization` header; returns the actor name for the audit log. */
  async authenticateAdmin(header: string | undefined): Promise<string> {
    if (!header) throw unauthorized('unauthorized', 'administrator token required (Authorization: Bearer kasane-admin-v1....)');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('unauthorized', 'the Authorization header must be "Bearer <token>"');
    const t = ADMIN_TOKEN_RE.exec(m[1]);
    if (!t) throw unauthorized('bad-token', 'the administrator token is malformed (expected kasane-admin-v1.<id>.<secret>)');
    const row = await this.store.read((tx) => tx.getAdminToken(t[1]));
    if (!row || !safeEqualHex(row.secretHash, sha256Hex(t[2]))) throw unauthorized('bad-token', 'the administrator token is not valid');
    if (row.revokedAt !== null) throw unauthorized('token-revoked', `the administrator token ${row.id} was revoked`);
    return `admin:${row.name}`;
  }

  // ------------------------------------------------------------------ gateways' side

  /** Maps a verified TLS client certificate to its gateway; refuses revoked and superseded ones. */
  async authenticateGateway(der: Uint8Array, serialHex: string): Promise<string> {
    const serial = serialHex.toLowerCase().replace(/^0+(?=[0-9a-f])/, '');
    const r = await this.store.read(async (tx) => {
      const cert = await tx.getCertificate(serial);
      if (!cert || Buffer.compare(Buffer.from(cert.der), Buffer.from(der)) !== 0) return undefined;
      return { cert, gateway: (await tx.getGateway(cert.gateway))! };
    });
    if (!r) throw forbidden('unknown-certificate', 'the client certificate was not issued to any gateway of this authority');
    if (r.gateway.status === 'revoked') throw forbidden('gateway-revoked', `gateway ${r.gateway.name} is revoked`);
    if (r.cert.revokedAt !== null || r.gateway.certSerial !== r.cert.serial) {
      throw forbidden('certificate-revoked', `this certificate of gateway ${r.gateway.name} was ${r.cert.revokeReason === 'superseded' ? 'superseded by a newer one' : 'revoked'}`);
    }
    return r.gateway.name;
  }

  /**
   * A certificate for the gateway's IKE identity when its IKE key lives in a PKCS#11 token (seed
   * 001's IC chip): the gateway sends a CSR signed in the token over its mutual-TLS channel. The
   * certificate names the gateway like its TLS one; it authenticates IKE only (never the channel),
   * and it is what peers get pinned and what permits are issued to. A new one supersedes the old.
   */
  async issueIkeCertificate(gateway: string, csrPem: string): Promise<{ certificate: string }> {
    const csr = await verifyCsr(csrPem);
    if (!csr.ok) throw badRequest(csr.error.code, csr.error.message);
    if (csr.value.commonName !== undefined && csr.value.commonName !== gateway) throw badRequest('csr-name-mismatch', `the request names ${csr.value.commonName}, not ${gateway}`);
    const cert = await this.change(`gateway:${gateway}`, async (c) => {
      const g = await this.gatewayOrThrow(c.tx, gateway);
      if (g.status !== 'active') throw forbidden('gateway-revoked', `gateway ${gateway} is not active`);
      const cert = await issueGatewayCertificate({ issuing: this.ca.issuing, authority: this.authorityName, gateway, publicKey: csr.value.spki, now: c.now, validityDays: this.enrollment.certificateDays, random: this.random });
      await c.tx.insertCertificate({ serial: cert.serialNumber, gateway, der: new Uint8Array(cert.rawData), issuedAt: c.now, notAfter: cert.notAfter.getTime(), method: 'ike', revokedAt: null, revokeReason: null });
      if (g.ikeCertSerial) await c.tx.revokeCertificate(g.ikeCertSerial, c.now, 'superseded');
      await c.tx.updateGateway(gateway, { ikeCertSerial: cert.serialNumber });
      // Its pairwise peers get the new certificate pinned, and permits are issued to it.
      const vpnIds = [...new Set((await c.tx.listMemberPrefixes({ gateway })).map((m) => m.vpnId))];
      for (const id of vpnIds) {
        if ((await c.tx.getVpnById(id))?.mode !== 'pairwise') continue;
        c.vpnsChanged.add(id);
        const { gateways } = await this.membersOf(c.tx, id);
        c.touch([...gateways.keys()]);
      }
      c.audit('gateway.ike-certificate', { gateway, scope: 'gateway', detail: { serial: cert.serialNumber } });
      return cert;
    });
    return { certificate: joinPem(cert.toString('pem')) };
  }

  async gatewaySelf(name: string): Promise<GatewayInfo> {
    return this.getGateway(name);
  }

  /** Everything `gateway` receives, at one consistent version. */
  async delivery(gateway: string): Promise<GatewayDelivery> {
    return this.store.read(async (tx) => this.deliveryIn(tx, await tx.state(), gateway, this.clock()));
  }

  private async deliveryIn(tx: StoreOps, state: StateRow, gateway: string, now: number): Promise<GatewayDelivery> {
    const vpnIds = [...new Set((await tx.listMemberPrefixes({ gateway })).map((m) => m.vpnId))];
    const sealed = await tx.listSealedKeys(gateway);
    const vpns: DeliveredVpn[] = [];
    const foreign: string[] = [];
    for (const id of vpnIds) {
      const view = await this.vpnView(tx, id);
      if (!view) continue;
      const live = new Set(view.epochs.filter((e) => e.expiresAt > now).map((e) => e.epoch));
      const epochs = view.epochs
        .filter((e) => live.has(e.epoch))
        .flatMap((e) => {
          const s = sealed.find((x) => x.vpnId === id && x.epoch === e.epoch);
          return s ? [{ ...e, enc: Buffer.from(s.enc).toString('base64'), ct: Buffer.from(s.ct).toString('base64') }] : [];
        });
      let members = view.members.map((m) => ({ ...m, spis: m.spis.filter((s) => live.has(s.epoch)) }));
      if (this.federation && view.vpn.mode === 'pairwise') {
        const d = await this.federation.decorate(tx, gateway, view.vpn, members, now);
        members = d.members;
        foreign.push(...d.foreignPrefixes);
      }
      vpns.push({ id, name: view.vpn.name, mode: view.vpn.mode, epochs, members });
    }
    const directory = await this.directoryPrefixes(tx, state);
    const protectedPrefixes = foreign.length ? [...new Set([...directory, ...foreign])] : directory;
    const d: GatewayDelivery = {
      format: DELIVERY_FORMAT,
      authority: state.authority,
      gateway,
      version: state.version,
      issuedAt: now,
      protectedPrefixes,
      vpns: vpns.sort((a, b) => a.id - b.id),
    };
    if (this.attributeAuthority) d.attributeAuthority = Buffer.from(this.attributeAuthority.cert.rawData).toString('base64');
    return d;
  }

  /**
   * A VPN as every member sees it (no keys), cached until the VPN changes. A view depends only on
   * the VPN's changedVersion, so concurrent deliveries after one change share a single rebuild.
   */
  private async vpnView(tx: StoreOps, id: number): Promise<VpnViewCache | undefined> {
    const vpn = await tx.getVpnById(id);
    if (!vpn) return undefined;
    const cached = this.vpnCache.get(id);
    if (cached && cached.changedVersion === vpn.changedVersion) return cached;
    const key = `${id}:${vpn.changedVersion}`;
    let building = this.vpnBuilds.get(key);
    if (!building) {
      building = this.buildVpnView(tx, vpn).finally(() => this.vpnBuilds.delete(key));
      this.vpnBuilds.set(key, building);
    }
    return building;
  }

  private async buildVpnView(tx: StoreOps, vpn: VpnRow): Promise<VpnViewCache> {
    const id = vpn.id;
    const { prefixes, gateways } = await this.membersOf(tx, id);
    const spis = await tx.listSpis(id);
    const members: DeliveredMember[] = [];
    for (const [name, ps] of prefixes) {
      const g = gateways.get(name)!;
      if (g.status !== 'active') continue;
      members.push({
        gateway: name,
        address: g.address,
        prefixes: ps.map(String),
        spis: spis.filter((s) => s.gateway === name).map((s) => ({ epoch: s.epoch, spi: s.spi })),
      });
    }
    members.sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : 0));
    const epochs = (await tx.listEpochs(id)).map((e) => ({ epoch: e.epoch, activeFrom: e.activeFrom, expiresAt: e.expiresAt }));
    const view: VpnViewCache = { changedVersion: vpn.changedVersion, vpn, epochs, members };
    const cur = this.vpnCache.get(id);
    if (!cur || cur.changedVersion < view.changedVersion) this.vpnCache.set(id, view);
    return view;
  }

  /**
   * The resumable change stream: answers at once when anything `gateway` receives changed after
   * `since` (with the complete current delivery and the events since), otherwise waits up to
   * `waitMs` for such a change.
   */
  async changes(gateway: string, since: number, waitMs: number, signal?: AbortSignal): Promise<GatewayChanges> {
    const deadline = this.clock() + Math.min(Math.max(waitMs, 0), MAX_WAIT_MS);
    const waiter = waitMs > 0 ? this.hub.subscribe(gateway, since) : undefined;
    try {
      for (;;) {
        const now = this.clock();
        const answer = await this.store.read(async (tx) => {
          const g = await tx.getGateway(gateway);
          if (!g || g.status !== 'active') throw forbidden('gateway-revoked', `gateway ${gateway} is not active`);
          const state = await tx.state();
          const reset = since > state.version;
          if (!reset && g.changedVersion <= since && state.directoryVersion <= since) return { version: state.version, changed: false } as const;
          const delivery = await this.deliveryIn(tx, state, gateway, now);
          const vpnIds = delivery.vpns.map((v) => v.id);
          // A first sync (since 0) or a reset carries the whole state: no event list.
          const rows = reset || since === 0 ? [] : await tx.eventsFor(gateway, vpnIds, since, EVENTS_LIMIT + 1);
          return { version: state.version, changed: true, reset, delivery, rows } as const;
        });
        if (answer.changed) {
          const rows = answer.rows.slice(0, EVENTS_LIMIT);
          return {
            version: answer.version,
            changed: true,
            reset: answer.reset,
            delivery: answer.delivery,
            events: rows.map((r) => ({ version: r.version, at: r.at, action: r.action, vpn: r.vpn, gateway: r.gateway })),
            eventsTruncated: answer.rows.length > EVENTS_LIMIT,
          };
        }
        const left = deadline - this.clock();
        if (!waiter || left <= 0 || signal?.aborted || this.stopping) return { version: answer.version, changed: false, reset: false, events: [], eventsTruncated: false };
        const outcome = await waiter.wait(left, signal);
        if (outcome !== 'notified') return { version: answer.version, changed: false, reset: false, events: [], eventsTruncated: false };
      }
    } finally {
      waiter?.cancel();
    }
  }
}

function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

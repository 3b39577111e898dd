// Federation between authorities (seed 001, Figure 2). Two authorities peer once (each operator
// enters the other's name, URL and root certificate); after that they talk over mutual TLS. A
// pairwise VPN both share (same name, same VPN id) has members under both: each authority tells
// its peer its members with their certificates, verifies the peer's members against the peer's
// root, issues each of them a short-lived permit (holder: that gateway's certificate; group: the
// VPN's name) and sends it back; the peer delivers those permits, with our members'
// certificates, to its gateways. Permits are renewed at 2/3 of their validity and withdrawn when
// a member, a share or a peering ends (the next exchange no longer carries them; strongSwan checks
// no revocation for attribute certificates, so the short validity bounds a withdrawal the peer
// never hears of). Pairwise VPNs with members under one authority only get 'local' permits.
import { X509Certificate as NodeX509 } from 'node:crypto';
import https from 'node:https';
import type { Logger } from 'pino';
import type { AuthorityCa } from '../pki/ca.js';
import { derToPem, fingerprint, parsePem, pemToDer } from '../pki/keys.js';
import { type RandomSource } from '../base/random.js';
import { CERTIFICATE_LIMITS, checkDer } from '../pki/der.js';
import { checkAttributeAuthority, issuePermit, verifyPermit } from '../pki/permit.js';
import { x509 } from '../pki/x509.js';
import { badRequest, conflict, forbidden, notFound } from './errors.js';
import { Unchanged } from './change.js';
import { checkAddress, checkName, checkPrefixes } from './validate.js';
import type { FederationView } from './wire.js';
import type { ForeignMemberRow, PeerRow, PermitRow, StoreOps, VpnRow } from './storage/types.js';
import type { DeliveredMember } from './wire.js';

export const FEDERATION_FORMAT = 'kasane-federation/1';
export const DEFAULT_PERMIT_VALIDITY_MS = 3_600_000;
export const DEFAULT_SYNC_INTERVAL_MS = 10_000;
/** Permits start a little in the past: the peer's clock may be behind ours. */
const BACKDATE_MS = 300_000;

export interface FederationMessage {
  format: typeof FEDERATION_FORMAT;
  /** The sender's own authority name (the name its peers know it by). */
  authority: string;
  /** The sender's issuing CA (PEM): its gateways' certificates chain to it, it to the root. */
  issuing: string;
  /** The sender's attribute authority (PEM): the permits it issues are signed by it. */
  attributeAuthority: string;
  vpns: {
    name: string;
    id: number;
    members: { gateway: string; address: string; prefixes: string[]; certificate: string }[];
  }[];
  /** Permits the sender issued to the recipient's gateways (holder = the recipient's gateway name). */
  permits: { vpn: string; holder: string; der: string; notAfter: number }[];
}

export type { FederationView } from './wire.js';

/** What the federation needs from the authority service. */
export interface FederationHost {
  readonly name: string;
  readonly ca: AuthorityCa;
  readonly aa: { cert: x509.X509Certificate; key: CryptoKey };
  /** This authority's TLS identity, presented as the client certificate to peers. */
  readonly tls: { cert: string; key: string };
  now(): number;
  random: RandomSource;
  log?: Logger;
  permitValidityMs: number;
  /**
   * Whether the periodic rounds run in this process: only on the replica that holds the jobs lease
   * (replicas.ts), so that exchanges and renewals happen once. A round asked for (syncAll) runs anyway.
   */
  active?(): boolean;
  read<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  /**
   * Bookkeeping that is not a change (when a peer was last heard from, its last error): written
   * without taking a version, so that the version advances only with an audit entry.
   */
  note(fn: (tx: StoreOps) => Promise<void>): Promise<void>;
  /** One configuration change: `touch` marks gateways whose delivery changed. */
  change<T>(
    actor: string,
    fn: (
      tx: StoreOps,
      touch: (names: Iterable<string>) => void,
      audit: (action: string, vpn: VpnRow | undefined, detail: Record<string, unknown>) => void,
    ) => Promise<T>,
  ): Promise<T>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

/** Parses and bounds a federation message (wire data from a peer). Throws ApiError 400. */
export function parseFederationMessage(v: unknown): FederationMessage {
  const bad = (m: string) => badRequest('bad-federation-message', m);
  if (!isObj(v) || v.format !== FEDERATION_FORMAT) throw bad(`not a ${FEDERATION_FORMAT} message`);
  const name = checkName('authority', v.authority);
  if (!name.ok) throw bad(name.error.message);
  if (typeof v.issuing !== 'string' || typeof v.attributeAuthority !== 'string')
    throw bad('issuing and attributeAuthority must be PEM strings');
  if (!Array.isArray(v.vpns) || v.vpns.length > 10_000 || !Array.isArray(v.permits) || v.permits.length > 100_000)
    throw bad('vpns and permits must be arrays');
  const vpns: FederationMessage['vpns'] = [];
  for (const x of v.vpns) {
    if (
      !isObj(x) ||
      typeof x.name !== 'string' ||
      !checkName('VPN', x.name).ok ||
      typeof x.id !== 'number' ||
      !Number.isInteger(x.id) ||
      !Array.isArray(x.members) ||
      x.members.length > 10_000
    )
      throw bad('bad VPN entry');
    const members: FederationMessage['vpns'][number]['members'] = [];
    for (const m of x.members) {
      if (
        !isObj(m) ||
        !checkName('gateway', m.gateway).ok ||
        typeof m.address !== 'string' ||
        typeof m.certificate !== 'string' ||
        !Array.isArray(m.prefixes)
      )
        throw bad(`bad member in VPN ${x.name}`);
      // The rules for our own members (canonical IPv4/IPv6, no v4-mapped, link-local or multicast).
      const address = checkAddress(m.address);
      if (!address.ok) throw bad(`bad address of ${m.gateway} in VPN ${x.name}: ${address.error.message}`);
      const prefixes = checkPrefixes(m.prefixes);
      if (!prefixes.ok) throw bad(`bad prefix in VPN ${x.name}: ${prefixes.error.message}`);
      const canonical = { address: address.value, prefixes: prefixes.value.map(String) };
      members.push({ gateway: m.gateway as string, ...canonical, certificate: m.certificate });
    }
    vpns.push({ name: x.name, id: x.id, members });
  }
  const permits: FederationMessage['permits'] = [];
  for (const p of v.permits) {
    if (
      !isObj(p) ||
      typeof p.vpn !== 'string' ||
      typeof p.holder !== 'string' ||
      typeof p.der !== 'string' ||
      typeof p.notAfter !== 'number'
    )
      throw bad('bad permit entry');
    permits.push({ vpn: p.vpn, holder: p.holder, der: p.der, notAfter: p.notAfter });
  }
  return {
    format: FEDERATION_FORMAT,
    authority: name.value,
    issuing: v.issuing,
    attributeAuthority: v.attributeAuthority,
    vpns,
    permits,
  };
}

function cn(cert: x509.X509Certificate): string | undefined {
  return cert.subjectName.getField('2.5.4.3')[0];
}

/** Does `cert` chain to `root` through `issuing` at `now` (signatures, CA flag, validity)? */
function chains(cert: NodeX509, issuing: NodeX509, root: NodeX509, now: number): boolean {
  const valid = (c: NodeX509) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
  return (
    issuing.ca &&
    root.ca &&
    valid(cert) &&
    valid(issuing) &&
    valid(root) &&
    cert.verify(issuing.publicKey) &&
    issuing.verify(root.publicKey) &&
    issuing.checkIssued(root) &&
    cert.checkIssued(issuing)
  );
}

export class Federation {
  private timer?: NodeJS.Timeout;
  private kicked?: NodeJS.Timeout;
  private running?: Promise<void>;
  private next?: Promise<void>;
  private stopped = false;

  constructor(private readonly h: FederationHost) {}

  // --- administration ---------------------------------------------------------------------

  async addPeer(actor: string, p: { name: string; url: string; root: string }): Promise<void> {
    const name = checkName('authority', p.name);
    if (!name.ok) throw badRequest('bad-name', name.error.message);
    if (name.value === this.h.name) throw badRequest('self-peer', 'an authority cannot peer with itself');
    let url: URL;
    try {
      url = new URL(p.url);
    } catch {
      throw badRequest('bad-url', `not a URL: ${JSON.stringify(p.url)}`);
    }
    if (url.protocol !== 'https:') throw badRequest('bad-url', 'the peer URL must be https://');
    let root: NodeX509;
    const rootPem = parsePem(p.root, 'CERTIFICATE');
    if (!rootPem.ok) throw badRequest('bad-root', `the root must be one PEM certificate: ${rootPem.reason}`);
    try {
      root = new NodeX509(Buffer.from(rootPem.der));
    } catch {
      throw badRequest('bad-root', 'the root must be one PEM certificate');
    }
    if (!root.ca || !root.verify(root.publicKey))
      throw badRequest('bad-root', 'the root must be a self-signed CA certificate');
    if (root.fingerprint256 === new NodeX509(this.h.ca.root.cert.toString('pem')).fingerprint256)
      throw badRequest('self-peer', 'that is our own root');
    await this.h.change(actor, async (tx, _touch, audit) => {
      if (await tx.getPeer(name.value)) throw conflict('peer-exists', `authority ${name.value} is already a peer`);
      await tx.insertPeer({
        name: name.value,
        url: url.origin,
        rootPem: root.toString(),
        addedAt: this.h.now(),
        lastSyncAt: null,
        lastError: null,
      });
      audit('peer.add', undefined, { peer: name.value, url: url.origin, root: root.fingerprint256 });
    });
    this.kick();
  }

  async removePeer(actor: string, name: string): Promise<void> {
    await this.h.change(actor, async (tx, touch, audit) => {
      if (!(await tx.getPeer(name))) throw notFound('unknown-peer', `authority ${name} is not a peer`);
      for (const s of await tx.listShares({ peer: name })) touch(await this.localMembers(tx, s.vpnId));
      await tx.deletePeer(name);
      audit('peer.remove', undefined, { peer: name });
    });
  }

  async share(actor: string, vpnName: string, peer: string): Promise<void> {
    await this.h.change(actor, async (tx, _touch, audit) => {
      const v = await tx.getVpnByName(vpnName);
      if (!v) throw notFound('unknown-vpn', `there is no VPN named ${JSON.stringify(vpnName)}`);
      if (v.mode !== 'pairwise')
        throw conflict(
          'not-pairwise',
          `VPN ${vpnName} is a group VPN; only pairwise VPNs span authorities (their keys come from IKE)`,
        );
      if (!(await tx.getPeer(peer)))
        throw notFound('unknown-peer', `authority ${peer} is not a peer (kasane authority peer add)`);
      if ((await tx.listShares({ vpnId: v.id, peer })).length)
        throw conflict('already-shared', `VPN ${vpnName} is already shared with ${peer}`);
      await tx.insertShare({ vpnId: v.id, peer, addedAt: this.h.now() });
      audit('vpn.share', v, { peer });
    });
    this.kick();
  }

  async unshare(actor: string, vpnName: string, peer: string): Promise<void> {
    await this.h.change(actor, async (tx, touch, audit) => {
      const v = await tx.getVpnByName(vpnName);
      if (!v) throw notFound('unknown-vpn', `there is no VPN named ${JSON.stringify(vpnName)}`);
      if (!(await tx.listShares({ vpnId: v.id, peer })).length)
        throw notFound('not-shared', `VPN ${vpnName} is not shared with ${peer}`);
      await tx.deleteShare(v.id, peer);
      touch(await this.localMembers(tx, v.id));
      audit('vpn.unshare', v, { peer });
    });
    this.kick();
  }

  async view(): Promise<FederationView> {
    return this.h.read(async (tx) => {
      const peers = (await tx.listPeers()).map(({ rootPem, ...p }) => ({
        ...p,
        rootFingerprint: new NodeX509(rootPem).fingerprint256,
      }));
      const shares: FederationView['shares'] = [];
      for (const s of await tx.listShares({})) {
        const v = (await tx.getVpnById(s.vpnId))!;
        const fm = await tx.listForeignMembers({ vpnId: s.vpnId, peer: s.peer });
        const permits = await tx.listPermits({ vpnId: s.vpnId, peer: s.peer });
        shares.push({
          vpn: v.name,
          vpnId: v.id,
          peer: s.peer,
          foreignMembers: fm.map((m) => ({
            gateway: m.gateway,
            address: m.address,
            prefixes: JSON.parse(m.prefixes) as string[],
          })),
          permitsIn: permits.filter((p) => p.direction === 'in').length,
          permitsOut: permits.filter((p) => p.direction === 'out').length,
        });
      }
      const names = new Map((await tx.listVpns()).map((v) => [v.id, v.name]));
      const permits = (await tx.listPermits({})).map((p) => ({
        vpn: names.get(p.vpnId) ?? String(p.vpnId),
        vpnId: p.vpnId,
        peer: p.peer,
        holder: p.holder,
        direction: p.direction,
        notAfter: p.notAfter,
      }));
      return { peers, shares, permits, permitValidityMs: this.h.permitValidityMs };
    });
  }

  // --- the exchange ---------------------------------------------------------------------------

  /** Which configured peer presented this client certificate chain (leaf first), if any. */
  async authenticatePeer(chain: Uint8Array[]): Promise<string> {
    if (chain.length < 2)
      throw forbidden('peer-chain-required', 'present the authority TLS certificate with its issuing CA');
    let leaf: NodeX509, issuing: NodeX509;
    try {
      [leaf, issuing] = [new NodeX509(Buffer.from(chain[0])), new NodeX509(Buffer.from(chain[1]))];
    } catch {
      throw forbidden('bad-client-certificate', 'the client certificate chain does not parse');
    }
    const now = this.h.now();
    for (const p of await this.h.read((tx) => tx.listPeers())) {
      const root = new NodeX509(p.rootPem);
      const host = new URL(p.url).hostname.replace(/^\[|\]$/g, '');
      const named = /^[\d.]+$|:/.test(host) ? leaf.checkIP(host) !== undefined : leaf.checkHost(host) !== undefined;
      if (named && chains(leaf, issuing, root, now)) return p.name;
    }
    throw forbidden(
      'unknown-peer',
      'the client certificate is not that of a peer authority (its root, and its URL host in the certificate)',
    );
  }

  /** A peer's message: absorb it, answer with ours for it. */
  async exchange(peer: string, body: unknown): Promise<FederationMessage> {
    const msg = parseFederationMessage(body);
    if (msg.authority !== peer)
      throw forbidden(
        'peer-name-mismatch',
        `the message names authority ${msg.authority}, the certificate is peer ${peer}'s`,
      );
    await this.absorb(peer, msg);
    return this.messageFor(peer);
  }

  /** What we tell `peer`: our members of the VPNs we share with it, and the permits we issued to its gateways. */
  async messageFor(peer: string): Promise<FederationMessage> {
    await this.issueOut(peer);
    return this.h.read(async (tx) => {
      const vpns: FederationMessage['vpns'] = [];
      const names = new Map<number, string>();
      for (const s of await tx.listShares({ peer })) {
        const v = (await tx.getVpnById(s.vpnId))!;
        names.set(v.id, v.name);
        const members: FederationMessage['vpns'][number]['members'] = [];
        for (const m of await this.localMemberViews(tx, v.id))
          members.push({
            gateway: m.gateway,
            address: m.address,
            prefixes: m.prefixes,
            certificate: b64(m.certificate),
          });
        vpns.push({ name: v.name, id: v.id, members });
      }
      const now = this.h.now();
      const permits = (await tx.listPermits({ peer, direction: 'out' }))
        .filter((p) => p.notAfter > now && names.has(p.vpnId))
        .map((p) => ({ vpn: names.get(p.vpnId)!, holder: p.holder, der: b64(p.der), notAfter: p.notAfter }));
      return {
        format: FEDERATION_FORMAT,
        authority: this.h.name,
        issuing: this.h.ca.issuing.cert.toString('pem'),
        attributeAuthority: this.h.aa.cert.toString('pem'),
        vpns,
        permits,
      };
    });
  }

  /** Takes in a peer's members and the permits it issued to ours, checking every certificate and permit. */
  async absorb(peer: string, msg: FederationMessage): Promise<void> {
    const now = this.h.now();
    const row = await this.h.read((tx) => tx.getPeer(peer));
    if (!row) throw notFound('unknown-peer', `authority ${peer} is not a peer`);
    const root = new NodeX509(row.rootPem);
    let issuing: NodeX509;
    let aa: x509.X509Certificate;
    try {
      // Exactly one PEM block each, within the DER bounds, before any parser sees them.
      const [issuingDer, aaDer] = [msg.issuing, msg.attributeAuthority].map((pem) => {
        const d = parsePem(pem, 'CERTIFICATE');
        if (!d.ok || !checkDer(d.der, CERTIFICATE_LIMITS).ok) throw new Error('bad certificate');
        return d.der;
      });
      issuing = new NodeX509(Buffer.from(issuingDer));
      aa = new x509.X509Certificate(new Uint8Array(aaDer).buffer as ArrayBuffer);
    } catch {
      throw badRequest('bad-federation-message', 'issuing or attributeAuthority is not one PEM certificate');
    }
    if (!issuing.ca || !issuing.verify(root.publicKey))
      throw forbidden('bad-issuing', `the issuing CA does not chain to ${peer}'s root`);
    const aaOk = await checkAttributeAuthority(aa, new x509.X509Certificate(row.rootPem), new Date(now));
    if (!aaOk.ok) throw forbidden('bad-attribute-authority', `${peer}'s attribute authority: ${aaOk.error.message}`);
    // Verify outside the transaction (signatures are slow), then write what passed.
    const verified = new Map<number, ForeignMemberRow[]>();
    const permitsIn = new Map<number, PermitRow[]>();
    const { shares, vpns, locals } = await this.h.read(async (tx) => {
      const shares = await tx.listShares({ peer });
      const vpns = new Map<number, VpnRow>();
      const locals = new Map<number, Map<string, Uint8Array>>();
      for (const s of shares) {
        vpns.set(s.vpnId, (await tx.getVpnById(s.vpnId))!);
        locals.set(s.vpnId, new Map((await this.localMemberViews(tx, s.vpnId)).map((m) => [m.gateway, m.certificate])));
      }
      return { shares, vpns, locals };
    });
    for (const s of shares) {
      const v = vpns.get(s.vpnId)!;
      const theirs = msg.vpns.find((x) => x.name === v.name);
      const rows: ForeignMemberRow[] = [];
      if (theirs && theirs.id !== v.id)
        this.h.log?.warn(
          { peer, vpn: v.name, ours: v.id, theirs: theirs.id },
          'a shared VPN has another VPN id at the peer: its members are ignored until both use one id',
        );
      else if (theirs) {
        for (const m of theirs.members) {
          let cert: NodeX509;
          try {
            const der = Buffer.from(m.certificate, 'base64');
            if (!checkDer(der, CERTIFICATE_LIMITS).ok) throw new Error('out of bounds');
            cert = new NodeX509(der);
          } catch {
            this.h.log?.warn({ peer, vpn: v.name, gateway: m.gateway }, 'a foreign member certificate does not parse');
            continue;
          }
          const name = cn(new x509.X509Certificate(cert.raw));
          if (!chains(cert, issuing, root, now) || name !== m.gateway) {
            this.h.log?.warn(
              { peer, vpn: v.name, gateway: m.gateway },
              `a foreign member certificate is refused (${name !== m.gateway ? 'its name differs' : 'it does not chain to the peer root'})`,
            );
            continue;
          }
          rows.push({
            vpnId: v.id,
            peer,
            gateway: m.gateway,
            address: m.address,
            prefixes: JSON.stringify(m.prefixes),
            certDer: new Uint8Array(cert.raw),
            updatedAt: now,
          });
        }
      }
      verified.set(v.id, rows);
      const mine = locals.get(v.id)!;
      const inRows: PermitRow[] = [];
      for (const p of msg.permits.filter((x) => x.vpn === v.name)) {
        const holderDer = mine.get(p.holder);
        if (!holderDer) continue;
        const der = fromB64(p.der);
        const r = verifyPermit(der, {
          attributeAuthority: aa,
          holder: new x509.X509Certificate(new Uint8Array(holderDer).buffer as ArrayBuffer),
          group: v.name,
          now: new Date(now),
        });
        if (!r.ok) {
          this.h.log?.warn(
            { peer, vpn: v.name, holder: p.holder, reason: r.error.message },
            'a permit from the peer is refused',
          );
          continue;
        }
        inRows.push({
          vpnId: v.id,
          peer,
          holder: p.holder,
          direction: 'in',
          der,
          notAfter: r.value.notAfter.getTime(),
          holderFingerprint: fingerprint(holderDer),
        });
      }
      permitsIn.set(v.id, inRows);
    }
    await this.h.change(`peer:${peer}`, async (tx, touch, audit) => {
      let changed = false;
      for (const [vpnId, rows] of verified) {
        const v = vpns.get(vpnId)!;
        const before = await tx.listForeignMembers({ vpnId, peer });
        const key = (r: ForeignMemberRow) => `${r.gateway}|${r.address}|${r.prefixes}|${b64(r.certDer)}`;
        if (before.map(key).sort().join() !== rows.map(key).sort().join()) {
          await tx.replaceForeignMembers(vpnId, peer, rows);
          touch(await this.localMembers(tx, vpnId));
          audit('federation.members', v, { peer, members: rows.map((r) => r.gateway) });
          changed = true;
        }
        const inBefore = await tx.listPermits({ vpnId, peer, direction: 'in' });
        const inNow = permitsIn.get(vpnId)!;
        const pkey = (r: PermitRow) => `${r.holder}|${b64(r.der)}`;
        if (inBefore.map(pkey).sort().join() !== inNow.map(pkey).sort().join()) {
          await tx.deletePermits({ vpnId, peer, direction: 'in' });
          for (const r of inNow) await tx.putPermit(r);
          touch(new Set([...inBefore, ...inNow].map((r) => r.holder)));
          audit('federation.permits', v, { peer, holders: inNow.map((r) => r.holder) });
          changed = true;
        }
      }
      // A round that brings nothing new takes no version (the peer's status below is not a change).
      if (!changed) throw new Unchanged(undefined);
    });
    await this.h.note((tx) => tx.updatePeer(peer, { lastSyncAt: now, lastError: null }));
  }

  /** Issues, renews and withdraws the permits we give `peer`'s gateways (one per gateway and VPN). */
  private async issueOut(peer: string): Promise<void> {
    const now = this.h.now();
    const plan = await this.h.read(async (tx) => {
      const want: { vpn: VpnRow; holder: string; cert: Uint8Array; have?: PermitRow }[] = [];
      const stale: { vpnId: number; holder: string }[] = [];
      for (const s of await tx.listShares({ peer })) {
        const v = (await tx.getVpnById(s.vpnId))!;
        const members = await tx.listForeignMembers({ vpnId: v.id, peer });
        const have = await tx.listPermits({ vpnId: v.id, peer, direction: 'out' });
        for (const m of members)
          want.push({ vpn: v, holder: m.gateway, cert: m.certDer, have: have.find((p) => p.holder === m.gateway) });
        for (const p of have)
          if (!members.some((m) => m.gateway === p.holder)) stale.push({ vpnId: v.id, holder: p.holder });
      }
      return { want, stale };
    });
    const issued = await this.renewals(plan.want, peer, 'out', now);
    if (issued.length === 0 && plan.stale.length === 0) return;
    await this.h.change(`peer:${peer}`, async (tx, _touch, audit) => {
      const put = await putUnchanged(tx, issued);
      for (const s of plan.stale) await tx.deletePermits({ vpnId: s.vpnId, peer, holder: s.holder, direction: 'out' });
      // Another replica renewed them all first: nothing of ours to record, no version taken.
      if (put.length === 0 && plan.stale.length === 0) throw new Unchanged(undefined);
      audit('federation.permits-issued', undefined, {
        peer,
        issued: put.map((r) => r.holder),
        withdrawn: plan.stale.map((s) => s.holder),
      });
    });
  }

  /** Permits to issue now: new holders, new holder certificates, and those with a third of their validity left. */
  private async renewals(
    want: { vpn: VpnRow; holder: string; cert: Uint8Array; have?: PermitRow }[],
    peer: string,
    direction: PermitRow['direction'],
    now: number,
  ): Promise<Issued[]> {
    const out: Issued[] = [];
    for (const w of want) {
      if (
        w.have &&
        w.have.holderFingerprint === fingerprint(w.cert) &&
        w.have.notAfter - now > this.h.permitValidityMs / 3
      )
        continue;
      out.push({ row: await this.issue(w.vpn, peer, w.holder, w.cert, direction, now), replaces: w.have });
    }
    return out;
  }

  /** Permits for our own gateways in pairwise VPNs (presented to the other local members). */
  async issueLocal(): Promise<void> {
    const now = this.h.now();
    const plan = await this.h.read(async (tx) => {
      const want: { vpn: VpnRow; holder: string; cert: Uint8Array; have?: PermitRow }[] = [];
      const stale: { vpnId: number; holder: string }[] = [];
      for (const v of (await tx.listVpns()).filter((x) => x.mode === 'pairwise')) {
        const members = await this.localMemberViews(tx, v.id);
        const have = await tx.listPermits({ vpnId: v.id, direction: 'local' });
        for (const m of members)
          want.push({ vpn: v, holder: m.gateway, cert: m.certificate, have: have.find((p) => p.holder === m.gateway) });
        for (const p of have)
          if (!members.some((m) => m.gateway === p.holder)) stale.push({ vpnId: v.id, holder: p.holder });
      }
      return { want, stale };
    });
    const issued = await this.renewals(plan.want, '', 'local', now);
    if (issued.length === 0 && plan.stale.length === 0) return;
    await this.h.change('federation', async (tx, touch, audit) => {
      const put = await putUnchanged(tx, issued);
      for (const s of plan.stale)
        await tx.deletePermits({ vpnId: s.vpnId, peer: '', holder: s.holder, direction: 'local' });
      // Another replica renewed them all first: nothing of ours to record.
      if (put.length === 0 && plan.stale.length === 0) throw new Unchanged(undefined);
      touch(new Set([...put.map((r) => r.holder), ...plan.stale.map((s) => s.holder)]));
      audit('federation.permits-local', undefined, {
        issued: put.map((r) => r.holder),
        withdrawn: plan.stale.map((s) => s.holder),
      });
    });
  }

  private async issue(
    v: VpnRow,
    peer: string,
    holder: string,
    certDer: Uint8Array,
    direction: PermitRow['direction'],
    now: number,
  ): Promise<PermitRow> {
    const p = await issuePermit({
      attributeAuthority: { cert: this.h.aa.cert, privateKey: this.h.aa.key },
      holder: new x509.X509Certificate(new Uint8Array(certDer).buffer as ArrayBuffer),
      groups: [v.name],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + this.h.permitValidityMs),
      random: this.h.random,
    });
    return {
      vpnId: v.id,
      peer,
      holder,
      direction,
      der: new Uint8Array(p.der),
      notAfter: p.notAfter.getTime(),
      holderFingerprint: fingerprint(certDer),
    };
  }

  /** Our active members of a VPN, with their current certificates. */
  async localMemberViews(
    tx: StoreOps,
    vpnId: number,
  ): Promise<{ gateway: string; address: string; prefixes: string[]; certificate: Uint8Array }[]> {
    const byGateway = new Map<string, { address: string; prefixes: string[]; status: string }>();
    for (const r of await tx.listVpnMembers(vpnId)) {
      const e = byGateway.get(r.gateway) ?? { address: r.address, prefixes: [], status: r.status };
      e.prefixes.push(r.prefix);
      byGateway.set(r.gateway, e);
    }
    const out: { gateway: string; address: string; prefixes: string[]; certificate: Uint8Array }[] = [];
    for (const [gateway, e] of byGateway) {
      if (e.status !== 'active') continue;
      const g = await tx.getGateway(gateway);
      // The IKE identity: its own certificate when the gateway's IKE key is in a token, else the gateway certificate.
      const serial = g?.ikeCertSerial ?? g?.certSerial;
      const cert = serial ? await tx.getCertificate(serial) : undefined;
      if (cert) out.push({ gateway, address: e.address, prefixes: e.prefixes, certificate: cert.der });
    }
    return out.sort((a, b) => (a.gateway < b.gateway ? -1 : 1));
  }

  private async localMembers(tx: StoreOps, vpnId: number): Promise<string[]> {
    return [...new Set((await tx.listMemberPrefixes({ vpnId })).map((m) => m.gateway))];
  }

  /**
   * What a member gateway of a pairwise VPN gets beyond the VPN's own view: the certificate of
   * every other member and the permit it presents to it, and the members under peer authorities.
   */
  async decorate(
    tx: StoreOps,
    gateway: string,
    vpn: VpnRow,
    members: DeliveredMember[],
    now: number,
  ): Promise<{ members: DeliveredMember[]; foreignPrefixes: string[] }> {
    if (vpn.mode !== 'pairwise') return { members, foreignPrefixes: [] };
    const certs = new Map((await this.localMemberViews(tx, vpn.id)).map((m) => [m.gateway, m.certificate]));
    const local = (await tx.listPermits({ vpnId: vpn.id, direction: 'local', holder: gateway })).find(
      (p) => p.notAfter > now,
    );
    const out: DeliveredMember[] = members.map((m) => {
      const cert = certs.get(m.gateway);
      if (m.gateway === gateway || !cert || !local) return m;
      return { ...m, certificate: b64(cert), permit: { der: b64(local.der), notAfter: local.notAfter } };
    });
    const foreignPrefixes: string[] = [];
    for (const s of await tx.listShares({ vpnId: vpn.id })) {
      const permit = (await tx.listPermits({ vpnId: vpn.id, peer: s.peer, direction: 'in', holder: gateway })).find(
        (p) => p.notAfter > now,
      );
      for (const f of await tx.listForeignMembers({ vpnId: vpn.id, peer: s.peer })) {
        const prefixes = JSON.parse(f.prefixes) as string[];
        foreignPrefixes.push(...prefixes);
        out.push({
          gateway: `${f.gateway}@${s.peer}`,
          address: f.address,
          prefixes,
          spis: [],
          certificate: b64(f.certDer),
          ...(permit ? { permit: { der: b64(permit.der), notAfter: permit.notAfter } } : {}),
        });
      }
    }
    return { members: out, foreignPrefixes };
  }

  // --- the loop -------------------------------------------------------------------------------

  /** Exchanges with every peer and renews local permits now, then every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.kick(0), intervalMs);
    this.timer.unref();
    this.kick(0);
  }

  /** Stops the loop; resolves once a round under way has ended, so that the store can close after it. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.kicked) clearTimeout(this.kicked);
    return (this.running ?? Promise.resolve()).catch(() => undefined);
  }

  /** Soon (debounced): after a local change that peers or members should hear about. */
  kick(delayMs = 200): void {
    if (this.stopped || this.kicked || this.h.active?.() === false) return;
    this.kicked = setTimeout(() => {
      this.kicked = undefined;
      // A round that fails (the database is away) is logged; the next round tries again.
      this.syncAll().catch((e: unknown) => this.h.log?.warn({ err: (e as Error).message }, 'federation round failed'));
    }, delayMs);
    this.kicked.unref();
  }

  /**
   * One round: local permits, then an exchange with each peer. Resolves after a round that began
   * after the call (a round already under way may have read the state before the caller's change);
   * callers that wait together share that round.
   */
  async syncAll(): Promise<void> {
    // Not even a round chained before the stop: the store is closing.
    if (this.stopped) return;
    if (this.running) {
      this.next ??= this.running.then(() => {
        this.next = undefined;
        return this.syncAll();
      });
      return this.next;
    }
    this.running = (async () => {
      try {
        await this.issueLocal();
      } catch (e) {
        this.h.log?.error({ err: (e as Error).message }, 'local permits could not be renewed');
      }
      for (const p of await this.h.read((tx) => tx.listPeers())) {
        if (this.stopped) break;
        try {
          await this.syncPeer(p);
        } catch (e) {
          const message = (e as Error).message;
          this.h.log?.warn(
            { peer: p.name, err: message },
            'federation exchange failed; permits already delivered stay valid until they expire',
          );
          await this.h.note((tx) => tx.updatePeer(p.name, { lastError: message.slice(0, 500) })).catch(() => undefined);
        }
      }
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async syncPeer(p: PeerRow): Promise<void> {
    const mine = await this.messageFor(p.name);
    const answer = await postJson(new URL('/v1/federation/exchange', p.url), mine, {
      ca: p.rootPem,
      cert: this.h.tls.cert,
      key: this.h.tls.key,
    });
    await this.absorb(p.name, parseFederationMessage(answer));
    // Our permits for its gateways may have changed with what it just told us: one more round next time.
    const again = await this.messageFor(p.name);
    if (
      JSON.stringify(again.permits) !== JSON.stringify(mine.permits) ||
      JSON.stringify(again.vpns) !== JSON.stringify(mine.vpns)
    )
      this.kick();
  }
}

/** A permit just issued, and the one it renews (none for a new holder). */
interface Issued {
  row: PermitRow;
  replaces: PermitRow | undefined;
}

/**
 * Writes the permits whose slot still holds what they renew. Another replica (or a round asked
 * for by an administrator) may have renewed one meanwhile: that renewal stands, ours is dropped,
 * so each renewal is written once.
 */
async function putUnchanged(tx: StoreOps, issued: Issued[]): Promise<PermitRow[]> {
  const put: PermitRow[] = [];
  for (const { row, replaces } of issued) {
    const [now] = await tx.listPermits({
      vpnId: row.vpnId,
      peer: row.peer,
      holder: row.holder,
      direction: row.direction,
    });
    if ((now ? b64(now.der) : undefined) !== (replaces ? b64(replaces.der) : undefined)) continue;
    await tx.putPermit(row);
    put.push(row);
  }
  return put;
}

/** POST over mutual TLS to a peer authority; its server certificate must chain to the root we were given. */
function postJson(url: URL, body: unknown, tls: { ca: string; cert: string; key: string }): Promise<unknown> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        headers: { 'content-type': 'application/json', 'content-length': String(payload.length) },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 400)
            return reject(new Error(`peer answered ${res.statusCode}: ${text.slice(0, 300)}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`peer answered non-JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export { derToPem, pemToDer };

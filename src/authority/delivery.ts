// What a gateway receives (`kasane-delivery/1`): the directory of protected prefixes and each VPN
// it is a member of, with the live epochs' keys sealed to it alone and the effective members
// (address, prefixes, SPIs per epoch) — for pairwise VPNs also their certificates and permits,
// foreign members included (federation.ts). A VPN's part without keys is the same for every
// member: it is built once per VPN version and shared.
import { pushTo } from '../base/maps.js';
import type { x509 } from '../pki/x509.js';
import type { AuthorityContext } from './context.js';
import type { Directory } from './directory.js';
import type { Federation } from './federation.js';
import { membersFrom } from './lookups.js';
import type { SealedKeyRow, StateRow, StoreOps, VpnRow } from './storage/types.js';
import { DELIVERY_FORMAT, type DeliveredMember, type DeliveredVpn, type GatewayDelivery } from './wire.js';

/** A VPN as every member sees it (no keys), at one `changedVersion` of the VPN. */
interface VpnView {
  changedVersion: number;
  vpn: VpnRow;
  epochs: { epoch: number; activeFrom: number; expiresAt: number }[];
  members: DeliveredMember[];
}

export class Delivery {
  private readonly views = new Map<number, VpnView>();
  /** Views being built, by `id:changedVersion`: concurrent deliveries after one change share a single rebuild. */
  private readonly builds = new Map<string, Promise<VpnView>>();

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      directory: Directory;
      /** Decorates pairwise VPNs (absent without an attribute authority). */
      federation?: Federation;
      /** Delivered so that gateways can check the permits of their pairwise peers. */
      attributeAuthority?: { cert: x509.X509Certificate };
    },
  ) {}

  /** Everything `gateway` receives, at one consistent version. */
  async of(gateway: string): Promise<GatewayDelivery> {
    return this.ctx.store.read(async (tx) => this.at(tx, await tx.state(), gateway, this.ctx.now()));
  }

  /** Everything `gateway` receives, read in `tx` at `state`. */
  async at(tx: StoreOps, state: StateRow, gateway: string, now: number): Promise<GatewayDelivery> {
    return (await this.many(tx, state, [gateway], now)).get(gateway)!;
  }

  /** What each of `gateways` receives, read in `tx` at `state` with a few queries for all of them. */
  async many(
    tx: StoreOps,
    state: StateRow,
    gateways: readonly string[],
    now: number,
  ): Promise<Map<string, GatewayDelivery>> {
    const vpnsOf = new Map<string, number[]>(gateways.map((g) => [g, []]));
    for (const m of await tx.listMemberPrefixesOf(gateways)) {
      const ids = vpnsOf.get(m.gateway)!;
      if (!ids.includes(m.vpnId)) ids.push(m.vpnId);
    }
    const sealedOf = new Map<string, SealedKeyRow[]>();
    for (const s of await tx.listSealedKeysOf(gateways)) {
      const list = sealedOf.get(s.gateway) ?? [];
      list.push(s);
      sealedOf.set(s.gateway, list);
    }
    const views = await this.viewsOf(tx, await tx.getVpnsByIds([...new Set([...vpnsOf.values()].flat())]));
    const directory = await this.o.directory.prefixes(tx, state);
    const aa = this.o.attributeAuthority
      ? Buffer.from(this.o.attributeAuthority.cert.rawData).toString('base64')
      : undefined;
    const out = new Map<string, GatewayDelivery>();
    for (const gateway of gateways) {
      const sealed = sealedOf.get(gateway) ?? [];
      const vpns: DeliveredVpn[] = [];
      const foreign: string[] = [];
      for (const id of vpnsOf.get(gateway)!) {
        const view = views.get(id);
        if (!view) continue;
        const live = new Set(view.epochs.filter((e) => e.expiresAt > now).map((e) => e.epoch));
        const epochs = view.epochs
          .filter((e) => live.has(e.epoch))
          .flatMap((e) => {
            const s = sealed.find((x) => x.vpnId === id && x.epoch === e.epoch);
            return s
              ? [{ ...e, enc: Buffer.from(s.enc).toString('base64'), ct: Buffer.from(s.ct).toString('base64') }]
              : [];
          });
        let members =
          live.size === view.epochs.length
            ? view.members
            : view.members.map((m) => ({ ...m, spis: m.spis.filter((s) => live.has(s.epoch)) }));
        if (this.o.federation && view.vpn.mode === 'pairwise') {
          const d = await this.o.federation.decorate(tx, gateway, view.vpn, members, now);
          members = d.members;
          foreign.push(...d.foreignPrefixes);
        }
        vpns.push({ id, name: view.vpn.name, mode: view.vpn.mode, epochs, members });
      }
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
      if (aa) d.attributeAuthority = aa;
      out.set(gateway, d);
    }
    return out;
  }

  /** Drops the cached view of a deleted VPN. */
  forget(vpnId: number): void {
    this.views.delete(vpnId);
  }

  /**
   * The VPNs' views, each cached until its VPN changes (a view depends only on its changedVersion).
   * The missing ones are built together, with a few queries for all of them: after a rotation of
   * every VPN the first batch of deliveries needs them all at once.
   */
  private async viewsOf(tx: StoreOps, vpns: readonly VpnRow[]): Promise<Map<number, VpnView>> {
    const out = new Map<number, VpnView>();
    const pending: Promise<void>[] = [];
    const missing: VpnRow[] = [];
    const key = (vpn: VpnRow): string => `${vpn.id}:${vpn.changedVersion}`;
    for (const vpn of vpns) {
      const cached = this.views.get(vpn.id);
      const building = this.builds.get(key(vpn));
      if (cached && cached.changedVersion === vpn.changedVersion) out.set(vpn.id, cached);
      else if (building) pending.push(building.then((v) => void out.set(vpn.id, v)));
      else missing.push(vpn);
    }
    if (missing.length) {
      const built = this.build(tx, missing);
      for (const vpn of missing) {
        const one = built.then((m) => m.get(vpn.id)!);
        this.builds.set(key(vpn), one);
        pending.push(one.then((v) => void out.set(vpn.id, v)));
      }
      const done = (): void => missing.forEach((vpn) => this.builds.delete(key(vpn)));
      built.then(done, done);
    }
    await Promise.all(pending);
    return out;
  }

  private async build(tx: StoreOps, vpns: readonly VpnRow[]): Promise<Map<number, VpnView>> {
    const ids = vpns.map((v) => v.id);
    const group = <R extends { vpnId: number }>(rows: readonly R[]): Map<number, R[]> => {
      const m = new Map<number, R[]>();
      for (const r of rows) pushTo(m, r.vpnId, r);
      return m;
    };
    const memberRows = group(await tx.listVpnMembersOf(ids));
    const spiRows = group(await tx.listSpisOf(ids));
    const epochRows = group(await tx.listEpochsOf(ids));
    const out = new Map<number, VpnView>();
    for (const vpn of vpns) {
      const id = vpn.id;
      const { prefixes, gateways } = membersFrom(memberRows.get(id) ?? []);
      const spis = new Map<string, { epoch: number; spi: number }[]>();
      for (const s of spiRows.get(id) ?? []) pushTo(spis, s.gateway, { epoch: s.epoch, spi: s.spi });
      const members: DeliveredMember[] = [];
      for (const [name, ps] of prefixes) {
        const g = gateways.get(name)!;
        if (g.status !== 'active') continue;
        members.push({
          gateway: name,
          address: g.address,
          prefixes: ps.map(String),
          spis: spis.get(name) ?? [],
        });
      }
      members.sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : 0));
      const epochs = (epochRows.get(id) ?? []).map((e) => ({
        epoch: e.epoch,
        activeFrom: e.activeFrom,
        expiresAt: e.expiresAt,
      }));
      const view: VpnView = { changedVersion: vpn.changedVersion, vpn, epochs, members };
      const cur = this.views.get(id);
      if (!cur || cur.changedVersion < view.changedVersion) this.views.set(id, view);
      out.set(id, view);
    }
    return out;
  }
}

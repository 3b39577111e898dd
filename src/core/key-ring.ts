// What a gateway holds from its authority, indexed for the core: its own memberships (which local
// terminals it puts in which VPN), the derived sending and receiving SAs per epoch, the search
// authentication keys, the members of each VPN (for the receive-side membership check) and the
// directory of protected prefixes (for downgrade prevention).
import { type Ip, PrefixTable, type Prefix } from '../base/addr.js';
import type { RxSa, TxSa } from './executor.js';
import type { AuthoritySnapshot, Epoch, GatewayId, Spi, VpnId, VpnMember, VpnView } from './types.js';
import { deriveSearchKey, deriveSenderKey } from '../crypto/kdf.js';

export interface RxSaInfo extends RxSa {
  expiresAt: number;
}

export class KeyRing {
  readonly version: number;
  private readonly vpns = new Map<VpnId, VpnView>();
  /** VPNs this gateway belongs to, with the prefixes it puts in each. */
  private readonly own = new Map<VpnId, Prefix[]>();
  private readonly directory = new PrefixTable<true>();
  private readonly searchKeys = new Map<string, Uint8Array>();
  private readonly rx = new Map<Spi, RxSaInfo>();
  /** The same SAs by "vpnId/sender/epoch". */
  private readonly rxBySender = new Map<string, RxSaInfo>();

  constructor(
    readonly self: GatewayId,
    snapshot: AuthoritySnapshot,
  ) {
    this.version = snapshot.version;
    for (const p of snapshot.protectedPrefixes) this.directory.set(p, true);
    for (const v of snapshot.vpns) {
      const me = v.members.find((m) => m.gateway === self);
      if (!me) continue; // a snapshot lists only our VPNs; ignore anything else
      this.vpns.set(v.id, v);
      this.own.set(v.id, me.prefixes);
      if (v.mode !== 'group') continue; // pairwise VPNs get their keys from IKE, not from here
      for (const e of v.epochs) {
        this.searchKeys.set(`${v.id}/${e.epoch}`, deriveSearchKey(e.key, v.id, e.epoch));
        for (const m of v.members) {
          if (m.gateway === self) continue;
          const spi = m.spis.find((s) => s.epoch === e.epoch)?.spi;
          if (spi === undefined) continue;
          const { key, salt } = deriveSenderKey(e.key, v.id, e.epoch, m.gateway);
          const sa = { spi, vpnId: v.id, epoch: e.epoch, sender: m.gateway, key, salt, expiresAt: e.expiresAt };
          this.rx.set(spi, sa);
          this.rxBySender.set(`${v.id}/${m.gateway}/${e.epoch}`, sa);
        }
      }
    }
  }

  vpn(id: VpnId): VpnView | undefined {
    return this.vpns.get(id);
  }

  vpnIds(): VpnId[] {
    return [...this.vpns.keys()];
  }

  /** The VPNs in which this gateway puts `terminal`, ascending by id. */
  coveringVpns(terminal: Ip): VpnId[] {
    const out: VpnId[] = [];
    for (const [id, prefixes] of this.own) if (prefixes.some((p) => p.contains(terminal))) out.push(id);
    return out.sort((a, b) => a - b);
  }

  /** True when `terminal` is in some VPN of the authority (the directory of protected prefixes). */
  isProtected(terminal: Ip): boolean {
    return this.directory.lookup(terminal) !== undefined;
  }

  /**
   * The member of VPN `vpnId` a key-search claim names. A gateway under a peer authority is
   * delivered as `name@authority` but claims `name`: an exact name first, else the one qualified
   * name that matches (none when two peer authorities have a gateway of that name in the VPN).
   */
  peerMember(vpnId: VpnId, claimed: GatewayId): VpnMember | undefined {
    const members = this.vpns.get(vpnId)?.members ?? [];
    const exact = members.find((m) => m.gateway === claimed);
    if (exact) return exact;
    const qualified = members.filter((m) => m.gateway.startsWith(`${claimed}@`));
    return qualified.length === 1 ? qualified[0] : undefined;
  }

  /** True when `sender` puts `terminal` into VPN `vpnId` (receive-side membership check). */
  memberCovers(vpnId: VpnId, sender: GatewayId, terminal: Ip): boolean {
    const m = this.vpns.get(vpnId)?.members.find((x) => x.gateway === sender);
    return !!m && m.prefixes.some((p) => p.contains(terminal));
  }

  /** The epoch a sender uses now: the newest one active and not expired. */
  currentEpoch(vpnId: VpnId, now: number): Epoch | undefined {
    const v = this.vpns.get(vpnId);
    if (!v) return undefined;
    let best: Epoch | undefined;
    for (const e of v.epochs)
      if (e.activeFrom <= now && e.expiresAt > now && (best === undefined || e.epoch > best)) best = e.epoch;
    return best;
  }

  /** This gateway's sending SA for a group VPN now (nextSeq is set by the caller). */
  txSa(vpnId: VpnId, now: number): Omit<TxSa, 'nextSeq'> | undefined {
    const v = this.vpns.get(vpnId);
    const epoch = this.currentEpoch(vpnId, now);
    if (!v || v.mode !== 'group' || epoch === undefined) return undefined;
    const e = v.epochs.find((x) => x.epoch === epoch)!;
    const spi = v.members.find((m) => m.gateway === this.self)?.spis.find((s) => s.epoch === epoch)?.spi;
    if (spi === undefined) return undefined;
    const { key, salt } = deriveSenderKey(e.key, vpnId, epoch, this.self);
    return { spi, vpnId, epoch, key, salt };
  }

  rxSas(): IterableIterator<RxSaInfo> {
    return this.rx.values();
  }

  rxSa(spi: Spi): RxSaInfo | undefined {
    return this.rx.get(spi);
  }

  /** The receiving SA of `sender`'s key for (vpnId, epoch). */
  rxSaOf(vpnId: VpnId, sender: GatewayId, epoch: Epoch): RxSaInfo | undefined {
    return this.rxBySender.get(`${vpnId}/${sender}/${epoch}`);
  }

  searchKey(vpnId: VpnId, epoch: Epoch): Uint8Array | undefined {
    return this.searchKeys.get(`${vpnId}/${epoch}`);
  }

  /** The times at which the sending epoch of some VPN changes or a receiving epoch expires. */
  epochEvents(after: number): number[] {
    const out: number[] = [];
    for (const v of this.vpns.values())
      for (const e of v.epochs) {
        if (e.activeFrom > after) out.push(e.activeFrom);
        if (e.expiresAt > after && e.expiresAt < Number.MAX_SAFE_INTEGER) out.push(e.expiresAt);
      }
    return out;
  }
}

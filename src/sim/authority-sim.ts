// The authority, as far as the simulator needs one: the configuration table of seed 000
// Figure 2(3) (VPN -> VPN id -> member gateways and the prefixes each puts in), group keys by
// epoch, SPIs, and the snapshot each gateway's core receives. Keys come from a seeded stream.
//
// Rotation at time T (an `events: rotate` entry): epoch N+1 gets a new key, active from
// T + overlap; epoch N stays valid until T + overlap + grace. Removing a member rotates at once:
// the new epoch is active from T and the old one expires at T + grace; the removed gateway's
// snapshot no longer has the VPN, and the other members no longer list it.
import type { Prefix } from '../base/addr.js';
import type {
  AuthoritySnapshot,
  Epoch,
  GatewayId,
  Spi,
  VpnId,
  VpnKeyEpoch,
  VpnMember,
  VpnView,
} from '../core/types.js';
import type { RandomBytes } from './random.js';
import type { AuthorityEventSpec, GatewaySpec, Topology } from './topology.js';

/** SPIs below this are reserved (RFC 4303 reserves 1..255). */
export const FIRST_SPI = 0x100;
export const KEY_BYTES = 32;
/** An epoch that is not scheduled to expire. */
export const NEVER = Number.MAX_SAFE_INTEGER;

interface MemberState {
  gateway: GatewayId;
  address: string;
  prefixes: Prefix[];
  spis: { epoch: Epoch; spi: Spi }[];
}

interface VpnState {
  id: VpnId;
  name: string;
  epochs: VpnKeyEpoch[];
  /** In node order of the file. */
  members: MemberState[];
  /** The view every member receives; rebuilt when the VPN changes, shared between members. */
  view: VpnView;
}

export interface SnapshotDelivery {
  gateway: GatewayId;
  snapshot: AuthoritySnapshot;
}

export class SimAuthority {
  private readonly vpns: VpnState[] = [];
  private readonly vpnByName = new Map<string, VpnState>();
  private readonly vpnById = new Map<VpnId, VpnState>();
  private readonly gateways: GatewaySpec[];
  private readonly rotation: { overlap: number; grace: number };
  private nextSpi = FIRST_SPI;
  private version = 1;
  private protectedPrefixes: Prefix[] = [];

  constructor(
    topology: Topology,
    private readonly random: RandomBytes,
  ) {
    this.rotation = topology.defaults.rotation;
    this.gateways = topology.nodes.filter((n): n is GatewaySpec => n.kind === 'gateway');
    for (const spec of topology.vpns) {
      const state: VpnState = {
        id: spec.id,
        name: spec.name,
        epochs: [{ epoch: 1, key: this.random(KEY_BYTES), activeFrom: 0, expiresAt: NEVER }],
        members: [],
        view: undefined as unknown as VpnView,
      };
      this.vpns.push(state);
      this.vpnByName.set(spec.name, state);
      this.vpnById.set(spec.id, state);
    }
    for (const gw of this.gateways) {
      for (const m of gw.members) {
        const vpn = this.vpnByName.get(m.vpn) as VpnState;
        vpn.members.push({ gateway: gw.name, address: gw.address, prefixes: m.prefixes, spis: [] });
      }
    }
    // SPIs: one per (VPN, sender, epoch), in VPN order then member order: deterministic.
    for (const vpn of this.vpns) {
      for (const m of vpn.members) m.spis.push({ epoch: 1, spi: this.nextSpi++ });
      this.rebuildView(vpn);
    }
    this.protectedPrefixes = this.collectProtectedPrefixes();
  }

  /** The snapshot a gateway starts with (only the VPNs it belongs to). */
  snapshotFor(gateway: GatewayId): AuthoritySnapshot {
    return {
      version: this.version,
      protectedPrefixes: this.protectedPrefixes,
      vpns: this.vpns.filter((v) => v.members.some((m) => m.gateway === gateway)).map((v) => v.view),
    };
  }

  /** Every gateway's initial snapshot, in one pass (for large topologies). */
  initialSnapshots(): Map<GatewayId, AuthoritySnapshot> {
    const views = new Map<GatewayId, VpnView[]>();
    for (const gw of this.gateways) views.set(gw.name, []);
    for (const vpn of this.vpns) for (const m of vpn.members) views.get(m.gateway)?.push(vpn.view);
    const out = new Map<GatewayId, AuthoritySnapshot>();
    for (const [gateway, vpns] of views)
      out.set(gateway, { version: this.version, protectedPrefixes: this.protectedPrefixes, vpns });
    return out;
  }

  vpnName(id: VpnId): string | undefined {
    return this.vpnById.get(id)?.name;
  }

  /** Current members of a VPN, by gateway name. */
  membersOf(vpn: string): GatewayId[] {
    return this.vpnByName.get(vpn)?.members.map((m) => m.gateway) ?? [];
  }

  /** The key epochs a VPN currently has (for tests and reports). */
  epochsOf(vpn: string): VpnKeyEpoch[] {
    return this.vpnByName.get(vpn)?.epochs ?? [];
  }

  get currentVersion(): number {
    return this.version;
  }

  /** Applies a timed event; returns the new snapshots to deliver, in gateway order of the file. */
  apply(event: AuthorityEventSpec): SnapshotDelivery[] {
    const vpn = this.vpnByName.get(event.vpn);
    if (vpn === undefined) throw new Error(`authority: unknown VPN ${event.vpn}`);
    this.version++;
    const recipients = new Set<GatewayId>(vpn.members.map((m) => m.gateway));
    if (event.kind === 'rotate') {
      this.rotate(
        vpn,
        event.at,
        event.at + this.rotation.overlap,
        event.at + this.rotation.overlap + this.rotation.grace,
      );
    } else {
      const index = vpn.members.findIndex((m) => m.gateway === event.gateway);
      if (index < 0) throw new Error(`authority: ${event.gateway} is not a member of ${vpn.name}`);
      vpn.members.splice(index, 1);
      this.rotate(vpn, event.at, event.at, event.at + this.rotation.grace);
      const before = this.protectedPrefixes.map(String).join(',');
      this.protectedPrefixes = this.collectProtectedPrefixes();
      if (this.protectedPrefixes.map(String).join(',') !== before) {
        for (const gw of this.gateways) recipients.add(gw.name);
      }
    }
    return this.gateways
      .filter((g) => recipients.has(g.name))
      .map((g) => ({ gateway: g.name, snapshot: this.snapshotFor(g.name) }));
  }

  private rotate(vpn: VpnState, now: number, activeFrom: number, oldExpiresAt: number): void {
    const current = vpn.epochs[vpn.epochs.length - 1];
    const next = current.epoch + 1;
    // Epochs already expired are forgotten; the current one gets its end of life.
    vpn.epochs = vpn.epochs
      .filter((e) => e.expiresAt > now)
      .map((e) => (e === current ? { ...e, expiresAt: Math.min(e.expiresAt, oldExpiresAt) } : e));
    vpn.epochs.push({ epoch: next, key: this.random(KEY_BYTES), activeFrom, expiresAt: NEVER });
    const held = new Set(vpn.epochs.map((e) => e.epoch));
    for (const m of vpn.members) {
      m.spis = m.spis.filter((s) => held.has(s.epoch));
      m.spis.push({ epoch: next, spi: this.nextSpi++ });
    }
    this.rebuildView(vpn);
  }

  private rebuildView(vpn: VpnState): void {
    const members: VpnMember[] = vpn.members.map((m) => ({
      gateway: m.gateway,
      address: m.address,
      prefixes: m.prefixes,
      spis: m.spis.map((s) => ({ ...s })),
    }));
    vpn.view = { id: vpn.id, name: vpn.name, mode: 'group', epochs: vpn.epochs.map((e) => ({ ...e })), members };
  }

  private collectProtectedPrefixes(): Prefix[] {
    const seen = new Map<string, Prefix>();
    for (const vpn of this.vpns)
      for (const m of vpn.members) for (const p of m.prefixes) if (!seen.has(p.toString())) seen.set(p.toString(), p);
    return [...seen.values()];
  }
}

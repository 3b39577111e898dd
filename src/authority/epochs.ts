// Group VPNs' keys by epoch: the first epoch of a new VPN, rotation (scheduled, by hand, or urgent
// when a member leaves or is revoked), and provisioning — an SPI per (VPN, sending gateway, epoch)
// and the epoch's key sealed to each effective member. Keys are kept wrapped with the
// key-encryption key; the clear key exists only while it is sealed to members. Pairwise VPNs have
// no epochs here: their keys come from IKE.
import type { RotationConfig } from './config.js';
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import { conflict } from './errors.js';
import { deliveryContext, GROUP_KEY_BYTES, sealGroupKey, unwrapGroupKey, wrapGroupKey } from './group-keys.js';
import { activeKeys, membersOf, vpnOrThrow, type GatewayKey } from './lookups.js';
import type { SealedKeyRow, SpiRow, StoreOps, VpnRow } from './storage/types.js';

/** An epoch that is not scheduled to expire (until the next rotation sets its end). */
export const NEVER = Number.MAX_SAFE_INTEGER;

export type RotationKind = 'scheduled' | 'manual' | 'urgent';

export interface Rotated {
  vpn: string;
  epoch: number;
  activeFrom: number;
}

/** The next epoch's key, sealed to the members ahead of the transaction that installs it. */
interface PreparedRotation {
  vpnId: number;
  epoch: number;
  key: Uint8Array;
  /** Member name -> the key it was sealed to and the sealed group key. */
  sealed: Map<string, { publicKey: Uint8Array; enc: Uint8Array; ct: Uint8Array }>;
}

export class Epochs {
  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      /** Key-encryption key for group keys at rest (32 bytes). */
      kek: Uint8Array;
      rotation: RotationConfig;
    },
  ) {
    if (o.kek.length !== 32) throw new Error('the key-encryption key must be 32 bytes');
  }

  /** The first epoch of a new group VPN: active at once, until the first rotation. */
  async first(c: Change, vpnId: number): Promise<void> {
    const key = this.ctx.random(GROUP_KEY_BYTES);
    await c.tx.insertEpoch({ vpnId, epoch: 1, wrappedKey: wrapGroupKey(this.o.kek, vpnId, 1, key, this.ctx.random), activeFrom: c.now, expiresAt: NEVER, createdAt: c.now });
  }

  /** The live epochs of a VPN with their keys in the clear (for sealing to a member). */
  async liveKeys(tx: StoreOps, vpnId: number, now: number): Promise<{ epoch: number; key: Uint8Array }[]> {
    const rows = await tx.listEpochs(vpnId);
    return rows.filter((e) => e.expiresAt > now).map((e) => ({ epoch: e.epoch, key: unwrapGroupKey(this.o.kek, vpnId, e.epoch, e.wrappedKey) }));
  }

  /** Seals the given epochs' keys to the given gateways; with `spis`, also assigns their SPIs. */
  async provision(c: Change, vpn: VpnRow, epochs: { epoch: number; key: Uint8Array }[], gateways: GatewayKey[], spis: boolean): Promise<void> {
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
        const ctx = deliveryContext(this.ctx.name, g.name, vpn.id, e.epoch);
        jobs.push(sealGroupKey(e.key, g.publicKey, ctx).then((s) => ({ vpnId: vpn.id, epoch: e.epoch, gateway: g.name, enc: s.enc, ct: s.ct })));
      }
    }
    await c.tx.insertSealedKeys(await Promise.all(jobs));
  }

  /**
   * Makes the next epoch of a group VPN within a change. Scheduled/manual: active after the overlap,
   * so every member holds it before anyone sends with it; the previous epochs end `grace` after
   * that. Urgent (a member left or was revoked): active at once, previous epochs end after the short
   * urgent grace.
   */
  async rotateIn(c: Change, vpn: VpnRow, kind: RotationKind, prepared?: PreparedRotation, note?: Record<string, unknown>): Promise<{ epoch: number; activeFrom: number }> {
    const now = c.now;
    const rotation = this.o.rotation;
    const epochs = await c.tx.listEpochs(vpn.id);
    const expired = epochs.filter((e) => e.expiresAt <= now).map((e) => e.epoch);
    if (expired.length) {
      await c.tx.deleteSealedKeys({ vpnId: vpn.id, epochs: expired });
      await c.tx.deleteSpis({ vpnId: vpn.id, epochs: expired });
      await c.tx.deleteEpochs(vpn.id, expired);
    }
    const urgent = kind === 'urgent';
    const activeFrom = urgent ? now : now + rotation.overlapMs;
    const oldEnd = urgent ? now + rotation.urgentGraceMs : activeFrom + rotation.graceMs;
    for (const e of epochs) if (e.expiresAt > now && e.expiresAt > oldEnd) await c.tx.setEpochExpiry(vpn.id, e.epoch, oldEnd);
    const epoch = vpn.lastEpoch + 1;
    if (epoch > 0xffffffff) throw conflict('epochs-exhausted', `VPN ${vpn.name} has used every epoch number`);
    // A key sealed before the transaction is used only if it was made for this very epoch.
    const pre = prepared && prepared.vpnId === vpn.id && prepared.epoch === epoch ? prepared : undefined;
    const key = pre ? pre.key : this.ctx.random(GROUP_KEY_BYTES);
    await c.tx.insertEpoch({ vpnId: vpn.id, epoch, wrappedKey: wrapGroupKey(this.o.kek, vpn.id, epoch, key, this.ctx.random), activeFrom, expiresAt: NEVER, createdAt: now });
    const members = activeKeys((await membersOf(c.tx, vpn.id)).gateways);
    let spi = await c.tx.allocSpis(members.length);
    await c.tx.insertSpis(members.map((m) => ({ spi: spi++, vpnId: vpn.id, gateway: m.name, epoch })));
    const sealed = await Promise.all(
      members.map(async (m): Promise<SealedKeyRow> => {
        const ready = pre?.sealed.get(m.name);
        // Reuse a prepared seal only for the same member key (it may have re-enrolled meanwhile).
        if (ready && Buffer.compare(Buffer.from(ready.publicKey), Buffer.from(m.publicKey)) === 0) return { vpnId: vpn.id, epoch, gateway: m.name, enc: ready.enc, ct: ready.ct };
        const s = await sealGroupKey(key, m.publicKey, deliveryContext(this.ctx.name, m.name, vpn.id, epoch));
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
    c.audit('vpn.rotate', { vpn, scope: 'vpn', detail: { epoch, activeFrom, previousEpochsEndAt: oldEnd, reason: kind, members: members.length, ...note } });
    return { epoch, activeFrom };
  }

  /** Rotates one group VPN now; `immediate` makes the new epoch active at once (as on removal). */
  async rotate(actor: string, name: string, immediate: boolean): Promise<Rotated> {
    const found = await this.ctx.store.read((tx) => vpnOrThrow(tx, name));
    if (found.mode !== 'group') throw conflict('not-group-vpn', `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`);
    const prepared = await this.prepare(found.id);
    return this.ctx.change(actor, async (c) => {
      const v = await vpnOrThrow(c.tx, name);
      if (v.mode !== 'group') throw conflict('not-group-vpn', `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`);
      const r = await this.rotateIn(c, v, immediate ? 'urgent' : 'manual', prepared);
      return { vpn: v.name, ...r };
    });
  }

  /** Rotates every group VPN (one transaction each). */
  async rotateAll(actor: string, immediate: boolean): Promise<Rotated[]> {
    const vpns = await this.ctx.store.read((tx) => tx.listVpns());
    return this.rotateMany(
      actor,
      vpns.filter((v) => v.mode === 'group').map((v) => v.id),
      immediate ? 'urgent' : 'manual',
      false,
    );
  }

  /**
   * Rotates the VPNs whose scheduled rotation is due; returns how many it rotated. Each rotation
   * checks in its transaction that it is still due (another replica may have done it) and passes
   * `fence` (replicas.ts: this replica still holds the jobs lease), so it happens once.
   */
  async runDueRotations(o: { fence?: (tx: StoreOps) => Promise<void>; replica?: string } = {}): Promise<number> {
    const due = await this.ctx.store.read((tx) => tx.dueRotations(this.ctx.now()));
    return (
      await this.rotateMany(
        'authority:scheduler',
        due.map((d) => d.id),
        'scheduled',
        true,
        o.fence,
        // Which replica ran it, in the audit log.
        o.replica ? { replica: o.replica } : undefined,
      )
    ).length;
  }

  /**
   * Makes the next epoch's key and seals it to the current members outside any transaction, so
   * that the transaction (which serialises every writer) does no public-key work. rotateIn checks
   * that it still fits (same epoch, same member keys) and seals what changed meanwhile.
   */
  private async prepare(vpnId: number): Promise<PreparedRotation | undefined> {
    const r = await this.ctx.store.read(async (tx) => {
      const v = await tx.getVpnById(vpnId);
      if (!v || v.mode !== 'group') return undefined;
      return { v, members: activeKeys((await membersOf(tx, vpnId)).gateways) };
    });
    if (!r) return undefined;
    const epoch = r.v.lastEpoch + 1;
    const key = this.ctx.random(GROUP_KEY_BYTES);
    const sealed = new Map<string, { publicKey: Uint8Array; enc: Uint8Array; ct: Uint8Array }>();
    await Promise.all(
      r.members.map(async (m) => {
        const s = await sealGroupKey(key, m.publicKey, deliveryContext(this.ctx.name, m.name, vpnId, epoch));
        sealed.set(m.name, { publicKey: m.publicKey, enc: s.enc, ct: s.ct });
      }),
    );
    return { vpnId, epoch, key, sealed };
  }

  /** Rotates VPNs one transaction each, preparing the next ones' keys while committing. */
  private async rotateMany(actor: string, ids: readonly number[], kind: RotationKind, onlyIfDue: boolean, fence?: (tx: StoreOps) => Promise<void>, note?: Record<string, unknown>): Promise<Rotated[]> {
    const AHEAD = 8;
    const prepared: Promise<PreparedRotation | undefined>[] = [];
    const prepare = (k: number): void => {
      if (k < ids.length) prepared[k] = this.prepare(ids[k]).catch(() => undefined);
    };
    for (let k = 0; k < AHEAD; k++) prepare(k);
    const out: Rotated[] = [];
    for (let k = 0; k < ids.length; k++) {
      const p = await prepared[k];
      prepare(k + AHEAD);
      const r = await this.ctx.change(actor, async (c) => {
        await fence?.(c.tx);
        const v = await c.tx.getVpnById(ids[k]);
        if (!v || v.mode !== 'group') return undefined;
        // Another replica may have rotated it meanwhile.
        if (onlyIfDue && (v.nextRotationAt === null || v.nextRotationAt > c.now)) return undefined;
        return { vpn: v.name, ...(await this.rotateIn(c, v, kind, p, note)) };
      });
      if (r) out.push(r);
    }
    return out;
  }
}

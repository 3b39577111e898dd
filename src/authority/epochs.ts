// Group VPNs' keys by epoch: the first epoch of a new VPN, rotation (scheduled, by hand, or urgent
// when a member leaves or is revoked), and provisioning — an SPI per (VPN, sending gateway, epoch)
// and the epoch's key sealed to each effective member. Keys are kept wrapped with the
// key-encryption key; the clear key exists only while it is sealed to members. Pairwise VPNs have
// no epochs here: their keys come from IKE.
import type { RotationConfig } from './config.js';
import { Unchanged, type Change } from './change.js';
import type { AuthorityContext } from './context.js';
import { ApiError, conflict } from './errors.js';
import { deliveryContext, GROUP_KEY_BYTES, unwrapGroupKey, wrapGroupKey } from './group-keys.js';
import { vpnOrThrow, type GatewayKey } from './lookups.js';
import { SealPool, type SealJob } from './seal-pool.js';
import type { EpochRow, SealedKeyRow, SpiRow, StoreOps, VpnRow } from './storage/types.js';

/** An epoch that is not scheduled to expire (until the next rotation sets its end). */
export const NEVER = Number.MAX_SAFE_INTEGER;

export type RotationKind = 'scheduled' | 'manual' | 'urgent';

export interface Rotated {
  vpn: string;
  epoch: number;
  activeFrom: number;
}

/**
 * Seals per change of a rotation of many VPNs (rotateMany): ~0.15 s of sealing on two cores, ~70 ms
 * of transaction on PostgreSQL. Measured on 1,000 VPNs of 10 members (bench/authority-rotate.ts,
 * PostgreSQL, two cores, load 1.2-2.3): the first change commits after 0.3-0.5 s (it was the whole
 * rotation's one commit, after 2.1-3.5 s), the last after 1.8-2.7 s. 500 seals commit the first no
 * sooner and take 3.2-3.6 s in all (each change costs a commit, a version, wake-ups); 2,000 commit it
 * after 0.6-0.8 s. A gateway in VPNs of several changes hears of each: 10 here.
 */
const SEALS_PER_CHANGE = 1000;

/** A VPN's next epoch and its members (gateway name -> key), read before the transaction. */
interface PlannedRotation {
  vpnId: number;
  epoch: number;
  members: Map<string, Uint8Array>;
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
  /** Seals in worker threads when there are many (a rotation of many VPNs). */
  private readonly pool = new SealPool();

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

  /** Stops the sealing workers (the service stops). */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** The first epoch of a new group VPN: active at once, until the first rotation. */
  async first(c: Change, vpnId: number): Promise<void> {
    const key = this.ctx.random(GROUP_KEY_BYTES);
    await c.tx.insertEpoch({
      vpnId,
      epoch: 1,
      wrappedKey: wrapGroupKey(this.o.kek, vpnId, 1, key, this.ctx.random),
      activeFrom: c.now,
      expiresAt: NEVER,
      createdAt: c.now,
    });
  }

  /** The live epochs of a VPN with their keys in the clear (for sealing to a member). */
  async liveKeys(tx: StoreOps, vpnId: number, now: number): Promise<{ epoch: number; key: Uint8Array }[]> {
    const rows = await tx.listEpochs(vpnId);
    return rows
      .filter((e) => e.expiresAt > now)
      .map((e) => ({ epoch: e.epoch, key: unwrapGroupKey(this.o.kek, vpnId, e.epoch, e.wrappedKey) }));
  }

  /** Seals the given epochs' keys to the given gateways; with `spis`, also assigns their SPIs. */
  async provision(
    c: Change,
    vpn: VpnRow,
    epochs: { epoch: number; key: Uint8Array }[],
    gateways: GatewayKey[],
    spis: boolean,
  ): Promise<void> {
    if (epochs.length === 0 || gateways.length === 0) return;
    if (spis) {
      let next = await c.tx.allocSpis(epochs.length * gateways.length);
      const rows: SpiRow[] = [];
      for (const g of gateways)
        for (const e of epochs) rows.push({ spi: next++, vpnId: vpn.id, gateway: g.name, epoch: e.epoch });
      await c.tx.insertSpis(rows);
    }
    const rows: Omit<SealedKeyRow, 'enc' | 'ct'>[] = [];
    const jobs: SealJob[] = [];
    for (const g of gateways) {
      for (const e of epochs) {
        rows.push({ vpnId: vpn.id, epoch: e.epoch, gateway: g.name });
        jobs.push({
          key: e.key,
          recipient: g.publicKey,
          context: deliveryContext(this.ctx.name, g.name, vpn.id, e.epoch),
        });
      }
    }
    const sealed = await this.pool.seal(jobs);
    await c.tx.insertSealedKeys(rows.map((r, i) => ({ ...r, ...sealed[i] })));
  }

  /**
   * Makes the next epoch of a group VPN within a change. Scheduled/manual: active after the overlap,
   * so every member holds it before anyone sends with it; the previous epochs end `grace` after
   * that. Urgent (a member left or was revoked): active at once, previous epochs end after the short
   * urgent grace.
   */
  async rotateIn(
    c: Change,
    vpn: VpnRow,
    kind: RotationKind,
    prepared?: PreparedRotation,
    note?: Record<string, unknown>,
  ): Promise<{ epoch: number; activeFrom: number }> {
    return (
      await this.rotateBatch(c, [vpn], kind, prepared ? new Map([[prepared.vpnId, prepared]]) : new Map(), note)
    )[0];
  }

  /** rotateIn for several VPNs in one change, with a few statements for all of them. */
  private async rotateBatch(
    c: Change,
    vpns: VpnRow[],
    kind: RotationKind,
    prepared: Map<number, PreparedRotation>,
    note?: Record<string, unknown>,
  ): Promise<{ epoch: number; activeFrom: number }[]> {
    const now = c.now;
    const rotation = this.o.rotation;
    const ids = vpns.map((v) => v.id);
    for (const vpn of vpns)
      if (vpn.lastEpoch + 1 > 0xffffffff)
        throw conflict('epochs-exhausted', `VPN ${vpn.name} has used every epoch number`);
    // Epochs that ended go, with their sealed keys and SPIs.
    await c.tx.deleteEndedEpochs(ids, now);
    const urgent = kind === 'urgent';
    const activeFrom = urgent ? now : now + rotation.overlapMs;
    const oldEnd = urgent ? now + rotation.urgentGraceMs : activeFrom + rotation.graceMs;
    // The live epochs end `oldEnd` (before the new ones are inserted: they must keep NEVER).
    await c.tx.capEpochExpiry(ids, oldEnd);
    const keys = new Map<number, Uint8Array>();
    const epochRows: EpochRow[] = [];
    for (const vpn of vpns) {
      const epoch = vpn.lastEpoch + 1;
      // A key sealed before the transaction is used only if it was made for this very epoch.
      const pre = prepared.get(vpn.id);
      const key = pre && pre.epoch === epoch ? pre.key : this.ctx.random(GROUP_KEY_BYTES);
      keys.set(vpn.id, key);
      epochRows.push({
        vpnId: vpn.id,
        epoch,
        wrappedKey: wrapGroupKey(this.o.kek, vpn.id, epoch, key, this.ctx.random),
        activeFrom,
        expiresAt: NEVER,
        createdAt: now,
      });
    }
    await c.tx.insertEpochs(epochRows);
    const membersByVpn = new Map<number, GatewayKey[]>(ids.map((id) => [id, []]));
    const seen = new Set<string>();
    for (const r of await c.tx.listVpnMembersOf(ids)) {
      if (r.status !== 'active' || !r.publicKey || seen.has(`${r.vpnId}\u0000${r.gateway}`)) continue;
      seen.add(`${r.vpnId}\u0000${r.gateway}`);
      membersByVpn.get(r.vpnId)!.push({ name: r.gateway, publicKey: r.publicKey });
    }
    let spi = await c.tx.allocSpis(seen.size);
    const spis: SpiRow[] = [];
    const sealedRows: SealedKeyRow[] = [];
    // Seals the preparation could not make (a new member, a new key, the same epoch made meanwhile).
    const missing: { row: SealedKeyRow; job: SealJob }[] = [];
    for (const vpn of vpns) {
      const epoch = vpn.lastEpoch + 1;
      const pre = prepared.get(vpn.id)?.epoch === epoch ? prepared.get(vpn.id) : undefined;
      for (const m of membersByVpn.get(vpn.id)!) {
        spis.push({ spi: spi++, vpnId: vpn.id, gateway: m.name, epoch });
        const ready = pre?.sealed.get(m.name);
        const row: SealedKeyRow = {
          vpnId: vpn.id,
          epoch,
          gateway: m.name,
          enc: new Uint8Array(0),
          ct: new Uint8Array(0),
        };
        sealedRows.push(row);
        // Reuse a prepared seal only for the same member key (it may have re-enrolled meanwhile).
        if (ready && Buffer.compare(Buffer.from(ready.publicKey), Buffer.from(m.publicKey)) === 0) {
          row.enc = ready.enc;
          row.ct = ready.ct;
        } else {
          const context = deliveryContext(this.ctx.name, m.name, vpn.id, epoch);
          missing.push({ row, job: { key: keys.get(vpn.id)!, recipient: m.publicKey, context } });
        }
      }
    }
    const sealed = await this.pool.seal(missing.map((x) => x.job));
    missing.forEach((x, i) => Object.assign(x.row, sealed[i]));
    await c.tx.insertSpis(spis);
    await c.tx.insertSealedKeys(sealedRows);
    await c.tx.advanceEpochs(ids, now);
    const out: { epoch: number; activeFrom: number }[] = [];
    for (const vpn of vpns) {
      const epoch = vpn.lastEpoch + 1;
      const members = membersByVpn.get(vpn.id)!;
      const nextRotationAt = vpn.rotationPeriodMs > 0 ? now + vpn.rotationPeriodMs : null;
      vpn.lastEpoch = epoch;
      vpn.nextRotationAt = nextRotationAt;
      c.vpnsChanged.add(vpn.id);
      c.touch(members.map((m) => m.name));
      c.audit('vpn.rotate', {
        vpn,
        scope: 'vpn',
        detail: { epoch, activeFrom, previousEpochsEndAt: oldEnd, reason: kind, members: members.length, ...note },
      });
      out.push({ epoch, activeFrom });
    }
    return out;
  }

  /** Rotates one group VPN now; `immediate` makes the new epoch active at once (as on removal). */
  async rotate(actor: string, name: string, immediate: boolean): Promise<Rotated> {
    const found = await this.ctx.store.read((tx) => vpnOrThrow(tx, name));
    if (found.mode !== 'group')
      throw conflict('not-group-vpn', `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`);
    const prepared = (await this.prepare(await this.plan([found.id]))).get(found.id);
    return this.ctx.change(actor, async (c) => {
      const v = await vpnOrThrow(c.tx, name);
      if (v.mode !== 'group')
        throw conflict(
          'not-group-vpn',
          `VPN ${name} is a pairwise VPN: its keys come from IKE, not from the authority`,
        );
      const r = await this.rotateIn(
        c,
        v,
        immediate ? 'urgent' : 'manual',
        prepared?.vpnId === v.id ? prepared : undefined,
      );
      return { vpn: v.name, ...r };
    });
  }

  /**
   * Rotates every group VPN: in changes of about SEALS_PER_CHANGE seals each (rotateMany). Each is
   * whole or not at all; a failure after the first commit is `rotation-incomplete`.
   */
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

  /** The next epoch of each group VPN among `vpnIds` and its members, in id order, read in one go. */
  private async plan(vpnIds: readonly number[]): Promise<PlannedRotation[]> {
    const r = await this.ctx.store.read(async (tx) => ({
      vpns: await tx.getVpnsByIds(vpnIds),
      members: await tx.listVpnMembersOf(vpnIds),
    }));
    const membersOf = new Map<number, Map<string, Uint8Array>>();
    for (const m of r.members) {
      if (m.status !== 'active' || !m.publicKey) continue;
      let of = membersOf.get(m.vpnId);
      if (!of) membersOf.set(m.vpnId, (of = new Map()));
      // A member with several prefixes has several rows.
      of.set(m.gateway, m.publicKey);
    }
    return r.vpns
      .filter((v) => v.mode === 'group')
      .sort((a, b) => a.id - b.id)
      .map((v) => ({ vpnId: v.id, epoch: v.lastEpoch + 1, members: membersOf.get(v.id) ?? new Map() }));
  }

  /**
   * Makes the next epochs' keys and seals them to the members read by plan() outside any
   * transaction, so that the transaction (which serialises every writer) does no public-key work;
   * the seals are made in worker threads (seal-pool.ts). rotateBatch checks that each still fits
   * (same epoch, same member keys) and seals what changed meanwhile.
   */
  private async prepare(planned: readonly PlannedRotation[]): Promise<Map<number, PreparedRotation>> {
    const out = new Map<number, PreparedRotation>();
    const slots: { p: PreparedRotation; gateway: string; publicKey: Uint8Array }[] = [];
    const jobs: SealJob[] = [];
    for (const v of planned) {
      const p: PreparedRotation = {
        vpnId: v.vpnId,
        epoch: v.epoch,
        key: this.ctx.random(GROUP_KEY_BYTES),
        sealed: new Map(),
      };
      out.set(v.vpnId, p);
      for (const [gateway, publicKey] of v.members) {
        slots.push({ p, gateway, publicKey });
        jobs.push({
          key: p.key,
          recipient: publicKey,
          context: deliveryContext(this.ctx.name, gateway, v.vpnId, v.epoch),
        });
      }
    }
    const sealed = await this.pool.seal(jobs);
    slots.forEach((s, i) => s.p.sealed.set(s.gateway, { publicKey: s.publicKey, ...sealed[i] }));
    return out;
  }

  /**
   * Rotates VPNs in changes of about SEALS_PER_CHANGE seals (whole VPNs, in id order), pipelined:
   * while one change's transaction runs, the workers seal the next one's keys (prepare), and each
   * change's members hear of it as soon as it commits, not after the whole rotation. Each change is
   * one version and one commit, whole or not at all; a rotation that fits in one (up to ~100 VPNs of
   * 10 members) is all or nothing. If a later change fails, the earlier ones stay committed and the
   * caller gets `rotation-incomplete` saying how many VPNs were rotated; repeating it is safe (the
   * scheduler's next run finds the rest still due; a repeated rotate-all rotates those done once more).
   */
  private async rotateMany(
    actor: string,
    ids: readonly number[],
    kind: RotationKind,
    onlyIfDue: boolean,
    fence?: (tx: StoreOps) => Promise<void>,
    note?: Record<string, unknown>,
  ): Promise<Rotated[]> {
    if (ids.length === 0) return [];
    // Every VPN seals at least one key: the workers boot while its members are read.
    this.pool.warm(Math.min(ids.length, SEALS_PER_CHANGE));
    const planned = await this.plan(ids);
    const batches = inBatches(planned);
    // A failed preparation (a gateway key that does not seal) leaves the sealing to the transaction, which reports it.
    const sealAhead = (b: readonly PlannedRotation[]) =>
      this.prepare(b).catch(() => new Map<number, PreparedRotation>());
    const out: Rotated[] = [];
    let next = sealAhead(batches[0] ?? []);
    for (let k = 0; k < batches.length; k++) {
      const prepared = await next;
      // The workers seal the next change while this one's transaction runs.
      if (k + 1 < batches.length) next = sealAhead(batches[k + 1]);
      const batchIds = batches[k].map((p) => p.vpnId);
      try {
        out.push(
          ...(await this.ctx.change(actor, async (c) => {
            await fence?.(c.tx);
            const vpns = (await c.tx.getVpnsByIds(batchIds))
              .filter((v) => v.mode === 'group')
              // Another replica may have rotated it meanwhile.
              .filter((v) => !onlyIfDue || (v.nextRotationAt !== null && v.nextRotationAt <= c.now))
              .sort((a, b) => a.id - b.id);
            if (vpns.length === 0) throw new Unchanged<Rotated[]>([]);
            const rotated = await this.rotateBatch(c, vpns, kind, prepared, note);
            return vpns.map((v, i) => ({ vpn: v.name, ...rotated[i] }));
          })),
        );
      } catch (e) {
        if (out.length === 0) throw e;
        throw this.incomplete(out, planned.length, e);
      }
    }
    return out;
  }

  /**
   * What a rotation that failed after some of its changes committed reports (and logs): its own
   * code, so that a client does not take it for a refusal that changed nothing (the CLI moves on to
   * another replica on `database-unavailable`), with the cause's status and message.
   */
  private incomplete(rotated: Rotated[], of: number, cause: unknown): ApiError {
    this.ctx.log?.error({ err: cause, rotated: rotated.length, of }, 'rotation failed after some VPNs were rotated');
    const why = cause instanceof ApiError ? cause.message : 'internal error (see the authority log)';
    const e = new ApiError(
      cause instanceof ApiError ? cause.status : 500,
      'rotation-incomplete',
      `rotated ${rotated.length} of ${of} VPNs (${rotated[0].vpn} to ${rotated[rotated.length - 1].vpn}), ` +
        `then failed: ${why}; repeating the rotation is safe`,
    );
    e.cause = cause;
    return e;
  }
}

/** Splits a rotation into changes of whole VPNs, about SEALS_PER_CHANGE seals each (a VPN counts at least 1). */
function inBatches(planned: readonly PlannedRotation[]): PlannedRotation[][] {
  const out: PlannedRotation[][] = [];
  let seals = SEALS_PER_CHANGE;
  for (const p of planned) {
    if (seals >= SEALS_PER_CHANGE) {
      out.push([]);
      seals = 0;
    }
    out[out.length - 1].push(p);
    seals += Math.max(1, p.members.size);
  }
  return out;
}

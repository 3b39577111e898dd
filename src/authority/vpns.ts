// VPNs and their memberships: seed 000 Figure 2(3), the configuration table — which VPNs exist and
// which gateway puts which terminal prefixes into which VPN. A membership is effective while its
// gateway is active; one that ends re-keys a group VPN at once, so the leaver holds no key the
// others still use. Every prefix a membership names is in the directory of protected prefixes.
import { Prefix } from '../base/addr.js';
import type { VpnMode } from '../core/types.js';
import type { AuthorityContext } from './context.js';
import type { Delivery } from './delivery.js';
import type { Directory } from './directory.js';
import type { Epochs } from './epochs.js';
import { Unchanged } from './change.js';
import { badRequest, conflict, must, notFound } from './errors.js';
import { activeKeys, gatewayOrThrow, membersOf, vpnOrThrow, type MemberGateway } from './lookups.js';
import type { VpnRow } from './storage/types.js';
import { checkMembershipAdd, checkName, checkPrefixes, checkVpnId, parsePrefixes } from './validate.js';
import type { EpochInfo, MemberInfo, VpnDetail, VpnInfo } from './wire.js';

export const MIN_ROTATION_PERIOD_MS = 1000;

/** A new VPN: without an id it gets the next free one; without a period, the authority's default. */
export interface VpnSpec {
  name: string;
  id?: number;
  mode?: VpnMode;
  rotationPeriodMs?: number;
}

/** One change of one membership (see updateMembership). */
export interface MembershipChange {
  add?: string[];
  remove?: string[];
  removeAll?: boolean;
  /** The membership may be new (otherwise a gateway that is not a member is a 404). */
  create?: boolean;
}

export class Vpns {
  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      /** The rotation period of a new group VPN that names none (0 = only on demand). */
      defaultRotationPeriodMs: number;
      epochs: Epochs;
      directory: Directory;
      /** Its cached views of a deleted VPN are dropped. */
      delivery: Delivery;
    },
  ) {}

  async create(actor: string, p: VpnSpec): Promise<VpnDetail> {
    const name = must(checkName('VPN', p.name));
    const mode = p.mode ?? 'group';
    if (p.id !== undefined) must(checkVpnId(p.id));
    const period = p.rotationPeriodMs ?? this.o.defaultRotationPeriodMs;
    if (!Number.isSafeInteger(period) || (period !== 0 && period < MIN_ROTATION_PERIOD_MS)) {
      throw badRequest(
        'bad-rotation-period',
        `rotation period must be 0 (rotate only on demand) or at least ${MIN_ROTATION_PERIOD_MS} ms, got ${period}`,
      );
    }
    await this.ctx.change(actor, async (c) => {
      if (await c.tx.getVpnByName(name))
        throw conflict('vpn-exists', `a VPN named ${JSON.stringify(name)} already exists`);
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
      if (group) await this.o.epochs.first(c, id);
      c.audit('vpn.create', { vpn, scope: 'none', detail: { id, mode, rotationPeriodMs: vpn.rotationPeriodMs } });
    });
    return this.get(name);
  }

  async list(): Promise<VpnInfo[]> {
    return this.ctx.store.read(async (tx) => {
      const members = await tx.listMemberPrefixes({});
      const out: VpnInfo[] = [];
      for (const v of await tx.listVpns())
        out.push(vpnInfo(v, new Set(members.filter((m) => m.vpnId === v.id).map((m) => m.gateway)).size));
      return out;
    });
  }

  /** A VPN with its live epochs (times only, never keys) and its members. */
  async get(name: string): Promise<VpnDetail> {
    const now = this.ctx.now();
    return this.ctx.store.read(async (tx) => {
      const v = await vpnOrThrow(tx, name);
      const { prefixes, gateways } = await membersOf(tx, v.id);
      const epochs: EpochInfo[] = (await tx.listEpochs(v.id))
        .filter((e) => e.expiresAt > now)
        .map((e) => ({ epoch: e.epoch, activeFrom: e.activeFrom, expiresAt: e.expiresAt, createdAt: e.createdAt }));
      const memberList: MemberInfo[] = [...prefixes].map(([g, ps]) => memberInfo(v, gateways.get(g)!, ps));
      return { ...vpnInfo(v, prefixes.size), epochs, memberList };
    });
  }

  /** Deletes a VPN; one with members only with `force` (its prefixes may leave the directory). */
  async delete(actor: string, name: string, force: boolean): Promise<void> {
    await this.ctx.change(actor, async (c) => {
      const v = await vpnOrThrow(c.tx, name);
      const { prefixes, gateways } = await membersOf(c.tx, v.id);
      if (prefixes.size && !force) {
        throw conflict(
          'vpn-has-members',
          `VPN ${name} still has ${prefixes.size} member(s) (${[...prefixes.keys()].join(', ')}); remove them first or delete with force`,
        );
      }
      const allPrefixes = [...new Set([...prefixes.values()].flat().map(String))];
      await c.tx.deleteVpn(v.id);
      this.o.delivery.forget(v.id);
      await this.o.directory.note(c, allPrefixes, false);
      c.touch(activeKeys(gateways).map((g) => g.name));
      c.audit('vpn.delete', {
        vpn: v,
        scope: prefixes.size ? 'all' : 'none',
        detail: { members: [...prefixes.keys()] },
      });
    });
  }

  async members(vpnName: string): Promise<MemberInfo[]> {
    return (await this.get(vpnName)).memberList;
  }

  /**
   * Changes one membership in one transaction: removes `remove`, adds `add` (checked against the
   * overlap rule), or removes the whole membership (`removeAll`, or when no prefix is left). A
   * member that leaves makes its VPN rotate at once.
   */
  async updateMembership(
    actor: string,
    vpnName: string,
    gatewayName: string,
    p: MembershipChange,
  ): Promise<MemberInfo | null> {
    const add = must(checkPrefixes(p.add ?? [])).map(String);
    const remove = must(parsePrefixes(p.remove ?? [])).map(String);
    if (p.create && add.length === 0)
      throw badRequest(
        'no-prefixes',
        'a membership needs at least one prefix (the terminals the gateway puts into the VPN)',
      );
    return this.ctx.change(actor, async (c) => {
      const v = await vpnOrThrow(c.tx, vpnName);
      const g = await gatewayOrThrow(c.tx, gatewayName);
      const { prefixes } = await membersOf(c.tx, v.id);
      const current = (prefixes.get(g.name) ?? []).map(String);
      const wasMember = current.length > 0;
      if (!wasMember && !p.create) throw notFound('not-member', `gateway ${g.name} is not a member of VPN ${v.name}`);
      for (const r of remove)
        if (!current.includes(r))
          throw notFound(
            'unknown-prefix',
            `${r} is not in ${g.name}'s membership of VPN ${v.name} (it has ${current.join(', ')})`,
          );
      const removed = p.removeAll ? current : remove;
      const kept = current.filter((x) => !removed.includes(x));
      const others = new Map(prefixes);
      others.set(
        g.name,
        kept.map((x) => Prefix.from(x)),
      );
      const fresh = must(
        checkMembershipAdd(
          v.name,
          others,
          g.name,
          add.map((x) => Prefix.from(x)),
        ),
        409,
      ).map(String);
      const after = [...kept, ...fresh];
      if (removed.length === 0 && fresh.length === 0)
        throw new Unchanged(
          memberInfo(
            v,
            g,
            current.map((x) => Prefix.from(x)),
          ),
        );
      if (removed.length) await c.tx.deleteMemberPrefixes(v.id, g.name, removed);
      if (fresh.length)
        await c.tx.insertMemberPrefixes(
          fresh.map((prefix) => ({ vpnId: v.id, gateway: g.name, prefix, addedAt: c.now })),
        );
      await this.o.directory.note(c, removed, false);
      await this.o.directory.note(c, fresh, true);
      c.vpnsChanged.add(v.id);
      const active = g.status === 'active';
      const { gateways } = await membersOf(c.tx, v.id);
      if (after.length === 0) {
        c.audit('member.remove', { vpn: v, gateway: g.name, scope: 'vpn', detail: { prefixes: removed } });
        if (active) {
          await c.tx.deleteSealedKeys({ vpnId: v.id, gateway: g.name });
          await c.tx.deleteSpis({ vpnId: v.id, gateway: g.name });
          c.touch([g.name]);
          if (v.mode === 'group') await this.o.epochs.rotateIn(c, v, 'urgent');
          else c.touch(activeKeys(gateways).map((x) => x.name));
        }
        return null;
      }
      if (!wasMember) {
        c.audit('member.add', { vpn: v, gateway: g.name, scope: 'vpn', detail: { prefixes: fresh } });
        if (active && v.mode === 'group' && g.publicKey) {
          await this.o.epochs.provision(
            c,
            v,
            await this.o.epochs.liveKeys(c.tx, v.id, c.now),
            [{ name: g.name, publicKey: g.publicKey }],
            true,
          );
        }
      } else {
        c.audit('member.update', { vpn: v, gateway: g.name, scope: 'vpn', detail: { added: fresh, removed } });
      }
      if (active) c.touch(activeKeys(gateways).map((x) => x.name));
      return memberInfo(
        v,
        g,
        after.map((x) => Prefix.from(x)),
      );
    });
  }
}

function vpnInfo(v: VpnRow, members: number): VpnInfo {
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

function memberInfo(v: VpnRow, g: MemberGateway, prefixes: Prefix[]): MemberInfo {
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

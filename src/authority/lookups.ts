// Reads that several concerns of the authority share: a VPN or gateway by name (or the 404 that
// names it), a VPN's memberships with their gateways, the members that hold its keys, and the
// VPNs a gateway is a member of.
import { Prefix } from '../base/addr.js';
import { notFound } from './errors.js';
import type { GatewayRow, StoreOps, VpnRow } from './storage/types.js';

/** A member gateway as a VPN's membership rows carry it. */
export type MemberGateway = Pick<GatewayRow, 'name' | 'status' | 'address' | 'publicKey'>;

/** A gateway that holds a VPN's keys: its name and the public key they are sealed to. */
export interface GatewayKey {
  name: string;
  publicKey: Uint8Array;
}

export async function vpnOrThrow(tx: StoreOps, name: string): Promise<VpnRow> {
  const v = await tx.getVpnByName(name);
  if (!v) throw notFound('unknown-vpn', `there is no VPN named ${JSON.stringify(name)}`);
  return v;
}

export async function gatewayOrThrow(tx: StoreOps, name: string): Promise<GatewayRow> {
  const g = await tx.getGateway(name);
  if (!g) throw notFound('unknown-gateway', `there is no gateway named ${JSON.stringify(name)}`);
  return g;
}

/** Memberships of a VPN: gateway -> prefixes, and the gateways' status, address and key. */
export async function membersOf(
  tx: StoreOps,
  vpnId: number,
): Promise<{ prefixes: Map<string, Prefix[]>; gateways: Map<string, MemberGateway> }> {
  return membersFrom(await tx.listVpnMembers(vpnId));
}

/** The same from a VPN's rows of `listVpnMembers` (or its share of `listVpnMembersOf`). */
export function membersFrom(rows: readonly Awaited<ReturnType<StoreOps['listVpnMembers']>>[number][]): {
  prefixes: Map<string, Prefix[]>;
  gateways: Map<string, MemberGateway>;
} {
  const prefixes = new Map<string, Prefix[]>();
  const gateways = new Map<string, MemberGateway>();
  for (const r of rows) {
    const list = prefixes.get(r.gateway) ?? [];
    list.push(Prefix.from(r.prefix));
    prefixes.set(r.gateway, list);
    if (!gateways.has(r.gateway))
      gateways.set(r.gateway, { name: r.gateway, status: r.status, address: r.address, publicKey: r.publicKey });
  }
  return { prefixes, gateways };
}

/** The effective members (active, enrolled): they hold the VPN's keys and the others list them. */
export function activeKeys(gateways: Map<string, MemberGateway>): GatewayKey[] {
  const out: GatewayKey[] = [];
  for (const g of gateways.values())
    if (g.status === 'active' && g.publicKey) out.push({ name: g.name, publicKey: g.publicKey });
  return out;
}

/** The names of a VPN's effective members: the gateways whose delivery a change of the VPN changes. */
export async function activeMemberNames(tx: StoreOps, vpnId: number): Promise<string[]> {
  return activeKeys((await membersOf(tx, vpnId)).gateways).map((g) => g.name);
}

/** The ids of the VPNs a gateway is a member of (configured, whatever its status). */
export async function vpnIdsOf(tx: StoreOps, gateway: string): Promise<number[]> {
  return [...new Set((await tx.listMemberPrefixes({ gateway })).map((m) => m.vpnId))];
}

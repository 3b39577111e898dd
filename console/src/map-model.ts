// The map's model (pure, no DOM): seed 000's Figure 2(3) configuration table drawn as Figure 1/2.
// Nodes are the gateways (MES), the terminal prefixes they put into VPNs, foreign gateways of
// shared VPNs, and the WAN; each VPN is a region over its members' nodes. So:
//   - a multi-homed gateway or terminal prefix (Figure 2's MES#2 + terminal B) lies in several
//     regions at once;
//   - a gateway whose own address lies inside another gateway's terminal prefix sits behind it
//     (drawn inside that prefix's box), and a VPN whose members all sit inside another VPN's
//     prefixes is nested in it (Figure 1(2), multi-stage): its region lies inside the other's.
import type { FederationView, GatewayInfo, VpnDetail } from './types.js';

export type MapNodeKind = 'wan' | 'gateway' | 'prefix' | 'foreign';

export interface MapNode {
  id: string;
  kind: MapNodeKind;
  label: string;
  /** The prefix box it sits in (a gateway behind another gateway's terminals). */
  parent?: string;
  /** Gateways: pending, active, revoked; foreign gateways: their authority. */
  status?: string;
  gateway?: string;
}

export interface MapEdge {
  id: string;
  source: string;
  target: string;
  /**
   * protects: gateway -> its terminal prefix; wan: a top-level gateway on the WAN; affinity: members of one VPN (layout
   * only, not drawn).
   */
  kind: 'protects' | 'wan' | 'affinity';
}

export interface MapRegion {
  vpn: string;
  vpnId: number;
  mode: string;
  /** Member gateways and their prefixes (and foreign members). */
  nodes: string[];
  /** Human-readable members: "G1 + 10.1.0.0/24". */
  members: string[];
  /** VPNs this one runs inside (multi-stage). */
  nestedIn: string[];
  color: string;
}

export interface MapModel {
  nodes: MapNode[];
  edges: MapEdge[];
  regions: MapRegion[];
  /** Nodes in two or more regions: the multi-homed ones. */
  multiHomed: { node: string; label: string; vpns: string[] }[];
}

export const PALETTE = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#dc2626', '#65a30d'];

interface V4 {
  net: number;
  len: number;
}

function v4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

function prefix(text: string): V4 | undefined {
  const [a, l] = text.split('/');
  const net = v4(a);
  const len = Number(l);
  if (net === undefined || !Number.isInteger(len) || len < 0 || len > 32) return undefined;
  return { net, len };
}

const mask = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

/** Is `inner` (an address or a prefix) inside `outer`, and strictly smaller? */
export function within(inner: string, outer: string): boolean {
  const o = prefix(outer);
  const i = inner.includes('/') ? prefix(inner) : (() => {
    const a = v4(inner);
    return a === undefined ? undefined : { net: a, len: 32 };
  })();
  if (!o || !i || i.len <= o.len) return false;
  return ((i.net & mask(o.len)) >>> 0) === o.net;
}

const gid = (g: string) => `g:${g}`;
const pid = (g: string, p: string) => `p:${g}:${p}`;
const fid = (peer: string, g: string) => `f:${peer}:${g}`;

export function buildMapModel(vpns: VpnDetail[], gateways: GatewayInfo[], federation?: FederationView): MapModel {
  const nodes = new Map<string, MapNode>();
  const edges: MapEdge[] = [];
  nodes.set('wan', { id: 'wan', kind: 'wan', label: 'WAN' });
  for (const g of gateways) nodes.set(gid(g.name), { id: gid(g.name), kind: 'gateway', label: g.name, status: g.status, gateway: g.name });

  // Terminal prefixes: one node per (gateway, prefix), shared by the VPNs it is put into.
  const prefixNodes: { id: string; gateway: string; prefix: string }[] = [];
  for (const v of vpns) {
    for (const m of v.memberList) {
      if (!nodes.has(gid(m.gateway))) nodes.set(gid(m.gateway), { id: gid(m.gateway), kind: 'gateway', label: m.gateway, status: m.gatewayStatus, gateway: m.gateway });
      for (const p of m.prefixes) {
        const id = pid(m.gateway, p);
        if (nodes.has(id)) continue;
        nodes.set(id, { id, kind: 'prefix', label: p, gateway: m.gateway });
        prefixNodes.push({ id, gateway: m.gateway, prefix: p });
        edges.push({ id: `e:${id}`, source: gid(m.gateway), target: id, kind: 'protects' });
      }
    }
  }
  // Foreign members of shared VPNs (seed 001): gateways under a peer authority.
  const foreignOf = new Map<string, string[]>();
  for (const s of federation?.shares ?? []) {
    for (const m of s.foreignMembers) {
      const id = fid(s.peer, m.gateway);
      if (!nodes.has(id)) {
        nodes.set(id, { id, kind: 'foreign', label: `${m.gateway} @ ${s.peer}`, status: s.peer, gateway: m.gateway });
        edges.push({ id: `e:wan:${id}`, source: 'wan', target: id, kind: 'wan' });
      }
      const members = [id];
      for (const p of m.prefixes) {
        const pn = `${id}:${p}`;
        if (!nodes.has(pn)) {
          nodes.set(pn, { id: pn, kind: 'prefix', label: p, gateway: m.gateway });
          edges.push({ id: `e:${pn}`, source: id, target: pn, kind: 'protects' });
        }
        members.push(pn);
      }
      foreignOf.set(s.vpn, [...(foreignOf.get(s.vpn) ?? []), ...members]);
    }
  }

  // Behind whom: a gateway whose address lies in another gateway's terminal prefix sits in that
  // prefix's box (the most specific one), with those of its own prefixes that lie there too.
  const addressOf = new Map(gateways.map((g) => [g.name, g.address]));
  for (const g of nodes.values()) {
    if (g.kind !== 'gateway') continue;
    const address = addressOf.get(g.gateway!);
    if (!address) continue;
    const boxes = prefixNodes.filter((p) => p.gateway !== g.gateway && within(address, p.prefix)).sort((a, b) => prefix(b.prefix)!.len - prefix(a.prefix)!.len);
    const box = boxes[0];
    if (!box) continue;
    g.parent = box.id;
    for (const own of prefixNodes) if (own.gateway === g.gateway && within(own.prefix, box.prefix)) nodes.get(own.id)!.parent = box.id;
  }
  for (const g of nodes.values()) if ((g.kind === 'gateway' && !g.parent)) edges.push({ id: `e:wan:${g.id}`, source: 'wan', target: g.id, kind: 'wan' });

  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let n = nodes.get(id)?.parent; n; n = nodes.get(n)?.parent) out.push(n);
    return out;
  };

  const regions: MapRegion[] = vpns.map((v, i) => {
    const own: string[] = [];
    const members: string[] = [];
    for (const m of v.memberList) {
      own.push(gid(m.gateway), ...m.prefixes.map((p) => pid(m.gateway, p)));
      members.push(`${m.gateway} + ${m.prefixes.join(', ')}`);
    }
    for (const s of federation?.shares ?? []) {
      if (s.vpn !== v.name) continue;
      for (const m of s.foreignMembers) members.push(`${m.gateway} @ ${s.peer} + ${m.prefixes.join(', ')}`);
    }
    const gatewaysInOrder = [...new Set(v.memberList.map((m) => gid(m.gateway)))];
    for (let k = 1; k < gatewaysInOrder.length; k++) edges.push({ id: `a:${v.id}:${k}`, source: gatewaysInOrder[k - 1], target: gatewaysInOrder[k], kind: 'affinity' });
    return { vpn: v.name, vpnId: v.id, mode: v.mode, nodes: [...new Set([...own, ...(foreignOf.get(v.name) ?? [])])], members, nestedIn: [], color: PALETTE[i % PALETTE.length] };
  });
  // Nested: every terminal prefix of W lies in a box that is a terminal prefix of V.
  for (const w of regions) {
    const ownPrefixes = w.nodes.filter((n) => nodes.get(n)?.kind === 'prefix' && n.startsWith('p:'));
    if (ownPrefixes.length === 0) continue;
    for (const v of regions) {
      if (v === w) continue;
      const boxes = new Set(v.nodes.filter((n) => nodes.get(n)?.kind === 'prefix'));
      if (ownPrefixes.every((p) => ancestors(p).some((a) => boxes.has(a)))) w.nestedIn.push(v.vpn);
    }
  }
  const membership = new Map<string, string[]>();
  for (const r of regions) for (const n of r.nodes) membership.set(n, [...(membership.get(n) ?? []), r.vpn]);
  const multiHomed = [...membership]
    .filter(([, v]) => v.length > 1)
    .map(([node, v]) => ({ node, label: nodes.get(node)!.label, vpns: v }));
  return { nodes: [...nodes.values()], edges, regions, multiHomed };
}

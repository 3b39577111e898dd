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

/** An address or prefix as bits: 4 or 16 bytes and the prefix length (32 or 128 for an address). */
interface Bits {
  bytes: number[];
  len: number;
}

// The console runs in the browser, where src/base/addr.ts (built on node:net) is not available:
// this reads the dotted and the RFC 4291 text forms the authority returns (it returns them
// canonical), enough to place one prefix inside another.
function v4(text: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.some((x) => x > 255) ? undefined : b;
}

function v6(text: string): number[] | undefined {
  if (!/^[0-9a-f:]+$/i.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) return undefined;
  const all = [...head, ...new Array<string>(halves.length === 2 ? zeros : 0).fill('0'), ...tail];
  if (all.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

function bits(text: string): Bits | undefined {
  const [a, l] = text.split('/');
  const bytes = v4(a) ?? v6(a);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  const len = l === undefined ? max : /^\d{1,3}$/.test(l) ? Number(l) : NaN;
  if (!Number.isInteger(len) || len > max) return undefined;
  return { bytes, len };
}

/** Is `inner` (an address or a prefix, IPv4 or IPv6) inside `outer`, of the same family, and strictly smaller? */
export function within(inner: string, outer: string): boolean {
  const o = bits(outer);
  const i = bits(inner);
  if (!o || !i || i.bytes.length !== o.bytes.length || i.len <= o.len) return false;
  for (let bit = 0; bit < o.len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((i.bytes[bit >> 3] & m) !== (o.bytes[bit >> 3] & m)) return false;
  }
  return true;
}

const gid = (g: string) => `g:${g}`;
const pid = (g: string, p: string) => `p:${g}:${p}`;
const fid = (peer: string, g: string) => `f:${peer}:${g}`;

export function buildMapModel(vpns: VpnDetail[], gateways: GatewayInfo[], federation?: FederationView): MapModel {
  const nodes = new Map<string, MapNode>();
  const edges: MapEdge[] = [];
  nodes.set('wan', { id: 'wan', kind: 'wan', label: 'WAN' });
  for (const g of gateways)
    nodes.set(gid(g.name), { id: gid(g.name), kind: 'gateway', label: g.name, status: g.status, gateway: g.name });

  // Terminal prefixes: one node per (gateway, prefix), shared by the VPNs it is put into.
  const prefixNodes: { id: string; gateway: string; prefix: string }[] = [];
  for (const v of vpns) {
    for (const m of v.memberList) {
      if (!nodes.has(gid(m.gateway)))
        nodes.set(gid(m.gateway), {
          id: gid(m.gateway),
          kind: 'gateway',
          label: m.gateway,
          status: m.gatewayStatus,
          gateway: m.gateway,
        });
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
  // prefix's box (the most specific one), and each of its own prefixes in the most specific box of
  // that outer gateway that holds it (dual stack: its IPv4 prefixes in the outer IPv4 box, its IPv6
  // ones in the outer IPv6 box, whichever family its address is).
  const addressOf = new Map(gateways.map((g) => [g.name, g.address]));
  const lengthOf = (p: { prefix: string }): number => bits(p.prefix)?.len ?? 0;
  const mostSpecific = (list: typeof prefixNodes) => list.sort((a, b) => lengthOf(b) - lengthOf(a))[0];
  for (const g of nodes.values()) {
    if (g.kind !== 'gateway') continue;
    const address = addressOf.get(g.gateway!);
    if (!address) continue;
    const box = mostSpecific(prefixNodes.filter((p) => p.gateway !== g.gateway && within(address, p.prefix)));
    if (!box) continue;
    g.parent = box.id;
    for (const own of prefixNodes) {
      if (own.gateway !== g.gateway) continue;
      const ownBox = mostSpecific(prefixNodes.filter((p) => p.gateway === box.gateway && within(own.prefix, p.prefix)));
      if (ownBox) nodes.get(own.id)!.parent = ownBox.id;
    }
  }
  for (const g of nodes.values())
    if (g.kind === 'gateway' && !g.parent)
      edges.push({ id: `e:wan:${g.id}`, source: 'wan', target: g.id, kind: 'wan' });

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
    for (let k = 1; k < gatewaysInOrder.length; k++)
      edges.push({
        id: `a:${v.id}:${k}`,
        source: gatewaysInOrder[k - 1],
        target: gatewaysInOrder[k],
        kind: 'affinity',
      });
    return {
      vpn: v.name,
      vpnId: v.id,
      mode: v.mode,
      nodes: [...new Set([...own, ...(foreignOf.get(v.name) ?? [])])],
      members,
      nestedIn: [],
      color: PALETTE[i % PALETTE.length],
    };
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

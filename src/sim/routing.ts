// Shortest-path routing by destination address, built to scale to 100,000 terminals: terminals
// are leaves (exactly one link), so only the forwarding nodes (routers, gateways) form the graph.
// One breadth-first search per forwarding node that is ever a destination, run lazily and cached;
// the last hop to a terminal is always its single neighbour.
//
// Tie-break: of the neighbours on a shortest path, the one whose name sorts first (by code unit).
import type { Ip } from '../base/addr.js';

export interface RoutingNode {
  name: string;
  terminal: boolean;
  /** Addresses this node owns (a terminal's, a gateway's outside address, a router's). */
  addresses: Ip[];
}

export type NextHop =
  { kind: 'local' } | { kind: 'forward'; node: string } | { kind: 'unreachable' } | { kind: 'no-owner' };

const NONE = -1;

export class Routing {
  private readonly names: string[];
  private readonly indexOf = new Map<string, number>();
  private readonly owners = new Map<Ip, number>();
  /** Per node: the forwarding-graph index, or NONE for terminals. */
  private readonly coreIndex: Int32Array;
  /** Per forwarding-graph index: the node index. */
  private readonly coreNodes: number[] = [];
  /** Per forwarding-graph index: neighbours in the forwarding graph, sorted by name. */
  private readonly coreNeighbours: number[][] = [];
  /** Per terminal node index: its only neighbour's node index. */
  private readonly attachment: Int32Array;
  /** Per destination forwarding-graph index: next hop (node index) from every forwarding node. */
  private readonly toward = new Map<number, Int32Array>();
  private searches = 0;

  constructor(nodes: readonly RoutingNode[], links: readonly { a: string; b: string }[]) {
    this.names = nodes.map((n) => n.name);
    nodes.forEach((n, i) => {
      this.indexOf.set(n.name, i);
      for (const ip of n.addresses) this.owners.set(ip, i);
    });
    this.coreIndex = new Int32Array(nodes.length).fill(NONE);
    this.attachment = new Int32Array(nodes.length).fill(NONE);
    nodes.forEach((n, i) => {
      if (n.terminal) return;
      this.coreIndex[i] = this.coreNodes.length;
      this.coreNodes.push(i);
      this.coreNeighbours.push([]);
    });
    for (const { a, b } of links) {
      const ia = this.index(a);
      const ib = this.index(b);
      if (nodes[ia].terminal) this.attachment[ia] = ib;
      if (nodes[ib].terminal) this.attachment[ib] = ia;
      if (!nodes[ia].terminal && !nodes[ib].terminal) {
        this.coreNeighbours[this.coreIndex[ia]].push(this.coreIndex[ib]);
        this.coreNeighbours[this.coreIndex[ib]].push(this.coreIndex[ia]);
      }
    }
    const byName = (x: number, y: number) => {
      const nx = this.names[this.coreNodes[x]];
      const ny = this.names[this.coreNodes[y]];
      return nx < ny ? -1 : nx > ny ? 1 : 0;
    };
    for (const list of this.coreNeighbours) list.sort(byName);
  }

  /** Breadth-first searches run so far (one per forwarding node used as a destination). */
  get searchesRun(): number {
    return this.searches;
  }

  /** The node that owns `address`. */
  ownerOf(address: Ip): string | undefined {
    const i = this.owners.get(address);
    return i === undefined ? undefined : this.names[i];
  }

  /** Where a packet for `address`, now at node `at`, goes next. */
  route(at: string, address: Ip): NextHop {
    const owner = this.owners.get(address);
    if (owner === undefined) return { kind: 'no-owner' };
    return this.hop(this.index(at), owner);
  }

  /** The next node from `at` toward node `destination`. */
  nextHop(at: string, destination: string): NextHop {
    return this.hop(this.index(at), this.index(destination));
  }

  private hop(from: number, to: number): NextHop {
    if (from === to) return { kind: 'local' };
    // A terminal sends everything to its only neighbour.
    if (this.coreIndex[from] === NONE) {
      const via = this.attachment[from];
      return via === NONE ? { kind: 'unreachable' } : { kind: 'forward', node: this.names[via] };
    }
    let target = to;
    if (this.coreIndex[to] === NONE) {
      target = this.attachment[to];
      if (target === NONE) return { kind: 'unreachable' };
      if (target === from) return { kind: 'forward', node: this.names[to] };
    }
    const next = this.nextHopsToward(this.coreIndex[target])[this.coreIndex[from]];
    return next === NONE ? { kind: 'unreachable' } : { kind: 'forward', node: this.names[next] };
  }

  private nextHopsToward(target: number): Int32Array {
    const cached = this.toward.get(target);
    if (cached) return cached;
    this.searches++;
    const n = this.coreNodes.length;
    const dist = new Int32Array(n).fill(NONE);
    const queue = new Int32Array(n);
    let head = 0;
    let tail = 0;
    dist[target] = 0;
    queue[tail++] = target;
    while (head < tail) {
      const u = queue[head++];
      for (const v of this.coreNeighbours[u]) {
        if (dist[v] === NONE) {
          dist[v] = dist[u] + 1;
          queue[tail++] = v;
        }
      }
    }
    const next = new Int32Array(n).fill(NONE);
    for (let u = 0; u < n; u++) {
      if (u === target || dist[u] === NONE) continue;
      // Neighbours are sorted by name: the first one a step closer wins.
      for (const v of this.coreNeighbours[u]) {
        if (dist[v] === dist[u] - 1) {
          next[u] = this.coreNodes[v];
          break;
        }
      }
    }
    this.toward.set(target, next);
    return next;
  }

  private index(name: string): number {
    const i = this.indexOf.get(name);
    if (i === undefined) throw new Error(`routing: unknown node ${name}`);
    return i;
  }
}

// The simulator's routing: shortest paths by hop count with a stated tie-break, unreachable parts,
// terminals as leaves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Routing, type RoutingNode } from '../../src/sim/routing.js';

const router = (name: string, ...addresses: string[]): RoutingNode => ({ name, terminal: false, addresses });
const terminal = (name: string, address: string): RoutingNode => ({ name, terminal: true, addresses: [address] });

function hop(r: Routing, at: string, address: string): string {
  const h = r.route(at, address);
  return h.kind === 'forward' ? h.node : h.kind;
}

test('shortest path by hop count, through routers, to the terminal owning the address', () => {
  // A - R1 - R2 - R3 - B, plus a shortcut R1 - R3.
  const r = new Routing(
    [terminal('A', '10.0.0.1'), terminal('B', '10.0.0.2'), router('R1'), router('R2'), router('R3', '192.0.2.3')],
    [
      { a: 'A', b: 'R1' },
      { a: 'R1', b: 'R2' },
      { a: 'R2', b: 'R3' },
      { a: 'R1', b: 'R3' },
      { a: 'R3', b: 'B' },
    ],
  );
  assert.equal(hop(r, 'A', '10.0.0.2'), 'R1'); // a terminal sends everything to its neighbour
  assert.equal(hop(r, 'R1', '10.0.0.2'), 'R3'); // the shortcut, not R2
  assert.equal(hop(r, 'R3', '10.0.0.2'), 'B'); // last hop: the terminal itself
  assert.equal(hop(r, 'R2', '10.0.0.1'), 'R1');
  assert.equal(hop(r, 'R1', '192.0.2.3'), 'R3');
  assert.equal(hop(r, 'R3', '192.0.2.3'), 'local');
  assert.equal(hop(r, 'R1', '203.0.113.9'), 'no-owner');
  assert.equal(r.ownerOf('10.0.0.2'), 'B');
});

test('ties between equal-length paths go to the neighbour whose name sorts first', () => {
  // S - {Rz, Ra} - D - T: two shortest paths; links listed with Rz first.
  const r = new Routing(
    [terminal('T', '10.0.0.9'), router('S'), router('Rz'), router('Ra'), router('D')],
    [
      { a: 'S', b: 'Rz' },
      { a: 'S', b: 'Ra' },
      { a: 'Rz', b: 'D' },
      { a: 'Ra', b: 'D' },
      { a: 'D', b: 'T' },
    ],
  );
  assert.equal(hop(r, 'S', '10.0.0.9'), 'Ra');
  const reversed = new Routing(
    [router('D'), router('Ra'), router('Rz'), router('S'), terminal('T', '10.0.0.9')],
    [
      { a: 'Ra', b: 'D' },
      { a: 'Rz', b: 'D' },
      { a: 'S', b: 'Ra' },
      { a: 'S', b: 'Rz' },
      { a: 'D', b: 'T' },
    ],
  );
  assert.equal(hop(reversed, 'S', '10.0.0.9'), 'Ra', 'independent of file order');
});

test('disconnected parts are unreachable', () => {
  const r = new Routing(
    [router('R1'), router('R2'), terminal('A', '10.0.0.1'), terminal('B', '10.0.0.2')],
    [
      { a: 'A', b: 'R1' },
      { a: 'B', b: 'R2' },
    ],
  );
  assert.equal(hop(r, 'R1', '10.0.0.2'), 'unreachable');
  assert.equal(hop(r, 'R2', '10.0.0.2'), 'B');
});

test('terminals are leaves: one search per forwarding node, however many terminals', () => {
  const routers = 20;
  const perRouter = 2500; // 50,000 terminals
  const nodes: RoutingNode[] = [];
  const links: { a: string; b: string }[] = [];
  for (let i = 0; i < routers; i++) {
    nodes.push(router(`R${String(i).padStart(2, '0')}`));
    links.push({ a: `R${String(i).padStart(2, '0')}`, b: `R${String((i + 1) % routers).padStart(2, '0')}` }); // a ring
  }
  for (let i = 0; i < routers * perRouter; i++) {
    const name = `T${i}`;
    nodes.push(terminal(name, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`));
    links.push({ a: name, b: `R${String(i % routers).padStart(2, '0')}` });
  }
  const r = new Routing(nodes, links);
  let walked = 0;
  for (let k = 0; k < 2000; k++) {
    const src = (k * 7919) % (routers * perRouter);
    const dst = (k * 104729 + 13) % (routers * perRouter);
    const dstAddress = `10.${dst >> 16}.${(dst >> 8) & 255}.${dst & 255}`;
    // Walk the whole path: it must end at the owner within the ring's diameter + 2 hops.
    let at = `T${src}`;
    for (let hops = 0; hops <= routers / 2 + 2; hops++) {
      const h = r.route(at, dstAddress);
      if (h.kind === 'local') break;
      assert.equal(h.kind, 'forward');
      at = (h as { node: string }).node;
      walked++;
    }
    assert.equal(at, `T${dst}`);
  }
  assert.ok(walked > 2000);
  assert.ok(r.searchesRun <= routers, `ran ${r.searchesRun} searches for ${routers} routers`);
});

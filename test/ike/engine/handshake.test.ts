// IKE_SA_INIT + IKE_AUTH between two engines under two authorities (seed 001): each presents the
// permit the PEER's authority issued to it and verifies the one it receives with its OWN
// authority's attribute authority. Datagrams go engine to engine in memory; the clock is injected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IkeEngine } from '../../../src/ike/engine/engine.js';
import type { Endpoint, IkeOutput, IkePeer } from '../../../src/ike/engine/types.js';
import { HOUR, makeAuthority, makeGateway, peerEntry, permitFor, type Gateway } from './peers.js';

const random = (n: number) => new Uint8Array(randomBytes(n));
const T0 = Date.UTC(2026, 11, 5, 12);
const EA: Endpoint = { address: '192.0.2.1', port: 500 };
const EB: Endpoint = { address: '198.51.100.2', port: 500 };

interface World {
  ga: Gateway;
  gb: Gateway;
  /** What A's authority delivered to A about B, and vice versa (mutable per test). */
  peersOfA: IkePeer[];
  peersOfB: IkePeer[];
  a: IkeEngine;
  b: IkeEngine;
}

async function world(): Promise<World> {
  const A = await makeAuthority('authority-a', T0 - HOUR);
  const B = await makeAuthority('authority-b', T0 - HOUR);
  const ga = await makeGateway(A, 'ga', T0 - HOUR);
  const gb = await makeGateway(B, 'gb', T0 - HOUR);
  const vpn = { vpnId: 7, vpnName: 'shared' };
  // Authority A issues B's permit (B presents it to A), authority B issues A's.
  const permitForA = await permitFor(B, ga, 'shared', T0 - HOUR, T0 + HOUR);
  const permitForB = await permitFor(A, gb, 'shared', T0 - HOUR, T0 + HOUR);
  const w: World = {
    ga,
    gb,
    peersOfA: [peerEntry({ other: gb, permit: permitForA, ...vpn, address: EB.address, local: ['10.1.0.0/24'], remote: ['10.2.0.0/24'] })],
    peersOfB: [peerEntry({ other: ga, permit: permitForB, ...vpn, address: EA.address, local: ['10.2.0.0/24'], remote: ['10.1.0.0/24'] })],
  } as World;
  w.a = new IkeEngine({ local: ga.identity, endpoint: EA, peers: () => w.peersOfA, random });
  w.b = new IkeEngine({ local: gb.identity, endpoint: EB, peers: () => w.peersOfB, random });
  return w;
}

/** Delivers every datagram until both sides are quiet; returns everything both produced. */
async function run(w: World, first: IkeOutput, from: 'a' | 'b', now = T0): Promise<{ a: IkeOutput; b: IkeOutput }> {
  const all = { a: { send: [], install: [], events: [] } as IkeOutput, b: { send: [], install: [], events: [] } as IkeOutput };
  const merge = (into: IkeOutput, o: IkeOutput) => {
    into.send.push(...o.send);
    into.install.push(...o.install);
    into.events.push(...o.events);
  };
  merge(all[from], first);
  let queue = first.send.map((s) => ({ to: s.to, from: from === 'a' ? EA : EB, bytes: s.bytes }));
  for (let hops = 0; queue.length > 0; hops++) {
    assert.ok(hops < 20, 'the exchange does not converge');
    const next: typeof queue = [];
    for (const m of queue) {
      const side = m.to.address === EA.address ? 'a' : 'b';
      const o = await w[side].receive(m.from, m.bytes, now);
      merge(all[side], o);
      next.push(...o.send.map((s) => ({ to: s.to, from: side === 'a' ? EA : EB, bytes: s.bytes })));
    }
    queue = next;
  }
  return all;
}

test('A initiates: one IKE SA, one Child SA, with matching keys and SPIs on both sides', async () => {
  const w = await world();
  const r = await run(w, w.a.initiate('gb', 7, T0), 'a');
  assert.deepEqual(r.a.events.map((e) => e.event), ['ike-up', 'child-up']);
  assert.deepEqual(r.b.events.map((e) => e.event), ['ike-up', 'child-up']);
  assert.equal(r.a.install.length, 1);
  assert.equal(r.b.install.length, 1);
  const [ca, cb] = [r.a.install[0], r.b.install[0]];
  assert.equal(ca.peer, 'gb');
  assert.equal(cb.peer, 'ga');
  assert.equal(ca.vpnId, 7);
  assert.equal(ca.outbound.spi, cb.inbound.spi);
  assert.equal(cb.outbound.spi, ca.inbound.spi);
  assert.notEqual(ca.inbound.spi, ca.outbound.spi);
  assert.deepEqual(Buffer.from(ca.outbound.key.key), Buffer.from(cb.inbound.key.key));
  assert.deepEqual(Buffer.from(cb.outbound.key.key), Buffer.from(ca.inbound.key.key));
  assert.notDeepEqual(Buffer.from(ca.outbound.key.key), Buffer.from(ca.inbound.key.key));
  assert.deepEqual(ca.remote, EB);
  assert.deepEqual(cb.remote, EA);
  assert.deepEqual(ca.remotePrefixes.map(String), ['10.2.0.0/24']);
  assert.deepEqual(cb.remotePrefixes.map(String), ['10.1.0.0/24']);
  assert.deepEqual(w.a.status().map((s) => s.state), ['established']);
  assert.deepEqual(w.b.status().map((s) => s.state), ['established']);
});

test('B initiates: the mirror image works', async () => {
  const w = await world();
  const r = await run(w, w.b.initiate('ga', 7, T0), 'b');
  assert.deepEqual(r.a.events.map((e) => e.event), ['ike-up', 'child-up']);
  assert.deepEqual(r.b.events.map((e) => e.event), ['ike-up', 'child-up']);
});

// Pairwise VPNs in the core (seed 001): key search finds the peer and the common VPN as for group
// VPNs, then the path waits for an IKE Child SA. The core asks its edge for IKE once per (peer,
// VPN), holds the packets, and settles the paths when the edge reports the Child SA up or down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import type { AuthoritySnapshot } from '../../src/core/types.js';
import { buildIpv4, ipv4Dst, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho, echoReplyFor } from '../../src/core/packet/icmp.js';
import { parseSearchPacket } from '../../src/core/search/search-packet.js';
import { seededRandom } from '../../src/base/random.js';
import type { TsExecutor } from '../../src/core/ts-executor.js';

const VPN = 7;
const A = '10.1.0.10';
const B = '10.2.0.10';

function snapshot(members = ['G1', 'G2'], qualify?: 'G1' | 'G2'): AuthoritySnapshot {
  const all = [
    { gateway: 'G1', address: '192.0.2.1', prefixes: [Prefix.from('10.1.0.0/24')], spis: [] },
    { gateway: 'G2', address: '192.0.2.2', prefixes: [Prefix.from('10.2.0.0/24')], spis: [] },
  ]
    .filter((m) => members.includes(m.gateway))
    // Across authorities each side is delivered the other as `name@authority`.
    .map((m) => (qualify && m.gateway !== qualify ? { ...m, gateway: `${m.gateway}@other-authority` } : m));
  return {
    version: members.length,
    protectedPrefixes: [Prefix.from('10.1.0.0/24'), Prefix.from('10.2.0.0/24')],
    vpns: [{ id: VPN, name: 'P7', mode: 'pairwise', epochs: [], members: all }],
  };
}

/** Two gateways joined back to back (their WAN), each with one terminal that answers pings. */
function network(federated = false) {
  const cores = {
    G1: new GatewayCore({
      config: { id: 'G1', address: '192.0.2.1', attached: [Prefix.from('10.1.0.0/24')] },
      snapshot: snapshot(undefined, federated ? 'G1' : undefined),
      now: 0,
      random: seededRandom('pw-1'),
    }),
    G2: new GatewayCore({
      config: { id: 'G2', address: '192.0.2.2', attached: [Prefix.from('10.2.0.0/24')] },
      snapshot: snapshot(undefined, federated ? 'G2' : undefined),
      now: 0,
      random: seededRandom('pw-2'),
    }),
  };
  const delivered: { to: string; bytes: Uint8Array }[] = [];
  const ike: { by: string; peer: string; vpnId: number; address: string }[] = [];
  const drops: string[] = [];
  const queue: { gw: 'G1' | 'G2'; side: 'inside' | 'outside'; bytes: Uint8Array }[] = [];
  const home = (ip: string): 'G1' | 'G2' => (ip.startsWith('10.1.') ? 'G1' : 'G2');
  const handle = (gw: 'G1' | 'G2', actions: CoreAction[]) => {
    for (const a of actions) {
      if (a.type === 'ike-request') ike.push({ by: gw, peer: a.peer, vpnId: a.vpnId, address: a.address });
      else if (a.type === 'drop') drops.push(`${gw}:${a.reason}`);
      else if (a.type === 'emit') {
        const dst = ipv4Dst(a.bytes);
        if (home(dst) === gw) {
          // To our own terminal: it answers echo requests (search probes included), as any host does.
          delivered.push({ to: dst, bytes: a.bytes });
          const reply = parseSearchPacket(a.bytes).ok || a.bytes[20] === 8 ? echoReplyFor(a.bytes) : undefined;
          if (reply?.ok) queue.push({ gw, side: 'inside', bytes: reply.value });
        } else queue.push({ gw: gw === 'G1' ? 'G2' : 'G1', side: 'outside', bytes: a.bytes });
      }
    }
  };
  const run = (now: number) => {
    for (let i = 0; i < 1000 && queue.length > 0; i++) {
      const m = queue.shift()!;
      handle(m.gw, cores[m.gw].onPacket(m.side, m.bytes, now));
    }
  };
  const send = (from: string, to: string, now: number) => {
    const gw = home(from);
    handle(
      gw,
      cores[gw].onPacket(
        'inside',
        buildIpv4({
          src: from,
          dst: to,
          protocol: PROTO_ICMP,
          payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data: new Uint8Array(32) }),
        }),
        now,
      ),
    );
    run(now);
  };
  const path = (gw: 'G1' | 'G2', local: string, remote: string) => cores[gw].table.get(local, remote);
  return { cores, delivered, ike, drops, send, run, handle, path };
}

test('pairwise: the search pairs the gateways, each asks for IKE once, packets wait for the Child SA', () => {
  const n = network();
  n.send(A, B, 10);
  // Both ends of the search want a Child SA with the other, at the address the authority delivered.
  assert.deepEqual(n.ike.map((r) => `${r.by}->${r.peer}@${r.address}/${r.vpnId}`).sort(), [
    'G1->G2@192.0.2.2/7',
    'G2->G1@192.0.2.1/7',
  ]);
  const p = n.path('G1', A, B);
  assert.equal(p?.action, 'pending');
  assert.equal(p?.reason, 'ike');
  assert.equal(p?.vpnId, VPN);
  assert.equal(p?.peer, 'G2');
  assert.ok(
    !n.delivered.some((d) => d.to === B && parseSearchPacket(d.bytes).ok === false),
    'the ping is held, not delivered in the clear',
  );
  assert.equal(n.cores.G1.stats()['pending.packets'], 1);
  // More packets and another terminal pair of the same (peer, VPN): no second request.
  n.send(A, B, 11);
  n.send('10.1.0.11', B, 12);
  assert.equal(n.ike.filter((r) => r.by === 'G1').length, 1);
  assert.equal(n.cores.G1.stats()['pending.packets'], 3);
});

test('pairwise: Child SA up settles every waiting path of that peer and VPN on it', () => {
  const n = network();
  n.send(A, B, 10);
  n.send('10.1.0.11', B, 12);
  n.handle('G1', n.cores.G1.onChildSaUp('G2', VPN, 0xc0de0001, 20));
  for (const local of [A, '10.1.0.11']) {
    const e = n.path('G1', local, B);
    assert.equal(e?.action, 'encrypt', local);
    assert.equal(e?.childSpi, 0xc0de0001);
  }
  assert.equal(n.cores.G1.stats()['pending.packets'], 0, 'the held packets were flushed');
  // A later path to the same peer in the same VPN uses the Child SA at once, without IKE.
  n.send('10.1.0.12', B, 30);
  assert.equal(n.path('G1', '10.1.0.12', B)?.childSpi, 0xc0de0001);
  assert.equal(n.ike.filter((r) => r.by === 'G1').length, 1);
  // A rekeyed Child SA moves the paths to the new SPI.
  n.handle('G1', n.cores.G1.onChildSaUp('G2', VPN, 0xc0de0002, 40));
  assert.equal(n.path('G1', A, B)?.childSpi, 0xc0de0002);
});

test('pairwise: IKE refused or silent: waiting paths become negative entries and their packets are dropped, counted', () => {
  const n = network();
  n.send(A, B, 10);
  n.handle('G1', n.cores.G1.onChildSaDown('G2', VPN, 'authentication-failed', 50));
  assert.equal(n.path('G1', A, B)?.action, 'discard');
  assert.equal(n.path('G1', A, B)?.reason, 'authentication-failed');
  assert.ok(n.drops.includes('G1:buffer-authentication-failed'));
  assert.equal(n.cores.G1.stats()['pending.packets'], 0);

  // No answer at all: the IKE timeout fails the waiting paths the same way.
  const m = network();
  m.send(A, B, 10);
  const deadline = 10 + 30_000;
  m.handle('G1', m.cores.G1.onTick(deadline - 1));
  assert.equal(m.path('G1', A, B)?.action, 'pending');
  m.handle('G1', m.cores.G1.onTick(deadline));
  assert.equal(m.path('G1', A, B)?.action, 'discard');
  assert.equal(m.path('G1', A, B)?.reason, 'ike-timeout');
  assert.ok(m.drops.includes('G1:buffer-ike-timeout'));
});

test('pairwise: Child SA deleted or peer removed by the authority: paths on it go, the next packet searches again', () => {
  const n = network();
  n.send(A, B, 10);
  n.handle('G1', n.cores.G1.onChildSaUp('G2', VPN, 0x1234, 20));
  n.handle('G1', n.cores.G1.onChildSaDown('G2', VPN, 'deleted', 30));
  assert.equal(n.path('G1', A, B), undefined);
  n.send(A, B, 40);
  assert.equal(n.path('G1', A, B)?.reason, 'ike', 'a new search, then a new IKE request');
  assert.equal(n.ike.filter((r) => r.by === 'G1').length, 2);

  const m = network();
  m.send(A, B, 10);
  m.handle('G1', m.cores.G1.onChildSaUp('G2', VPN, 0x1234, 20));
  m.handle('G1', m.cores.G1.applySnapshot(snapshot(['G1']), 30));
  assert.equal(m.path('G1', A, B), undefined, 'G2 left the VPN: the path is revoked at once');
});

test('pairwise across authorities: a peer delivered as name@authority is found by the name it claims in the search', () => {
  const n = network(true);
  n.send(A, B, 10);
  assert.deepEqual(n.ike.map((r) => `${r.by}->${r.peer}@${r.address}/${r.vpnId}`).sort(), [
    'G1->G2@192.0.2.2/7',
    'G2->G1@192.0.2.1/7',
  ]);
  assert.equal(n.path('G1', A, B)?.reason, 'ike');
});

test('pairwise: a peer the authority no longer delivers fails the path at once (negative entry), not pending forever', () => {
  const n = network();
  n.handle('G1', n.cores.G1.applySnapshot(snapshot(['G1']), 5));
  n.send(A, B, 10);
  assert.equal(n.ike.filter((r) => r.by === 'G1').length, 0, 'no IKE toward a peer that is not delivered');
  const p = n.path('G1', A, B);
  assert.equal(p?.action, 'discard');
  assert.equal(p?.reason, 'peer-unknown');
  // Delivered again: after the negative TTL the next packet searches and asks for IKE.
  n.handle('G1', n.cores.G1.applySnapshot(snapshot(), 20));
  n.handle('G1', n.cores.G1.onTick(60_000));
  n.send(A, B, 60_000);
  assert.equal(n.ike.filter((r) => r.by === 'G1').length, 1);
});

/** A -> B searched, and G1's Child SA with G2 in its executor (as IKE would install it) and up. */
function withChildSa() {
  const n = network();
  n.send(A, B, 10);
  const g1 = n.cores.G1;
  (g1.executor as TsExecutor).installTunnelTx({
    spi: 0xc0de0001,
    vpnId: VPN,
    peer: 'G2',
    key: new Uint8Array(32).fill(1),
    salt: new Uint8Array(4),
    localAddr: '192.0.2.1',
    localPort: 4500,
    remoteAddr: '192.0.2.2',
    remotePort: 4500,
  });
  n.handle('G1', g1.onChildSaUp('G2', VPN, 0xc0de0001, 20));
  return { n, g1 };
}

test('pairwise: the path MTU limits the outer packet the Child SA makes; too big gets "fragmentation needed" with mtu - 65', () => {
  const { n, g1 } = withChildSa();
  assert.equal(n.path('G1', A, B)?.mtu, 1500, 'the outer packet may use the whole path MTU');
  const big = (size: number) =>
    buildIpv4({ src: A, dst: B, protocol: 17, payload: new Uint8Array(size - 20), df: true });
  const fits = g1.onPacket('inside', big(1500 - 65), 30);
  assert.equal(fits.find((a) => a.type === 'emit')?.type, 'emit');
  const out = g1.onPacket('inside', big(1500 - 60), 31);
  const icmp = out.find((a) => a.type === 'emit');
  assert.ok(icmp && icmp.type === 'emit' && icmp.note.op === 'icmp-error');
  assert.equal((icmp.bytes[26] << 8) | icmp.bytes[27], 1500 - 65);
});

test("pairwise: the kernel's path MTU toward the peer (it hears the ICMP about ESP in UDP) limits the Child SA's paths", () => {
  const { n, g1 } = withChildSa();
  n.handle('G1', g1.setTunnelPathMtu('G2', 1280));
  assert.equal(n.path('G1', A, B)?.mtu, 1280);
  const out = g1.onPacket(
    'inside',
    buildIpv4({ src: A, dst: B, protocol: 17, payload: new Uint8Array(1300), df: true }),
    22,
  );
  const icmp = out.find((a) => a.type === 'emit');
  assert.ok(icmp && icmp.type === 'emit' && icmp.note.op === 'icmp-error');
  assert.equal((icmp.bytes[26] << 8) | icmp.bytes[27], 1280 - 65);
  // The kernel forgot it (its exception expired): the full path MTU again; another peer never moved.
  n.handle('G1', g1.setTunnelPathMtu('G2', undefined));
  assert.equal(n.path('G1', A, B)?.mtu, 1500);
  n.handle('G1', g1.setTunnelPathMtu('G9', 600));
  assert.equal(n.path('G1', A, B)?.mtu, 1500);
});

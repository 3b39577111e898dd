// Beyond the seed: silent terminals, lost and hostile search packets, convergence, aging, buffers,
// key epochs, unsolicited plaintext, path MTU and the choice among several common VPNs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeSearchMessage,
  encodeSearchMessage,
  isSearchPayload,
  type SearchMessage,
} from '../../src/core/packet/search-message.js';
import { buildIpv4, parseIpv4, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho, isIcmpEcho, parseIcmp } from '../../src/core/packet/icmp.js';
import type { Simulation } from '../../src/sim/run.js';
import { figure2, path, simulate } from '../support/sim.js';

const BA = `  - { from: B, to: A, at: 0, count: 3, interval: 100 }`;

function searchOf(bytes: Uint8Array): { msg: SearchMessage; icmpType: number; id: number; seq: number } | undefined {
  const ip = parseIpv4(bytes);
  if (!ip.ok || ip.value.header.protocol !== PROTO_ICMP) return undefined;
  const icmp = parseIcmp(ip.value.payload);
  if (!icmp.ok || !isIcmpEcho(icmp.value) || !isSearchPayload(icmp.value.data)) return undefined;
  const m = decodeSearchMessage(icmp.value.data);
  return m.ok ? { msg: m.value, icmpType: icmp.value.type, id: icmp.value.id, seq: icmp.value.seq } : undefined;
}

function rewriteSearch(bytes: Uint8Array, change: (m: SearchMessage) => SearchMessage): Uint8Array {
  const ip = parseIpv4(bytes);
  if (!ip.ok) throw new Error('not IPv4');
  const s = searchOf(bytes)!;
  const icmp = buildIcmpEcho({
    type: s.icmpType as 0 | 8,
    id: s.id,
    seq: s.seq,
    data: encodeSearchMessage(change(s.msg)),
  });
  return buildIpv4({
    src: ip.value.header.src,
    dst: ip.value.header.dst,
    protocol: PROTO_ICMP,
    payload: icmp,
    ttl: ip.value.header.ttl,
    id: ip.value.header.id,
  });
}

/** A tap on the WAN link G1-R that modifies destination-search replies on their way to G2. */
function onWanReplies(sim: Simulation, fn: (bytes: Uint8Array, n: number) => Uint8Array | 'drop' | void): void {
  let n = 0;
  sim.tap(({ from, to, packet }) => {
    if (!(from === 'G1' && to === 'R')) return;
    const s = searchOf(packet.bytes);
    if (!s || s.icmpType !== 0 || s.msg.phase !== 'destination') return;
    return fn(packet.bytes, n++);
  });
}

test('a silent destination terminal still gets its VPN: its gateway answers for it', () => {
  const r = simulate(figure2({ traffic: BA, silent: ['A'] }));
  const ba = path(r, 'B', 'A');
  assert.equal(ba.delivered, true);
  assert.equal(ba.replied, false, 'A never answers pings');
  assert.deepEqual(ba.vpnLayers, ['VPN1']);
  assert.ok(r.trace.some((t) => t.node === 'G1' && t.event === 'proxy-answer'));
});

test('a silent source terminal: its gateway proceeds after the source-search wait', () => {
  // B not on an attached LAN of G2, so G2 runs the source search and B does not answer.
  const r = simulate(figure2({ traffic: BA, silent: ['B'], unattached: ['G2'] }));
  assert.equal(path(r, 'B', 'A').delivered, true);
  assert.ok(r.trace.some((t) => t.node === 'G2' && t.event === 'source-silent'));
});

test('a silent terminal on an attached LAN: no source search to wait for', () => {
  const r = simulate(figure2({ traffic: BA, silent: ['B'] }));
  assert.equal(path(r, 'B', 'A').delivered, true);
  assert.ok(!r.trace.some((t) => t.node === 'G2' && t.event === 'source-silent'));
  assert.ok(r.trace.some((t) => t.node === 'G2' && t.event === 'source-skipped'));
});

test('lost search packets: the search retries with backoff and succeeds', () => {
  const yaml = figure2({ traffic: BA }).replace('  - [G1, R]', '  - { a: G1, b: R, loss: { searchPackets: 2 } }');
  const r = simulate(yaml);
  const ba = path(r, 'B', 'A');
  assert.equal(ba.delivered, true);
  assert.ok(r.trace.filter((t) => t.node === 'G2' && t.event === 'search-retry').length >= 1);
  assert.ok((ba.firstPacketDelay ?? 0) >= 1000, 'first packet waited for at least one timeout');
});

test('simultaneous searches from both ends converge on one pairing', () => {
  const r = simulate(
    figure2({
      traffic: `  - { from: B, to: A, at: 0, count: 2, interval: 100 }\n  - { from: A, to: B, at: 0, count: 2, interval: 100 }`,
    }),
  );
  assert.equal(path(r, 'B', 'A').delivered, true);
  assert.equal(path(r, 'A', 'B').delivered, true);
  const g1 = r.keyTables.G1.filter((e) => e.local === '10.1.0.10' && e.remote === '10.2.0.10');
  const g2 = r.keyTables.G2.filter((e) => e.local === '10.2.0.10' && e.remote === '10.1.0.10');
  assert.equal(g1.length, 1);
  assert.equal(g2.length, 1);
  assert.equal(g1[0].vpnId, g2[0].vpnId);
  assert.equal(g1[0].peer, 'G2');
  assert.equal(g2[0].peer, 'G1');
});

test('aging: an idle entry ages out and the next packet searches again', () => {
  const yaml = figure2({
    defaults: 'defaults: { timers: { idleTimeout: 5000, sweepInterval: 500 } }',
    traffic: `  - { from: B, to: A, at: 0, count: 1 }\n  - { from: B, to: A, at: 20000, count: 1 }`,
  });
  const r = simulate(yaml);
  assert.deepEqual(
    r.paths.map((p) => p.deliveredCount),
    [1, 1],
  );
  assert.ok(r.trace.some((t) => t.node === 'G2' && t.event === 'age-out' && t.time > 5000 && t.time < 20000));
  const searches = r.trace.filter(
    (t) => t.node === 'G2' && t.event === 'search-request' && t.kind === 'search-request(destination)',
  );
  assert.equal(searches.length, 2);
});

test('a forged entry (wrong proof) is rejected; the genuine retry succeeds', () => {
  const r = simulate(figure2({ traffic: BA }), (sim) =>
    onWanReplies(sim, (bytes, n) => {
      if (n > 0) return;
      return rewriteSearch(bytes, (m) => ({
        ...m,
        entries: m.entries.map((e) =>
          e.gateway === 'G1' ? { ...e, vpns: e.vpns.map((v) => ({ ...v, proof: new Uint8Array(16).fill(0xaa) })) } : e,
        ),
      }));
    }),
  );
  assert.ok(r.stats.G2['drop.search-forged'] >= 1);
  assert.equal(path(r, 'B', 'A').delivered, true);
  assert.deepEqual(path(r, 'B', 'A').vpnLayers, ['VPN1']);
});

test('a replayed entry (from an earlier search) is rejected', () => {
  let old: SearchMessage | undefined;
  const yaml = figure2({
    defaults: 'defaults: { timers: { idleTimeout: 2000, sweepInterval: 500 } }',
    traffic: `  - { from: B, to: A, at: 0, count: 1 }\n  - { from: B, to: A, at: 10000, count: 1 }`,
  });
  const r = simulate(yaml, (sim) =>
    onWanReplies(sim, (bytes, n) => {
      if (n === 0) {
        old = searchOf(bytes)!.msg;
        return;
      }
      if (n === 1)
        return rewriteSearch(bytes, (m) => ({
          ...m,
          entries: m.entries.map((e) => (e.gateway === 'G1' ? old!.entries.find((o) => o.gateway === 'G1')! : e)),
        }));
    }),
  );
  assert.ok(r.stats.G2['drop.search-forged'] >= 1);
  assert.deepEqual(
    r.paths.map((p) => p.deliveredCount),
    [1, 1],
    'the second search succeeded on its retry',
  );
});

test('stripped entries never downgrade a protected path to plain', () => {
  const r = simulate(figure2({ traffic: BA }), (sim) =>
    onWanReplies(sim, (bytes) =>
      rewriteSearch(bytes, (m) => ({ ...m, entries: m.entries.filter((e) => e.gateway !== 'G1') })),
    ),
  );
  const ba = path(r, 'B', 'A');
  assert.equal(ba.delivered, false);
  assert.ok(r.stats.G2['search.refused.stripped'] >= 1);
  const failed = r.trace.filter((t) => t.node === 'G2' && t.event === 'search-failed');
  assert.deepEqual(
    failed.map((t) => (t.detail as { action: string }).action),
    ['discard'],
  );
  assert.ok(!r.trace.some((t) => t.node === 'G2' && t.event === 'search-complete'));
  assert.equal(r.stats.G2['executor.plain.packets'] ?? 0, 0, 'nothing ever left G2 in the clear');
});

test('buffer overflow: packets beyond the per-path bound are dropped and counted', () => {
  const yaml = figure2({
    defaults: 'defaults: { limits: { pendingPerPath: 4 } }',
    traffic: `  - { from: B, to: A, at: 0, count: 10, interval: 0.01 }`,
  });
  const r = simulate(yaml);
  const ba = path(r, 'B', 'A');
  assert.equal(ba.deliveredCount, 4);
  assert.equal(r.stats.G2['drop.buffer-path-full'], 6);
});

test('a key epoch change under traffic loses no packet and switches SPI', () => {
  const yaml = figure2({
    traffic: `  - { from: B, to: A, at: 0, count: 40, interval: 100 }`,
    events: `events:\n  - { at: 1500, rotate: VPN1 }`,
  });
  const r = simulate(yaml);
  const ba = path(r, 'B', 'A');
  assert.equal(ba.deliveredCount, 40);
  assert.equal(ba.repliedCount, 40);
  const epochs = r.trace
    .filter((t) => t.node === 'G2' && t.event === 'epoch-send')
    .map((t) => (t.detail as { epoch: number }).epoch);
  assert.deepEqual(epochs, [2], 'the sender switched to epoch 2 (epoch 1 was installed at start)');
  assert.ok(
    r.trace.some((t) => t.node === 'G2' && t.event === 'snapshot' && t.time === 1500),
    'the rotation reached G2 at 1500 ms',
  );
});

test('unsolicited plaintext from the WAN to a protected terminal is dropped', () => {
  const r = simulate(figure2({ traffic: BA }), (sim) => {
    sim.at(2000, () => {
      const icmp = buildIcmpEcho({ type: 8, id: 1, seq: 1, data: new TextEncoder().encode('plain-intrusion') });
      sim.inject('R', 'G1', buildIpv4({ src: '198.51.100.7', dst: '10.1.0.10', protocol: PROTO_ICMP, payload: icmp }));
    });
  });
  assert.equal(r.stats.G1['drop.unsolicited-plain'], 1);
});

test('path MTU: TCP SYN MSS is clamped for the ESP overhead', () => {
  const r = simulate(figure2({ traffic: `  - { kind: tcp-syn, from: B, to: A, at: 0, count: 1 }` }));
  const p = path(r, 'B', 'A');
  assert.equal(p.delivered, true);
  assert.equal(p.packets[0].mss, 1500 - 45 - 40); // ESP in UDP: 8 + 37
});

test('several common VPNs: every gateway picks the lowest VPN id', () => {
  const yaml = figure2({ traffic: BA })
    .replace(
      '  - { name: VPN2, id: 2 }',
      '  - { name: VPN2, id: 2 }\n  - { name: VPN0, id: 5 }\n  - { name: LOW, id: 3 }',
    )
    .replace(
      'members: { VPN1: [10.1.0.0/24] }',
      'members: { VPN1: [10.1.0.0/24], LOW: [10.1.0.0/24], VPN0: [10.1.0.0/24] }',
    )
    .replace(
      'members: { VPN1: [10.2.0.0/24], VPN2: [10.2.0.0/24] }',
      'members: { VPN1: [10.2.0.0/24], VPN2: [10.2.0.0/24], LOW: [10.2.0.0/24], VPN0: [10.2.0.0/24] }',
    );
  const r = simulate(yaml);
  assert.deepEqual(path(r, 'B', 'A').vpnLayers, ['VPN1']);
  const g1 = r.keyTables.G1.find((e) => e.remote === '10.2.0.10');
  assert.equal(g1?.vpnId, 1);
});

test('a multi-homed gateway applies each VPN only to the terminals configured in it', () => {
  // D sits behind G2 too, but G2 puts only B (10.2.0.10/32) into VPN1; D is only in VPN2.
  const yaml = figure2({
    traffic: `  - { from: D, to: A, at: 0, count: 2, interval: 100 }\n  - { from: D, to: C, at: 1000, count: 2, interval: 100 }`,
    extraNodes: `  - { name: D, terminal: 10.2.0.20 }`,
    extraLinks: `  - [D, G2]`,
  }).replace(
    'inside: [B], lans: [10.2.0.0/24], members: { VPN1: [10.2.0.0/24], VPN2: [10.2.0.0/24] }',
    'inside: [B, D], lans: [10.2.0.0/24], members: { VPN1: [10.2.0.10/32], VPN2: [10.2.0.0/24] }',
  );
  const r = simulate(yaml);
  assert.equal(path(r, 'D', 'A').delivered, false);
  assert.equal(path(r, 'D', 'C').delivered, true);
  assert.deepEqual(path(r, 'D', 'C').vpnLayers, ['VPN2']);
});

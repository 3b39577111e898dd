// The peer benchmark's verdicts (bench/peers/index.ts): the targets are ratios to plain
// routing in the same run, and the per-unit CPU cost is CPU time over what was delivered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  costOf,
  peerBenchOptions,
  peerList,
  targetsOf,
  type PeerMedians,
  type PeerResult,
} from '../../bench/peers/index.js';
import { kasanePeer } from '../../bench/peers/kasane.js';
import { ipv6View, type PeerTopology } from '../../bench/peers/topology.js';

function medians(over: Partial<PeerMedians>): PeerMedians {
  return {
    gbps1: 10,
    gbps4: 10,
    rttMs: 0.1,
    firstReplyMs: 1,
    pps64: 100_000,
    pps64LossPct: 0,
    cpuGwA1: 0,
    cpuGwB1: 0,
    cpuGwA4: 0,
    cpuGwB4: 0,
    cpuGwA64: 0,
    cpuGwB64: 0,
    machineBusy1: 0,
    machineBusy4: 0,
    others1: 0,
    others4: 0,
    ...over,
  };
}

const peer = (name: string, m: Partial<PeerMedians>): PeerResult => ({
  name,
  samples: [],
  errors: [],
  medians: medians(m),
});

test('targets: each kasane peer against plain in the same run, MET exactly at the limits', () => {
  const plain = peer('plain', { gbps1: 10, gbps4: 20, pps64: 100_000, rttMs: 0.1 });
  const group = peer('kasane', { gbps1: 3.5, gbps4: 5, pps64: 80_000, rttMs: 0.25 });
  const pairwise = peer('kasane-pairwise', { gbps1: 3.4, gbps4: 4.9, pps64: 79_000, rttMs: 0.26 });
  const wg = peer('wireguard-go', { gbps1: 9, gbps4: 9 });
  const t = targetsOf([plain, wg, group, pairwise]);
  const verdict = (p: string, what: string) => t.find((x) => x.peer === p && x.what === what)?.met;
  assert.equal(t.filter((x) => x.peer === 'wireguard-go').length, 0, 'only kasane peers have targets');
  assert.deepEqual(
    t.filter((x) => x.peer === 'kasane').map((x) => x.unit),
    ['×', '×', '×', 'ms'],
  );
  assert.equal(verdict('kasane', '1 stream / plain'), true);
  assert.equal(verdict('kasane', '4 streams / plain'), true);
  assert.equal(verdict('kasane', '64 B kpps / plain'), true);
  assert.equal(verdict('kasane', 'RTT − plain RTT'), true);
  assert.equal(verdict('kasane-pairwise', '1 stream / plain'), false);
  assert.equal(verdict('kasane-pairwise', '4 streams / plain'), false);
  assert.equal(verdict('kasane-pairwise', '64 B kpps / plain'), false);
  assert.equal(verdict('kasane-pairwise', 'RTT − plain RTT'), false);
  // Without plain in the run nothing is decided.
  assert.ok(targetsOf([group]).every((x) => x.met === undefined && x.value === undefined));
});

test('targets over IPv6: kasane-v6 against plain-v6 of the same run, never against IPv4 plain', () => {
  const plain = peer('plain', { gbps1: 100, gbps4: 100, pps64: 1_000_000, rttMs: 0.01 });
  const plain6 = peer('plain-v6', { gbps1: 10, gbps4: 20, pps64: 100_000, rttMs: 0.1 });
  const k6 = peer('kasane-v6', { gbps1: 3.5, gbps4: 5, pps64: 80_000, rttMs: 0.25 });
  const t = targetsOf([plain, plain6, k6]);
  assert.ok(
    t.filter((x) => x.peer === 'kasane-v6').every((x) => x.met === true),
    JSON.stringify(t),
  );
  assert.ok(
    targetsOf([plain, k6]).every((x) => x.met === undefined),
    'no plain-v6 in the run: nothing decided',
  );
});

test("peers over IPv6: plain-v6 runs whenever an IPv6 peer does, measured between the terminals' IPv6 addresses", () => {
  const o = { ...peerBenchOptions({}, []), only: undefined };
  assert.ok(!peerList({ ...o, kasane: kasanePeer() }).some((p) => p.name === 'plain-v6'));
  const names = peerList({ ...o, kasane: kasanePeer(), extraPeers: [kasanePeer({ ipv6: true })] }).map((p) => p.name);
  assert.ok(names.includes('plain-v6') && names.includes('kasane-v6'), names.join(' '));
  const term = {
    ns: 'h',
    ifname: 'lan0',
    addr: '10.77.1.2',
    prefixLen: 24,
    gateway: '10.77.1.1',
    addr6: 'fd77:1::2',
    gateway6: 'fd77:1::1',
  };
  const v = ipv6View({ hostA: term, hostB: { ...term, addr: '10.77.2.2', addr6: 'fd77:2::2' } } as PeerTopology);
  assert.deepEqual(
    [v.hostA.addr, v.hostA.prefixLen, v.hostA.gateway, v.hostB.addr],
    ['fd77:1::2', 64, 'fd77:1::1', 'fd77:2::2'],
  );
});

test('cost: CPU per byte and per packet delivered, sender and receiver apart', () => {
  // 80% of a core moving 1 Gbit/s = 125 MB/s: 6.4 ns per byte; 1348-byte segments: 8627 ns.
  const c = costOf(medians({ gbps1: 1, cpuGwA1: 80, cpuGwB1: 40, pps64: 50_000, cpuGwA64: 50, cpuGwB64: 25 }), 1400);
  assert.equal(c.a1.toFixed(2), '6.40');
  assert.equal(c.b1.toFixed(2), '3.20');
  assert.equal(Math.round(c.segA), 8627);
  assert.equal(c.a64, 10_000);
  assert.equal(c.b64, 5_000);
});

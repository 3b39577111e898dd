// Tunnel mode (IKE Child SAs, ESP in UDP) on the native executor: its output opened by an
// independent AES-GCM on node:crypto, its argument checks, and a differential run against the
// TypeScript reference on random install / packet / datagram sequences (verdicts, bytes, path and
// SA statistics, counters). The fixed vectors are in test/vectors/executor.json.
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { PathRule, TunnelExecutor, TunnelRxSa, TunnelTxSa, Verdict } from '../../src/core/executor.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { sealTunnelEsp } from '../support/executor-vectors.js';
import { hex, ipv4, newExecutor, ping, tcp } from './support.js';
import { ipv6, tcp6 } from './support6.js';

const A = '10.1.0.10';
const B = '10.2.0.10';
const GW1 = '192.0.2.1';
const GW2 = '198.51.100.2';

function keys(len: 16 | 32, seed: number): { key: Uint8Array; salt: Uint8Array } {
  const b = new Uint8Array(len + 4).map((_, i) => (i * 41 + seed * 3 + 1) & 0xff);
  return { key: b.slice(0, len), salt: b.slice(len) };
}

function txSa(spi: number, k: { key: Uint8Array; salt: Uint8Array }, extra: Partial<TunnelTxSa> = {}): TunnelTxSa {
  return {
    spi,
    vpnId: 3,
    peer: 'G2',
    ...k,
    localAddr: GW1,
    localPort: 4500,
    remoteAddr: GW2,
    remotePort: 4500,
    ...extra,
  };
}

function rxSa(spi: number, k: { key: Uint8Array; salt: Uint8Array }, extra: Partial<TunnelRxSa> = {}): TunnelRxSa {
  return {
    spi,
    vpnId: 3,
    peer: 'G1',
    ...k,
    localAddr: GW2,
    localPort: 4500,
    remoteAddr: GW1,
    remotePort: 4500,
    localSelectors: [{ start: '10.2.0.0', end: '10.2.0.255' }],
    remoteSelectors: [{ start: '10.1.0.0', end: '10.1.0.255' }],
    ...extra,
  };
}

describe('native executor: tunnel mode', () => {
  it('ESP in UDP that node:crypto opens (AES-128 and AES-256, nonce = salt || IV, AAD = SPI || seq)', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    for (const [i, len] of ([16, 32] as const).entries()) {
      const k = keys(len, i);
      const spi = 0xa000 + i;
      const dst = `10.2.0.${20 + i}`;
      ex.installTunnelTx(txSa(spi, k, { nextSeq: 0xfffffff0 }));
      ex.installPath({ local: A, remote: dst, action: 'encrypt', vpnId: 3, peer: 'G2', tunnel: { spi } });
      for (const data of ['a', 'ab', 'abc', 'abcd']) {
        const inner = ping(A, dst, 1, data, true);
        const v = ex.process('inside', inner, 7);
        assert.equal(v.kind, 'forward');
        if (v.kind !== 'forward') continue;
        const b: Buffer = Buffer.from(v.bytes);
        assert.equal(b.readUInt16BE(20), 4500);
        assert.equal(b.readUInt16BE(26), 0, 'UDP checksum 0');
        assert.equal(b[6] & 0x40, 0x40, 'DF copied from the inner packet');
        const esp = b.subarray(28);
        assert.equal(esp.readUInt32BE(0), spi);
        const seq = esp.readUInt32BE(4);
        assert.equal(esp.readBigUInt64BE(8), BigInt(seq));
        const d = createDecipheriv(
          len === 16 ? 'aes-128-gcm' : 'aes-256-gcm',
          k.key,
          Buffer.concat([k.salt, esp.subarray(8, 16)]),
        );
        d.setAAD(esp.subarray(0, 8));
        d.setAuthTag(esp.subarray(esp.length - 16));
        const pt = Buffer.concat([d.update(esp.subarray(16, esp.length - 16)), d.final()]);
        assert.equal(pt[pt.length - 1], 4);
        assert.equal(hex(pt.subarray(0, inner.length)), hex(inner));
        assert.deepEqual(v.note, { op: 'tunnel-encrypt', vpnId: 3, peer: 'G2', spi, seq });
      }
    }
  });

  it('opens what node:crypto seals, checks selectors, and reports the NAT source', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    const k = keys(32, 9);
    const hk = { key: hex(k.key), salt: hex(k.salt) };
    ex.installTunnelRx(rxSa(0x5151, k));
    const inner = ping(A, B, 3);
    const v = ex.processUdp('203.0.113.9', 61000, sealTunnelEsp(hk, 0x5151, 1, 4, inner), 12);
    assert.equal(v.kind, 'forward');
    if (v.kind === 'forward') assert.equal(hex(v.bytes), hex(inner));
    assert.deepEqual(ex.processUdp(GW1, 4500, sealTunnelEsp(hk, 0x5151, 2, 4, ping('10.3.0.1', B, 1)), 13), {
      kind: 'drop',
      reason: 'selector',
    });
    const s = ex.tunnelRxStats(0x5151)!;
    assert.deepEqual(s.lastSource, { addr: GW1, port: 4500 });
    assert.equal(s.packets, 1);
    assert.equal(s.selectorDrops, 1);
    assert.equal(s.highestSeq, 2);
    assert.equal(ex.counters()['tunnel-decrypt.packets'], 1);
  });

  it('rejects bad install arguments', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    const k = keys(32, 1);
    assert.throws(() => ex.installTunnelTx(txSa(1, { key: new Uint8Array(24), salt: k.salt })));
    assert.throws(() => ex.installTunnelTx(txSa(0, k)));
    assert.throws(() => ex.installTunnelTx(txSa(1, k, { vpnId: 0 })));
    assert.throws(() => ex.installTunnelTx(txSa(1, k, { nextSeq: 2 ** 32 })));
    assert.throws(() => ex.installTunnelTx(txSa(1, k, { remotePort: 0 })));
    assert.throws(() => ex.installTunnelTx(txSa(1, k, { peer: '' })));
    assert.throws(() => ex.installTunnelRx(rxSa(1, k, { replayWindow: 100 })));
    assert.throws(() => ex.installTunnelRx(rxSa(1, k, { replayWindow: 8192 })));
    assert.throws(() => ex.installTunnelRx(rxSa(1, k, { localSelectors: [{ start: '10.0.0.9', end: '10.0.0.1' }] })));
    assert.equal(ex.tunnelTxStats(1), undefined);
    assert.equal(ex.tunnelRxStats(1), undefined);
  });
});

// ---- differential ----

// The world a run uses: terminals and selectors of one family, gateways' outer addresses of one
// family (v4 in v4 as before; v6 in v4, v4 in v6 and v6 in v6 for IPv6).
const HOSTS4 = [A, B, '10.2.0.11', '10.3.0.1'];
const HOSTS6 = ['2001:db8:1::10', '2001:db8:2::10', '2001:db8:2::11', '2001:db8:3::1'];
let HOSTS = HOSTS4;
let OUTER = [GW1, GW2];
const KEYS = [keys(32, 1), keys(16, 2), keys(32, 3)];
const HK = KEYS.map((k) => ({ key: hex(k.key), salt: hex(k.salt) }));
const SPIS = [0xb001, 0xb002, 0xb003];
const SELECTORS4 = [
  { start: '10.1.0.0', end: '10.1.0.255' },
  { start: '10.2.0.0', end: '10.2.0.10' },
  { start: '10.2.0.11', end: '10.2.0.11' },
  { start: '0.0.0.0', end: '255.255.255.255' },
];
const SELECTORS6 = [
  { start: '2001:db8:1::', end: '2001:db8:1::ffff' },
  { start: '2001:db8:2::', end: '2001:db8:2::10' },
  { start: '2001:db8:2::11', end: '2001:db8:2::11' },
  { start: '::', end: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' },
];
let SELECTORS = SELECTORS4;

/** A packet of the run's family: IPv6 takes the TOS as its traffic class and a fragment header for `frag`. */
function inner(
  src: string,
  dst: string,
  payload: Uint8Array,
  o: { df?: boolean; tos?: number; frag?: boolean } = {},
): Uint8Array {
  if (src.includes(':'))
    return ipv6({
      src,
      dst,
      proto: 17,
      payload,
      tclass: o.tos,
      exts: o.frag ? [{ type: 44, offset: 0, more: true }] : [],
    });
  return ipv4({ src, dst, proto: 17, payload, df: o.df, tos: o.tos, mf: o.frag });
}

type Op =
  | {
      op: 'rule';
      local: number;
      remote: number;
      action: PathRule['action'];
      vpnId: number;
      peer: string;
      mtu?: number;
      tunnel?: number;
    }
  | { op: 'unrule'; local: number; remote: number }
  | { op: 'ttx'; k: number; spi: number; vpnId: number; peer: string; seq: number; soft: number; port: number }
  | { op: 'unttx'; spi: number }
  | {
      op: 'trx';
      k: number;
      spi: number;
      vpnId: number;
      peer: string;
      window: number;
      local: number[];
      remote: number[];
    }
  | { op: 'untrx'; spi: number }
  | { op: 'packet'; bytes: Uint8Array; inside: boolean }
  | { op: 'udp'; bytes: Uint8Array; port: number };

const host = fc.integer({ min: 0, max: HOSTS.length - 1 });
const kIdx = fc.integer({ min: 0, max: 2 });
// A key index, or -1: the key that belongs to the SPI (so that random datagrams often authenticate).
const keyArb = fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: kIdx });
const keyOf = (k: number, spi: number) => (k < 0 ? spi % 3 : k);
// Mostly A and B, so that random packets often meet the random rules and selectors.
const pair = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom([0, 1], [1, 0]) },
  { weight: 1, arbitrary: fc.tuple(host, host) },
);

const seqArb = fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0xfffffffc, max: 0xffffffff }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('rule' as const),
      local: host,
      remote: host,
      action: fc.constantFrom('encrypt', 'encrypt', 'plain', 'discard', 'pending') as fc.Arbitrary<PathRule['action']>,
      vpnId: fc.constantFrom(3, 4),
      peer: fc.constantFrom('G1', 'G2'),
      mtu: fc.option(fc.constantFrom(100, 150, 1400), { nil: undefined }),
      tunnel: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unrule' as const), local: host, remote: host }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('ttx' as const),
      k: keyArb,
      spi: kIdx,
      vpnId: fc.constantFrom(3, 4),
      peer: fc.constantFrom('G1', 'G2'),
      seq: seqArb,
      soft: fc.oneof(fc.constant(0xf0000000), fc.integer({ min: 1, max: 3000 })),
      port: fc.constantFrom(4500, 4501),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unttx' as const), spi: kIdx }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('trx' as const),
      k: keyArb,
      spi: kIdx,
      vpnId: fc.constantFrom(3, 4),
      peer: fc.constantFrom('G1', 'G2'),
      window: fc.constantFrom(64, 96, 1024, 4096),
      local: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
      remote: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('untrx' as const), spi: kIdx }) },
  { weight: 8, arbitrary: packetArb() },
  { weight: 10, arbitrary: datagramArb() },
);

function packetArb(): fc.Arbitrary<Op> {
  const p = fc
    .record({
      p: pair,
      data: fc.uint8Array({ maxLength: 400 }),
      df: fc.boolean(),
      tos: fc.integer({ min: 0, max: 255 }),
      frag: fc.boolean(),
    })
    .map(({ p, data, df, tos, frag }) => inner(HOSTS[p[0]], HOSTS[p[1]], data, { df, tos, frag }));
  const syn = fc.record({ p: pair, mss: fc.integer({ min: 0, max: 0xffff }) }).map(({ p, mss }) =>
    HOSTS[p[0]].includes(':')
      ? tcp6(HOSTS[p[0]], HOSTS[p[1]], 0x02, mss)
      : tcp({
          src: HOSTS[p[0]],
          dst: HOSTS[p[1]],
          sport: 1000,
          dport: 80,
          seq: 5,
          flags: 0x02,
          options: Uint8Array.from([2, 4, mss >> 8, mss & 0xff]),
        }),
  );
  // Large packets with DF (fast-check favours short arrays): they meet the MTU check.
  const big = fc
    .record({ p: pair, n: fc.integer({ min: 100, max: 1500 }) })
    .map(({ p, n }) => inner(HOSTS[p[0]], HOSTS[p[1]], new Uint8Array(n).fill(n & 0xff), { df: true }));
  return fc.record({ op: fc.constant('packet' as const), bytes: fc.oneof(p, syn, big), inside: fc.boolean() });
}

function datagramArb(): fc.Arbitrary<Op> {
  const esp = fc
    .record({
      k: keyArb,
      spi: fc.oneof(kIdx, fc.constant(3)),
      seq: seqArb,
      p: pair,
      data: fc.uint8Array({ maxLength: 100 }),
      nh: fc.constantFrom(4, 4, 4, 59, 41),
      tfc: fc.nat(9),
      flip: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat() }),
    })
    .map(({ k, spi, seq, p, data, nh, tfc, flip }) => {
      const packet = inner(HOSTS[p[0]], HOSTS[p[1]], data);
      // The next header of the packet's family most of the time, the other one (malformed) sometimes.
      const family = packet[0] >> 4 === 6 ? 41 : 4;
      const d = sealTunnelEsp(
        HK[keyOf(k, spi)],
        spi < 3 ? SPIS[spi] : 0x0badf00d,
        seq,
        nh === 4 ? family : nh,
        Uint8Array.from([...packet, ...new Uint8Array(tfc)]),
      );
      if (flip !== undefined) d[flip % d.length] ^= 1 << (flip % 8);
      return d;
    });
  const junk = fc.oneof(
    fc.uint8Array({ maxLength: 60 }),
    fc.constant(Uint8Array.of(0xff)),
    fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.from([0, 0, 0, 0, ...b])),
  );
  return fc.record({
    op: fc.constant('udp' as const),
    bytes: fc.oneof({ weight: 4, arbitrary: esp }, { weight: 1, arbitrary: junk }),
    port: fc.constantFrom(4500, 4501),
  });
}

function apply(ex: TunnelExecutor, op: Op, now: number): Verdict | undefined {
  switch (op.op) {
    case 'rule': {
      const rule: PathRule = { local: HOSTS[op.local], remote: HOSTS[op.remote], action: op.action };
      if (op.action === 'encrypt') Object.assign(rule, { vpnId: op.vpnId, peer: op.peer });
      if (op.mtu !== undefined) rule.mtu = op.mtu;
      if (op.tunnel !== undefined && op.action === 'encrypt')
        rule.tunnel = { spi: op.tunnel < 3 ? SPIS[op.tunnel] : 0x0badf00d };
      ex.installPath(rule);
      return undefined;
    }
    case 'unrule':
      ex.removePath(HOSTS[op.local], HOSTS[op.remote]);
      return undefined;
    case 'ttx':
      ex.installTunnelTx(
        txSa(SPIS[op.spi], KEYS[keyOf(op.k, op.spi)], {
          vpnId: op.vpnId,
          peer: op.peer,
          nextSeq: op.seq,
          softSeqLimit: op.soft,
          remotePort: op.port,
          localAddr: OUTER[0],
          remoteAddr: OUTER[1],
        }),
      );
      return undefined;
    case 'unttx':
      ex.removeTunnelTx(SPIS[op.spi]);
      return undefined;
    case 'trx':
      ex.installTunnelRx(
        rxSa(SPIS[op.spi], KEYS[keyOf(op.k, op.spi)], {
          vpnId: op.vpnId,
          peer: op.peer,
          replayWindow: op.window,
          localSelectors: op.local.map((i) => SELECTORS[i]),
          remoteSelectors: op.remote.map((i) => SELECTORS[i]),
          localAddr: OUTER[1],
          remoteAddr: OUTER[0],
        }),
      );
      return undefined;
    case 'untrx':
      ex.removeTunnelRx(SPIS[op.spi]);
      return undefined;
    case 'packet':
      return ex.process(op.inside ? 'inside' : 'outside', op.bytes, now);
    case 'udp':
      return ex.processUdp(OUTER[0], op.port, op.bytes, now);
  }
}

function show(v: Verdict | undefined): unknown {
  if (!v || v.kind !== 'forward') return v;
  return {
    kind: v.kind,
    bytes: hex(v.bytes),
    note: JSON.stringify(v.note, (_, x) => (typeof x === 'bigint' ? `${x}n` : x)),
  };
}

const WORLDS: [string, string[], typeof SELECTORS4, string[]][] = [
  ['IPv4 in IPv4', HOSTS4, SELECTORS4, [GW1, GW2]],
  ['IPv6 in IPv4', HOSTS6, SELECTORS6, [GW1, GW2]],
  ['IPv4 in IPv6', HOSTS4, SELECTORS4, ['2001:db8:ffff::1', '2001:db8:ffff::2']],
  ['IPv6 in IPv6', HOSTS6, SELECTORS6, ['2001:db8:ffff::1', '2001:db8:ffff::2']],
];

describe('native tunnel mode vs TypeScript reference (differential)', () => {
  for (const [name, hosts, selectors, outer] of WORLDS)
    it(`agrees on verdicts, bytes, path and SA statistics and counters for random sequences (${name})`, (t) => {
      if (!newExecutor(t)) return;
      HOSTS = hosts;
      SELECTORS = selectors;
      OUTER = outer;
      t.after(() => {
        HOSTS = HOSTS4;
        SELECTORS = SELECTORS4;
        OUTER = [GW1, GW2];
      });
      const seen = new Map<string, number>();
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 100, size: 'medium' }), (random) => {
          // Start from a working Child SA in both directions; the random operations mix it up.
          const ops: Op[] = [
            { op: 'ttx', k: 0, spi: 0, vpnId: 3, peer: 'G2', seq: 1, soft: 0xf0000000, port: 4500 },
            { op: 'trx', k: 0, spi: 0, vpnId: 3, peer: 'G2', window: 64, local: [1], remote: [0] },
            { op: 'trx', k: -1, spi: 1, vpnId: 3, peer: 'G2', window: 1024, local: [3], remote: [3] },
            { op: 'trx', k: -1, spi: 2, vpnId: 3, peer: 'G1', window: 4096, local: [1, 2], remote: [0] },
            { op: 'rule', local: 0, remote: 1, action: 'encrypt', vpnId: 3, peer: 'G2', mtu: 150, tunnel: 0 },
            { op: 'rule', local: 1, remote: 0, action: 'encrypt', vpnId: 3, peer: 'G2', tunnel: 1 },
            ...random,
          ];
          const ref = new TsExecutor();
          const nat = newExecutor(t)!;
          ops.forEach((op, i) => {
            const a = apply(ref, op, 1000 + i);
            const b = apply(nat, op, 1000 + i);
            if (a) {
              const k = a.kind === 'forward' ? a.note.op : `${a.kind}.${a.reason}`;
              seen.set(k, (seen.get(k) ?? 0) + 1);
            }
            assert.deepEqual(show(b), show(a), `op ${i}: ${op.op}`);
          });
          for (const l of HOSTS)
            for (const r of HOSTS) assert.deepEqual(nat.pathStats(l, r), ref.pathStats(l, r), `stats ${l} ${r}`);
          for (const spi of [...SPIS, 0x0badf00d]) {
            assert.deepEqual(nat.tunnelTxStats(spi), ref.tunnelTxStats(spi), `tx stats ${spi}`);
            assert.deepEqual(nat.tunnelRxStats(spi), ref.tunnelRxStats(spi), `rx stats ${spi}`);
          }
          assert.deepEqual(nat.counters(), ref.counters());
        }),
        { numRuns: name === 'IPv4 in IPv4' ? 300 : 150 },
      );
      if (process.env.KASANE_SHOW_COVERAGE) console.error(JSON.stringify([...seen]));
      // The generators must reach the interesting outcomes, not only the early refusals.
      for (const v of [
        'tunnel-encrypt',
        'tunnel-decrypt',
        'drop.replay',
        'drop.auth-failed',
        'drop.selector',
        'drop.tunnel-seq-exhausted',
        'drop.tunnel-dummy',
        'punt.too-big',
        'punt.ike',
        'punt.unknown-spi',
        'drop.peer-mismatch',
        'drop.discard',
      ]) {
        assert.ok(seen.has(v), `never saw ${v}: ${JSON.stringify([...seen])}`);
      }
    });
});

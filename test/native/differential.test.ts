// The native executor against the TypeScript reference (src/core/ts-executor.ts) on random
// install/packet sequences: every verdict (bytes included), every path statistic and every
// counter must agree. Complements the fixed vectors of test/vectors/executor.json.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Executor, PathRule, Verdict } from '../../src/core/executor.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { hex, icmpEcho, ipv4, newExecutor, randomKey, refEncrypt, tcp, type RefSa } from './support.js';
import { extArb, icmp6, type Ext, ipv6, refEncrypt6, refEncryptCarried6, tcp6 } from './support6.js';

// Few hosts, so that random packets often hit the random rules; IPv6 runs use HOSTS6.
const HOSTS4 = ['10.1.0.1', '10.2.0.1', '10.2.0.2'];
const HOSTS6 = ['2001:db8:1::1', '2001:db8:2::1', '2001:db8:2::2'];
let HOSTS = HOSTS4;
const MTUS = [undefined, 0, 60, 100, 200, 1400];
const KEYS = [randomKey(1), randomKey(2), randomKey(3)];
const SPIS = [0x1001, 0x1002, 0x2001];

type Op =
  | { op: 'rule'; local: number; remote: number; action: PathRule['action']; vpnId: number; peer: string; mtu?: number }
  | { op: 'unrule'; local: number; remote: number }
  | { op: 'tx'; vpnId: number; k: number; seq: bigint }
  | { op: 'untx'; vpnId: number }
  | { op: 'rx'; k: number; vpnId: number; sender: string; floor?: bigint }
  | { op: 'unrx'; k: number }
  | { op: 'packet'; inside: boolean; bytes: Uint8Array; recheck?: boolean };

const host = fc.integer({ min: 0, max: HOSTS4.length - 1 });
const installArbs = [
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('rule' as const),
      local: host,
      remote: host,
      action: fc.constantFrom('encrypt', 'plain', 'discard', 'pending') as fc.Arbitrary<PathRule['action']>,
      vpnId: fc.constantFrom(1, 2),
      peer: fc.constantFrom('G1', 'G2'),
      mtu: fc.oneof(fc.constantFrom(...MTUS), fc.integer({ min: 0, max: 1600 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unrule' as const), local: host, remote: host }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('tx' as const),
      vpnId: fc.constantFrom(1, 2),
      k: fc.integer({ min: 0, max: 2 }),
      seq: fc.bigInt({ min: 1n, max: 1n << 40n }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('untx' as const), vpnId: fc.constantFrom(1, 2) }) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        op: fc.constant('rx' as const),
        k: fc.integer({ min: 0, max: 2 }),
        vpnId: fc.constantFrom(1, 2),
        sender: fc.constantFrom('G1', 'G2'),
        floor: fc.option(fc.bigInt({ min: 0n, max: 3000n }), { nil: undefined }),
      },
      { requiredKeys: ['op', 'k', 'vpnId', 'sender'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unrx' as const), k: fc.integer({ min: 0, max: 2 }) }) },
];
const opArb: fc.Arbitrary<Op> = fc.oneof(...installArbs, { weight: 10, arbitrary: packetArb() });
const opArb6: fc.Arbitrary<Op> = fc.oneof(...installArbs, { weight: 10, arbitrary: packet6Arb() });

/** IPv6 packets: extension-header chains, link traffic, search, SYNs, the carried form's next headers, ESP, junk. */
function packet6Arb(): fc.Arbitrary<Op> {
  const pair = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom([0, 1], [1, 0]) },
    { weight: 1, arbitrary: fc.tuple(host, host) },
  );
  const exts: fc.Arbitrary<Ext[]> = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Ext[]>([]) },
    { weight: 2, arbitrary: fc.array(extArb, { maxLength: 18 }) },
  );
  const addr = (p: readonly number[], i: number, odd: number) =>
    odd === 1 ? ['fe80::1', 'ff02::1', '::'][i] : HOSTS6[p[i]];
  const echo = fc
    .record({
      p: pair,
      data: fc.uint8Array({ maxLength: 120 }),
      search: fc.boolean(),
      type: fc.constantFrom(128, 129, 135, 136, 143, 2, 1),
      exts,
      odd: fc.integer({ min: 0, max: 8 }),
      side: fc.integer({ min: 0, max: 1 }),
    })
    .map(({ p, data, search, type, exts, odd, side }) => {
      const d = search ? Uint8Array.from([0, 1, 0, 1, 0x4b, 0x53, 0x52, 0x43, ...data, 0, 0, 0, 0]) : data;
      return icmp6(
        side === 0 ? addr(p, 0, odd) : HOSTS6[p[0]],
        side === 1 ? addr(p, 1, odd) : HOSTS6[p[1]],
        type,
        d,
        exts,
      );
    });
  const syn = fc
    .record({ p: pair, mss: fc.integer({ min: 0, max: 0xffff }), flags: fc.constantFrom(0x02, 0x12, 0x10), exts })
    .map(({ p, mss, flags, exts }) => tcp6(HOSTS6[p[0]], HOSTS6[p[1]], flags, mss, new Uint8Array(0), exts));
  const other = fc
    .record({
      p: pair,
      proto: fc.constantFrom(41, 4, 17, 59, 50),
      body: fc.uint8Array({ maxLength: 300 }),
      exts,
      tclass: fc.integer({ min: 0, max: 255 }),
      hop: fc.integer({ min: 0, max: 255 }),
    })
    .map(({ p, proto, body, exts, tclass, hop }) =>
      ipv6({ src: HOSTS6[p[0]], dst: HOSTS6[p[1]], proto, payload: body, exts, tclass, hop }),
    );
  const esp = fc
    .record({
      p: pair,
      k: fc.integer({ min: 0, max: 2 }),
      seq: fc.bigInt({ min: 1n, max: 40n }),
      carried: fc.boolean(),
      raw: fc.boolean(),
      body: fc.uint8Array({ maxLength: 80 }),
      flip: fc.option(fc.nat(), { nil: undefined }),
      frag: fc.boolean(),
    })
    .map(({ p, k, seq, carried, raw, body, flip, frag }) => {
      const sa: RefSa = { spi: SPIS[k], ...KEYS[k] };
      const inner = carried
        ? ipv6({ src: HOSTS6[p[0]], dst: HOSTS6[p[1]], proto: 41, payload: body })
        : ipv6({ src: HOSTS6[p[0]], dst: HOSTS6[p[1]], proto: 17, payload: body, exts: frag ? [{ type: 60 }] : [] });
      const out = (carried ? refEncryptCarried6 : refEncrypt6)(sa, seq, inner, raw ? 'esp' : 'udp');
      if (flip !== undefined) out[40 + (flip % (out.length - 40))] ^= 0x01;
      return out;
    });
  const junk = fc
    .tuple(fc.integer({ min: 0x60, max: 0x6f }), fc.uint8Array({ maxLength: 100 }))
    .map(([v, b]) => Uint8Array.from([v, ...b]));
  const padded = fc
    .tuple(fc.oneof(echo, syn), fc.uint8Array({ minLength: 1, maxLength: 8 }))
    .map(([p, pad]) => Uint8Array.from([...p, ...pad]));
  return fc.oneof(
    fc.record({
      op: fc.constant('packet' as const),
      inside: fc.boolean(),
      bytes: fc.oneof(echo, syn, other, junk, padded),
      recheck: fc.boolean(),
    }),
    fc.record({ op: fc.constant('packet' as const), inside: fc.constant(false), bytes: esp, recheck: fc.boolean() }),
  );
}

function packetArb(): fc.Arbitrary<Op> {
  const pair = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom([0, 1], [1, 0]) },
    { weight: 1, arbitrary: fc.tuple(host, host) },
  );
  const ping = fc
    .record({
      p: pair,
      data: fc.uint8Array({ maxLength: 200 }),
      df: fc.boolean(),
      search: fc.boolean(),
      reply: fc.boolean(),
    })
    .map(({ p, data, df, search, reply }) => {
      const d = search ? Uint8Array.from([0x4b, 0x53, 0x52, 0x43, ...data, 0, 0, 0, 0]) : data;
      return ipv4({ src: HOSTS[p[0]], dst: HOSTS[p[1]], proto: 1, payload: icmpEcho(reply ? 0 : 8, 1, 2, d), df });
    });
  const syn = fc
    .record({
      p: pair,
      mss: fc.integer({ min: 0, max: 0xffff }),
      nop: fc.integer({ min: 0, max: 3 }),
      flags: fc.constantFrom(0x02, 0x12, 0x10, 0x18),
    })
    .map(({ p, mss, nop, flags }) =>
      tcp({
        src: HOSTS[p[0]],
        dst: HOSTS[p[1]],
        sport: 1000,
        dport: 80,
        seq: 5,
        flags,
        options: Uint8Array.from([...new Array(nop).fill(1), 2, 4, mss >> 8, mss & 0xff]),
      }),
    );
  const frag = fc
    .record({
      p: pair,
      mf: fc.boolean(),
      off: fc.integer({ min: 0, max: 20 }),
      proto: fc.constantFrom(1, 6, 17, 50),
      body: fc.uint8Array({ maxLength: 64 }),
    })
    .map(({ p, mf, off, proto, body }) =>
      ipv4({ src: HOSTS[p[0]], dst: HOSTS[p[1]], proto, payload: body, mf, fragOffset: off }),
    );
  const esp = fc
    .record({
      p: pair,
      k: fc.integer({ min: 0, max: 2 }),
      seq: fc.oneof(fc.bigInt({ min: 0n, max: 40n }), fc.bigInt({ min: 0n, max: 3000n })),
      body: fc.uint8Array({ maxLength: 80 }),
      flip: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ p, k, seq, body, flip }) => {
      const sa: RefSa = { spi: SPIS[k], ...KEYS[k] };
      const inner = ipv4({ src: HOSTS[p[0]], dst: HOSTS[p[1]], proto: 17, payload: body });
      const out =
        seq === 0n
          ? ipv4({ src: HOSTS[p[0]], dst: HOSTS[p[1]], proto: 50, payload: new Uint8Array(40) })
          : refEncrypt(sa, seq, inner);
      if (flip !== undefined) out[20 + (flip % (out.length - 20))] ^= 0x01;
      return out;
    });
  const junk = fc.uint8Array({ maxLength: 80 });
  // Link-layer padding after the IP total length: counted as the reference counts it.
  const padded = fc
    .tuple(fc.oneof(ping, syn), fc.uint8Array({ minLength: 1, maxLength: 8 }))
    .map(([p, pad]) => Uint8Array.from([...p, ...pad]));
  return fc.oneof(
    fc.record({
      op: fc.constant('packet' as const),
      inside: fc.boolean(),
      bytes: fc.oneof(ping, syn, frag, junk, padded),
      recheck: fc.boolean(),
    }),
    fc.record({
      op: fc.constant('packet' as const),
      inside: fc.boolean().map((b) => b && false),
      bytes: esp,
      recheck: fc.boolean(),
    }),
  );
}

function apply(ex: Executor, op: Op, now: number): Verdict | undefined {
  switch (op.op) {
    case 'rule': {
      const rule: PathRule = { local: HOSTS[op.local], remote: HOSTS[op.remote], action: op.action };
      if (op.action === 'encrypt') Object.assign(rule, { vpnId: op.vpnId, peer: op.peer });
      if (op.mtu !== undefined) rule.mtu = op.mtu;
      ex.installPath(rule);
      return undefined;
    }
    case 'unrule':
      ex.removePath(HOSTS[op.local], HOSTS[op.remote]);
      return undefined;
    case 'tx':
      ex.installTxSa({ spi: SPIS[op.k], vpnId: op.vpnId, epoch: 1, ...KEYS[op.k], nextSeq: op.seq });
      return undefined;
    case 'untx':
      ex.removeTxSa(op.vpnId);
      return undefined;
    case 'rx':
      ex.installRxSa({ spi: SPIS[op.k], vpnId: op.vpnId, epoch: 1, sender: op.sender, ...KEYS[op.k], floor: op.floor });
      return undefined;
    case 'unrx':
      ex.removeRxSa(SPIS[op.k]);
      return undefined;
    case 'packet':
      return ex.process(op.inside ? 'inside' : 'outside', op.bytes, now, op.recheck ?? false);
  }
}

function show(v: Verdict | undefined): unknown {
  if (!v) return v;
  if (v.kind !== 'forward') return v;
  return {
    kind: v.kind,
    bytes: hex(v.bytes),
    more: v.more?.map((m) => hex(m)),
    note: JSON.stringify(v.note, (_, x) => (typeof x === 'bigint' ? `${x}n` : x)),
  };
}

function run(t: Parameters<typeof newExecutor>[0], arb: fc.Arbitrary<Op>, hosts: string[], numRuns: number): void {
  if (!newExecutor(t)) return;
  HOSTS = hosts;
  try {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 1, maxLength: 120, size: 'medium' }), (random) => {
        // Start from a working encrypted path both ways, then let the random operations mix it up.
        const ops: Op[] = [
          { op: 'tx', vpnId: 1, k: 0, seq: 1n },
          { op: 'rx', k: 0, vpnId: 1, sender: 'G1' },
          { op: 'rule', local: 0, remote: 1, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1400 },
          { op: 'rule', local: 1, remote: 0, action: 'encrypt', vpnId: 1, peer: 'G1' },
          ...random,
        ];
        const ref = new TsExecutor();
        const nat = newExecutor(t)!;
        ops.forEach((op, i) => {
          const a = apply(ref, op, 1000 + i);
          const b = apply(nat, op, 1000 + i);
          assert.deepEqual(show(b), show(a), `op ${i}: ${op.op}`);
        });
        for (const l of HOSTS)
          for (const r of HOSTS) assert.deepEqual(nat.pathStats(l, r), ref.pathStats(l, r), `stats ${l} ${r}`);
        assert.deepEqual(nat.counters(), ref.counters());
      }),
      { numRuns },
    );
  } finally {
    HOSTS = HOSTS4;
  }
}

describe('native executor vs TypeScript reference (differential)', () => {
  it('agrees on verdicts, bytes, path statistics and counters for random sequences', (t) => run(t, opArb, HOSTS4, 300));
  it('agrees on IPv6: extension-header chains, link traffic, search, both group forms, ESP (random sequences)', (t) =>
    run(t, opArb6, HOSTS6, 300));
});

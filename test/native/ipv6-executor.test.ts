// IPv6 in the native executor (issue 14, the V6 decisions): the bounded extension-header walk
// against an independent model, what is never intercepted, search over ICMPv6, group mode's
// transport and carried forms (checked byte for byte against node:crypto, the UDP checksum over
// the v6 pseudo-header), Packet Too Big instead of fragmentation, MSS clamping, the PMTU hand-off,
// and tunnel mode v6-in-v4, v4-in-v6 and v6-in-v6.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { TunnelRxSa, TunnelTxSa } from '../../src/core/executor.js';
import type { NativeExecutor } from '../../src/native/native-executor.js';
import { isNeverIntercepted, parseIpv6 } from '../../src/core/packet/ipv6.js';
import { fwd, groupSa, hex, nativeOrSkip, newExecutor, ping, refEspOpen } from './support.js';
import {
  extArb,
  extChain,
  icmp6,
  ipv6,
  modelWalk,
  refEncrypt6,
  refEncryptCarried6,
  tcp6,
  upperChecksumOk6,
  type Ext,
} from './support6.js';

const A = '2001:db8:1::10';
const B = '2001:db8:2::10';
const SPI = 0x6001;
const { K, SA, sender, receiver, pair: executors } = groupSa(A, B, SPI, 6);

const echo = (src: string, dst: string, data: string, exts?: Ext[]) =>
  icmp6(src, dst, 128, Uint8Array.from([0, 7, 0, 1, ...new TextEncoder().encode(data)]), exts);

describe('native executor: the IPv6 extension-header walk', () => {
  it('finds the upper layer behind 8 extension headers, bounds every header, refuses more than 16', (t) => {
    const b = nativeOrSkip(t);
    if (!b) return;
    const eight: Ext[] = [
      { type: 0 },
      { type: 60 },
      { type: 43 },
      { type: 60 },
      { type: 51 },
      { type: 60 },
      { type: 43 },
      { type: 60 },
    ];
    const p = tcp6(A, B, 0x02, 1400, new Uint8Array(0), eight);
    const chain = extChain(eight, 6).bytes.length;
    assert.deepEqual(b.ipv6Walk(p), [6, 40 + chain, 0, chain, 0, p.length]);
    // Hop-by-hop anywhere but first is malformed.
    assert.equal(b.ipv6Walk(tcp6(A, B, 0x10, undefined, new Uint8Array(0), [{ type: 60 }, { type: 0 }])), undefined);
    // 16 headers are fine, 17 are not.
    const many = (n: number) =>
      echo(
        A,
        B,
        'x',
        Array.from({ length: n }, () => ({ type: 60 })),
      );
    assert.equal(b.ipv6Walk(many(16))?.[0], 58);
    assert.equal(b.ipv6Walk(many(17)), undefined);
    // A chain longer than the packet (payload length cut short inside a header) is malformed.
    const cut = echo(A, B, 'x', [{ type: 60, body: new Uint8Array(14) }]);
    cut[5] = 12; // 40 + 12 ends inside the 16-byte destination options header
    assert.equal(b.ipv6Walk(cut), undefined);
    // Payload length beyond the buffer; not version 6; a buffer shorter than the fixed header.
    const long = echo(A, B, 'x');
    long[5] += 1;
    assert.equal(b.ipv6Walk(long), undefined);
    assert.equal(b.ipv6Walk(ping('10.0.0.1', '10.0.0.2')), undefined);
    assert.equal(b.ipv6Walk(new Uint8Array(39).fill(0x60)), undefined);
    // Fragments: the first has its upper layer, a later one has none.
    const first = echo(A, B, 'frag', [{ type: 44, offset: 0, more: true }]);
    assert.deepEqual(b.ipv6Walk(first)?.slice(0, 4), [58, 48, 1, 8]);
    const later = echo(A, B, 'frag', [{ type: 60 }, { type: 44, offset: 4 }]);
    assert.deepEqual(b.ipv6Walk(later)?.slice(0, 4), [58, -1, 2, 16]);
    // ESP and "no next header" end the walk.
    assert.deepEqual(
      b.ipv6Walk(ipv6({ src: A, dst: B, proto: 50, payload: new Uint8Array(8) }))?.slice(0, 2),
      [50, 40],
    );
    assert.deepEqual(
      b.ipv6Walk(ipv6({ src: A, dst: B, proto: 59, payload: new Uint8Array(0), exts: [{ type: 60 }] }))?.slice(0, 2),
      [59, 48],
    );
  });

  it('agrees with the TypeScript walk and an independent model on random chains and corruptions', (t) => {
    const b = nativeOrSkip(t);
    if (!b) return;
    fc.assert(
      fc.property(
        fc.array(extArb, { maxLength: 20 }),
        fc.constantFrom(6, 17, 58, 59, 50, 41),
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.integer({ min: -20, max: 20 }),
        (exts, proto, payload, flips, cut) => {
          const p = ipv6({ src: A, dst: B, proto, payload, exts });
          for (const [at, v] of flips) p[4 + (at % (p.length - 4))] = v;
          const bytes = cut < 0 ? p.subarray(0, Math.max(0, p.length + cut)) : p;
          const got = b.ipv6Walk(bytes);
          const want = modelWalk(bytes);
          assert.deepEqual(got?.slice(0, 4), want);
          // The reference's walk (src/core/packet/ipv6.ts): the same results, and the same
          // never-intercepted decision.
          const ts = parseIpv6(bytes);
          assert.equal(ts.ok, got !== undefined);
          if (ts.ok && got) {
            const w = ts.value.walk;
            assert.deepEqual(got.slice(0, 4), [
              w.upperProto,
              w.upperOffset ?? -1,
              ['none', 'first', 'non-first'].indexOf(w.fragment),
              w.extLength,
            ]);
            assert.equal(got[4] === 1, isNeverIntercepted(bytes, w));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('native executor: IPv6 before any rule', () => {
  it('passes neighbour discovery, MLD, link-local, multicast and unspecified-source packets untouched', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    // A discard rule that would catch the global pair: never-intercepted packets do not reach it.
    ex.installPath({ local: B, remote: A, action: 'discard' });
    const link = [
      icmp6(B, A, 135, new Uint8Array(20)), // neighbour solicitation between global addresses
      icmp6(B, A, 136, new Uint8Array(20)), // neighbour advertisement
      icmp6(B, A, 133, new Uint8Array(4)), // router solicitation
      icmp6(B, A, 134, new Uint8Array(12)), // router advertisement
      icmp6(B, A, 143, new Uint8Array(4), [{ type: 0, body: Uint8Array.from([5, 2, 0, 0, 1, 0]) }]), // MLDv2 report behind hop-by-hop
      icmp6(B, A, 155, new Uint8Array(4)), // RPL
      echo('fe80::1', A, 'link-local source'),
      echo(B, 'fe80::2', 'link-local destination'),
      echo(B, 'ff02::1', 'multicast'),
      echo('::', A, 'unspecified source'),
      tcp6('fe80::1', 'fe80::2', 0x02, 1460),
    ];
    for (const p of link) {
      for (const side of ['inside', 'outside'] as const) {
        const v = fwd(ex.process(side, p, 1));
        assert.equal(hex(v.bytes), hex(p));
        assert.deepEqual(v.note, { op: 'pass' });
      }
    }
    // The global echo between the same addresses is not the link's: the rule applies.
    assert.deepEqual(ex.process('inside', echo(B, A, 'global'), 2), { kind: 'drop', reason: 'discard' });
    assert.deepEqual(ex.pathStats(B, A), { packets: 1, bytes: echo(B, A, 'global').length, lastUsed: 2 });
    const passed = link.reduce((n, p) => n + 2 * p.length, 0);
    assert.deepEqual(ex.counters(), { 'pass.packets': 2 * link.length, 'pass.bytes': passed, 'drop.discard': 1 });
  });

  it('punts search messages over ICMPv6 and drops malformed IPv6 as bad-ipv6', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    const search = (type: number, data: string) =>
      icmp6(B, A, type, Uint8Array.from([0, 1, 0, 1, ...new TextEncoder().encode(data)]));
    assert.deepEqual(ex.process('inside', search(128, 'KSRC....'), 1), { kind: 'punt', reason: 'search' });
    assert.deepEqual(ex.process('outside', search(129, 'KSRCxxxxyy'), 1), { kind: 'punt', reason: 'search' });
    assert.deepEqual(ex.process('inside', search(128, 'KSRC...'), 1), { kind: 'punt', reason: 'miss' }); // 7 bytes
    assert.deepEqual(ex.process('inside', search(1, 'KSRC....'), 1), { kind: 'punt', reason: 'miss' }); // not an echo
    const bad = echo(
      B,
      A,
      'x',
      Array.from({ length: 17 }, () => ({ type: 60 })),
    );
    assert.deepEqual(ex.process('inside', bad, 1), { kind: 'drop', reason: 'bad-ipv6' });
    assert.deepEqual(ex.process('outside', new Uint8Array(40).fill(0x60), 1), { kind: 'drop', reason: 'bad-ipv6' });
    assert.deepEqual(ex.counters(), { 'punt.search': 2, 'punt.miss': 2, 'drop.bad-ipv6': 2 });
  });
});

describe('native executor: group mode over IPv6', () => {
  it('transport form: the fixed header kept, everything after it sealed, UDP checksum over the v6 pseudo-header', (t) => {
    const pair = executors(t);
    if (!pair) return;
    const { ex, rx } = pair;
    const packets = [
      echo(B, A, 'a'),
      echo(B, A, 'kasane v6', [{ type: 0 }, { type: 43, body: new Uint8Array(14) }, { type: 60 }]),
      tcp6(B, A, 0x18, undefined, new TextEncoder().encode('payload behind a fragment header'), [
        { type: 44, offset: 0, more: true },
      ]),
      ipv6({ src: B, dst: A, proto: 17, payload: new Uint8Array(333).fill(7), tclass: 0xb8, flow: 0xabcde, hop: 3 }),
    ];
    for (const [i, p] of packets.entries()) {
      const v = fwd(ex.process('inside', p, 10 + i));
      assert.equal(hex(v.bytes), hex(refEncrypt6(SA, BigInt(i + 1), p)), `packet ${i}`);
      assert.deepEqual(v.note, { op: 'encrypt', vpnId: 1, spi: SPI, seq: BigInt(i + 1) });
      assert.ok(upperChecksumOk6(v.bytes, 40, 17), 'UDP checksum verifies');
      assert.deepEqual([...v.bytes.subarray(0, 4)], [...p.subarray(0, 4)], 'version, traffic class, flow label');
      assert.equal(v.bytes[7], p[7], 'hop limit');
      const opened = refEspOpen(SA, v.bytes.subarray(48));
      assert.equal(opened?.nh, p[6]);
      assert.equal(hex(opened?.payload ?? new Uint8Array(0)), hex(p.subarray(40)));
      // The receiving gateway restores the packet exactly.
      const back = fwd(rx.process('outside', v.bytes, 20 + i));
      assert.equal(hex(back.bytes), hex(p));
      assert.deepEqual(back.note, { op: 'decrypt', vpnId: 1, spi: SPI, seq: BigInt(i + 1), sender: 'G2' });
    }
    // Raw ESP: next header 50, no UDP.
    ex.installTxSa({ spi: SPI, vpnId: 1, epoch: 1, key: K.key, salt: K.salt, nextSeq: 10n, encapsulation: 'esp' });
    const raw = echo(B, A, 'raw');
    const rv = fwd(ex.process('inside', raw, 30));
    assert.equal(hex(rv.bytes), hex(refEncrypt6(SA, 10n, raw, 'esp')));
    assert.equal(hex(fwd(rx.process('outside', rv.bytes, 31)).bytes), hex(raw));
    assert.deepEqual(rx.process('outside', rv.bytes, 32), { kind: 'drop', reason: 'replay' });
    assert.equal(ex.counters()['encrypt.packets'], 5);
    assert.equal(rx.counters()['decrypt.packets'], 5);
  });

  it('carried form for IPv6 and IPv4 in IPv6 (next header 41 / 4), checked by the receiver', (t) => {
    const pair = executors(t);
    if (!pair) return;
    const { ex, rx } = pair;
    const in6 = ipv6({
      src: B,
      dst: A,
      proto: 41,
      payload: echo('2001:db8:9::1', '2001:db8:9::2', 'inner'),
      tclass: 0x20,
      hop: 9,
    });
    const in4 = ipv6({ src: B, dst: A, proto: 4, payload: ping('10.9.0.1', '10.9.0.2') });
    for (const [i, p] of [in6, in4].entries()) {
      const v = fwd(ex.process('inside', p, 1));
      assert.equal(hex(v.bytes), hex(refEncryptCarried6(SA, BigInt(i + 1), p)));
      assert.ok(upperChecksumOk6(v.bytes, 40, 17));
      assert.equal(refEspOpen(SA, v.bytes.subarray(48))?.nh, 41);
      const back = fwd(rx.process('outside', v.bytes, 2));
      assert.equal(hex(back.bytes), hex(p));
    }
    // A member may not smuggle a packet for another path: inner addresses must be the outer ones.
    const smuggled = ipv6({ src: '2001:db8:2::99', dst: A, proto: 41, payload: new Uint8Array(0) });
    const forged = refEncryptCarried6(SA, 3n, smuggled);
    forged.set(ipv6({ src: B, dst: A, proto: 17, payload: new Uint8Array(0) }).subarray(8, 40), 8);
    assert.deepEqual(rx.process('outside', forged, 3), { kind: 'drop', reason: 'malformed' });
    // The carried form forwards with the outer traffic class and hop limit.
    const hop = refEncryptCarried6(SA, 4n, in6);
    hop[7] = 5;
    const restored = fwd(rx.process('outside', hop, 4)).bytes;
    assert.equal(restored[7], 5);
    assert.equal(hex(restored.subarray(8)), hex(in6.subarray(8)));
  });

  it('punts too-big instead of fragmenting; clamps the MSS of v6 SYNs to mtu - 45 - 60 (raw: - 37 - 60)', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    sender(ex, 1280);
    const big = ipv6({ src: B, dst: A, proto: 17, payload: new Uint8Array(1280 - 40 - 45 + 4) });
    assert.deepEqual(ex.process('inside', big, 1), { kind: 'punt', reason: 'too-big' });
    // Fragments are carried in the transport form like any packet, and are never split further.
    const frag = ipv6({
      src: B,
      dst: A,
      proto: 17,
      payload: new Uint8Array(1300),
      exts: [{ type: 44, offset: 0, more: true }],
    });
    assert.deepEqual(ex.process('inside', frag, 1), { kind: 'punt', reason: 'too-big' });
    const fits = ipv6({ src: B, dst: A, proto: 17, payload: new Uint8Array(1280 - 40 - 48) });
    assert.equal(fwd(ex.process('inside', fits, 1)).bytes.length <= 1280, true);
    const carried = ipv6({ src: B, dst: A, proto: 41, payload: new Uint8Array(1280 - 85 - 40 + 4) });
    assert.deepEqual(ex.process('inside', carried, 1), { kind: 'punt', reason: 'too-big' });
    const syn = tcp6(B, A, 0x02, 1440);
    const v = fwd(ex.process('inside', syn, 2));
    const opened = refEspOpen(SA, v.bytes.subarray(48));
    assert.ok(opened);
    const clamped = ipv6({ src: B, dst: A, proto: 6, payload: opened.payload });
    assert.equal((clamped[40 + 22] << 8) | clamped[40 + 23], 1280 - 45 - 60);
    assert.ok(upperChecksumOk6(clamped, 40, 6), 'TCP checksum still valid after clamping');
    ex.installTxSa({ spi: SPI, vpnId: 1, epoch: 1, key: K.key, salt: K.salt, nextSeq: 100n, encapsulation: 'esp' });
    const rawv = fwd(ex.process('inside', tcp6(B, A, 0x02, 1440), 3));
    const ro = refEspOpen(SA, rawv.bytes.subarray(40));
    assert.equal(ro && (ro.payload[22] << 8) | ro.payload[23], 1280 - 37 - 60);
    // A SYN below the limit is left alone.
    const small = fwd(ex.process('inside', tcp6(B, A, 0x02, 1000), 4));
    const so = refEspOpen(SA, small.bytes.subarray(40));
    assert.equal(so && (so.payload[22] << 8) | so.payload[23], 1000);
  });

  it('from the outside: fragments, extension headers before ESP, plain and unknown SPIs; PTB goes to the core', (t) => {
    const ex = newExecutor(t);
    const tx = newExecutor(t);
    if (!ex || !tx) return;
    receiver(ex);
    sender(tx);
    const esp = fwd(tx.process('inside', echo(B, A, 'x'), 1)).bytes;
    const fragmented = ipv6({
      src: B,
      dst: A,
      proto: 17,
      payload: esp.subarray(40),
      exts: [{ type: 44, offset: 0, more: true }],
    });
    assert.deepEqual(ex.process('outside', fragmented, 1), { kind: 'drop', reason: 'fragment' });
    const behind = ipv6({ src: B, dst: A, proto: 17, payload: esp.subarray(40), exts: [{ type: 60 }] });
    assert.deepEqual(ex.process('outside', behind, 1), { kind: 'drop', reason: 'unsolicited-plain' });
    assert.deepEqual(ex.process('outside', echo(B, A, 'plain'), 1), { kind: 'drop', reason: 'unsolicited-plain' });
    const other = refEncrypt6({ ...SA, spi: 0x7777 }, 1n, echo(B, A, 'y'));
    assert.deepEqual(ex.process('outside', other, 1), { kind: 'punt', reason: 'unknown-spi' });
    // A Packet Too Big from a router about our ESP has no path of its own: the core gets it (punt
    // miss) and learns the path MTU from it (src/core/pmtu.ts).
    const ptb = icmp6('2001:db8:ff::1', A, 2, Uint8Array.from([0, 0, 5, 0, ...esp.subarray(0, 1000)]));
    assert.deepEqual(ex.process('outside', ptb, 1), { kind: 'punt', reason: 'miss' });
    assert.equal(fwd(ex.process('outside', esp, 2)).bytes.length, echo(B, A, 'x').length);
  });
});

describe('native executor: tunnel mode with IPv6', () => {
  const GW4 = ['192.0.2.1', '198.51.100.2'];
  const GW6 = ['2001:db8:ffff::1', '2001:db8:ffff::2'];
  const TK = { key: new Uint8Array(32).fill(9), salt: Uint8Array.from([1, 2, 3, 4]) };

  function pair(t: Parameters<typeof newExecutor>[0], gw: string[]): [NativeExecutor, NativeExecutor] | undefined {
    const a = newExecutor(t);
    const b = newExecutor(t);
    if (!a || !b) return undefined;
    const tx: TunnelTxSa = {
      spi: 0xc001,
      vpnId: 3,
      peer: 'G2',
      ...TK,
      localAddr: gw[0],
      localPort: 4500,
      remoteAddr: gw[1],
      remotePort: 4500,
    };
    const rx: TunnelRxSa = {
      spi: 0xc001,
      vpnId: 3,
      peer: 'G1',
      ...TK,
      localAddr: gw[1],
      localPort: 4500,
      remoteAddr: gw[0],
      remotePort: 4500,
      localSelectors: [
        { start: '10.2.0.0', end: '10.2.0.255' },
        { start: '2001:db8:2::', end: '2001:db8:2::ffff' },
      ],
      remoteSelectors: [
        { start: '10.1.0.0', end: '10.1.0.255' },
        { start: '2001:db8:1::', end: '2001:db8:1::ffff' },
      ],
    };
    a.installTunnelTx(tx);
    b.installTunnelRx(rx);
    for (const [l, r] of [
      [A, B],
      ['10.1.0.10', '10.2.0.10'],
    ])
      a.installPath({
        local: l,
        remote: r,
        action: 'encrypt',
        vpnId: 3,
        peer: 'G2',
        tunnel: { spi: 0xc001 },
        mtu: 1400,
      });
    return [a, b];
  }

  for (const [name, gw] of [
    ['v6 and v4 in v4', GW4],
    ['v4 and v6 in v6', GW6],
  ] as const) {
    it(`${name}: ESP next header 41 / 4, selectors per family, the last source address`, (t) => {
      const p = pair(t, gw);
      if (!p) return;
      const [a, b] = p;
      const v6 = gw === GW6;
      const hdr = v6 ? 48 : 28;
      for (const inner of [
        echo(A, B, 'tunnel v6', [{ type: 60 }]),
        ping('10.1.0.10', '10.2.0.10', 1, 'tunnel v4', true),
      ]) {
        const v = fwd(a.process('inside', inner, 5));
        assert.equal(v.note.op, 'tunnel-encrypt');
        assert.equal(v.bytes[0] >> 4, v6 ? 6 : 4);
        if (v6) {
          assert.equal(v.bytes[6], 17);
          assert.equal(v.bytes[7], 64);
          assert.ok(upperChecksumOk6(v.bytes, 40, 17), 'the outer UDP checksum over IPv6 verifies');
        } else assert.equal(v.bytes[6] & 0x40, 0x40, 'DF (always for an inner IPv6 packet)');
        const back = fwd(b.processUdp(gw[0], 4500, v.bytes.subarray(hdr), 6));
        assert.equal(hex(back.bytes), hex(inner));
        assert.equal(back.note.op, 'tunnel-decrypt');
      }
      assert.deepEqual(b.tunnelRxStats(0xc001)?.lastSource, { addr: gw[0], port: 4500 });
      // Outside the selectors: dropped.
      a.installPath({
        local: A,
        remote: '2001:db8:3::1',
        action: 'encrypt',
        vpnId: 3,
        peer: 'G2',
        tunnel: { spi: 0xc001 },
      });
      const off = fwd(a.process('inside', echo(A, '2001:db8:3::1', 'off'), 7));
      assert.deepEqual(b.processUdp(gw[0], 4500, off.bytes.subarray(hdr), 8), { kind: 'drop', reason: 'selector' });
      // An IPv6 inner packet larger than the path: too-big (Packet Too Big), never sent to be fragmented.
      const big = ipv6({ src: A, dst: B, proto: 17, payload: new Uint8Array(1400) });
      assert.deepEqual(a.process('inside', big, 9), { kind: 'punt', reason: 'too-big' });
      // MSS clamping: mtu - tunnel overhead (65 over IPv4, 85 over IPv6) - 60 for an IPv6 SYN.
      const syn = fwd(a.process('inside', tcp6(A, B, 0x02, 1440), 10));
      const inner = fwd(b.processUdp(gw[0], 4500, syn.bytes.subarray(hdr), 11)).bytes;
      assert.equal((inner[62] << 8) | inner[63], 1400 - (v6 ? 85 : 65) - 60);
      assert.ok(upperChecksumOk6(inner, 40, 6));
    });
  }
});

// The shared IPv6 executor vectors (test/vectors/executor-v6.json) on the TypeScript reference
// executor, and the v6 wire formats checked independently of it (docs/executor.md, "IPv6"): the
// fixed header kept, the UDP checksum computed, ESP that opens to everything after the fixed
// header, the carried form, the exact fit at 1280, MSS values, and tunnel mode in both families.
// The same file is for the native executor (issue 14b).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { espOpen } from '../../src/crypto/esp.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';
import { tunnelEspOpen } from '../../src/crypto/tunnel-esp.js';
import { parseIpv6 } from '../../src/core/packet/ipv6.js';
import { parseIpv4 } from '../../src/core/packet/ipv4.js';
import { tcpChecksumOk, tcpMss } from '../../src/core/packet/tcp.js';
import { udpChecksumOk } from '../../src/core/packet/udp.js';
import { replayScenario, verdictsGiven, type VectorScenario } from '../support/executor-vectors.js';
import { A6, B6, generateExecutorV6Vectors } from './executor-v6-vectors.js';
import { v6Packet, type Ext } from './packet/v6-chain.js';

const file = JSON.parse(readFileSync(new URL('../vectors/executor-v6.json', import.meta.url), 'utf8')) as {
  scenarios: VectorScenario[];
};
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

test('the committed v6 vectors are what the reference executor produces (regenerate deliberately with test/core/gen-executor-v6-vectors.ts)', () => {
  assert.deepEqual(
    generateExecutorV6Vectors(() => new TsExecutor()),
    file.scenarios,
  );
});

for (const scenario of file.scenarios) {
  test(`TS executor replays v6 vector scenario "${scenario.name}"`, () => {
    for (const r of replayScenario(new TsExecutor(), scenario))
      assert.deepEqual(r.actual, r.expected, `step ${r.step} (${r.name})`);
  });
}

function step(name: string): { packet: Uint8Array; out: Uint8Array } {
  for (const s of file.scenarios) {
    for (const st of s.steps) {
      if ((st.op === 'process' || st.op === 'processUdp') && st.name === name) {
        assert.equal(st.expect.kind, 'forward', name);
        const packet = unhex(st.op === 'process' ? st.packet : st.payload);
        return { packet, out: unhex((st.expect as { bytes: string }).bytes) };
      }
    }
  }
  throw new Error(`no step ${name}`);
}

test('the v6 vectors give every verdict the spec lists', () => {
  const seen = verdictsGiven(file.scenarios);
  for (const v of [
    'forward.encrypt',
    'forward.decrypt',
    'forward.plain',
    'forward.pass',
    'forward.tunnel-encrypt',
    'forward.tunnel-decrypt',
    'drop.bad-ipv6',
    'drop.fragment',
    'drop.malformed',
    'drop.replay',
    'drop.auth-failed',
    'drop.selector',
    'drop.unsolicited-plain',
    'punt.search',
    'punt.too-big',
    'punt.miss',
    'punt.pending',
    'drop.discard',
    'drop.no-sa',
  ]) {
    assert.ok(seen.has(v), `no v6 vector gives ${v}`);
  }
});

const g2 = deriveSenderKey(
  new Uint8Array(32).map((_, i) => i + 1),
  1,
  1,
  'G2',
);

test('transport form: fixed header kept, next header 17, UDP 4500 with a valid checksum, ESP = everything after the fixed header', () => {
  for (const name of [
    'encrypt v6 transport form (ESP in UDP, checksum computed)',
    'encrypt v6 with the upper layer behind 8 extension headers',
  ]) {
    const { packet, out } = step(name);
    assert.deepEqual(
      [...out.subarray(0, 4), ...out.subarray(7, 40)],
      [...packet.subarray(0, 4), ...packet.subarray(7, 40)],
    );
    assert.equal(out[6], 17);
    assert.equal((out[4] << 8) | out[5], out.length - 40);
    assert.deepEqual(
      [(out[40] << 8) | out[41], (out[42] << 8) | out[43], (out[44] << 8) | out[45]],
      [4500, 4500, out.length - 40],
    );
    assert.ok(udpChecksumOk(out, 40), 'UDP checksum over the IPv6 pseudo-header');
    const opened = espOpen({ key: g2.key, salt: g2.salt }, out.subarray(48));
    assert.ok(opened.ok);
    assert.equal(opened.value.nextHeader, packet[6]);
    assert.deepEqual(opened.value.payload, packet.subarray(40));
  }
});

test('carried form: ESP next header 41, the whole inner packet, outer fixed header copied from it', () => {
  for (const name of [
    'encrypt v6 in v6 (carried form, ESP next header 41)',
    'encrypt v4 in v6 (carried form, ESP next header 41)',
  ]) {
    const { packet, out } = step(name);
    assert.deepEqual(out.subarray(7, 40), packet.subarray(7, 40));
    const opened = espOpen({ key: g2.key, salt: g2.salt }, out.subarray(48));
    assert.ok(opened.ok);
    assert.equal(opened.value.nextHeader, 41);
    assert.deepEqual(opened.value.payload, packet);
  }
});

test('a packet that just fits leaves at exactly the path MTU (1280); v6 MSS clamps are mtu - 45 - 60 and tunnel mtu - 85 - 60', () => {
  assert.equal(step('v6 that just fits the path (1280 after encryption)').out.length, 1280);
  for (const [name, mss] of [
    ['v6 TCP SYN: MSS clamped to mtu - 45 - 60', 1175],
    ['v6 TCP SYN behind destination options: MSS clamped', 1175],
  ] as const) {
    const { out } = step(name);
    const opened = espOpen({ key: g2.key, salt: g2.salt }, out.subarray(48));
    assert.ok(opened.ok);
    const inner = new Uint8Array(40 + opened.value.payload.length);
    inner.set(out.subarray(0, 40));
    inner[4] = opened.value.payload.length >> 8;
    inner[5] = opened.value.payload.length & 0xff;
    inner[6] = opened.value.nextHeader;
    inner.set(opened.value.payload, 40);
    assert.equal(tcpMss(inner), mss, name);
    assert.ok(tcpChecksumOk(inner));
  }
});

test('never-intercepted packets leave byte for byte as they came', () => {
  for (const s of file.scenarios) {
    for (const st of s.steps) {
      if (st.op === 'process' && st.expect.kind === 'forward' && st.expect.note.op === 'pass')
        assert.equal(st.expect.bytes, st.packet, st.name);
    }
  }
});

test('tunnel mode: v6 in v4 (DF), v4 in v6 and v6 in v6 (UDP checksum computed), ESP next header 41 or 4', () => {
  const keymat = (seed: number) => {
    const b = new Uint8Array(36).map((_, i) => (i * 31 + seed * 17 + 3) & 0xff);
    return { key: b.subarray(0, 32), salt: b.subarray(32) };
  };
  const cases = [
    ['tunnel v6 in v4 (outer IPv4 with DF, ESP next header 41)', 1, 4, 41],
    ['tunnel v4 in v6 (outer IPv6, UDP checksum computed, ESP next header 4)', 2, 6, 4],
    ['tunnel v6 in v6 with extension headers', 3, 6, 41],
  ] as const;
  for (const [name, seed, outer, nh] of cases) {
    const { packet, out } = step(name);
    let udpAt: number;
    if (outer === 4) {
      const ip = parseIpv4(out);
      assert.ok(ip.ok);
      assert.ok(ip.value.header.df);
      udpAt = 20;
    } else {
      const ip = parseIpv6(out);
      assert.ok(ip.ok);
      assert.equal(ip.value.header.nextHeader, 17);
      udpAt = 40;
      assert.ok(udpChecksumOk(out, udpAt));
    }
    const opened = tunnelEspOpen(keymat(seed), out.subarray(udpAt + 8));
    assert.ok(opened);
    assert.equal(opened.nextHeader, nh);
    assert.deepEqual(opened.payload, packet);
  }
  const syn = step('tunnel v6 TCP SYN in v6: MSS clamped to mtu - 85 - 60').out;
  const inner = tunnelEspOpen(keymat(3), syn.subarray(48));
  assert.ok(inner);
  assert.equal(tcpMss(inner.payload), 1280 - 85 - 60);
  assert.ok(tcpChecksumOk(inner.payload));
  const { out } = step('tunnel v6 in v6: DSCP copied to the outer traffic class, ECN not');
  assert.equal(((out[0] & 0x0f) << 4) | (out[1] >> 4), 0xb8);
});

test('property: any v6 packet a terminal sends (any chain of extension headers, any upper layer) decrypts to itself', () => {
  const txKey = { spi: 0x1001, vpnId: 1, epoch: 1, key: g2.key, salt: g2.salt };
  const ext = fc.oneof(
    fc.record({ type: fc.constantFrom(43 as const, 60 as const), extra: fc.constantFrom(0, 8) }),
    fc.record({ type: fc.constant(51 as const), extra: fc.constantFrom(0, 4) }),
    fc.record({ type: fc.constant(44 as const), fragmentOffset: fc.constantFrom(0, 8, 1448), more: fc.boolean() }),
  );
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(ext, { maxLength: 15 }),
      fc.constantFrom(6, 17, 58, 59, 132),
      fc.uint8Array({ maxLength: 300 }),
      fc.constantFrom<'udp' | 'esp'>('udp', 'esp'),
      (hbh, exts, upper, body, encapsulation) => {
        const chain: Ext[] = hbh ? [{ type: 0 }, ...exts] : exts;
        // ICMPv6 as an echo request: link-scoped types pass untouched (tested above), never encrypted.
        const upperBytes = upper === 58 && body.length > 0 ? Uint8Array.from([128, ...body.subarray(1)]) : body;
        const packet = v6Packet(B6, A6, chain, upper, upperBytes);
        const sender = new TsExecutor();
        sender.installTxSa({ ...txKey, nextSeq: 1n, encapsulation });
        sender.installPath({ local: B6, remote: A6, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1500 });
        const receiver = new TsExecutor();
        receiver.installRxSa({ ...txKey, sender: 'G2' });
        receiver.installPath({ local: A6, remote: B6, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1500 });
        const sealed = sender.process('inside', packet, 1);
        assert.equal(sealed.kind, 'forward');
        assert.ok(sealed.kind === 'forward');
        if (encapsulation === 'udp') assert.ok(udpChecksumOk(sealed.bytes, 40));
        const opened = receiver.process('outside', sealed.bytes, 2);
        assert.equal(opened.kind, 'forward');
        assert.ok(opened.kind === 'forward');
        assert.deepEqual(opened.bytes, packet);
      },
    ),
    { numRuns: 200 },
  );
});

test('property: mutated or random bytes never make the executor throw, from either side', () => {
  const ex = new TsExecutor();
  ex.installTxSa({ spi: 0x1001, vpnId: 1, epoch: 1, key: g2.key, salt: g2.salt, nextSeq: 1n });
  ex.installRxSa({ spi: 0x1001, vpnId: 1, epoch: 1, key: g2.key, salt: g2.salt, sender: 'G2' });
  ex.installPath({ local: B6, remote: A6, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1400 });
  ex.installPath({ local: A6, remote: B6, action: 'encrypt', vpnId: 1, peer: 'G2', mtu: 1400 });
  const seeds = file.scenarios.flatMap((s) => s.steps.flatMap((st) => (st.op === 'process' ? [unhex(st.packet)] : [])));
  fc.assert(
    fc.property(fc.nat(seeds.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), (i, at, xor, cut) => {
      const p = seeds[i].slice();
      p[at % p.length] ^= xor;
      for (const side of ['inside', 'outside'] as const) {
        ex.process(side, p, 1);
        ex.process(side, p.subarray(0, cut % (p.length + 1)), 1);
      }
    }),
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      (b) => void ex.process('outside', b.length ? ((b[0] = 0x60), b) : b, 1),
    ),
  );
});

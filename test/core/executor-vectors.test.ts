// The shared executor vectors (test/vectors/executor.json) on the TypeScript reference executor.
// The same file is replayed against the native executor in test/native/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createDecipheriv } from 'node:crypto';
import fc from 'fast-check';
import type { AddressRange } from '../../src/core/executor.js';
import { buildIpv4 } from '../../src/core/packet/ipv4.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import {
  generateExecutorVectors,
  replayScenario,
  sealTunnelEsp,
  verdictsGiven,
  type VectorScenario,
} from '../support/executor-vectors.js';
import { ipHeaderOk, reassemble, refEspOpen } from '../native/support.js';

const file = JSON.parse(readFileSync(new URL('../vectors/executor.json', import.meta.url), 'utf8')) as {
  scenarios: VectorScenario[];
};

test('the committed vectors are what the reference executor produces (regenerate deliberately with scripts/gen-executor-vectors.ts)', () => {
  assert.deepEqual(
    generateExecutorVectors(() => new TsExecutor()),
    file.scenarios,
  );
});

for (const scenario of file.scenarios) {
  test(`TS executor replays vector scenario "${scenario.name}"`, () => {
    for (const r of replayScenario(new TsExecutor(), scenario))
      assert.deepEqual(r.actual, r.expected, `step ${r.step} (${r.name})`);
  });
}

test('the vectors cover every verdict the executor can give', () => {
  const seen = verdictsGiven(file.scenarios);
  for (const v of [
    'forward.encrypt',
    'forward.decrypt',
    'forward.plain',
    'drop.discard',
    'drop.replay',
    'drop.auth-failed',
    'drop.vpn-mismatch',
    'drop.peer-mismatch',
    'drop.unsolicited-plain',
    'drop.fragment',
    'drop.malformed',
    'drop.no-sa',
    'punt.search',
    'punt.miss',
    'punt.pending',
    'punt.too-big',
    'punt.unknown-spi',
    'forward.tunnel-encrypt',
    'forward.tunnel-decrypt',
    'drop.selector',
    'drop.tunnel-keepalive',
    'drop.tunnel-seq-exhausted',
    'drop.tunnel-dummy',
    'punt.ike',
  ]) {
    assert.ok(seen.has(v), `no vector gives ${v}`);
  }
});

// ---- tunnel mode: the ESP-in-UDP bytes checked independently of the executors ----

type Steps = VectorScenario['steps'];
type TunnelTxStep = Extract<Steps[number], { op: 'installTunnelTx' }>;

/**
 * Opens an outer IPv4 + UDP + ESP packet with node:crypto alone, from RFC 4106 / RFC 3948 as
 * docs/executor.md states them: nonce = salt || IV, AAD = SPI || 32-bit sequence number.
 */
function openOuter(
  outer: Uint8Array,
  key: Uint8Array,
  salt: Uint8Array,
): { spi: number; seq: number; iv: Buffer; inner: Buffer; trailer: Buffer; nh: number } {
  const b = Buffer.from(outer);
  assert.equal(b[0], 0x45, 'outer IPv4, no options');
  assert.equal(b.readUInt16BE(2), b.length, 'outer total length');
  assert.equal(b[8], 64, 'outer TTL');
  assert.equal(b[9], 17, 'outer protocol UDP');
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'outer header checksum');
  assert.equal(b.readUInt16BE(24), b.length - 20, 'UDP length');
  assert.equal(b.readUInt16BE(26), 0, 'UDP checksum 0 (RFC 3948 section 3.1)');
  const esp = b.subarray(28);
  const spi = esp.readUInt32BE(0);
  const seq = esp.readUInt32BE(4);
  const iv = esp.subarray(8, 16);
  const d = createDecipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, Buffer.concat([salt, iv]));
  d.setAAD(esp.subarray(0, 8));
  d.setAuthTag(esp.subarray(esp.length - 16));
  const pt = Buffer.concat([d.update(esp.subarray(16, esp.length - 16)), d.final()]);
  const nh = pt[pt.length - 1];
  const pad = pt[pt.length - 2];
  return {
    spi,
    seq,
    iv: Buffer.from(iv),
    inner: pt.subarray(0, pt.length - 2 - pad),
    trailer: pt.subarray(pt.length - 2 - pad),
    nh,
  };
}

test('tunnel vectors: every outer packet decrypts with node:crypto (RFC 4106 nonce and AAD, IV = 64-bit counter) to the inner packet', () => {
  let n = 0;
  for (const s of file.scenarios) {
    const sas = new Map<number, TunnelTxStep['sa']>();
    for (const st of s.steps) {
      if (st.op === 'installTunnelTx') sas.set(st.sa.spi, st.sa);
      if (st.op !== 'process' || st.expect.kind !== 'forward' || st.expect.note.op !== 'tunnel-encrypt') continue;
      const sa = sas.get(Number(st.expect.note.spi))!;
      const outer = Buffer.from(st.expect.bytes, 'hex');
      const inner = Buffer.from(st.packet, 'hex');
      const o = openOuter(outer, Buffer.from(sa.key, 'hex'), Buffer.from(sa.salt, 'hex'));
      assert.equal(o.spi, sa.spi);
      assert.equal(o.seq, st.expect.note.seq);
      assert.equal(o.iv.readBigUInt64BE(0), BigInt(o.seq), 'IV is the sequence number as a 64-bit counter');
      assert.equal(o.nh, 4, 'next header IPv4');
      const pad = o.trailer.length - 2;
      assert.deepEqual(
        [...o.trailer.subarray(0, pad)],
        Array.from({ length: pad }, (_, i) => i + 1),
      );
      assert.equal((o.inner.length + pad + 2) % 4, 0, 'padded to 4 bytes');
      // The inner packet travels whole (a TCP SYN with its MSS clamped: compare around the option).
      assert.equal(o.inner.length, inner.length);
      if (inner[9] !== 6) assert.deepEqual(o.inner, inner, st.name);
      assert.equal(outer.subarray(12, 16).join('.'), sa.localAddr);
      assert.equal(outer.subarray(16, 20).join('.'), sa.remoteAddr);
      assert.equal(outer.readUInt16BE(20), sa.localPort);
      assert.equal(outer.readUInt16BE(22), sa.remotePort);
      assert.equal(outer[1], inner[1] & 0xfc, 'DSCP copied, ECN Not-ECT');
      assert.equal(outer[6] & 0x40, inner[6] & 0x40, 'DF copied');
      assert.equal(outer.readUInt16BE(4), o.seq & 0xffff, 'IP id from the sequence number');
      n++;
    }
  }
  assert.ok(n >= 10, `only ${n} tunnel packets checked`);
});

test('group vectors: every ESP packet opens with node:crypto; the carried form has DF outside and gives back the packet, fragments included', () => {
  let carried = 0;
  let fragmented = 0;
  for (const s of file.scenarios) {
    const sas = new Map<number, { spi: number; key: Uint8Array; salt: Uint8Array }>();
    for (const st of s.steps) {
      if (st.op === 'installTxSa')
        sas.set(st.sa.spi, {
          spi: st.sa.spi,
          key: Buffer.from(st.sa.key, 'hex'),
          salt: Buffer.from(st.sa.salt, 'hex'),
        });
      if (st.op !== 'process' || st.expect.kind !== 'forward' || st.expect.note.op !== 'encrypt') continue;
      const expect = st.expect;
      const sa = sas.get(Number(expect.note.spi))!;
      const input = new Uint8Array(Buffer.from(st.packet, 'hex'));
      const out = [expect.bytes, ...(expect.more ?? [])].map((h) => new Uint8Array(Buffer.from(h, 'hex')));
      const opened = out.map((o, i) => {
        const hl = (o[0] & 15) * 4;
        // ESP in UDP 4500 -> 4500 (the default encapsulation) with the UDP length of the IP
        // payload and checksum 0, or raw ESP for a sending SA that asks for it.
        const udp = o[9] === 17;
        if (udp) {
          assert.deepEqual([...o.subarray(hl, hl + 4)], [0x11, 0x94, 0x11, 0x94], `${st.name}: ports 4500`);
          assert.equal((o[hl + 4] << 8) | o[hl + 5], o.length - hl, `${st.name}: UDP length`);
          assert.equal((o[hl + 6] << 8) | o[hl + 7], 0, `${st.name}: UDP checksum 0`);
        }
        const e = refEspOpen(sa, o.subarray(hl + (udp ? 8 : 0)));
        assert.ok(e, `${st.name}: packet ${i} opens`);
        assert.equal(e.seq, BigInt(expect.note.seq) + BigInt(i), `${st.name}: consecutive sequence numbers`);
        assert.ok(ipHeaderOk(o) && (udp || o[9] === 50) && (o[6] & 0x40) !== 0, `${st.name}: ESP with DF`);
        assert.deepEqual([...o.subarray(12, 20)], [...input.subarray(12, 20)], `${st.name}: the terminals' addresses`);
        return { o, e };
      });
      if (opened[0].e.nh !== 4) continue;
      carried++;
      for (const { o } of opened) assert.equal(o[0], 0x45, `${st.name}: a 20-byte outer header`);
      const inner = opened.map((x) => x.e.payload);
      if (inner.length > 1) fragmented++;
      const back = inner.length > 1 ? reassemble(inner) : inner[0];
      // A TCP SYN has its MSS clamped; everything else comes back byte for byte (non-copied
      // options are NOPs after the first fragment, the first keeps them).
      if (input[9] !== 6)
        assert.equal(
          Buffer.from(back).toString('hex'),
          Buffer.from(input.subarray(0, (input[2] << 8) | input[3])).toString('hex'),
          st.name,
        );
    }
  }
  assert.ok(carried >= 6 && fragmented >= 3, `carried ${carried}, fragmented ${fragmented}`);
});

/**
 * A TS executor holding a tunnel's inbound SA from peer P (192.0.2.1:4500 to 192.0.2.2:4500), for inner packets from
 * `remote` to `local`.
 */
function tunnelReceiver(
  sa: { spi: number; key: Uint8Array; salt: Uint8Array },
  local: AddressRange,
  remote: AddressRange,
): TsExecutor {
  const ex = new TsExecutor();
  ex.installTunnelRx({
    ...sa,
    vpnId: 1,
    peer: 'P',
    localAddr: '192.0.2.2',
    localPort: 4500,
    remoteAddr: '192.0.2.1',
    remotePort: 4500,
    localSelectors: [local],
    remoteSelectors: [remote],
  });
  return ex;
}

test('tunnel: the TS executor seals and opens what an independent RFC 4106 implementation makes (property)', () => {
  fc.assert(
    fc.property(
      fc.record({
        key: fc
          .uint8Array({ minLength: 16, maxLength: 16 })
          .chain((k16) => fc.oneof(fc.constant(k16), fc.uint8Array({ minLength: 32, maxLength: 32 }))),
        salt: fc.uint8Array({ minLength: 4, maxLength: 4 }),
        spi: fc.integer({ min: 1, max: 0xffffffff }),
        seq: fc.integer({ min: 1, max: 0xffffffff }),
        data: fc.uint8Array({ maxLength: 300 }),
        tos: fc.integer({ min: 0, max: 255 }),
        df: fc.boolean(),
      }),
      ({ key, salt, spi, seq, data, tos, df }) => {
        const inner = buildIpv4({ src: '10.1.0.5', dst: '10.2.0.6', protocol: 17, payload: data, tos, df, ttl: 9 });
        const tx = new TsExecutor();
        tx.installTunnelTx({
          spi,
          vpnId: 1,
          peer: 'P',
          key,
          salt,
          localAddr: '192.0.2.1',
          localPort: 4500,
          remoteAddr: '192.0.2.2',
          remotePort: 4500,
          nextSeq: seq,
        });
        tx.installPath({
          local: '10.1.0.5',
          remote: '10.2.0.6',
          action: 'encrypt',
          vpnId: 1,
          peer: 'P',
          tunnel: { spi },
        });
        const v = tx.process('inside', inner, 1);
        assert.equal(v.kind, 'forward');
        if (v.kind !== 'forward') return;
        const o = openOuter(v.bytes, key, salt);
        assert.deepEqual(o.inner, Buffer.from(inner));
        assert.equal(o.seq, seq);
        // And the other way: a packet sealed by sealTunnelEsp (node:crypto) opens in the TS executor.
        const rx = tunnelReceiver(
          { spi, key, salt },
          { start: '10.2.0.0', end: '10.2.0.255' },
          { start: '10.1.0.0', end: '10.1.0.255' },
        );
        const k = { key: Buffer.from(key).toString('hex'), salt: Buffer.from(salt).toString('hex') };
        const back = rx.processUdp('192.0.2.1', 4500, sealTunnelEsp(k, spi, seq, 4, inner), 2);
        assert.equal(back.kind, 'forward');
        if (back.kind === 'forward') assert.deepEqual(Buffer.from(back.bytes), Buffer.from(inner));
      },
    ),
    { numRuns: 200 },
  );
});

test('tunnel port parser: arbitrary datagrams never throw, never forward without a key, and are all counted (property)', () => {
  const key = new Uint8Array(32).fill(3);
  const salt = new Uint8Array(4).fill(4);
  const valid = sealTunnelEsp(
    { key: '03'.repeat(32), salt: '04'.repeat(4) },
    0x1234,
    1,
    4,
    buildIpv4({ src: '10.1.0.5', dst: '10.2.0.6', protocol: 17, payload: new Uint8Array(20) }),
  );
  const receiver = (local: AddressRange, remote: AddressRange) =>
    tunnelReceiver({ spi: 0x1234, key, salt }, local, remote);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        // A valid packet with one bit flipped or cut short: never accepted.
        fc
          .record({ bit: fc.nat(valid.length * 8 - 1) })
          .map(({ bit }) => Object.assign(valid.slice(), { [bit >> 3]: valid[bit >> 3] ^ (1 << (bit & 7)) })),
        fc.nat(valid.length - 1).map((n) => valid.slice(0, n)),
      ),
      (d) => {
        const ex = receiver({ start: '0.0.0.0', end: '255.255.255.255' }, { start: '0.0.0.0', end: '255.255.255.255' });
        const v = ex.processUdp('192.0.2.1', 4500, d, 1);
        assert.notEqual(v.kind, 'forward');
        const total = Object.entries(ex.counters())
          .filter(([k]) => k.startsWith('drop.') || k.startsWith('punt.'))
          .reduce((a, [, n]) => a + n, 0);
        assert.equal(total, 1, 'exactly one drop or punt counted');
      },
    ),
    { numRuns: 500 },
  );
  // The unmodified packet is accepted once.
  const ex = receiver({ start: '10.2.0.0', end: '10.2.0.255' }, { start: '10.1.0.0', end: '10.1.0.255' });
  assert.equal(ex.processUdp('192.0.2.1', 4500, valid, 1).kind, 'forward');
  assert.deepEqual(ex.processUdp('192.0.2.1', 4500, valid, 1), { kind: 'drop', reason: 'replay' });
});

test('tunnel SAs refuse bad parameters', () => {
  const ex = new TsExecutor();
  const base = {
    spi: 5,
    vpnId: 1,
    peer: 'P',
    key: new Uint8Array(32),
    salt: new Uint8Array(4),
    localAddr: '192.0.2.1',
    localPort: 4500,
    remoteAddr: '192.0.2.2',
    remotePort: 4500,
  };
  assert.throws(() => ex.installTunnelTx({ ...base, key: new Uint8Array(24) }), /16 or 32/);
  assert.throws(() => ex.installTunnelTx({ ...base, spi: 0 }), /SPI/);
  assert.throws(() => ex.installTunnelTx({ ...base, vpnId: 0 }), /VPN/);
  assert.throws(() => ex.installTunnelTx({ ...base, nextSeq: 2 ** 32 }), /nextSeq/);
  // Outer IPv4 or IPv6, one family for both ends.
  assert.throws(() => ex.installTunnelTx({ ...base, remoteAddr: 'fd00::1' }), /different families/);
  assert.throws(() => ex.installTunnelTx({ ...base, remoteAddr: 'gateway-b' }), /not an IP address/);
  ex.installTunnelTx({ ...base, localAddr: 'fd00::1', remoteAddr: 'fd00::2' });
  assert.throws(() => ex.installTunnelTx({ ...base, remotePort: 0 }), /port/);
  const sel = { localSelectors: [], remoteSelectors: [] };
  assert.throws(() => ex.installTunnelRx({ ...base, ...sel, replayWindow: 100 }), /multiple of 32/);
  assert.throws(
    () =>
      ex.installTunnelRx({ ...base, localSelectors: [{ start: '10.0.0.9', end: '10.0.0.1' }], remoteSelectors: [] }),
    /empty/,
  );
  assert.throws(
    () => ex.installTunnelRx({ ...base, localSelectors: [{ start: '10.0.0.1', end: 'fd00::1' }], remoteSelectors: [] }),
    /mixes/,
  );
});

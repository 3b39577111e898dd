// The shared vectors, replayed against the native executor:
//  - test/vectors/executor.json (generated from the TypeScript reference executor by
//    scripts/gen-executor-vectors.ts): every verdict and path statistic must match exactly;
//  - test/vectors/esp-group.json (ESP known answers): the native executor must seal to exactly the
//    same ESP bytes and open them again.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import type { TunnelRxSa, TunnelTxSa, Verdict } from '../../src/core/executor.js';
import { hex, ipv4, newExecutor } from './support.js';

const EXECUTOR_VECTORS = new URL('../vectors/executor.json', import.meta.url);
const EXECUTOR_V6_VECTORS = new URL('../vectors/executor-v6.json', import.meta.url);
const ESP_VECTORS = new URL('../vectors/esp-group.json', import.meta.url);

const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

// The vector file's format (test/support/executor-vectors.ts), restated so this test depends on
// the data only.
type Step =
  | { op: 'installPath'; rule: Parameters<import('../../src/core/executor.js').Executor['installPath']>[0] }
  | { op: 'removePath'; local: string; remote: string }
  | {
      op: 'installTxSa';
      sa: {
        spi: number;
        vpnId: number;
        epoch: number;
        key: string;
        salt: string;
        nextSeq: string;
        encapsulation?: 'udp' | 'esp';
      };
    }
  | {
      op: 'installRxSa';
      sa: { spi: number; vpnId: number; epoch: number; sender: string; key: string; salt: string; floor?: string };
    }
  | { op: 'removeTxSa'; vpnId: number }
  | { op: 'removeRxSa'; spi: number }
  | {
      op: 'process';
      name: string;
      from: 'inside' | 'outside';
      now: number;
      packet: string;
      recheck?: boolean;
      expect: unknown;
    }
  | { op: 'counters'; expect: unknown }
  | { op: 'stats'; local: string; remote: string; expect: unknown }
  | { op: 'installTunnelTx'; sa: Omit<TunnelTxSa, 'key' | 'salt'> & { key: string; salt: string } }
  | { op: 'installTunnelRx'; sa: Omit<TunnelRxSa, 'key' | 'salt'> & { key: string; salt: string } }
  | { op: 'removeTunnelTx'; spi: number }
  | { op: 'removeTunnelRx'; spi: number }
  | { op: 'processUdp'; name: string; src: string; srcPort: number; now: number; payload: string; expect: unknown }
  | { op: 'tunnelTxStats'; spi: number; expect: unknown }
  | { op: 'tunnelRxStats'; spi: number; expect: unknown };

function verdictJson(v: Verdict): unknown {
  if (v.kind !== 'forward') return { kind: v.kind, reason: v.reason };
  const note: Record<string, string | number> = {};
  for (const [k, val] of Object.entries(v.note))
    note[k] = typeof val === 'bigint' ? val.toString() : (val as string | number);
  return v.more
    ? { kind: 'forward', bytes: hex(v.bytes), note, more: v.more.map((m) => hex(m)) }
    : { kind: 'forward', bytes: hex(v.bytes), note };
}

describe('shared vectors on the native executor', () => {
  it('test/vectors/executor.json: every verdict and statistic matches the reference', (t) => {
    if (!existsSync(EXECUTOR_VECTORS)) {
      t.skip('test/vectors/executor.json not generated yet (node --import tsx scripts/gen-executor-vectors.ts)');
      return;
    }
    replayVectors(t, EXECUTOR_VECTORS);
  });

  it('test/vectors/executor-v6.json (IPv6): every verdict and statistic matches the reference', (t) => {
    assert.ok(
      existsSync(EXECUTOR_V6_VECTORS),
      'test/vectors/executor-v6.json is committed (test/core/gen-executor-v6-vectors.ts)',
    );
    replayVectors(t, EXECUTOR_V6_VECTORS);
  });

  it('test/vectors/esp-group.json: native ESP seals and opens exactly the known answers', (t) => {
    espKnownAnswers(t);
  });
});

function replayVectors(t: TestContext, url: URL): void {
  const file = JSON.parse(readFileSync(url, 'utf8')) as { scenarios: { name: string; steps: Step[] }[] };
  assert.ok(file.scenarios.length > 0);
  let checked = 0;
  let tunnelChecks = 0;
  for (const s of file.scenarios) {
    const ex = newExecutor(t);
    if (!ex) return;
    s.steps.forEach((st, i) => {
      const where = `${s.name} step ${i}${st.op === 'process' || st.op === 'processUdp' ? ` (${st.name})` : ''}`;
      switch (st.op) {
        case 'installPath':
          return ex.installPath(st.rule);
        case 'removePath':
          return ex.removePath(st.local, st.remote);
        case 'installTxSa':
          return ex.installTxSa({
            ...st.sa,
            key: unhex(st.sa.key),
            salt: unhex(st.sa.salt),
            nextSeq: BigInt(st.sa.nextSeq),
          });
        case 'installRxSa':
          return ex.installRxSa({
            ...st.sa,
            key: unhex(st.sa.key),
            salt: unhex(st.sa.salt),
            floor: st.sa.floor === undefined ? undefined : BigInt(st.sa.floor),
          });
        case 'removeTxSa':
          return ex.removeTxSa(st.vpnId);
        case 'removeRxSa':
          return ex.removeRxSa(st.spi);
        case 'process':
          checked++;
          return assert.deepEqual(
            verdictJson(ex.process(st.from, unhex(st.packet), st.now, st.recheck ?? false)),
            st.expect,
            where,
          );
        case 'counters':
          checked++;
          return assert.deepEqual(ex.counters(), st.expect, where);
        case 'stats':
          checked++;
          return assert.deepEqual(ex.pathStats(st.local, st.remote) ?? null, st.expect, where);
        case 'installTunnelTx':
          return ex.installTunnelTx({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt) });
        case 'installTunnelRx':
          return ex.installTunnelRx({ ...st.sa, key: unhex(st.sa.key), salt: unhex(st.sa.salt) });
        case 'removeTunnelTx':
          return ex.removeTunnelTx(st.spi);
        case 'removeTunnelRx':
          return ex.removeTunnelRx(st.spi);
        case 'processUdp':
          checked++;
          tunnelChecks++;
          return assert.deepEqual(
            verdictJson(ex.processUdp(st.src, st.srcPort, unhex(st.payload), st.now)),
            st.expect,
            where,
          );
        case 'tunnelTxStats':
          checked++;
          return assert.deepEqual(ex.tunnelTxStats(st.spi) ?? null, st.expect, where);
        case 'tunnelRxStats':
          checked++;
          return assert.deepEqual(ex.tunnelRxStats(st.spi) ?? null, st.expect, where);
        default:
          assert.fail(`${where}: unknown step ${JSON.stringify(st)}`);
      }
    });
  }
  assert.ok(checked > 10, `only ${checked} checks`);
  assert.ok(tunnelChecks > 5, `only ${tunnelChecks} tunnel-port checks`);
}

function espKnownAnswers(t: TestContext): void {
  if (!existsSync(ESP_VECTORS)) {
    t.skip('test/vectors/esp-group.json not present');
    return;
  }
  type Case = {
    name: string;
    input: {
      spi?: number;
      seq?: string;
      nextHeader?: number;
      payload?: string;
      sender?: string;
      vpnId?: number;
      epoch?: number;
    };
    output: { senderKey?: string; senderSalt?: string; esp?: string };
  };
  const cases = (JSON.parse(readFileSync(ESP_VECTORS, 'utf8')) as { cases: Case[] }).cases;
  let n = 0;
  for (const c of cases) {
    const { spi, seq, nextHeader, payload, sender } = c.input;
    const { senderKey, senderSalt, esp } = c.output;
    if (
      spi === undefined ||
      !seq ||
      nextHeader === undefined ||
      payload === undefined ||
      !senderKey ||
      !senderSalt ||
      !esp
    )
      continue;
    if (BigInt(seq) === 0n || payload.length / 2 + 20 + 45 > 65535) continue;
    const tx = newExecutor(t);
    const rx = newExecutor(t);
    if (!tx || !rx) return;
    const key = unhex(senderKey);
    const salt = unhex(senderSalt);
    const vpnId = c.input.vpnId ?? 1;
    tx.installTxSa({ spi, vpnId, epoch: c.input.epoch ?? 1, key, salt, nextSeq: BigInt(seq) });
    tx.installPath({ local: '10.0.0.1', remote: '10.0.0.2', action: 'encrypt', vpnId, peer: 'peer' });
    // Protocol 1 with a payload that is no echo: the search check does not apply.
    const body = unhex(payload);
    // With DF: the transport form, which is what these known answers are (docs/executor.md).
    if (nextHeader === 4) continue;
    const packet = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: nextHeader, payload: body, df: true });
    const v = tx.process('inside', packet, 1);
    if (
      nextHeader === 1 &&
      body.length >= 16 &&
      (body[0] === 8 || body[0] === 0) &&
      Buffer.from(body.subarray(8, 12)).toString() === 'KSRC'
    )
      continue;
    assert.equal(v.kind, 'forward', c.name);
    if (v.kind !== 'forward') continue;
    assert.equal(hex(v.bytes.subarray(28)), esp, c.name); // after the IP and UDP headers
    rx.installRxSa({ spi, vpnId, epoch: c.input.epoch ?? 1, sender: sender ?? 'peer', key, salt });
    rx.installPath({ local: '10.0.0.2', remote: '10.0.0.1', action: 'encrypt', vpnId, peer: sender ?? 'peer' });
    const back = rx.process('outside', v.bytes, 2);
    assert.equal(back.kind, 'forward', c.name);
    if (back.kind === 'forward') assert.equal(hex(back.bytes), hex(packet), c.name);
    n++;
  }
  assert.ok(n > 0, 'no usable ESP vector');
}

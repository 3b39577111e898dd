// The shared vectors, replayed against the native executor:
//  - test/vectors/executor.json (generated from the TypeScript reference executor by
//    scripts/gen-executor-vectors.ts) and executor-v6.json, replayed by the same replayScenario
//    as the reference's own test: every verdict and path statistic must match exactly;
//  - test/vectors/esp-group.json (ESP known answers): the native executor must seal to exactly the
//    same ESP bytes and open them again.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { replayScenario, type VectorScenario } from '../support/executor-vectors.js';
import { hex, ipv4, newExecutor } from './support.js';

const EXECUTOR_VECTORS = new URL('../vectors/executor.json', import.meta.url);
const EXECUTOR_V6_VECTORS = new URL('../vectors/executor-v6.json', import.meta.url);
const ESP_VECTORS = new URL('../vectors/esp-group.json', import.meta.url);

const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

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

/** Replays a vector file with the reference's own replay (replayScenario): only the executor differs. */
function replayVectors(t: TestContext, url: URL): void {
  const file = JSON.parse(readFileSync(url, 'utf8')) as { scenarios: VectorScenario[] };
  assert.ok(file.scenarios.length > 0);
  let checked = 0;
  let tunnelChecks = 0;
  for (const s of file.scenarios) {
    const ex = newExecutor(t);
    if (!ex) return;
    for (const r of replayScenario(ex, s)) {
      checked++;
      if (r.op === 'processUdp') tunnelChecks++;
      assert.deepEqual(r.actual, r.expected, `${s.name} step ${r.step} (${r.name})`);
    }
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

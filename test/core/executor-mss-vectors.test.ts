// The MSS clamp in the shared vectors (test/vectors/executor.json, executor-v6.json), checked from
// the packets themselves rather than from the reference that generated them: every step whose name
// ends in "(MSS n)" forwards a TCP segment announcing exactly n, its TCP checksum still valid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tcpChecksumOk, tcpMss } from '../../src/core/packet/tcp.js';
import type { VectorScenario } from '../support/executor-vectors.js';

for (const name of ['executor.json', 'executor-v6.json']) {
  test(`${name}: every step naming an MSS forwards exactly that MSS with a valid TCP checksum`, () => {
    const file = JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as {
      scenarios: VectorScenario[];
    };
    let checked = 0;
    let arriving = 0;
    for (const s of file.scenarios)
      for (const st of s.steps) {
        if (st.op !== 'process' && st.op !== 'processUdp') continue;
        const want = /\(MSS (\d+)\)$/.exec(st.name);
        if (!want) continue;
        assert.equal(st.expect.kind, 'forward', st.name);
        if (st.expect.kind !== 'forward') continue;
        const p = new Uint8Array(Buffer.from(st.expect.bytes, 'hex'));
        assert.equal(tcpMss(p), Number(want[1]), st.name);
        assert.ok(tcpChecksumOk(p), `${st.name}: TCP checksum`);
        checked++;
        if (s.name.includes('clamps arriving')) arriving++;
      }
    // Group (UDP, raw ESP, carried or v6 extension headers) and tunnel mode, decrypting side.
    assert.ok(arriving >= 8, `only ${arriving} arriving SYNs checked`);
    assert.equal(checked, arriving);
  });
}

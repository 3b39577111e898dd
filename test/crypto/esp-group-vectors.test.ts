// Checks test/vectors/esp-group.json (written by gen-esp-group-vectors.ts) against the code, and
// re-derives every value from the documented construction with independent primitives
// (hand-built HKDF info, raw AES-GCM), so the file pins the format rather than just the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deriveSearchKey, deriveSenderKey } from '../../src/crypto/kdf.js';
import { espOpen, espPeek, espSeal } from '../../src/crypto/esp.js';

interface Case {
  name: string;
  input: {
    vpnKey: string;
    vpnId: number;
    epoch: number;
    sender: string;
    spi: number;
    seq: string;
    nextHeader: number;
    payload: string;
  };
  output: { senderKey: string; senderSalt: string; searchKey: string; esp: string };
}
const file = JSON.parse(readFileSync(new URL('../vectors/esp-group.json', import.meta.url), 'utf8')) as {
  cases: Case[];
};
const h = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** RFC 5869 with HMAC-SHA256, written out (not node's hkdfSync). */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const blocks: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    t = createHmac('sha256', prk)
      .update(t)
      .update(Buffer.from(info))
      .update(Buffer.from([i]))
      .digest();
    blocks.push(t);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

test('the HKDF helper of this test matches RFC 5869 test case 1', () => {
  const okm = hkdf(Buffer.alloc(22, 0x0b), h('000102030405060708090a0b0c'), h('f0f1f2f3f4f5f6f7f8f9'), 42);
  assert.equal(hex(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
});

test('esp-group.json has the cases the native executor needs', () => {
  assert.ok(file.cases.length >= 8);
  const pads = new Set(file.cases.map((c) => (4 - ((c.input.payload.length / 2 + 2) % 4)) % 4));
  assert.deepEqual([...pads].sort(), [0, 1, 2, 3]);
  const seqs = new Set(file.cases.map((c) => c.input.seq));
  for (const s of ['1', String(2n ** 32n - 1n), String(2n ** 32n), String(2n ** 64n - 1n)]) assert.ok(seqs.has(s), s);
});

for (const c of file.cases) {
  test(`esp-group vector: ${c.name}`, () => {
    const i = c.input;
    const vpnKey = h(i.vpnKey);
    const seq = BigInt(i.seq);
    const payload = h(i.payload);

    // The code reproduces the file.
    const { key, salt } = deriveSenderKey(vpnKey, i.vpnId, i.epoch, i.sender);
    assert.equal(hex(key), c.output.senderKey);
    assert.equal(hex(salt), c.output.senderSalt);
    assert.equal(hex(deriveSearchKey(vpnKey, i.vpnId, i.epoch)), c.output.searchKey);
    const esp = espSeal({ spi: i.spi, key, salt }, seq, i.nextHeader, payload);
    assert.equal(hex(esp), c.output.esp);

    // The documented construction reproduces the file, independently of src/crypto.
    const sender = Buffer.from(i.sender, 'utf8');
    const info = Buffer.concat([
      Buffer.from('esp sender'),
      u32(i.vpnId),
      u32(i.epoch),
      Buffer.from([sender.length]),
      sender,
    ]);
    const okm = hkdf(vpnKey, Buffer.from('kasane/v1'), info, 36);
    assert.equal(hex(okm), c.output.senderKey + c.output.senderSalt);
    const sinfo = Buffer.concat([Buffer.from('search auth'), u32(i.vpnId), u32(i.epoch)]);
    assert.equal(hex(hkdf(vpnKey, Buffer.from('kasane/v1'), sinfo, 32)), c.output.searchKey);

    const wire = h(c.output.esp);
    const iv = Buffer.alloc(8);
    iv.writeBigUInt64BE(seq);
    assert.equal(hex(wire.subarray(0, 4)), hex(u32(i.spi)));
    assert.equal(hex(wire.subarray(4, 8)), hex(u32(Number(seq & 0xffffffffn))));
    assert.equal(hex(wire.subarray(8, 16)), hex(iv));
    const d = createDecipheriv('aes-256-gcm', h(c.output.senderKey), Buffer.concat([h(c.output.senderSalt), iv]), {
      authTagLength: 16,
    });
    d.setAAD(Buffer.concat([u32(i.spi), iv]));
    d.setAuthTag(wire.subarray(wire.length - 16));
    const pt = Buffer.concat([d.update(wire.subarray(16, wire.length - 16)), d.final()]);
    const pad = (4 - ((payload.length + 2) % 4)) % 4;
    const trailer = [...Array.from({ length: pad }, (_, k) => k + 1), pad, i.nextHeader];
    assert.equal(hex(pt), i.payload + hex(Uint8Array.from(trailer)));

    // And it opens.
    assert.deepEqual(espPeek(wire), { ok: true, value: { spi: i.spi, seq } });
    const opened = espOpen({ key, salt }, wire);
    assert.ok(opened.ok);
    assert.equal(hex(opened.value.payload), i.payload);
    assert.equal(opened.value.nextHeader, i.nextHeader);
  });
}

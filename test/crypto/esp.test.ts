// ESP seal and open (RFC 4303 with AES-GCM, RFC 4106) as the group mode uses them: exact overhead,
// every padding case, determinism, and that every tampered or arbitrary packet fails without throwing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createCipheriv } from 'node:crypto';
import {
  ESP_MIN_LENGTH,
  ESP_OVERHEAD_MAX,
  espOpen,
  espOpenWithIv,
  espOverhead,
  espPeek,
  espSeal,
  espSealWithIv,
} from '../../src/crypto/esp.js';
import { seededRandom } from '../../src/base/random.js';

const h = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const rnd = seededRandom('esp tests');
const sa = { spi: 0x11223344, key: rnd(32), salt: rnd(4) };

const OPEN_ERRORS = new Set([
  'truncated',
  'misaligned',
  'invalid-seq',
  'seq-mismatch',
  'invalid-sa',
  'auth-failed',
  'bad-pad-length',
  'bad-padding',
]);

function be64(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq);
  return b;
}

/** An authenticated packet with an arbitrary plaintext (to test trailer checks the sealer never produces). */
function sealRaw(plaintext: Uint8Array, seq: bigint): Uint8Array {
  const iv = be64(seq);
  const head = Buffer.concat([Buffer.from([0x11, 0x22, 0x33, 0x44]), iv.subarray(4), iv]);
  const c = createCipheriv('aes-256-gcm', sa.key, Buffer.concat([sa.salt, iv]), { authTagLength: 16 });
  c.setAAD(Buffer.concat([head.subarray(0, 4), iv]));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Uint8Array.from(Buffer.concat([head, ct, c.getAuthTag()]));
}

test('espOverhead is exact, 34..37, and ESP_OVERHEAD_MAX is its maximum', () => {
  const seen = new Set<number>();
  for (let n = 0; n < 70; n++) {
    const o = espOverhead(n);
    assert.equal((n + o - 32) % 4, 0, `ciphertext of ${n} aligned`);
    assert.ok(o >= 34 && o <= ESP_OVERHEAD_MAX);
    seen.add(o);
  }
  assert.deepEqual([...seen].sort(), [34, 35, 36, 37]);
  assert.equal(ESP_OVERHEAD_MAX, 37);
  assert.equal(espOverhead(0), 36);
  assert.equal(espOverhead(2), 34);
  assert.throws(() => espOverhead(-1), TypeError);
  assert.throws(() => espOverhead(1.5), TypeError);
});

test('seal then open round-trips every padding case and the layout is as documented', () => {
  for (const len of [0, 1, 2, 3, 4, 5, 6, 7, 20, 63, 64, 1400, 9000]) {
    for (const seq of [1n, 0xffffffffn, 0x100000000n, 0xdeadbeefcafebaben, 2n ** 64n - 1n]) {
      const payload = rnd(len);
      const esp = espSeal(sa, seq, 6, payload);
      assert.equal(esp.length, len + espOverhead(len));
      assert.equal(hex(esp.subarray(0, 4)), '11223344');
      assert.equal(hex(esp.subarray(4, 8)), hex(be64(seq).subarray(4)));
      assert.equal(hex(esp.subarray(8, 16)), hex(be64(seq)));
      assert.deepEqual(espPeek(esp), { ok: true, value: { spi: 0x11223344, seq } });
      const o = espOpen({ key: sa.key, salt: sa.salt }, esp);
      assert.ok(o.ok, `len ${len} seq ${seq}`);
      assert.deepEqual(
        { ...o.value, payload: hex(o.value.payload) },
        { spi: 0x11223344, seq, nextHeader: 6, payload: hex(payload) },
      );
    }
  }
});

test('seal is deterministic in its inputs; seq, SPI, key and salt each change the packet', () => {
  const p = rnd(100);
  const a = espSeal(sa, 5n, 17, p);
  assert.equal(hex(espSeal(sa, 5n, 17, p)), hex(a));
  for (const b of [
    espSeal(sa, 6n, 17, p),
    espSeal({ ...sa, spi: sa.spi + 1 }, 5n, 17, p),
    espSeal({ ...sa, key: rnd(32) }, 5n, 17, p),
    espSeal({ ...sa, salt: rnd(4) }, 5n, 17, p),
  ]) {
    assert.notEqual(hex(b.subarray(16)), hex(a.subarray(16)));
  }
});

test('round trip (property): any payload, next header, 64-bit sequence number', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 0, max: 255 }),
      fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
      (payload, nh, seq) => {
        const o = espOpen(sa, espSeal(sa, seq, nh, payload));
        assert.ok(o.ok);
        assert.equal(o.value.seq, seq);
        assert.equal(o.value.nextHeader, nh);
        assert.equal(hex(o.value.payload), hex(payload));
      },
    ),
    { numRuns: 300 },
  );
});

test('seal rejects programmer errors with TypeError', () => {
  const p = new Uint8Array(4);
  assert.throws(() => espSeal(sa, 0n, 6, p), TypeError);
  assert.throws(() => espSeal(sa, 2n ** 64n, 6, p), TypeError);
  assert.throws(() => espSeal(sa, -1n, 6, p), TypeError);
  assert.throws(() => espSeal(sa, 1 as unknown as bigint, 6, p), TypeError);
  assert.throws(() => espSeal(sa, 1n, 256, p), TypeError);
  assert.throws(() => espSeal(sa, 1n, -1, p), TypeError);
  assert.throws(() => espSeal({ ...sa, spi: -1 }, 1n, 6, p), TypeError);
  assert.throws(() => espSeal({ ...sa, spi: 2 ** 32 }, 1n, 6, p), TypeError);
  assert.throws(() => espSeal({ ...sa, key: new Uint8Array(16) }, 1n, 6, p), TypeError);
  assert.throws(() => espSeal({ ...sa, salt: new Uint8Array(3) }, 1n, 6, p), TypeError);
  assert.throws(() => espSealWithIv(sa, 1n, new Uint8Array(7), 6, p), TypeError);
  assert.throws(() => espSealWithIv(sa, 2n ** 32n, new Uint8Array(8), 6, p, 'seq32'), TypeError);
});

test('espPeek: length, alignment, sequence 0 and IV/header disagreement', () => {
  const good = espSeal(sa, 0x1234567890n, 1, rnd(10));
  assert.equal(espPeek(good).ok, true);
  const code = (b: Uint8Array) => {
    const r = espPeek(b);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(code(new Uint8Array(0)), 'truncated');
  assert.equal(code(espSeal(sa, 1n, 1, new Uint8Array(0))), 'ok');
  assert.equal(espSeal(sa, 1n, 1, new Uint8Array(0)).length, ESP_MIN_LENGTH);
  assert.equal(code(good.subarray(0, ESP_MIN_LENGTH - 1)), 'truncated');
  assert.equal(code(good.subarray(0, good.length - 1)), 'misaligned');
  assert.equal(code(good.subarray(0, good.length - 4)), 'ok'); // peek does not authenticate
  const zero = good.slice();
  zero.fill(0, 4, 16);
  assert.equal(code(zero), 'invalid-seq');
  const mismatch = good.slice();
  mismatch[7] ^= 1;
  assert.equal(code(mismatch), 'seq-mismatch');
  const mismatchIv = good.slice();
  mismatchIv[15] ^= 0x80;
  assert.equal(code(mismatchIv), 'seq-mismatch');
  // A high half of zero is fine: seq < 2^32.
  assert.deepEqual(espPeek(espSeal(sa, 7n, 1, rnd(3))), { ok: true, value: { spi: sa.spi, seq: 7n } });
  assert.equal(code(undefined as unknown as Uint8Array), 'truncated');
});

test('espOpen: wrong key, wrong salt, malformed SA', () => {
  const esp = espSeal(sa, 9n, 1, rnd(50));
  const code = (r: ReturnType<typeof espOpen>) => (r.ok ? 'ok' : r.error.code);
  assert.equal(code(espOpen({ key: rnd(32), salt: sa.salt }, esp)), 'auth-failed');
  assert.equal(code(espOpen({ key: sa.key, salt: rnd(4) }, esp)), 'auth-failed');
  assert.equal(code(espOpen({ key: new Uint8Array(31), salt: sa.salt }, esp)), 'invalid-sa');
  assert.equal(code(espOpen({ key: sa.key, salt: new Uint8Array(5) }, esp)), 'invalid-sa');
  assert.equal(code(espOpen(undefined as unknown as typeof sa, esp)), 'invalid-sa');
});

test('espOpen checks the (authenticated) trailer: padding bytes and pad length', () => {
  const code = (b: Uint8Array) => {
    const r = espOpen(sa, b);
    return r.ok ? 'ok' : r.error.code;
  };
  const body = rnd(8);
  // Correct by construction, through the raw path: proves sealRaw matches espSeal.
  assert.equal(hex(sealRaw(Uint8Array.from([...body, 1, 2, 2, 6]), 3n)), hex(espSeal(sa, 3n, 6, body)));
  assert.equal(code(sealRaw(Uint8Array.from([...body, 1, 3, 2, 6]), 3n)), 'bad-padding');
  assert.equal(code(sealRaw(Uint8Array.from([...body, 0, 0, 2, 6]), 3n)), 'bad-padding');
  assert.equal(code(sealRaw(Uint8Array.from([...body, 2, 1, 2, 6]), 3n)), 'bad-padding');
  assert.equal(code(sealRaw(Uint8Array.from([1, 2, 200, 6]), 3n)), 'bad-pad-length');
  assert.equal(code(sealRaw(Uint8Array.from([1, 2, 3, 6]), 3n)), 'bad-pad-length');
  // Longer padding than we send is still valid RFC 4303 (other implementations, TFC padding).
  const long = sealRaw(Uint8Array.from([...body.subarray(0, 7), 1, 2, 3, 4, 5, 6, 7, 7, 17]), 4n);
  const o = espOpen(sa, long);
  assert.ok(o.ok);
  assert.equal(hex(o.value.payload), hex(body.subarray(0, 7)));
  assert.equal(o.value.nextHeader, 17);
  // The largest pad length, 255.
  const max = sealRaw(Uint8Array.from([0xaa, 0xbb, 0xcc, ...Array.from({ length: 255 }, (_, i) => i + 1), 255, 4]), 5n);
  const m = espOpen(sa, max);
  assert.ok(m.ok);
  assert.equal(hex(m.value.payload), 'aabbcc');
});

test('every single-bit flip of a packet is rejected with a typed error (exhaustive)', () => {
  for (const len of [0, 5, 40]) {
    const esp = espSeal(sa, 0x100000001n, 6, rnd(len));
    const codes = new Map<string, number>();
    for (let bit = 0; bit < esp.length * 8; bit++) {
      const t = esp.slice();
      t[bit >> 3] ^= 1 << (bit & 7);
      const r = espOpen(sa, t);
      assert.equal(r.ok, false, `bit ${bit}`);
      if (!r.ok) {
        assert.ok(OPEN_ERRORS.has(r.error.code), r.error.code);
        codes.set(r.error.code, (codes.get(r.error.code) ?? 0) + 1);
      }
    }
    assert.ok(codes.get('auth-failed')! > 0 && codes.get('seq-mismatch')! > 0);
  }
});

test('tampering (property): any bit of any packet, truncation or extension fails without throwing', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (payload, seq, pos, mask) => {
        const esp = espSeal(sa, seq, 4, payload);
        const t = esp.slice();
        t[pos % t.length] ^= mask;
        const r = espOpen(sa, t);
        assert.equal(r.ok, false);
        assert.ok(!r.ok && OPEN_ERRORS.has(r.error.code));
        for (const cut of [esp.subarray(0, esp.length - 4), Uint8Array.from([...esp, 0, 0, 0, 0])]) {
          const c = espOpen(sa, cut);
          assert.equal(c.ok, false);
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('arbitrary bytes never make espPeek or espOpen throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, consistent) => {
      const b = bytes.slice();
      // Half of the inputs get a self-consistent header so that they reach decryption.
      if (consistent && b.length >= 16) {
        b.set(b.subarray(12, 16), 4);
        b[15] |= 1;
      }
      const p = espPeek(b);
      const o = espOpen(sa, b);
      assert.equal(typeof p.ok, 'boolean');
      assert.equal(o.ok, false);
      if (!o.ok) assert.ok(OPEN_ERRORS.has(o.error.code));
      espOpenWithIv(sa, b, 0);
      espOpenWithIv(sa, b);
    }),
    { numRuns: 1000 },
  );
});

// Known answers: the AES-256 test cases of draft-mcgrew-gcm-test-01 ("Test Cases for the use of
// GCM and GMAC in IPsec ESP", March 2009, section 4). Each is a complete ESP packet; their IVs are
// not sequence numbers, so they go through espSealWithIv/espOpenWithIv, which differ from the
// data path only in where the IV and the AAD come from. Our header = SPI | seq low | IV.
const DRAFT = [
  {
    what: '32-bit sequence number (AAD = SPI || seq), 48-byte TCP SYN, 2 padding bytes',
    key: 'abbccddef00112233445566778899aababbccddef00112233445566778899aab',
    salt: '11223344',
    spi: 0x4a2cbfe3,
    seq: 2n,
    aad: 'seq32' as const,
    iv: '0102030405060708',
    plain: '4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201',
    cipher: 'ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8e',
    icv: 'b335f4eecfdbf831824b4c4915956c96',
  },
  {
    what: 'extended sequence number 0x156f3126dd0db99b, no padding',
    key: 'abbccddef00112233445566778899aababbccddef00112233445566778899aab',
    salt: '73616c74',
    spi: 0x17405e67,
    seq: 0x156f3126dd0db99bn,
    aad: 'esn' as const,
    iv: '616e640169766563',
    plain: '45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d540001',
    cipher: 'f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e',
    icv: '451626c2415771e3b7eebca614c89b35',
  },
  {
    what: 'extended sequence number 0x156f3126dd0db99b, 68-byte payload',
    key: 'abbccddef00112233445566778899aababbccddef00112233445566778899aab',
    salt: '73616c74',
    spi: 0x17405e67,
    seq: 0x156f3126dd0db99bn,
    aad: 'esn' as const,
    iv: '616e640169766563',
    plain:
      '636973636f0172756c657301746865016e6574776501646566696e6501746865746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f72726f7701020201',
    cipher:
      'd4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b012a49363412364f8',
    icv: 'c0cac587f249e56b11e24f30e44ccc76',
  },
  {
    what: 'extended sequence number 2^64-1',
    key: '6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961',
    salt: '7475726e',
    spi: 0x796b6963,
    seq: 0xffffffffffffffffn,
    aad: 'esn' as const,
    iv: '333021696765746d',
    plain: '45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d6e6f707172737401020201',
    cipher: 'f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b42458fb57dbe821dcc63b9',
    icv: 'd0937ba2945f669368661a329fb4c053',
  },
];

for (const v of DRAFT) {
  test(`draft-mcgrew-gcm-test-01 AES-256: ${v.what}`, () => {
    const plain = h(v.plain);
    // The draft's plaintext ends with the ESP trailer: split it into payload, padding, next header.
    const pad = plain[plain.length - 2];
    const nh = plain[plain.length - 1];
    const payload = plain.subarray(0, plain.length - 2 - pad);
    const vsa = { spi: v.spi, key: h(v.key), salt: h(v.salt) };
    const packet = espSealWithIv(vsa, v.seq, h(v.iv), nh, payload, v.aad);
    const seqLow = Buffer.alloc(4);
    seqLow.writeUInt32BE(Number(v.seq & 0xffffffffn));
    const spi = Buffer.alloc(4);
    spi.writeUInt32BE(v.spi);
    assert.equal(hex(packet), hex(spi) + hex(seqLow) + v.iv + v.cipher + v.icv);

    const o = espOpenWithIv(vsa, packet, v.aad === 'esn' ? Number(v.seq >> 32n) : undefined);
    assert.ok(o.ok);
    assert.equal(hex(o.value.payload), hex(payload));
    assert.equal(o.value.nextHeader, nh);
    assert.equal(o.value.spi, v.spi);
    // The wrong high half of the sequence number fails authentication.
    const wrong = espOpenWithIv(vsa, packet, v.aad === 'esn' ? (Number(v.seq >> 32n) ^ 1) >>> 0 : 1);
    assert.deepEqual(wrong.ok ? 'ok' : wrong.error.code, 'auth-failed');
  });
}

test('the draft ESN vector sealed the kasane way (IV = seq) differs only by IV and opens with espOpen', () => {
  const v = DRAFT[3];
  const plain = h(v.plain);
  const payload = plain.subarray(0, plain.length - 4);
  const vsa = { spi: v.spi, key: h(v.key), salt: h(v.salt) };
  const ours = espSeal(vsa, v.seq, 1, payload);
  assert.equal(hex(ours), hex(espSealWithIv(vsa, v.seq, be64(v.seq), 1, payload, 'esn')));
  assert.equal(hex(ours.subarray(8, 16)), 'ffffffffffffffff');
  const o = espOpen(vsa, ours);
  assert.ok(o.ok);
  assert.equal(o.value.seq, v.seq);
});

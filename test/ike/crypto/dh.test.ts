// Diffie-Hellman for IKEv2: the RFC 5903 ECP and RFC 7748 X25519 vectors, key generation from the
// injected randomness, and bad peer values as errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seededRandom } from '../../../src/base/random.js';
import { dhCheckPublic, dhFromPrivate, dhGenerate, dhSharedSecret } from '../../../src/ike/crypto/dh.js';
import { DH_CURVE25519, DH_ECP256, DH_ECP384, dhGroupById } from '../../../src/ike/crypto/transforms.js';

const h = (s: string) => Buffer.from(s, 'hex');
const GROUPS = [DH_ECP256, DH_ECP384, DH_CURVE25519];
const DH_ERRORS = new Set(['dh-bad-length', 'dh-invalid-public', 'dh-zero-secret']);

// RFC 5903 §8.1 (256-bit random ECP group) and §8.2 (384-bit): KE data is x | y, g^ir is x only.
const RFC5903 = [
  {
    group: DH_ECP256,
    i: 'c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433',
    gix: 'dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180',
    giy: '5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3',
    r: 'c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53',
    grx: 'd12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63',
    gry: '56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab',
    girx: 'd6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de',
  },
  {
    group: DH_ECP384,
    i: '099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655e35b538041e649ee3faef896783ab194',
    gix: '667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa',
    giy: '9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c',
    r: '41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942e0308312916b8ed2960e4bd55a7448fc',
    grx: 'e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571',
    gry: 'dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c',
    girx: '11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746',
  },
];

for (const v of RFC5903) {
  test(`RFC 5903 §8 vector for group ${v.group.id}: public values x | y and g^ir = x`, () => {
    const i = dhFromPrivate(v.group, h(v.i));
    const r = dhFromPrivate(v.group, h(v.r));
    assert.equal(i.publicValue.toString('hex'), v.gix + v.giy);
    assert.equal(r.publicValue.toString('hex'), v.grx + v.gry);
    assert.equal(i.publicValue.length, v.group.publicLength);
    const a = dhSharedSecret(i, h(v.grx + v.gry));
    const b = dhSharedSecret(r, h(v.gix + v.giy));
    assert.ok(a.ok && b.ok);
    assert.equal(a.value.toString('hex'), v.girx);
    assert.equal(b.value.toString('hex'), v.girx);
  });
}

test('RFC 7748 §6.1 X25519 vector (RFC 8031 group 31)', () => {
  const alice = dhFromPrivate(DH_CURVE25519, h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  const bob = dhFromPrivate(DH_CURVE25519, h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
  assert.equal(alice.publicValue.toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(bob.publicValue.toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  const a = dhSharedSecret(alice, bob.publicValue);
  const b = dhSharedSecret(bob, alice.publicValue);
  assert.ok(a.ok && b.ok);
  assert.equal(a.value.toString('hex'), k);
  assert.equal(b.value.toString('hex'), k);
});

test('generated key pairs agree, are deterministic in the injected randomness, and have the wire sizes', () => {
  for (const group of GROUPS) {
    const a = dhGenerate(group, seededRandom(`dh a ${group.id}`));
    const a2 = dhGenerate(group, seededRandom(`dh a ${group.id}`));
    const b = dhGenerate(group, seededRandom(`dh b ${group.id}`));
    assert.ok(a.publicValue.equals(a2.publicValue));
    assert.equal(a.publicValue.length, group.publicLength);
    const s1 = dhSharedSecret(a, b.publicValue);
    const s2 = dhSharedSecret(b, a.publicValue);
    assert.ok(s1.ok && s2.ok);
    assert.equal(s1.value.length, group.sharedLength);
    assert.ok(s1.value.equals(s2.value));
    assert.equal(dhGroupById(group.id), group);
  }
  assert.equal(dhGroupById(14), undefined); // MODP-2048: not implemented
});

test('ECP key generation rejects scalars outside 1..n-1 and gives up on a broken random source', () => {
  let calls = 0;
  const good = seededRandom('scalar');
  // First the out-of-range 0xff..ff (> n), then zero, then a real scalar.
  const flaky = (n: number) =>
    ++calls === 1 ? new Uint8Array(n).fill(0xff) : calls === 2 ? new Uint8Array(n) : good(n);
  const k = dhGenerate(DH_ECP256, flaky);
  assert.equal(calls, 3);
  assert.equal(k.publicValue.length, 64);
  assert.throws(() => dhGenerate(DH_ECP384, (n) => new Uint8Array(n)), /no valid private scalar/);
  assert.throws(() => dhFromPrivate(DH_ECP256, Buffer.alloc(31, 1)), RangeError);
});

test('bad peer public values are errors, not exceptions', () => {
  const own = {
    19: dhGenerate(DH_ECP256, seededRandom(1)),
    20: dhGenerate(DH_ECP384, seededRandom(2)),
    31: dhGenerate(DH_CURVE25519, seededRandom(3)),
  };
  const peer256 = dhGenerate(DH_ECP256, seededRandom(4)).publicValue;
  const code = (r: ReturnType<typeof dhSharedSecret>) => (r.ok ? 'ok' : r.error.code);

  // Lengths: empty, short, long, and the SEC1 form with its 0x04 prefix.
  for (const bad of [
    Buffer.alloc(0),
    peer256.subarray(1),
    Buffer.concat([peer256, Buffer.of(0)]),
    Buffer.concat([Buffer.of(4), peer256]),
  ]) {
    assert.equal(code(dhSharedSecret(own[19], bad)), 'dh-bad-length');
  }
  assert.equal(code(dhSharedSecret(own[19], dhGenerate(DH_ECP384, seededRandom(5)).publicValue)), 'dh-bad-length');
  assert.equal(code(dhSharedSecret(own[31], Buffer.alloc(64))), 'dh-bad-length');

  // Off the curve: a changed y; the all-zero "point"; x = p (out of the field).
  const offCurve = Buffer.from(peer256);
  offCurve[63] ^= 1;
  assert.equal(code(dhSharedSecret(own[19], offCurve)), 'dh-invalid-public');
  assert.equal(code(dhSharedSecret(own[19], Buffer.alloc(64))), 'dh-invalid-public');
  assert.equal(code(dhSharedSecret(own[20], Buffer.alloc(96))), 'dh-invalid-public');
  const p256 = h('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff');
  assert.equal(code(dhSharedSecret(own[19], Buffer.concat([p256, peer256.subarray(32)]))), 'dh-invalid-public');
  assert.equal(dhCheckPublic(DH_ECP256, offCurve).ok, false);
  assert.equal(dhCheckPublic(DH_ECP256, peer256).ok, true);

  // X25519 low-order points give an all-zero secret (RFC 8031 §2.3): u = 0, u = 1, u = p.
  const pX = h('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  for (const u of [Buffer.alloc(32), Buffer.concat([Buffer.of(1), Buffer.alloc(31)]), pX]) {
    assert.equal(code(dhSharedSecret(own[31], u)), 'dh-zero-secret');
  }
});

test('fast-check: arbitrary peer bytes never throw, and yield a secret of the right size or a known error', () => {
  const own = GROUPS.map((g, i) => dhGenerate(g, seededRandom(`fc ${i}`)));
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 }),
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      fc.boolean(),
      (gi, bytes, fit) => {
        const kp = own[gi];
        const peer = fit
          ? Uint8Array.from({ length: kp.group.publicLength }, (_, i) => bytes[i % Math.max(1, bytes.length)] ?? 0)
          : bytes;
        const r = dhSharedSecret(kp, peer);
        if (r.ok) assert.equal(r.value.length, kp.group.sharedLength);
        else assert.ok(DH_ERRORS.has(r.error.code), r.error.code);
      },
    ),
    { numRuns: 500 },
  );
});

// IKEv2 cookies (RFC 7296 §2.6): bound to the initiator's nonce, address and SPI and to a secret
// that rotates; forged or arbitrary cookies never verify and never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { seededRandom } from '../../../src/base/random.js';
import {
  COOKIE_LENGTH,
  CookieSecrets,
  makeCookie,
  newCookieSecret,
  verifyCookie,
} from '../../../src/ike/crypto/cookie.js';

const rnd = seededRandom('ike cookie tests');
const code = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const input = { ni: Buffer.from(rnd(32)), ipI: '198.51.100.7', spiI: Buffer.from(rnd(8)) };

test('cookie = VersionID | SHA-256(Ni | IPi (16 bytes) | SPIi | secret)', () => {
  const s = { version: 0x01020304, secret: Buffer.from(rnd(32)) };
  const c = makeCookie(s, input);
  assert.equal(c.length, COOKIE_LENGTH);
  const ip16 = Buffer.from('00000000000000000000ffffc6336407', 'hex'); // ::ffff:198.51.100.7
  const want = createHash('sha256')
    .update(Buffer.concat([input.ni, ip16, input.spiI, s.secret]))
    .digest();
  assert.equal(c.toString('hex'), '01020304' + want.toString('hex'));
  assert.equal(code(verifyCookie([s], c, input)), 'ok');
});

test('a cookie is bound to Ni, IPi and SPIi and to the secret', () => {
  const s = newCookieSecret(7, rnd);
  const c = makeCookie(s, input);
  const ni = Buffer.from(input.ni);
  ni[0] ^= 1;
  const spi = Buffer.from(input.spiI);
  spi[7] ^= 1;
  assert.equal(code(verifyCookie([s], c, { ...input, ni })), 'cookie-mismatch');
  assert.equal(code(verifyCookie([s], c, { ...input, spiI: spi })), 'cookie-mismatch');
  assert.equal(code(verifyCookie([s], c, { ...input, ipI: '198.51.100.8' })), 'cookie-mismatch');
  assert.equal(code(verifyCookie([{ version: 7, secret: rnd(32) }], c, input)), 'cookie-mismatch');
  assert.equal(code(verifyCookie([s], c.subarray(1), input)), 'cookie-bad-length');
  const forged = Buffer.from(c);
  forged[COOKIE_LENGTH - 1] ^= 1;
  assert.equal(code(verifyCookie([s], forged, input)), 'cookie-mismatch');
});

test('an IPv6 initiator whose low 32 bits equal an IPv4 address cannot lend its cookie to that address', () => {
  const s = newCookieSecret(1, rnd);
  const ni = Buffer.from(rnd(32));
  const v6 = { ni, ipI: '2001:db8::c633:6407', spiI: input.spiI };
  const c = makeCookie(s, v6);
  // Shift 12 bytes of the IPv6 address into Ni and present the cookie from 198.51.100.7.
  const v6bytes = Buffer.from('20010db8000000000000000000000000', 'hex');
  const spoof = { ni: Buffer.concat([ni, v6bytes.subarray(0, 12)]), ipI: '198.51.100.7', spiI: input.spiI };
  assert.equal(code(verifyCookie([s], c, spoof)), 'cookie-mismatch');
});

test('rotation: new cookies use the new secret, the previous one is still honoured once, older ones are stale', () => {
  const jar = new CookieSecrets(newCookieSecret(1, rnd));
  const c1 = jar.make(input);
  jar.rotate(newCookieSecret(2, rnd));
  const c2 = jar.make(input);
  assert.equal(c2.readUInt32BE(0), 2);
  assert.equal(code(jar.verify(c1, input)), 'ok');
  assert.equal(code(jar.verify(c2, input)), 'ok');
  jar.rotate(newCookieSecret(3, rnd));
  assert.equal(code(jar.verify(c1, input)), 'cookie-stale');
  assert.equal(code(jar.verify(c2, input)), 'ok');
  assert.throws(() => jar.rotate(newCookieSecret(3, rnd)), RangeError);
  assert.throws(() => new CookieSecrets({ version: 1, secret: Buffer.alloc(8) }), RangeError);
  assert.throws(() => newCookieSecret(-1, rnd), RangeError);
});

test('fast-check: arbitrary cookie bytes never verify and never throw', () => {
  const jar = new CookieSecrets(newCookieSecret(5, rnd));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (c) => {
      const r = jar.verify(c, input);
      assert.equal(r.ok, false);
    }),
    { numRuns: 500 },
  );
});

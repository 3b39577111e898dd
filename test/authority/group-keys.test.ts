// Group keys at rest (key-encryption key) and in transit (HPKE to the gateway's key), and the
// parser of deliveries (wire data) that turns them into the core's snapshot.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { sealBase, type KeyPair } from '../../src/authority/hpke-seal.js';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  deliveryContext,
  openGroupKey,
  sealGroupKey,
  unwrapGroupKey,
  wrapGroupKey,
} from '../../src/authority/group-keys.js';
import { openDelivery, parseDelivery } from '../../src/authority/snapshot.js';
import { DELIVERY_FORMAT, type GatewayDelivery } from '../../src/authority/wire.js';
import {
  exportPkcs8Pem,
  exportSpkiDer,
  generateKeyPair,
  importEcdhPublicKey,
  importPrivateKey,
} from '../../src/pki/keys.js';
import { cryptoImpl } from '../../src/pki/x509.js';

const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

async function gatewayKeys(): Promise<{ spki: Uint8Array; pem: string; ecdh: CryptoKey }> {
  const k = await generateKeyPair();
  const pem = await exportPkcs8Pem(k.privateKey);
  return { spki: await exportSpkiDer(k.publicKey), pem, ecdh: await importPrivateKey(pem, 'ecdh') };
}

/** The same P-256 key pair as WebCrypto ECDH keys (what @hpke/core takes as its ephemeral key material). */
async function ephemeralCryptoKeys(e: KeyPair): Promise<CryptoKeyPair> {
  const { x, y, d } = e.privateKey.export({ format: 'jwk' });
  const jwk = { kty: 'EC', crv: 'P-256', x, y };
  const alg = { name: 'ECDH', namedCurve: 'P-256' };
  return {
    publicKey: await cryptoImpl.subtle.importKey('jwk', jwk, alg, true, []),
    privateKey: await cryptoImpl.subtle.importKey('jwk', { ...jwk, d }, alg, true, ['deriveBits']),
  };
}

describe('group keys', () => {
  it('open only for the gateway, VPN, epoch and authority they were sealed for', async () => {
    const a = await gatewayKeys();
    const b = await gatewayKeys();
    const key = rnd(32);
    const ctx = deliveryContext('acme', 'gw1', 7, 3);
    const sealed = await sealGroupKey(key, a.spki, ctx);
    assert.equal(sealed.enc.length, 65);
    assert.equal(sealed.ct.length, 48);
    assert.deepEqual(await openGroupKey(sealed, a.ecdh, ctx), key);
    await assert.rejects(openGroupKey(sealed, b.ecdh, ctx));
    for (const other of [
      deliveryContext('acme', 'gw2', 7, 3),
      deliveryContext('acme', 'gw1', 8, 3),
      deliveryContext('acme', 'gw1', 7, 4),
      deliveryContext('evil', 'gw1', 7, 3),
    ]) {
      await assert.rejects(openGroupKey(sealed, a.ecdh, other));
    }
    const tampered = { enc: sealed.enc, ct: Uint8Array.from(sealed.ct, (x, i) => (i === 0 ? x ^ 1 : x)) };
    await assert.rejects(openGroupKey(tampered, a.ecdh, ctx));
  });

  it("the authority's own HPKE seal (node:crypto) is byte for byte @hpke/core's, and @hpke/core opens it", async () => {
    const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    for (let i = 0; i < 20; i++) {
      const r = await gatewayKeys();
      const key = rnd(32);
      const ctx = deliveryContext('acme', `gw${i}`, i + 1, i + 2);
      // The same ephemeral key pair on both sides: the same enc and ciphertext.
      const eph = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const ekm = await ephemeralCryptoKeys(eph);
      const theirs = await suite.seal(
        { recipientPublicKey: await importEcdhPublicKey(r.spki), info: ctx, ekm },
        key,
        ctx,
      );
      const ours = sealBase(r.spki, ctx, ctx, key, eph);
      assert.deepEqual(Buffer.from(ours.enc), Buffer.from(theirs.enc));
      assert.deepEqual(Buffer.from(ours.ct), Buffer.from(theirs.ct));
      // A fresh seal (fresh ephemeral key) opens with @hpke/core on the gateway's side.
      assert.deepEqual(await openGroupKey(await sealGroupKey(key, r.spki, ctx), r.ecdh, ctx), key);
    }
    assert.throws(
      () => sealBase(rnd(91), new Uint8Array(0), new Uint8Array(0), rnd(32)),
      /not an uncompressed P-256 public key/,
    );
    // A point off the curve is refused, not used.
    const off = Buffer.concat([Uint8Array.of(4), rnd(64)]);
    assert.throws(() => sealBase(off, new Uint8Array(0), new Uint8Array(0), rnd(32)));
  });

  it('the delivery context encodes names with their length, so fields cannot slide', () => {
    assert.notDeepEqual(deliveryContext('ab', 'c', 1, 1), deliveryContext('a', 'bc', 1, 1));
    assert.deepEqual([...deliveryContext('A', 'g', 0x01020304, 5).slice(-8)], [1, 2, 3, 4, 0, 0, 0, 5]);
  });

  it('wraps keys at rest under the key-encryption key, bound to VPN and epoch', () => {
    const kek = rnd(32);
    const key = rnd(32);
    const w = wrapGroupKey(kek, 5, 2, key, rnd);
    assert.equal(w.length, 60);
    assert.deepEqual(unwrapGroupKey(kek, 5, 2, w), key);
    assert.throws(() => unwrapGroupKey(kek, 5, 3, w));
    assert.throws(() => unwrapGroupKey(kek, 6, 2, w));
    assert.throws(() => unwrapGroupKey(rnd(32), 5, 2, w));
    assert.notDeepEqual(wrapGroupKey(kek, 5, 2, key, rnd), w, 'fresh nonce each time');
  });
});

async function sampleDelivery(spki: Uint8Array, key: Uint8Array): Promise<GatewayDelivery> {
  const s = await sealGroupKey(key, spki, deliveryContext('acme', 'gw1', 9, 4));
  return {
    format: DELIVERY_FORMAT,
    authority: 'acme',
    gateway: 'gw1',
    version: 12,
    issuedAt: 1000,
    protectedPrefixes: ['10.0.0.0/8', 'fd00::/8'],
    vpns: [
      {
        id: 9,
        name: 'corp',
        mode: 'group',
        epochs: [
          {
            epoch: 4,
            activeFrom: 100,
            expiresAt: Number.MAX_SAFE_INTEGER,
            enc: Buffer.from(s.enc).toString('base64'),
            ct: Buffer.from(s.ct).toString('base64'),
          },
        ],
        members: [
          { gateway: 'gw1', address: '192.0.2.1', prefixes: ['10.1.0.0/16'], spis: [{ epoch: 4, spi: 300 }] },
          { gateway: 'gw2', address: '2001:db8::2', prefixes: ['10.2.0.0/16'], spis: [{ epoch: 4, spi: 301 }] },
        ],
      },
    ],
  };
}

describe('deliveries', () => {
  it('open into the core AuthoritySnapshot', async () => {
    const g = await gatewayKeys();
    const key = rnd(32);
    const d = await sampleDelivery(g.spki, key);
    const s = await openDelivery(d, g.pem, { gateway: 'gw1', authority: 'acme' });
    assert.equal(s.version, 12);
    assert.deepEqual(s.protectedPrefixes.map(String), ['10.0.0.0/8', 'fd00::/8']);
    assert.equal(s.vpns[0].id, 9);
    assert.deepEqual(s.vpns[0].epochs[0].key, key);
    assert.equal(s.vpns[0].epochs[0].activeFrom, 100);
    assert.deepEqual(
      s.vpns[0].members.map((m) => [m.gateway, m.address, m.prefixes.map(String), m.spis]),
      [
        ['gw1', '192.0.2.1', ['10.1.0.0/16'], [{ epoch: 4, spi: 300 }]],
        ['gw2', '2001:db8::2', ['10.2.0.0/16'], [{ epoch: 4, spi: 301 }]],
      ],
    );
    await assert.rejects(openDelivery(d, g.pem, { gateway: 'gw2' }), /for gateway "gw1"/);
    await assert.rejects(openDelivery(d, g.pem, { gateway: 'gw1', authority: 'other' }), /from authority "acme"/);
    await assert.rejects(openDelivery({ ...d, gateway: 'gw2' }, g.pem, { gateway: 'gw2' }), /does not open/);
  });

  it('property: the parser never throws and refuses any single-field corruption', async () => {
    const g = await gatewayKeys();
    const good = await sampleDelivery(g.spki, rnd(32));
    assert.ok(parseDelivery(good).ok);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = parseDelivery(v);
        assert.equal(typeof r.ok, 'boolean');
      }),
    );
    const paths: [string, unknown][] = [
      ['format', 'x'],
      ['version', -1],
      ['gateway', ''],
      ['protectedPrefixes', ['10.0.0.1/8']],
      ['vpns.0.id', 0],
      ['vpns.0.mode', 'mesh'],
      ['vpns.0.epochs.0.enc', 'AAAA'],
      ['vpns.0.epochs.0.ct', 42],
      ['vpns.0.members.0.address', 'nowhere'],
      ['vpns.0.members.0.spis.0.spi', 255],
      ['vpns.0.members.1.prefixes', 'x'],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...paths), ([path, value]) => {
        const d = structuredClone(good) as unknown as Record<string, unknown>;
        const keys = path.split('.');
        let o = d as Record<string, unknown>;
        for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
        o[keys[keys.length - 1]] = value;
        const r = parseDelivery(d);
        assert.equal(r.ok, false, path);
      }),
    );
  });
});

// Sealing many group keys in worker threads (src/authority/seal-pool.ts): each seal opens with its
// gateway's key only, in the jobs' order; a bad gateway key fails the call with a clear error;
// workers that stop under a call fail it cleanly and later calls still seal.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { deliveryContext, openGroupKey } from '../../src/authority/group-keys.js';
import { SealPool, type SealJob } from '../../src/authority/seal-pool.js';
import { exportPkcs8Pem, exportSpkiDer, generateKeyPair, importPrivateKey } from '../../src/pki/keys.js';

async function gateways(n: number): Promise<{ spki: Uint8Array; ecdh: CryptoKey }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = await generateKeyPair();
    out.push({
      spki: await exportSpkiDer(k.publicKey),
      ecdh: await importPrivateKey(await exportPkcs8Pem(k.privateKey), 'ecdh'),
    });
  }
  return out;
}

describe('seal pool', () => {
  it('seals many keys in workers, in order, each opening only for its gateway and slot', async () => {
    const pool = new SealPool(2);
    try {
      const gws = await gateways(4);
      const keys = Array.from({ length: 50 }, () => new Uint8Array(randomBytes(32)));
      // 200 seals: 50 VPNs x 4 members.
      const jobs: (SealJob & { gw: number })[] = [];
      for (let v = 0; v < keys.length; v++)
        for (let g = 0; g < gws.length; g++)
          jobs.push({ gw: g, key: keys[v], recipient: gws[g].spki, context: deliveryContext('acme', `gw${g}`, v, 2) });
      const sealed = await pool.seal(jobs);
      assert.equal(sealed.length, jobs.length);
      for (let i = 0; i < jobs.length; i += 7) {
        const j = jobs[i];
        assert.deepEqual(await openGroupKey(sealed[i], gws[j.gw].ecdh, j.context), j.key);
        await assert.rejects(openGroupKey(sealed[i], gws[(j.gw + 1) % gws.length].ecdh, j.context));
      }
      assert.equal(new Set(sealed.map((s) => Buffer.from(s.enc).toString('hex'))).size, jobs.length, 'fresh enc');
    } finally {
      await pool.close();
    }
  });

  it('warm starts the workers of a large batch ahead of it, and none for a small one', async () => {
    const pool = new SealPool(2);
    try {
      pool.warm(10);
      assert.equal(pool.running, 0, 'ten seals are made in the calling thread');
      pool.warm(100);
      assert.equal(pool.running, 2);
      const [gw] = await gateways(1);
      const jobs = Array.from({ length: 100 }, (_, v) => ({
        key: new Uint8Array(randomBytes(32)),
        recipient: gw.spki,
        context: deliveryContext('acme', 'gw0', v, 2),
      }));
      const sealed = await pool.seal(jobs);
      assert.equal(pool.running, 2, 'the warmed workers sealed it');
      assert.deepEqual(await openGroupKey(sealed[99], gw.ecdh, jobs[99].context), jobs[99].key);
    } finally {
      await pool.close();
    }
    assert.equal(pool.running, 0);
  });

  it('a bad gateway key fails the call with the reason; stopped workers fail their call, the next one seals', async () => {
    const pool = new SealPool(2);
    try {
      const [gw] = await gateways(1);
      const job = (recipient: Uint8Array): SealJob => ({
        key: new Uint8Array(32),
        recipient,
        context: deliveryContext('acme', 'gw', 1, 1),
      });
      const good = Array.from({ length: 100 }, () => job(gw.spki));
      await assert.rejects(
        pool.seal([...good, job(new Uint8Array(91))]),
        /sealing a group key failed: not an uncompressed P-256 public key/,
      );
      // Closing stops the workers under a call: it fails, and seals go on in the calling thread.
      const under = assert.rejects(pool.seal(good), /a sealing worker stopped/);
      await pool.close();
      await under;
      const after = await pool.seal(good);
      assert.deepEqual(await openGroupKey(after[99], gw.ecdh, good[99].context), good[99].key);
    } finally {
      await pool.close();
    }
  });
});

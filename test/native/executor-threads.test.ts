// The native executor under several threads at once, as a datapath with several TUN queues runs it:
// one VPN's SA sealed and opened by every thread (sequence numbers, each thread's cipher context,
// the replay window, counters and path statistics), beyond the thread slots too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newExecutor, randomKey } from './support.js';
import type { NativeExecutor } from '../../src/native/native-executor.js';

// The path executorThreads sends on (native/src/addon.c).
const A = '10.77.0.1';
const B = '10.77.0.2';
const VPN = 7;
const SPI = 0x7700;

/** A sending SA and a receiving SA of one key, and an encrypt rule each way to one peer. */
function loopback(ex: NativeExecutor): void {
  const k = randomKey(77);
  ex.installTxSa({ spi: SPI, vpnId: VPN, epoch: 1, key: k.key, salt: k.salt, nextSeq: 1n });
  ex.installRxSa({ spi: SPI, vpnId: VPN, epoch: 1, sender: 'P', key: k.key, salt: k.salt });
  ex.installPath({ local: A, remote: B, action: 'encrypt', vpnId: VPN, peer: 'P' });
  ex.installPath({ local: B, remote: A, action: 'encrypt', vpnId: VPN, peer: 'P' });
}

describe('native executor: several threads on one SA', () => {
  // 40 threads: more than the 32 with cipher contexts of their own (esp.h AEAD_THREADS); the rest
  // take turns on a shared one.
  for (const [threads, count] of [
    [1, 3000],
    [2, 6000],
    [4, 3000],
    [8, 1500],
    [40, 300],
  ] as const) {
    it(`${threads} thread(s) × ${count} packets: every sequence number once, every packet opened once, exact counters`, (t) => {
      const ex = newExecutor(t);
      if (!ex) return;
      loopback(ex);
      const total = threads * count;
      const r = ex.binding.executorThreads(ex.handle, threads, 200, count);
      assert.equal(r.sealed, total, JSON.stringify(r));
      assert.equal(r.duplicateSeqs, 0, 'a sequence number (the nonce) was handed out twice');
      assert.ok(r.openNs > 0, JSON.stringify(r));
      assert.equal(r.other, 0, JSON.stringify(r));
      assert.equal(r.mismatches, 0, 'an opened packet differs from what was sealed');
      // Opened in steps that keep them within the replay window: every packet once, none refused.
      assert.equal(r.opened, total, JSON.stringify(r));
      assert.equal(r.replays, 0, JSON.stringify(r));
      assert.equal(r.reopened, 0, 'a packet was opened twice');
      assert.equal(ex.txNextSeq(VPN), BigInt(total + 1));
      const c = ex.counters();
      assert.equal(c['encrypt.packets'], total);
      assert.equal(c['decrypt.packets'], r.opened);
      assert.equal(c['drop.replay'], total, 'the second round: all replays');
      assert.equal(c['drop.auth-failed'] ?? 0, 0);
      assert.equal(ex.pathStats(A, B)?.packets, total, 'path statistics counted under contention');
      assert.equal(ex.pathStats(B, A)?.packets, r.opened);
    });
  }

  it('refuses a run it cannot hold, and keeps working', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    loopback(ex);
    assert.throws(() => ex.binding.executorThreads(ex.handle, 0, 200, 10), /1\.\.64 threads/);
    assert.throws(() => ex.binding.executorThreads(ex.handle, 65, 200, 10), /1\.\.64 threads/);
    assert.throws(() => ex.binding.executorThreads(ex.handle, 64, 8000, 100_000), /256 MiB/);
    assert.equal(ex.binding.executorThreads(ex.handle, 2, 64, 100).sealed, 200);
  });
});

// Sequence numbers (GCM nonces) are never reused across restarts within a key epoch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SEQ_BLOCK, SeqReservations } from '../../src/gateway/seq-reservation.js';

test('a restart resumes above everything reserved (and so above everything sent) in the epoch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-seq-'));
  try {
    const file = join(dir, 'tx-seq.json');
    const a = new SeqReservations(file);
    assert.equal(a.begin(1, 7), 1n);
    // Sending proceeds; the reservation is extended before half of it is used up.
    a.ensure(1, 7, 1000n);
    assert.equal(JSON.parse(readFileSync(file, 'utf8'))['1/7'], (1n + SEQ_BLOCK).toString(), 'not yet half used');
    a.ensure(1, 7, SEQ_BLOCK / 2n + 5n);
    const reserved = BigInt(JSON.parse(readFileSync(file, 'utf8'))['1/7'] as string);
    assert.equal(reserved, SEQ_BLOCK / 2n + 5n + SEQ_BLOCK);
    // Crash and restart: the new SA starts above the whole reservation.
    const b = new SeqReservations(file);
    const start = b.begin(1, 7);
    assert.ok(start > reserved);
    // Another epoch is a new key: it starts at 1; epochs no longer in use are forgotten.
    assert.equal(b.begin(1, 8), 1n);
    b.retain([{ vpnId: 1, epoch: 8 }]);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(file, 'utf8'))), ['1/8']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The receive journal: which (VPN, epoch) an earlier run of the gateway received under, so that a
// restarted gateway learns its senders' floors before it takes ESP on those SAs again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveJournal } from '../../src/gateway/rx-journal.js';

test('an epoch received under by an earlier run needs a floor after a restart; a new one does not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-rxj-'));
  try {
    const file = join(dir, 'rx-epochs.json');
    const first = new ReceiveJournal(file);
    assert.equal(first.begin(1, 7), false, 'first start: nothing received before');
    assert.equal(first.begin(1, 7), false, 'the same run again (another sender of the epoch)');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { epochs: ['1/7'] }, 'on disk before any packet is taken');
    // Crash and restart.
    const second = new ReceiveJournal(file);
    assert.equal(second.begin(1, 7), true, 'received under before the restart');
    assert.equal(second.begin(1, 8), false, 'an epoch that became active after the restart');
    assert.equal(second.begin(2, 7), false, 'another VPN');
    second.retain([
      { vpnId: 1, epoch: 8 },
      { vpnId: 2, epoch: 7 },
    ]);
    assert.deepEqual(
      JSON.parse(readFileSync(file, 'utf8')),
      { epochs: ['1/8', '2/7'] },
      'expired epochs are forgotten',
    );
    const third = new ReceiveJournal(file);
    assert.equal(third.begin(1, 8), true);
    assert.equal(third.damaged, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreadable journal errs on the safe side: every SA needs a floor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-rxj-'));
  try {
    const file = join(dir, 'rx-epochs.json');
    for (const text of ['{not json', '{"epochs": [1]}', '[]']) {
      writeFileSync(file, text);
      const j = new ReceiveJournal(file);
      assert.match(j.damaged ?? '', /rx-epochs\.json/, text);
      assert.equal(j.begin(3, 1), true, text);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

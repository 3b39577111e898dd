// How an initiator reads the answer to its CREATE_CHILD_SA request (a Child SA's rekey or the IKE SA's): an error
// notify fails the exchange with its number, an answer without exactly one proposal, a Nonce and a KE fails it too,
// and status notifies beside a complete answer do not get in the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notify, NotifyType, ProtocolId, proposalFromString, type Payload } from '../../../src/ike/message/index.js';
import { createChildAnswer } from '../../../src/ike/engine/tasks/child.js';

const proposal = (n: number) => {
  const p = proposalFromString('aes256gcm16-noesn-x25519', ProtocolId.ESP, n, Buffer.alloc(4, n));
  assert.ok(p.ok);
  return p.value;
};
const sa: Payload = { kind: 'SA', proposals: [proposal(1)] };
const nonce: Payload = { kind: 'Nonce', data: Buffer.alloc(32, 7) };
const ke: Payload = { kind: 'KE', group: 31, data: Buffer.alloc(32, 9) };

test('a complete answer gives its SA, Nonce and KE; a status notify beside them is no error', () => {
  const r = createChildAnswer([sa, nonce, ke, notify(NotifyType.REKEY_SA)]);
  assert.ok(r.ok);
  assert.deepEqual([r.sa, r.nonce, r.ke], [sa, nonce, ke]);
});

test('an error notify fails the exchange and says which', () => {
  assert.deepEqual(createChildAnswer([notify(NotifyType.NO_PROPOSAL_CHOSEN)]), {
    ok: false,
    code: 'failed',
    reason: `refused with notify ${NotifyType.NO_PROPOSAL_CHOSEN}`,
  });
});

test('an answer without one proposal, a Nonce or a KE fails the exchange', () => {
  const twoProposals: Payload = { kind: 'SA', proposals: [proposal(1), proposal(2)] };
  for (const inner of [[nonce, ke], [sa, ke], [sa, nonce], [twoProposals, nonce, ke], []]) {
    assert.deepEqual(createChildAnswer(inner), {
      ok: false,
      code: 'failed',
      reason: 'answer without one SA, a Nonce and a KE',
    });
  }
});

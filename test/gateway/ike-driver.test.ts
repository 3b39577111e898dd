// The gateway's IKE edge in-process (src/gateway/ike-driver.ts): the engine is synchronous, so an
// event's output is applied before the call that brought it returns, and a step the core asks for
// while an output is being applied runs after that output, never inside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { Logger } from 'pino';
import type { TunnelExecutor } from '../../src/core/executor.js';
import { keyObjectSigner } from '../../src/ike/crypto/signature.js';
import { IkeDriver } from '../../src/gateway/ike-driver.js';
import type { Clock } from '../../src/gateway/core-driver.js';

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;

test('IKE driver: an event is handled before the call returns; a step asked for while an output is applied runs after it, in order', () => {
  const armed: number[] = [];
  const clock: Clock = {
    now: () => 1_000,
    setTimeout: (_fn, ms) => (armed.push(ms), armed.length),
    clearTimeout: () => undefined,
  };
  // No peer is delivered: every request ends at once with the core told the peer is unknown.
  const executor = new Proxy(
    {},
    { get: () => () => assert.fail('nothing is installed for an unknown peer') },
  ) as unknown as TunnelExecutor;
  const seen: string[] = [];
  const driver: IkeDriver = new IkeDriver({
    gateway: 'ga',
    address: '192.0.2.1',
    certificate: new Uint8Array(0),
    signer: keyObjectSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'ecdsa-with-SHA256'),
    ports: { ike: 500, nat: 4500 },
    idleTimeout: 300_000,
    executor,
    sendNat: () => assert.fail('nothing is sent for an unknown peer'),
    childUp: () => assert.fail('no Child SA comes up'),
    childDown: (peer, _vpnId, reason) => {
      seen.push(`down ${peer} (${reason})`);
      // The core answers the failure with a search that asks for another peer at once.
      if (peer === 'gb') driver.request('gc', 7);
      seen.push(`down ${peer} returned`);
    },
    log: quiet,
    random: (n) => new Uint8Array(n).fill(1),
    clock,
  });
  driver.request('gb', 7);
  assert.deepEqual(seen, ['down gb (peer-unknown)', 'down gb returned', 'down gc (peer-unknown)', 'down gc returned']);
  assert.equal(driver.counters.get('failed'), 2);
  assert.ok(armed.length > 0, 'the engine timer is armed after the steps');
});

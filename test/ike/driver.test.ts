// The gateway's IKE edge (src/gateway/ike-driver.ts) with real sockets on loopback: UDP 500 on an
// IPv4 and an IPv6 address at once (dual stack), UDP 4500 of its own, and what it does when its
// executor refuses a Child SA (an executor without tunnel mode for that address family): the SA
// is deleted at once, so that neither the peer nor the core sends into it. Needs root (port 500).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Prefix } from '../../src/base/addr.js';
import type { TunnelRxSa } from '../../src/core/executor.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import type { AuthoritySnapshot } from '../../src/core/types.js';
import { IkeDriver } from '../../src/gateway/ike-driver.js';
import { HOUR, makeAuthority, makeGateway, permitFor, type Authority, type Gateway } from './engine/peers.js';

const skip =
  process.getuid?.() !== 0 && !process.env.CI
    ? 'skipped: binds UDP 500 on loopback (runs as root, and always in CI)'
    : false;
const quiet = { error() {}, warn() {}, info() {}, debug() {}, trace() {} } as unknown as Logger;

/** A real executor that has no tunnel mode for the Child SAs it is given. */
class NoTunnelExecutor extends TsExecutor {
  override installTunnelRx(sa: TunnelRxSa): void {
    throw new RangeError(`no tunnel mode toward ${sa.remoteAddr}`);
  }
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test(
  'IKE driver: UDP 500 on 127.0.0.1 and ::1 at once; a Child SA the executor refuses is deleted on both sides',
  { skip, timeout: 60_000 },
  async () => {
    const now = Date.now();
    const [A, B] = [await makeAuthority('authority-a', now - HOUR), await makeAuthority('authority-b', now - HOUR)];
    const [ga, gb] = [await makeGateway(A, 'ga', now - HOUR), await makeGateway(B, 'gb', now - HOUR)];
    /** What `self`'s authority delivers: the pairwise VPN with `other`, and the permit other's authority issued. */
    const snapshot = async (
      [self, ownAuthority, selfAt]: [Gateway, Authority, string],
      [other, otherAuthority, otherAt]: [Gateway, Authority, string],
    ): Promise<AuthoritySnapshot> => ({
      version: 1,
      protectedPrefixes: [],
      attributeAuthority: new Uint8Array(ownAuthority.aa.cert.rawData),
      vpns: [
        {
          id: 7,
          name: 'shared',
          mode: 'pairwise',
          epochs: [],
          members: [
            {
              gateway: self.name,
              address: selfAt,
              prefixes: [Prefix.from(self === ga ? 'fd01::/64' : 'fd02::/64')],
              spis: [],
            },
            {
              gateway: other.name,
              address: otherAt,
              prefixes: [Prefix.from(other === ga ? 'fd01::/64' : 'fd02::/64')],
              spis: [],
              certificate: new Uint8Array(other.cert.rawData),
              permit: await permitFor(otherAuthority, self, 'shared', now - HOUR, now + HOUR),
            },
          ],
        },
      ],
    });
    const seen = { a: [] as string[], b: [] as string[] };
    const driver = (self: Gateway, side: 'a' | 'b', address: string, addresses: string[], executor: TsExecutor) =>
      new IkeDriver({
        gateway: self.name,
        address,
        addresses,
        ownNatPort: [4, 6],
        certificate: self.identity.certificate,
        signer: self.identity.signer,
        ports: { ike: 500, nat: 4500 },
        idleTimeout: 300_000,
        executor,
        sendNat: () => assert.fail('every family has its own UDP 4500 here'),
        childUp: (peer) => seen[side].push(`up ${peer}`),
        childDown: (peer, _vpnId, reason) => seen[side].push(`down ${peer} ${reason}`),
        log: quiet,
        random: (n) => new Uint8Array(randomBytes(n)),
      });
    const a = driver(ga, 'a', '127.0.0.1', ['::1'], new NoTunnelExecutor());
    const b = driver(gb, 'b', '127.0.0.2', [], new TsExecutor());
    const atA: [Gateway, Authority, string] = [ga, A, '127.0.0.1'];
    const atB: [Gateway, Authority, string] = [gb, B, '127.0.0.2'];
    a.snapshot(await snapshot(atA, atB));
    b.snapshot(await snapshot(atB, atA));
    await a.start();
    await b.start();
    try {
      // Dual stack: [::1]:500 is A's too; a datagram there reaches its engine (and is dropped as malformed).
      const probe = createSocket({ type: 'udp6' });
      await new Promise<void>((resolve, reject) =>
        probe.send(Buffer.from('not IKE'), 500, '::1', (e) => (e ? reject(e) : resolve())),
      );
      await until('the IPv6 probe', () => (a.counters.get('dropped') ?? 0) >= 1);
      probe.close();

      a.request('gb', 7);
      await until('B to hear the SA deleted', () => seen.b.some((s) => s.startsWith('down ga')));
      assert.equal(a.counters.get('install-failed'), 1);
      assert.deepEqual(
        seen.a.filter((s) => s.startsWith('up')),
        [],
        'the core never hears of an SA the executor does not carry',
      );
      assert.ok(
        seen.a.some((s) => /^down gb executor-refused: no tunnel mode toward 127\.0\.0\.2/.test(s)),
        seen.a.join('\n'),
      );
      assert.deepEqual(seen.b, ['up ga', 'down ga deleted by the peer']);
      assert.deepEqual(a.status(), [], 'nothing of the SA is left at A');
      assert.deepEqual(a.tunnelPeers(), []);
    } finally {
      await a.stop();
      await b.stop();
    }
  },
);

// Two kasane gateways under two authorities, pairwise over IPv6: kasane's gateway IKE edge
// (kasane-ike-gateway.ts: the IKE driver's UDP 500/4500 sockets, the engine, the executor) on gwA
// and on gwB of the dual-stack two-site topology, IPv6 outside addresses, a Child SA carrying
// both families of terminals. Each initiates once; the higher address holds back for the other's
// IKE_SA_INIT when both ask at once (compared over IPv6).
import assert from 'node:assert/strict';
import { SITES, twoSites, type Side } from './authorities.js';
import { Testbed } from '../../src/testbed/netns.js';
import { NativeExecutor } from '../../src/native/index.js';
import { ikeEvent, parties, startKasane, type Kasane } from './kasane-pair.js';
import type { KasaneIkeGatewayConfig } from './kasane-ike-gateway.js';
import { netnsTest } from '../support/netns-gate.js';

netnsTest(
  'kasane to kasane over IPv6: either side initiates, both at once settle on one SA, ping -6 and ping pass both ways',
  { timeout: 300_000 },
  async (t) => {
    assert.ok(NativeExecutor.create().ok, 'the native addon is built by npm install');
    const P = await parties();
    const tb = new Testbed();
    const ns = twoSites(tb);
    const running: Kasane[] = [];
    const v6 = SITES[6];
    const v4 = SITES[4];
    const config = (me: 'A' | 'B', own: Side, other: Side, permit: string): KasaneIkeGatewayConfig => {
      const [here, there] = me === 'A' ? (['A', 'B'] as const) : (['B', 'A'] as const);
      const at = (x: 'A' | 'B', f: 4 | 6) => (f === 6 ? (x === 'A' ? v6.gwA : v6.gwB) : x === 'A' ? v4.gwA : v4.gwB);
      const lan = (x: 'A' | 'B') => (x === 'A' ? [v6.lanA, v4.lanA] : [v6.lanB, v4.lanB]);
      const host = (x: 'A' | 'B', f: 4 | 6) =>
        f === 6 ? (x === 'A' ? v6.hostA : v6.hostB) : x === 'A' ? v4.hostA : v4.hostB;
      return {
        name: `G${here}`,
        address: at(here, 6),
        addresses: [at(here, 4)],
        routing: { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['lan0'], outsideIfaces: ['wan0'] },
        certificatePem: own.cert.toString('pem'),
        keyPem: own.keyPem,
        attributeAuthorityPem: own.aa.cert.toString('pem'),
        caPems: [own.ca.issuing.cert.toString('pem'), own.ca.root.cert.toString('pem')],
        peer: {
          name: `G${there}`,
          address: at(there, 6),
          certificatePem: other.cert.toString('pem'),
          vpnId: 7,
          vpnName: 'P7',
          localPrefixes: lan(here),
          remotePrefixes: lan(there),
        },
        permitPem: permit,
        hosts: [6, 4].map((f) => ({ local: host(here, f as 4 | 6), remote: host(there, f as 4 | 6) })),
      };
    };
    const start = async () => {
      for (const k of running.splice(0)) await k.close();
      const a = await startKasane(tb, ns.gwA, config('A', P.A, P.B, P.forGA));
      running.push(a);
      const b = await startKasane(tb, ns.gwB, config('B', P.B, P.A, P.forGB));
      running.push(b);
      return { a, b };
    };
    const ping = (from: string, family: 4 | 6, to: string) => {
      try {
        tb.exec(from, 'ping', `-${family}`, '-c', '2', '-i', '0.2', '-W', '2', to);
        return true;
      } catch {
        return false;
      }
    };
    const pings = () =>
      ping(ns.hostA, 6, v6.hostB) &&
      ping(ns.hostB, 6, v6.hostA) &&
      ping(ns.hostA, 4, v4.hostB) &&
      ping(ns.hostB, 4, v4.hostA);
    try {
      for (const first of ['a', 'b'] as const) {
        await t.test(`${first === 'a' ? 'GA' : 'GB'} initiates over IPv6`, async () => {
          const gw = await start();
          assert.equal(ping(ns.hostA, 6, v6.hostB), false, 'nothing passes before an SA exists');
          gw[first].send('initiate');
          const up = await ikeEvent(gw[first], 'ike-up');
          assert.equal(up.remote, `[${first === 'a' ? v6.gwB : v6.gwA}]:4500`);
          assert.deepEqual(
            up.nat,
            { local: false, remote: false },
            'NAT detection over IPv6 between two kasanes: no translator',
          );
          await ikeEvent(gw[first === 'a' ? 'b' : 'a'], 'child-up');
          assert.ok(pings(), 'ping -6 and ping, both ways, through the Child SA over IPv6');
        });
      }
      await t.test(
        'both initiate at once: the gateway with the higher IPv6 address waits for the other, one IKE SA results',
        async () => {
          const { a, b } = await start();
          a.send('initiate');
          b.send('initiate');
          await ikeEvent(a, 'child-up');
          await ikeEvent(b, 'child-up');
          assert.ok(pings());
          a.send('status');
          const status = await a.lines.wait((e) => e.event === 'status', 5_000, 'GA status');
          const sas = (status.sas as { state: string; role: string }[]).filter((s) => s.state === 'established');
          assert.equal(sas.length, 1, JSON.stringify(status.sas));
          assert.equal(sas[0].role, 'initiator', "fd00:200:2::2 > fd00:200:1::2: GB held back for GA's IKE_SA_INIT");
        },
      );
    } finally {
      for (const k of running) await k.close().catch(() => undefined);
      tb.teardown();
    }
  },
);

// kasane's IKEv2 against strongSwan over IPv6 (issue 14): the same two authorities and gateways as
// kasane-strongswan.test.ts, dual-stack namespaces, and
//   - IPv6 outside addresses (IKE on [v6]:500 and [v6]:4500, NAT detection over v6), a Child SA
//     with TS_IPV6_ADDR_RANGE and TS_IPV4_ADDR_RANGE selectors (v6 in v6 and v4 in v6), both
//     directions, pings of both families through it;
//   - IPv4 outside addresses with IPv6 terminals (v6 in v4), kasane initiating, ping -6.
//
//   hostA (fd01::10, 10.1.0.10) - gwA ===== R ===== gwB - hostB (fd02::10, 10.2.0.10)
//                                 kasane                charon
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acertPluginPath, SITES, twoSites } from './authorities.js';
import { Testbed } from '../../src/testbed/netns.js';
import { NativeExecutor } from '../../src/native/index.js';
import { childSas, ikeEvent, KasanePair, parties, ROOT, type PairLayout } from './kasane-pair.js';
import { netnsTest } from '../support/netns-gate.js';

netnsTest(
  'kasane and strongSwan over IPv6: IKE on v6 sockets, v6 traffic selectors, both directions, v6 in v6, v4 in v6, v6 in v4',
  { timeout: 600_000 },
  async (t) => {
    assert.ok(NativeExecutor.create().ok, 'the native addon is built by npm install');
    const plugin = acertPluginPath(ROOT);

    const P = await parties();
    const tb = new Testbed();
    const dir = mkdtempSync(join(tmpdir(), 'kasane-ikeinterop6-'));
    const ns = twoSites(tb);
    const beds: KasanePair[] = [];
    const bed = (layout: PairLayout) => {
      const b = new KasanePair(tb, ns, dir, plugin, P, layout);
      beds.push(b);
      return b;
    };
    try {
      const v6 = bed({ outside: 6, inside: [6, 4] });

      await t.test(
        'strongSwan initiates over IPv6: kasane authenticates it, the SA carries fd01::/64 and 10.1.0.0/24, ping -6 and ping pass',
        async () => {
          const { charon, kasane } = await v6.pair();
          assert.equal(v6.ping(6, 1), false, 'nothing passes before an SA exists');
          assert.ok(
            charon.initiate('p7'),
            `GB -> GA over IPv6: ${charon.lastOutput}\n--- charon:\n${charon.log()}\n--- kasane:\n${kasane.lines.stderr}`,
          );
          const up = await ikeEvent(kasane, 'ike-up');
          assert.equal(up.remote, `[${SITES[6].gwB}]:4500`, 'the peer is at its IPv6 address, floated to 4500');
          // kernel-libipsec fakes its NAT_DETECTION_SOURCE_IP hash (to force ESP in UDP): kasane sees
          // strongSwan "behind a NAT", and itself not.
          assert.deepEqual(up.nat, { local: false, remote: true }, 'NAT detection over IPv6');
          await ikeEvent(kasane, 'child-up');
          const sas = charon.swanctl('--list-sas');
          assert.match(sas, /p7: #\d+, ESTABLISHED, IKEv2/);
          assert.match(sas, new RegExp(`local  '.*' @ ${SITES[6].gwB}\\[4500\\]`), sas);
          assert.match(sas, /local  fd02::\/64 10\.2\.0\.0\/24|local  10\.2\.0\.0\/24 fd02::\/64/, sas);
          assert.match(sas, /remote fd01::\/64 10\.1\.0\.0\/24|remote 10\.1\.0\.0\/24 fd01::\/64/, sas);
          assert.doesNotMatch(
            charon.fullLog(),
            /remote host is behind NAT/,
            "strongSwan checks kasane's v6 NAT-D hashes: they match",
          );
          assert.ok(v6.ping(6), `hostA -> hostB (ping -6) through the Child SA\n${charon.log()}`);
          assert.ok(v6.ping(4), 'hostA -> hostB (IPv4 in IPv6) through the same Child SA');
        },
      );

      await t.test(
        'kasane initiates over IPv6: strongSwan authenticates it; kasane rekeys the Child SA; pings of both families pass',
        async () => {
          const { charon, kasane } = await v6.pair({ timers: { childLifetime: 20_000, dpdDelay: 10_000 } });
          kasane.send('initiate');
          await ikeEvent(kasane, 'child-up');
          assert.match(
            charon.fullLog(),
            new RegExp(`received packet: from ${SITES[6].gwA}\\[500\\]`),
            "IKE_SA_INIT came from kasane's IPv6 address",
          );
          assert.match(charon.fullLog(), /authentication of '.*' with ECDSA_WITH_SHA256_DER successful/);
          assert.ok(v6.ping(6), `hostA -> hostB (ping -6) with kasane as initiator\n${charon.log()}`);
          await ikeEvent(kasane, 'child-rekeyed', 30_000);
          assert.ok(childSas(charon) >= 2);
          assert.ok(v6.ping(6), 'ping -6 after kasane rekeyed the Child SA');
          assert.ok(v6.ping(4), 'ping (IPv4 in IPv6) after the rekey');
        },
      );

      const v6in4 = bed({ outside: 4, inside: [6] });
      await t.test(
        'v6 in v4: IPv6 terminals over IPv4 outside addresses, kasane initiates, ping -6 passes',
        async () => {
          await v6.stop();
          const { charon, kasane } = await v6in4.pair();
          kasane.send('initiate');
          await ikeEvent(kasane, 'child-up');
          assert.match(charon.swanctl('--list-sas'), /local  fd02::\/64[\s\S]*remote fd01::\/64/);
          assert.ok(v6in4.ping(6), `hostA -> hostB (ping -6) in IPv4\n${charon.log()}`);
        },
      );
    } finally {
      for (const b of beds) await b.stop().catch(() => undefined);
      for (const b of beds) await b.charon?.stop();
      tb.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

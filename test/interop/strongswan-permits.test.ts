// Interop with strongSwan 5.9.8 (Debian) as the reference peer: two charons, under two
// authorities made by kasane's own PKI, each presenting the permit (RFC 5755 attribute
// certificate, src/pki/permit.ts) that the PEER's authority issued to it, checked by the acert
// plugin through `remote.groups`. This pins kasane's certificate and permit formats to what the
// reference implementation accepts and refuses, ahead of kasane's own IKEv2 against it.
//
//   hostA (10.1.0.10) - gwA ===== R ===== gwB - hostB (10.2.0.10)
//                       charon, authority A   charon, authority B
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acertPluginPath, authority, HOUR, permitPem, twoSites } from './authorities.js';
import { Testbed } from '../../src/testbed/netns.js';
import { Charon, type CharonConnection } from '../../src/testbed/strongswan.js';
import { netnsTest } from '../support/netns-gate.js';

const ROOT = new URL('../..', import.meta.url).pathname;

netnsTest(
  'strongSwan accepts kasane permits across two authorities, and refuses a wrong group, an expired permit and an untrusted issuer',
  { timeout: 600_000 },
  async (t) => {
    const plugin = acertPluginPath(ROOT);

    const now = Date.now();
    const A = await authority('authority-a', 'GA', now);
    const B = await authority('authority-b', 'GB', now);
    const rogue = await authority('rogue', 'GX', now); // an attribute authority nobody trusts
    const cas = [A.ca.root, A.ca.issuing, B.ca.root, B.ca.issuing].map((c) => c.cert.toString('pem'));

    const tb = new Testbed();
    const dir = mkdtempSync(join(tmpdir(), 'kasane-interop-'));
    const charons: Charon[] = [];
    try {
      const ns = twoSites(tb);

      // Seed 001 Figure 2: authority A issues the permit that lets GB connect to GA (GB presents it
      // and GA checks it with A's attribute authority), and authority B the mirror one.
      const forGB = await permitPem(A, B, 'P7', now - HOUR, now + 12 * HOUR);
      const forGA = await permitPem(B, A, 'P7', now - HOUR, now + 12 * HOUR);
      const conn = (local: 'A' | 'B', groups: string[]): CharonConnection => ({
        name: 'p7',
        localAddr: local === 'A' ? '10.200.1.2' : '10.200.2.2',
        remoteAddr: local === 'A' ? '10.200.2.2' : '10.200.1.2',
        localId: (local === 'A' ? A : B).cert.subject,
        remoteId: (local === 'A' ? B : A).cert.subject,
        groups,
        localTs: local === 'A' ? '10.1.0.0/24' : '10.2.0.0/24',
        remoteTs: local === 'A' ? '10.2.0.0/24' : '10.1.0.0/24',
      });
      let run = 0;
      /** Starts both charons for one case; stops the previous pair first. */
      const pair = async (o: {
        permitForGB: string[];
        permitForGA: string[];
        groupsAtA?: string[];
        aasAtA?: string[];
      }) => {
        for (const c of charons.splice(0)) await c.stop();
        run++;
        // A charon on each gateway: its own certificate, the permits it presents, the attribute
        // authorities and groups it accepts.
        const charon = (me: 'A' | 'B', aas: string[], permits: string[], groups: string[]) =>
          Charon.prepare(
            tb,
            me === 'A' ? ns.gwA : ns.gwB,
            join(dir, `${run}-${me.toLowerCase()}`),
            plugin,
            { cert: (me === 'A' ? A : B).cert.toString('pem'), key: (me === 'A' ? A : B).keyPem, cas, aas, permits },
            [conn(me, groups)],
          );
        const a = charon('A', o.aasAtA ?? [A.aa.cert.toString('pem')], o.permitForGA, o.groupsAtA ?? ['P7']);
        const b = charon('B', [B.aa.cert.toString('pem')], o.permitForGB, ['P7']);
        charons.push(a, b);
        await a.start();
        await b.start();
        return { a, b };
      };
      const ping = () => {
        try {
          tb.exec(ns.hostA, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.2.0.10');
          return true;
        } catch {
          return false;
        }
      };

      await t.test(
        'both directions: certificates from two authorities, permits checked by remote.groups, ping through the Child SA, a Child SA rekey',
        async () => {
          const { a, b } = await pair({ permitForGB: [forGB], permitForGA: [forGA] });
          assert.equal(ping(), false, 'nothing passes before an SA exists');
          assert.ok(b.initiate('p7'), `GB -> GA: ${b.lastOutput}\n--- GA log:\n${a.log()}`);
          assert.match(b.fullLog(), /sending end entity cert/);
          assert.match(b.fullLog(), /sending attribute certificate|attribute certificate/i);
          assert.ok(ping(), `hostA -> hostB through the Child SA\n${a.log()}`);
          const sas = a.swanctl('--list-sas');
          assert.match(sas, /p7: #\d+, ESTABLISHED, IKEv2/);
          assert.match(sas, /AES_GCM_16-256/);
          // Distinct Child SAs charon reported established (a rekey logs its inbound and outbound halves).
          const established = () =>
            new Set([...a.fullLog().matchAll(/CHILD_SA p7\{(\d+)\} established/g)].map((m) => m[1])).size;
          assert.equal(established(), 1);
          a.swanctl('--rekey', '--child', 'p7');
          const end = Date.now() + 10_000;
          while (established() < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
          assert.equal(established(), 2, `a second Child SA after the rekey:\n${a.log()}`);
          assert.match(
            a.fullLog(),
            /CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]/,
            'rekeyed with PFS (a KE payload)',
          );
          assert.ok(ping(), 'ping after the Child SA rekey');

          // The other direction, on fresh daemons: GA initiates.
          const second = await pair({ permitForGB: [forGB], permitForGA: [forGA] });
          assert.ok(second.a.initiate('p7'), `GA -> GB: ${second.a.lastOutput}\n--- GB log:\n${second.b.log()}`);
          assert.ok(ping(), 'hostA -> hostB with GA as initiator');
        },
      );

      await t.test('a permit for another VPN (group) is refused', async () => {
        const { a, b } = await pair({ permitForGB: [forGB], permitForGA: [forGA], groupsAtA: ['P8'] });
        assert.equal(b.initiate('p7', 5), false, 'GB -> GA must fail');
        assert.match(b.lastOutput + b.fullLog(), /AUTHENTICATION_FAILED/);
        assert.match(a.fullLog(), /group membership to 'P8' required|constraint check failed/);
        assert.equal(ping(), false);
      });

      await t.test('an expired permit is refused (strongSwan does not even send it)', async () => {
        const expired = await permitPem(A, B, 'P7', now - 3 * HOUR, now - HOUR);
        const { b } = await pair({ permitForGB: [expired], permitForGA: [forGA] });
        assert.equal(b.initiate('p7', 5), false, 'GB -> GA must fail');
        assert.match(b.lastOutput + b.fullLog(), /AUTHENTICATION_FAILED/);
        assert.equal(ping(), false);
      });

      await t.test('a permit from an attribute authority GA does not trust is refused', async () => {
        const foreign = await permitPem(rogue, B, 'P7', now - HOUR, now + HOUR);
        const { b } = await pair({ permitForGB: [foreign], permitForGA: [forGA] });
        assert.equal(b.initiate('p7', 5), false, 'GB -> GA must fail');
        assert.match(b.lastOutput + b.fullLog(), /AUTHENTICATION_FAILED/);
        assert.equal(ping(), false);
      });
    } finally {
      for (const c of charons) await c.stop();
      tb.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// kasane's IKEv2 against strongSwan 5.9.8 (Debian) with the acert plugin: kasane's gateway IKE
// edge (engine, UDP 500/4500, native tunnel-mode ESP in UDP) on gwA under authority A, charon with
// kernel-libipsec on gwB under authority B. Each side presents the permit the OTHER's authority
// issued and checks the one it receives with its own authority's attribute authority. Both
// directions, pings between the terminals through the Child SA, rekeys of the Child SA (both
// sides) and of the IKE SA (kasane), and the refusals both ways. (IPv6: kasane-strongswan-ipv6.test.ts.)
//
//   hostA (10.1.0.10) - gwA ===== R ===== gwB - hostB (10.2.0.10)
//                       kasane, authority A   charon, authority B
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acertPluginPath, HOUR, permitPem, twoSites } from './authorities.js';
import { Testbed } from '../../src/testbed/netns.js';
import { NativeExecutor } from '../../src/native/index.js';
import { childSas, ikeEvent, KasanePair, parties, ROOT, type PairOptions } from './kasane-pair.js';
import { netnsTest } from '../support/netns-gate.js';

netnsTest(
  'kasane and strongSwan: IKEv2 with permits across two authorities, both directions, rekeys, refusals',
  { timeout: 900_000 },
  async (t) => {
    const native = NativeExecutor.create();
    assert.ok(native.ok, `the native addon is built by npm install: ${native.ok ? '' : native.error.message}`);
    const plugin = acertPluginPath(ROOT);

    const P = await parties();
    const { A, B, rogue, now } = P;
    const tb = new Testbed();
    const dir = mkdtempSync(join(tmpdir(), 'kasane-ikeinterop-'));
    const bed = new KasanePair(tb, twoSites(tb), dir, plugin, P, { outside: 4, inside: [4] });
    try {
      const pair = (o: PairOptions = {}) => bed.pair(o);
      const ping = (count = 2) => bed.ping(4, count);

      await t.test(
        'strongSwan initiates: kasane authenticates it, pings pass, strongSwan rekeys the Child SA',
        async () => {
          const { charon, kasane } = await pair();
          assert.equal(ping(1), false, 'nothing passes before an SA exists');
          assert.ok(
            charon.initiate('p7'),
            `GB -> GA: ${charon.lastOutput}\n--- charon:\n${charon.log()}\n--- kasane:\n${kasane.lines.stderr}`,
          );
          await ikeEvent(kasane, 'child-up');
          assert.match(charon.fullLog(), /authentication of '.*' with ECDSA_WITH_SHA256_DER successful/);
          assert.ok(ping(), `hostA -> hostB through the Child SA\n${charon.log()}`);
          assert.match(charon.swanctl('--list-sas'), /p7: #\d+, ESTABLISHED, IKEv2[\s\S]*AES_GCM_16-256/);
          charon.swanctl('--rekey', '--child', 'p7');
          await ikeEvent(kasane, 'child-rekeyed');
          await ikeEvent(kasane, 'child-down'); // charon deletes the old SA
          assert.ok(ping(), 'ping after strongSwan rekeyed');
          assert.match(
            charon.fullLog(),
            /CREATE_CHILD_SA response \d+ \[ SA No KE TSi TSr \]/,
            'kasane answered with PFS (KE)',
          );
        },
      );

      await t.test(
        'kasane initiates: strongSwan authenticates it, pings pass, kasane rekeys the Child SA and the IKE SA',
        async () => {
          const { charon, kasane } = await pair({
            timers: { childLifetime: 20_000, ikeLifetime: 40_000, dpdDelay: 10_000 },
          });
          kasane.send('initiate');
          await ikeEvent(kasane, 'child-up');
          assert.match(charon.fullLog(), /authentication of '.*' with ECDSA_WITH_SHA256_DER successful/);
          assert.match(
            charon.fullLog(),
            /received cert request for "[^"]*authority-a/,
            "charon reads kasane's CERTREQ (SHA-1 of the CA public keys)",
          );
          assert.ok(ping(), `hostA -> hostB with kasane as initiator\n${charon.log()}`);
          await ikeEvent(kasane, 'child-rekeyed', 30_000);
          assert.match(charon.fullLog(), /CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]/);
          assert.ok(ping(), 'ping after kasane rekeyed the Child SA');
          assert.ok(childSas(charon) >= 2);
          await ikeEvent(kasane, 'ike-rekeyed', 40_000);
          assert.match(charon.fullLog(), /CREATE_CHILD_SA request \d+ \[ SA No KE \]/, 'an IKE SA rekey');
          assert.ok(ping(), 'ping after kasane rekeyed the IKE SA');
          assert.match(charon.swanctl('--list-sas'), /ESTABLISHED/);
        },
      );

      await t.test(
        'X25519: strongSwan proposes it; with kasane initiating, INVALID_KE_PAYLOAD moves kasane from ECP-256 to it; rekeys use it for PFS',
        async () => {
          const x = { ikeProposal: 'aes256gcm16-prfsha256-x25519', espProposal: 'aes256gcm16-x25519' };
          let p = await pair(x);
          assert.ok(p.charon.initiate('p7'), `GB -> GA with X25519: ${p.charon.lastOutput}`);
          assert.match(p.charon.swanctl('--list-sas'), /CURVE_25519/);
          assert.ok(ping(), 'ping over the X25519 SA');
          p.charon.swanctl('--rekey', '--child', 'p7');
          await ikeEvent(p.kasane, 'child-rekeyed');
          assert.ok(ping(), 'ping after a rekey with X25519 PFS');
          p = await pair(x);
          p.kasane.send('initiate');
          await ikeEvent(p.kasane, 'child-up');
          assert.match(
            p.charon.fullLog(),
            /INVALID_KE_PAYLOAD|requesting DH group CURVE_25519|DH group ECP_256 unacceptable/,
          );
          assert.match(p.charon.swanctl('--list-sas'), /CURVE_25519/);
          assert.ok(ping(), 'ping with kasane as initiator over X25519');
        },
      );

      await t.test('refused both ways: a permit for another VPN', async () => {
        // strongSwan's permit names P7, kasane wants P8: kasane refuses GB.
        let p = await pair({ kasaneVpnName: 'P8' });
        assert.equal(p.charon.initiate('p7', 5), false);
        assert.match(p.charon.lastOutput + p.charon.fullLog(), /AUTHENTICATION_FAILED/);
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /permit-wrong-group|permit-refused/);
        assert.equal(ping(1), false);
        // kasane's permit names P7, strongSwan wants P8: strongSwan refuses GA.
        p = await pair({ charonGroups: ['P8'] });
        p.kasane.send('initiate');
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /peer-refused-auth/);
        assert.match(p.charon.fullLog(), /group membership to 'P8' required|constraint check failed/);
        assert.equal(ping(1), false);
      });

      await t.test('refused both ways: an expired permit', async () => {
        let p = await pair({ charonPermits: [await permitPem(A, B, 'P7', now - 3 * HOUR, now - HOUR)] });
        assert.equal(
          p.charon.initiate('p7', 5),
          false,
          'strongSwan does not send an expired permit; kasane finds none',
        );
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /permit-missing/);
        p = await pair({ kasanePermit: await permitPem(B, A, 'P7', now - 3 * HOUR, now - HOUR) });
        p.kasane.send('initiate');
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /peer-refused-auth/);
        assert.equal(ping(1), false);
      });

      await t.test('refused both ways: a permit from an attribute authority the verifier does not trust', async () => {
        let p = await pair({ charonPermits: [await permitPem(rogue, B, 'P7', now - HOUR, now + HOUR)] });
        assert.equal(p.charon.initiate('p7', 5), false);
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /permit-wrong-issuer|permit-aki/);
        p = await pair({ kasanePermit: await permitPem(rogue, A, 'P7', now - HOUR, now + HOUR) });
        p.kasane.send('initiate');
        assert.match(String((await ikeEvent(p.kasane, 'auth-failed')).reason), /peer-refused-auth/);
        assert.equal(ping(1), false);
      });
    } finally {
      await bed.stop().catch(() => undefined);
      await bed.charon?.stop();
      tb.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

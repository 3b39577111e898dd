// Who may connect (seed 001): every way a peer's proof can be wrong is refused with
// AUTHENTICATION_FAILED (or the Child SA's own notify), logged with the reason, and leaves nothing
// installed on either side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralNames, Name as AsnName } from '@peculiar/asn1-x509';
import { AttCertIssuer, V2Form } from '@peculiar/asn1-x509-attr';
import { decodePermitAsn, signPermitInfo } from '../../../src/pki/permit.js';
import { generateKeyPair } from '../../../src/pki/keys.js';
import { keyObjectSigner } from '../../../src/ike/crypto/signature.js';
import { IkeEngine } from '../../../src/ike/engine/engine.js';
import { HOUR, makeAuthority, makeGateway, permitFor } from './peers.js';
import { IP_A, random, T0, World } from './net.js';
import { Prefix } from '../../../src/base/addr.js';

/** A with a bad permit toward B: B (the verifier, as responder) refuses; A hears AUTHENTICATION_FAILED. */
function refusedByResponder(w: World, code: RegExp): void {
  w.connect('a');
  const b = w.events('b', 'auth-failed');
  assert.equal(b.length, 1, `B refused: ${JSON.stringify(w.log.b.events)}`);
  assert.match(b[0].reason!, code);
  const a = w.events('a', 'auth-failed');
  assert.equal(a.length, 1);
  assert.match(a[0].reason!, /peer-refused-auth/);
  assert.deepEqual(w.log.a.installs, []);
  assert.deepEqual(w.log.b.installs, []);
  assert.deepEqual(w.a.status(w.now), []);
  assert.deepEqual(w.b.status(w.now), []);
  assert.equal(w.log.a.removes.at(-1)?.last, true, "A's core hears the attempt failed");
}

/** B initiates toward A with the same bad proof of A: now A verifies as initiator, refuses, and tells B. */
function refusedByInitiator(w: World, code: RegExp): void {
  w.connect('b');
  const b = w.events('b', 'auth-failed');
  assert.equal(b.length, 1, `B refused as initiator: ${JSON.stringify(w.log.b.events)}`);
  assert.match(b[0].reason!, code);
  assert.deepEqual(w.log.b.installs, []);
  // A had installed its half when it answered; B's AUTHENTICATION_FAILED takes it out again.
  assert.deepEqual(w.a.status(w.now), []);
  assert.deepEqual(w.installed('a'), []);
  assert.match(w.events('a', 'ike-down')[0]?.reason ?? '', /AUTHENTICATION_FAILED/);
}

async function withPermitOfA(make: (w: World) => Promise<Uint8Array>): Promise<World[]> {
  const out: World[] = [];
  for (let i = 0; i < 2; i++) {
    const w = await World.make();
    w.peersOfA = [w.entry('a', await make(w))];
    out.push(w);
  }
  return out;
}

const cases: [string, (w: World) => Promise<Uint8Array>, RegExp][] = [
  [
    'a permit for another holder',
    async (w) => permitFor(w.B, await makeGateway(w.A, 'gx', T0 - HOUR), 'shared', T0 - HOUR, T0 + HOUR),
    /permit-wrong-holder/,
  ],
  ['an expired permit', (w) => permitFor(w.B, w.ga, 'shared', T0 - 2 * HOUR, T0 - 60_000), /permit-expired/],
  ['a permit not yet valid', (w) => permitFor(w.B, w.ga, 'shared', T0 + HOUR, T0 + 2 * HOUR), /permit-not-yet-valid/],
  ['a permit for another VPN', (w) => permitFor(w.B, w.ga, 'other-vpn', T0 - HOUR, T0 + HOUR), /permit-wrong-group/],
  [
    'a permit from the holder’s own authority (foreign issuer)',
    (w) => permitFor(w.A, w.ga, 'shared', T0 - HOUR, T0 + HOUR),
    /permit-wrong-issuer|permit-aki/,
  ],
  [
    'a permit from an authority nobody trusts',
    async (w) => permitFor(await makeAuthority('rogue', T0 - HOUR), w.ga, 'shared', T0 - HOUR, T0 + HOUR),
    /permit-wrong-issuer|permit-aki/,
  ],
  [
    'a self-issued permit',
    async (w) => {
      // The permit names the holder itself as its issuer and is signed with the holder's key.
      const ac = decodePermitAsn(await permitFor(w.B, w.ga, 'shared', T0 - HOUR, T0 + HOUR));
      const subject = AsnConvert.parse(w.ga.cert.subjectName.toArrayBuffer(), AsnName);
      ac.acinfo.issuer = new AttCertIssuer({
        v2Form: new V2Form({ issuerName: new GeneralNames([new GeneralName({ directoryName: subject })]) }),
      });
      return signPermitInfo(ac.acinfo, w.ga.key);
    },
    /permit-self-issued|permit-wrong-issuer/,
  ],
  [
    'no permit at all (garbage in its place)',
    async () => new Uint8Array(Buffer.from('not a permit')),
    /permit-malformed|permit-refused/,
  ],
];

for (const [name, make, code] of cases) {
  test(`refused: ${name}, by the responder and by the initiator`, async () => {
    const [w1, w2] = await withPermitOfA(make);
    refusedByResponder(w1, code);
    refusedByInitiator(w2, code);
  });
}

test('refused: a certificate other than the one the authority delivered (not pinned), even from the same CA', async () => {
  const w = await World.make();
  const impostor = await makeGateway(w.A, 'ga', T0 - HOUR); // same name, same CA, other key
  w.peersOfB = [{ ...w.peersOfB[0], certificate: new Uint8Array(impostor.cert.rawData) }];
  w.connect('a');
  assert.match(w.events('b', 'auth-failed')[0].reason!, /auth-unknown-peer/);
  assert.deepEqual(w.log.b.installs, []);
  const w2 = await World.make();
  w2.peersOfB = [{ ...w2.peersOfB[0], certificate: new Uint8Array(impostor.cert.rawData) }];
  w2.connect('b');
  assert.match(w2.events('b', 'auth-failed')[0].reason!, /auth-cert-not-pinned/);
  assert.deepEqual(w2.installed('a'), []);
});

test('refused: an AUTH signed with another key than the certificate’s', async () => {
  const w = await World.make();
  const other = await generateKeyPair();
  const bad = new IkeEngine({
    local: { ...w.ga.identity, signer: keyObjectSigner(KeyObject.from(other.privateKey), 'ecdsa-with-SHA256') },
    endpoint: { address: IP_A, port: 500 },
    peers: () => w.peersOfA,
    random,
  });
  w.a = bad;
  w.connect('a');
  assert.match(w.events('b', 'auth-failed')[0].reason!, /auth-bad-signature/);
  assert.deepEqual(w.log.b.installs, []);
});

test('refused: traffic selectors other than the VPN’s prefixes (TS_UNACCEPTABLE), nothing installed', async () => {
  const w = await World.make();
  w.peersOfA = [{ ...w.peersOfA[0], localPrefixes: [Prefix.from('10.9.0.0/16')] }];
  w.connect('a');
  assert.match(w.events('b', 'auth-failed')[0].reason!, /child-ts-unacceptable/);
  assert.match(w.events('a', 'failed')[0].reason!, /peer-refused/);
  assert.deepEqual(w.log.a.installs, []);
  assert.deepEqual(w.log.b.installs, []);
});

test('one certificate in two pairwise VPNs: the permit and the selectors pick the VPN', async () => {
  const w = await World.make();
  const p2a = await permitFor(w.B, w.ga, 'second', T0 - HOUR, T0 + HOUR);
  const p2b = await permitFor(w.A, w.gb, 'second', T0 - HOUR, T0 + HOUR);
  // Each side's entry for the second VPN: its permit, its own and the other side's prefixes.
  const second = (side: 'a' | 'b', permit: Uint8Array, local: string, remote: string) =>
    w.entry(side, permit, {
      vpnId: 8,
      vpnName: 'second',
      localPrefixes: [Prefix.from(local)],
      remotePrefixes: [Prefix.from(remote)],
    });
  w.peersOfA.push(second('a', p2a, '10.1.1.0/24', '10.2.1.0/24'));
  w.peersOfB.push(second('b', p2b, '10.2.1.0/24', '10.1.1.0/24'));
  w.take('a', w.a.initiate('gb', 8, w.now));
  w.settle();
  assert.deepEqual(
    w.log.b.installs.map((i) => i.vpnId),
    [8],
  );
  assert.deepEqual(w.log.b.installs[0].remotePrefixes.map(String), ['10.1.1.0/24']);
});

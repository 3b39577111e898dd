// Federation between two real authorities (seed 001 Figure 2): mutual TLS after the operators
// exchanged roots, a pairwise VPN shared by both, members on each side, permits issued by each
// authority to the other's gateways and delivered with the verified certificates; renewal,
// withdrawal, and the refusals (an unknown peer, a forged member certificate).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import { x509 } from '../../src/pki/x509.js';
import { verifyPermit } from '../../src/pki/permit.js';
import { createCsr } from '../../src/pki/ca.js';
import { generateKeyPair } from '../../src/pki/keys.js';
import { FEDERATION_FORMAT, parseFederationMessage } from '../../src/authority/federation.js';
import { ApiError } from '../../src/authority/errors.js';
import type { AuthoritySnapshot, VpnMember } from '../../src/core/types.js';
import { postgresForTests } from './helpers/postgres.js';
import {
  apiError,
  bundleGateway,
  exchangeTwice,
  freePort,
  peerAndShare,
  startTestAuthority,
  unauditedVersions,
  type TestAuthority,
  type TestGateway,
} from './helpers/authority.js';

const aaOf = (t: TestAuthority) =>
  new x509.X509Certificate(readFileSync(join(t.dir, 'a', 'certs', 'attribute-authority.pem'), 'utf8'));

async function snapshotOf(g: TestGateway): Promise<AuthoritySnapshot> {
  return g.snapshot(await g.client.changes(0, { waitSeconds: 0 }));
}

function member(s: AuthoritySnapshot, vpn: string, gateway: string): VpnMember | undefined {
  return s.vpns.find((v) => v.name === vpn)?.members.find((m) => m.gateway === gateway);
}

const pg = await postgresForTests();
after(() => pg.server?.stop());

for (const store of ['sqlite', 'postgres'] as const)
  describe(
    `federation between two authorities (A on ${store}, B on sqlite)`,
    { skip: store === 'postgres' ? pg.skip : false },
    () => {
      let clock = Date.now();
      const now = () => clock;
      let A: TestAuthority;
      let B: TestAuthority;
      let ga: TestGateway;
      let ga2: TestGateway;
      let gb: TestGateway;

      before(async () => {
        A = await startTestAuthority({
          name: 'authority-a',
          now,
          federation: { permitValidityMs: 3_600_000 },
          database: store === 'postgres' ? await pg.server!.createDatabase() : undefined,
        });
        // B serves on IPv6: A reaches it at https://[::1]:port and knows it by that address in its certificate.
        B = await startTestAuthority({
          name: 'authority-b',
          now,
          federation: { permitValidityMs: 3_600_000 },
          listen: { host: '::1', port: 0 },
        });
        ga = await bundleGateway(A, 'ga', '192.0.2.1');
        ga2 = await bundleGateway(A, 'ga2', '192.0.2.3');
        gb = await bundleGateway(B, 'gb', '2001:db8:b::2');
      });
      after(async () => {
        for (const g of [ga, ga2, gb]) g?.client.close();
        await A?.close();
        await B?.close();
      });

      it('peers over mutual TLS, shares a pairwise VPN, and delivers each side the other’s members with certificates and permits', async () => {
        await peerAndShare(A, B, { name: 'shared', id: 7000 });
        await A.admin.addMember('shared', 'ga', ['10.1.0.0/24']);
        await A.admin.addMember('shared', 'ga2', ['10.1.1.0/24']);
        await B.admin.addMember('shared', 'gb', ['10.2.0.0/24', '2001:db8:2::/64']);
        await exchangeTwice(A, B);
        const view = await A.admin.federation();
        assert.equal(view.peers[0].lastError, null);
        assert.deepEqual(
          view.shares.map((s) => [s.vpn, s.peer, s.foreignMembers.map((m) => m.gateway)]),
          [['shared', 'authority-b', ['gb']]],
        );
        // Every permit A knows, with its end (the console's federation page and overview; whole seconds, as in X.509).
        const end = Math.floor((clock + 3_600_000) / 1000) * 1000;
        assert.deepEqual(
          view.permits.map((p) => [p.vpn, p.direction, p.peer, p.holder, p.notAfter]).sort(),
          [
            ['shared', 'in', 'authority-b', 'ga', end],
            ['shared', 'in', 'authority-b', 'ga2', end],
            ['shared', 'local', '', 'ga', end],
            ['shared', 'local', '', 'ga2', end],
            ['shared', 'out', 'authority-b', 'gb', end],
          ].sort(),
        );
        assert.equal(view.permitValidityMs, 3_600_000);
        assert.deepEqual(
          view.shares.map((s) => [s.permitsIn, s.permitsOut]),
          [[2, 1]],
        );

        const sb = await snapshotOf(gb);
        const fa = member(sb, 'shared', 'ga@authority-a');
        assert.ok(fa, `gb sees ga: ${JSON.stringify(sb.vpns[0]?.members.map((m) => m.gateway))}`);
        assert.equal(fa.address, '192.0.2.1');
        assert.deepEqual(fa.prefixes.map(String), ['10.1.0.0/24']);
        assert.ok(fa.certificate && fa.permit, 'certificate and permit delivered');
        assert.ok(
          Buffer.from(fa.certificate).equals(Buffer.from(new x509.X509Certificate(ga.bundle.certificate).rawData)),
          "ga's certificate as A enrolled it",
        );
        // The permit gb presents to ga: issued by A's attribute authority, held by gb's certificate.
        const gbCert = new x509.X509Certificate(gb.bundle.certificate);
        const ok = verifyPermit(fa.permit, {
          attributeAuthority: aaOf(A),
          holder: gbCert,
          group: 'shared',
          now: new Date(clock),
        });
        assert.ok(ok.ok, ok.ok ? '' : ok.error.message);
        // gb verifies the permits it receives with ITS OWN authority's AA.
        assert.ok(sb.attributeAuthority && Buffer.from(sb.attributeAuthority).equals(Buffer.from(aaOf(B).rawData)));
        assert.ok(sb.protectedPrefixes.map(String).includes('10.1.0.0/24'), 'foreign prefixes are protected');

        const sa = await snapshotOf(ga);
        const fb = member(sa, 'shared', 'gb@authority-b');
        assert.ok(fb?.permit && fb.certificate);
        assert.deepEqual(
          [fb.address, fb.prefixes.map(String)],
          ['2001:db8:b::2', ['10.2.0.0/24', '2001:db8:2::/64']],
          'a dual-stack foreign member with its IPv6 address',
        );
        assert.ok(sa.protectedPrefixes.map(String).includes('2001:db8:2::/64'));
        assert.match((await A.admin.federation()).peers[0].url, /^https:\/\/\[::1\]:\d+$/);
        const gaCert = new x509.X509Certificate(ga.bundle.certificate);
        assert.ok(
          verifyPermit(fb.permit, {
            attributeAuthority: aaOf(B),
            holder: gaCert,
            group: 'shared',
            now: new Date(clock),
          }).ok,
        );
        // Between A's own members of the pairwise VPN: permits from A itself.
        const local = member(sa, 'shared', 'ga2');
        assert.ok(local?.permit && local.certificate);
        assert.ok(
          verifyPermit(local.permit, {
            attributeAuthority: aaOf(A),
            holder: gaCert,
            group: 'shared',
            now: new Date(clock),
          }).ok,
        );
      });

      it('renews permits before they expire (at 2/3 of their validity)', async () => {
        const before = member(await snapshotOf(gb), 'shared', 'ga@authority-a')!;
        clock += 50 * 60_000; // 50 min of a 60 min permit
        await exchangeTwice(A, B);
        const after = member(await snapshotOf(gb), 'shared', 'ga@authority-a')!;
        assert.ok(after.permitNotAfter! > before.permitNotAfter!, 'a new permit with a later end');
        assert.ok(!Buffer.from(after.permit!).equals(Buffer.from(before.permit!)));
      });

      it('an IKE key in a token: the gateway gets an IKE certificate over its channel; peers are delivered it, permits name it', async () => {
        const keys = await generateKeyPair();
        const csr = await createCsr(keys, 'ga');
        const { certificate } = await ga.client.requestIkeCertificate(csr);
        const ike = new x509.X509Certificate(certificate);
        assert.equal(ike.subject, new x509.X509Certificate(ga.bundle.certificate).subject);
        await exchangeTwice(A, B);
        const fa = member(await snapshotOf(gb), 'shared', 'ga@authority-a')!;
        assert.ok(
          Buffer.from(fa.certificate!).equals(Buffer.from(ike.rawData)),
          'the IKE certificate is the one pinned at the peer',
        );
        // The permit ga presents to gb names the IKE certificate as holder.
        const toGb = member(await snapshotOf(ga), 'shared', 'gb@authority-b')!;
        assert.ok(
          verifyPermit(toGb.permit!, {
            attributeAuthority: aaOf(B),
            holder: ike,
            group: 'shared',
            now: new Date(clock),
          }).ok,
        );
        // It authenticates IKE only, never the channel; a CSR for another name is refused.
        assert.equal(
          (await apiError(ga.client.requestIkeCertificate(await createCsr(keys, 'gb')))).code,
          'csr-name-mismatch',
        );
      });

      it('withdraws: a member removed at A disappears with its permit at B; unsharing removes everything', async () => {
        await A.admin.removeMember('shared', 'ga2');
        await A.admin.syncFederation();
        const sb = await snapshotOf(gb);
        assert.equal(member(sb, 'shared', 'ga2@authority-a'), undefined);
        assert.ok(member(sb, 'shared', 'ga@authority-a'));
        await B.admin.unshareVpn('shared', 'authority-a');
        const sb2 = await snapshotOf(gb);
        assert.deepEqual(
          sb2.vpns.find((v) => v.name === 'shared')!.members.map((m) => m.gateway),
          ['gb'],
        );
        await A.admin.syncFederation();
        const view = await A.admin.federation();
        assert.deepEqual(view.shares[0].foreignMembers, [], 'B no longer tells A its members');
        assert.equal(view.shares[0].permitsOut, 0, "A's permits for B's gateways are withdrawn");
        await B.admin.shareVpn('shared', 'authority-a');
      });

      it('refuses: a client that is not a peer, a message naming another authority, a bad message', async () => {
        // A gateway certificate of B is not B's authority certificate (its SANs do not name B's host).
        const post = (key: string, certPem: string, body: unknown) =>
          new Promise<number>((resolve, reject) => {
            // A fresh TLS handshake each time (no agent): a resumed session carries no issuer chain, and the peer is
            // authenticated first.
            const req = https.request(
              new URL('/v1/federation/exchange', A.url),
              {
                method: 'POST',
                ca: A.ca,
                key,
                cert: certPem,
                headers: { 'content-type': 'application/json' },
                agent: false,
              },
              (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode ?? 0));
              },
            );
            req.on('error', reject);
            req.end(JSON.stringify(body));
          });
        const msg = {
          format: FEDERATION_FORMAT,
          authority: 'authority-b',
          issuing: 'x',
          attributeAuthority: 'x',
          vpns: [],
          permits: [],
        };
        assert.equal(await post(gb.key, gb.bundle.certificate + gb.bundle.chain[0], msg), 403);
        const bKey = readFileSync(join(B.dir, 'a', 'keystore', 'server.key'), 'utf8');
        const bCert =
          readFileSync(join(B.dir, 'a', 'certs', 'server.pem'), 'utf8') +
          readFileSync(join(B.dir, 'a', 'certs', 'issuing-ca.pem'), 'utf8');
        assert.equal(await post(bKey, bCert, { ...msg, authority: 'authority-c' }), 403);
        assert.equal(await post(bKey, bCert, { ...msg, vpns: 'nope' }), 400);
        assert.equal(
          (await apiError(A.admin.addPeer({ name: 'authority-a', url: B.url, root: B.ca }))).code,
          'self-peer',
        );
        assert.equal(
          (await apiError(A.admin.addPeer({ name: 'authority-b', url: B.url, root: B.ca }))).code,
          'peer-exists',
        );
        assert.equal(
          (await apiError(A.admin.addPeer({ name: 'authority-x', url: 'http://x', root: B.ca }))).code,
          'bad-url',
        );
        assert.equal((await apiError(A.admin.shareVpn('shared', 'nobody'))).code, 'unknown-peer');
        await A.admin.createVpn({ name: 'groupvpn', mode: 'group' });
        assert.equal((await apiError(A.admin.shareVpn('groupvpn', 'authority-b'))).code, 'not-pairwise');
      });

      it('takes a version only for a change, with its audit entry: rounds that change nothing and rounds that fail take none', async () => {
        for (const t of [A, B]) await t.admin.syncFederation();
        const before = { a: (await A.admin.status()).version, b: (await B.admin.status()).version };
        for (let i = 0; i < 3; i++) for (const t of [A, B]) await t.admin.syncFederation();
        assert.deepEqual(
          { a: (await A.admin.status()).version, b: (await B.admin.status()).version },
          before,
          'nothing changed',
        );
        // A peer that does not answer: its error is shown, and no version is taken for it.
        await A.admin.addPeer({ name: 'authority-gone', url: `https://127.0.0.1:${await freePort()}`, root: B.ca });
        const v = (await A.admin.status()).version;
        await A.admin.syncFederation();
        await A.admin.syncFederation();
        assert.equal((await A.admin.status()).version, v);
        const gone = (await A.admin.federation()).peers.find((p) => p.name === 'authority-gone');
        assert.ok(gone?.lastError, JSON.stringify(gone));
        await A.admin.removePeer('authority-gone');
        for (const [name, t] of [
          ['A', A],
          ['B', B],
        ] as const)
          assert.deepEqual(await unauditedVersions(t), [], name);
      });
    },
  );

describe("a peer authority's members, as received", () => {
  const message = (address: string, prefixes: string[]) => ({
    format: FEDERATION_FORMAT,
    authority: 'authority-b',
    issuing: 'PEM',
    attributeAuthority: 'PEM',
    vpns: [{ name: 'shared', id: 7000, members: [{ gateway: 'gb', address, prefixes, certificate: 'DER' }] }],
    permits: [],
  });
  it('are held to the rules for our own: IPv6 canonical; v4-mapped, link-local, multicast and host bits refused', () => {
    const m = parseFederationMessage(message('2001:0DB8:000B::2', ['10.2.0.0/24', '2001:DB8:2:0::/64']));
    assert.deepEqual(
      m.vpns[0].members.map((x) => [x.address, x.prefixes]),
      [['2001:db8:b::2', ['10.2.0.0/24', '2001:db8:2::/64']]],
    );
    for (const [address, prefixes, why] of [
      ['::ffff:198.51.100.2', ['10.2.0.0/24'], /bad address of gb.*IPv4-mapped/],
      ['fe80::2', ['10.2.0.0/24'], /bad address of gb.*link-local/],
      ['2001:db8:b::2', ['::ffff:10.2.0.0/120'], /bad prefix in VPN shared.*IPv4-mapped.*10\.2\.0\.0\/24/],
      ['2001:db8:b::2', ['ff05::/16'], /multicast/],
      ['2001:db8:b::2', ['2001:db8:2::1/64'], /host bits set/],
    ] as const) {
      assert.throws(
        () => parseFederationMessage(message(address, [...prefixes])),
        (e: unknown) => e instanceof ApiError && e.code === 'bad-federation-message' && why.test(e.message),
      );
    }
  });
});

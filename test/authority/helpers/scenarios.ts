// The authority's end-to-end scenarios, run once on SQLite and once on PostgreSQL: a real authority
// over real HTTPS with mutual TLS on 127.0.0.1, real gateways' keys, real HPKE.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthorityClient, enroll, gatewayClient, openDelivery, parseBundle } from '../../../src/authority/client.js';
import { parseListen } from '../../../src/authority/config.js';
import { initAuthority, startAuthority } from '../../../src/authority/lifecycle.js';
import { routeList } from '../../../src/authority/server.js';
import { createCsr } from '../../../src/pki/ca.js';
import { generateKeyPair, pemToDer } from '../../../src/pki/keys.js';
import { Prefix } from '../../../src/base/addr.js';
import type { AuthoritySnapshot } from '../../../src/core/types.js';
import {
  apiError,
  bundleGateway,
  failingStore,
  freePort,
  gatewayOf,
  killAndWait,
  spawnAuthority,
  startTestAuthority,
  unauditedVersions,
  tokenGateway,
  type TestAuthority,
  type TestGateway,
} from './authority.js';

/**
 * The token with one character of its secret replaced by a different one, so it never matches.
 * (Overwriting the last two characters with "AA" left the token as it was when it already ended
 * so: once in about 1024 runs.)
 */
function tampered(token: string): string {
  const at = token.length - 5;
  return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
}

export interface Backend {
  kind: 'sqlite' | 'postgres';
  /** A fresh database URL (PostgreSQL) or undefined (SQLite in the data directory). */
  database(): Promise<string | undefined>;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function keysOf(s: AuthoritySnapshot, vpn: string): Map<number, string> {
  const v = s.vpns.find((x) => x.name === vpn);
  return new Map((v?.epochs ?? []).map((e) => [e.epoch, hex(e.key)]));
}

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

export function authorityScenarios(backend: Backend): void {
  describe(`authority on ${backend.kind}`, () => {
    let t: TestAuthority;
    let g1: TestGateway;
    let g2: TestGateway;
    let g3: TestGateway;

    before(async () => {
      t = await startTestAuthority({
        database: await backend.database(),
        rotation: { overlapMs: 2000, graceMs: 2000, urgentGraceMs: 3000 },
      });
      await t.admin.createVpn({ name: 'corp', id: 10 });
      await t.admin.createVpn({ name: 'dept', id: 20 });
      g1 = await bundleGateway(t, 'gw1', '192.0.2.1');
      g2 = await tokenGateway(t, 'gw2', '192.0.2.2');
      g3 = await bundleGateway(t, 'gw3', '192.0.2.3');
      await t.admin.addMember('corp', 'gw1', ['10.1.0.0/16']);
      await t.admin.addMember('corp', 'gw2', ['10.2.0.0/16']);
      await t.admin.addMember('dept', 'gw3', ['10.3.0.0/16']);
    });

    after(async () => {
      for (const g of [g1, g2, g3]) g?.client.close();
      await t?.close();
    });

    it('enrolls offline (bundle) and online (token + CSR); certificates are standard X.509 that openssl reads', async () => {
      for (const g of [g1, g2]) {
        const self = await g.client.self();
        assert.equal(self.name, g.name);
        assert.equal(self.status, 'active');
        assert.equal(self.certificate?.method, g === g1 ? 'bundle' : 'csr');
      }
      const info = await t.admin.getGateway('gw2');
      assert.equal(info.certificate?.method, 'csr');
      if (!hasOpenssl) return;
      const dir = mkdtempSync(join(tmpdir(), 'kasane-openssl-'));
      try {
        writeFileSync(join(dir, 'gw.der'), pemToDer(g2.bundle.certificate, 'CERTIFICATE'));
        writeFileSync(join(dir, 'gw.pem'), g2.bundle.certificate);
        writeFileSync(join(dir, 'issuing.pem'), g2.bundle.chain[0]);
        writeFileSync(join(dir, 'root.pem'), t.ca);
        const text = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'gw.der'), '-noout', '-text'], {
          encoding: 'utf8',
        });
        assert.equal(text.status, 0, text.stderr);
        assert.match(text.stdout, /Subject: .*CN = gw2/);
        assert.match(text.stdout, /ASN1 OID: prime256v1/);
        assert.match(text.stdout, /Digital Signature, Key Agreement/);
        assert.match(text.stdout, /TLS Web Client Authentication/);
        const verify = spawnSync(
          'openssl',
          ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'issuing.pem'), join(dir, 'gw.pem')],
          { encoding: 'utf8' },
        );
        assert.equal(verify.status, 0, verify.stdout + verify.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('refuses a replayed, an expired, a malformed token and a bad CSR with precise 4xx errors', async () => {
      await t.admin.addGateway('gw-tok', '192.0.2.50');
      const tok = await t.admin.createEnrollToken('gw-tok', { ttlSeconds: 60 });
      const keys = await generateKeyPair();
      const raw = new AuthorityClient({ url: t.url, ca: t.ca });
      try {
        // A bad CSR is refused and does not use up the token.
        let e = await apiError(
          raw.request('POST', '/v1/enroll', {
            token: tok.token,
            csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
          }),
        );
        assert.deepEqual([e.status, e.code], [400, 'bad-csr']);
        const p384 = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, [
          'sign',
          'verify',
        ])) as CryptoKeyPair;
        e = await apiError(raw.request('POST', '/v1/enroll', { token: tok.token, csr: await createCsrP384(p384) }));
        assert.deepEqual([e.status, e.code], [400, 'bad-csr-key']);
        e = await apiError(
          raw.request('POST', '/v1/enroll', { token: tok.token, csr: await createCsr(keys, 'someone-else') }),
        );
        assert.deepEqual([e.status, e.code], [400, 'csr-name-mismatch']);
        e = await apiError(
          raw.request('POST', '/v1/enroll', {
            token: tampered(tok.token),
            csr: await createCsr(keys, 'gw-tok'),
          }),
        );
        assert.deepEqual([e.status, e.code], [401, 'bad-token']);
        e = await apiError(
          raw.request('POST', '/v1/enroll', { token: 'not-a-token', csr: await createCsr(keys, 'gw-tok') }),
        );
        assert.deepEqual([e.status, e.code], [401, 'bad-token']);
        // The token still works once...
        const b = await enroll({ url: t.url, token: tok.token, ca: t.ca, name: 'gw-tok', keys });
        assert.equal(b.gateway.name, 'gw-tok');
        assert.equal(b.privateKey, undefined, 'the key stayed with the gateway');
        // ...and only once.
        e = await apiError(enroll({ url: t.url, token: tok.token, ca: t.ca, name: 'gw-tok' }));
        assert.deepEqual([e.status, e.code], [401, 'token-used']);
        // Expired.
        await t.admin.addGateway('gw-exp', '192.0.2.51');
        const short = await t.admin.createEnrollToken('gw-exp', { ttlSeconds: 1 });
        await new Promise((r) => setTimeout(r, 1200));
        e = await apiError(enroll({ url: t.url, token: short.token, ca: t.ca, name: 'gw-exp' }));
        assert.deepEqual([e.status, e.code], [401, 'token-expired']);
        assert.equal((await t.admin.getGateway('gw-exp')).status, 'pending');
        // A token for an enrolled gateway needs `replace`.
        e = await apiError(t.admin.createEnrollToken('gw-tok'));
        assert.deepEqual([e.status, e.code], [409, 'gateway-enrolled']);
      } finally {
        raw.close();
      }
    });

    it('delivers a rotation to every member within a second; each opens it with its own key, a non-member cannot', async () => {
      const s1 = await g1.client.changes(0);
      const s2 = await g2.client.changes(0);
      const s3 = await g3.client.changes(0);
      const before1 = await g1.snapshot(s1);
      assert.deepEqual([...keysOf(before1, 'corp').keys()], [1]);
      // Both members wait; the non-member waits too and must not be woken.
      const t0 = Date.now();
      const arrived: number[] = [];
      const timed = <T>(p: Promise<T>): Promise<T> => p.then((v) => (arrived.push(Date.now()), v));
      const w1 = timed(g1.client.changes(s1.version, { waitSeconds: 10 }));
      const w2 = timed(g2.client.changes(s2.version, { waitSeconds: 10 }));
      const w3 = g3.client.changes(s3.version, { waitSeconds: 2 });
      await new Promise((r) => setTimeout(r, 100));
      const rotatedAt = Date.now();
      const r = await t.admin.rotateVpn('corp');
      assert.equal(r.epoch, 2);
      const [c1, c2, c3] = await Promise.all([w1, w2, w3]);
      const latency = Math.max(...arrived) - rotatedAt;
      assert.ok(latency < 1000, `delivered after ${latency} ms`);
      assert.ok(c1.changed && c2.changed);
      assert.equal(c3.changed, false, 'a gateway outside the VPN is not woken');
      assert.ok(Date.now() - t0 >= 2000);
      const a = await g1.snapshot(c1);
      const b = await g2.snapshot(c2);
      const ka = keysOf(a, 'corp');
      const kb = keysOf(b, 'corp');
      assert.deepEqual([...ka.keys()], [1, 2]);
      assert.deepEqual(ka, kb, 'both members hold the same keys');
      assert.equal(ka.get(1), keysOf(before1, 'corp').get(1));
      assert.notEqual(ka.get(2), ka.get(1));
      // The new epoch arrives before it becomes active (the overlap).
      const e2 = a.vpns[0].epochs.find((e) => e.epoch === 2)!;
      assert.ok(Math.max(...arrived) < e2.activeFrom, 'delivered before activeFrom');
      // SPIs: per (VPN, sender, epoch), unique, >= 256.
      const spis = a.vpns[0].members.flatMap((m) => m.spis.map((s) => s.spi));
      assert.equal(new Set(spis).size, spis.length);
      assert.ok(spis.every((s) => s >= 256));
      assert.equal(spis.length, 4);
      // The non-member cannot open what the members got.
      await assert.rejects(openDelivery(c1.delivery, g3.key, { gateway: 'gw1' }), /does not open/);
      // Nor can a member open another member's delivery.
      await assert.rejects(openDelivery(c1.delivery, g2.key, { gateway: 'gw1' }), /does not open/);
      assert.ok(!(await g3.snapshot(await g3.client.changes(0))).vpns.some((v) => v.name === 'corp'));
    });

    it('a disconnected gateway catches up on every missed change through its cursor', async () => {
      const start = await g1.client.changes(0);
      const cursor = start.version;
      // While gw1 is away: five changes that concern it, one that does not.
      await t.admin.rotateVpn('corp');
      await t.admin.updateMember('corp', 'gw2', { add: ['10.22.0.0/16'] });
      await t.admin.updateGateway('gw2', { address: '192.0.2.22' });
      await t.admin.addDirectory('172.16.0.0/12', 'future site');
      await t.admin.addGateway('gw4', '192.0.2.4');
      const g4 = await bundleGateway(t, 'gw4b', '192.0.2.44');
      try {
        await t.admin.addMember('corp', 'gw4b', ['10.4.0.0/16']);
        await t.admin.addMember('dept', 'gw3', ['10.33.0.0/16']); // not gw1's VPN
        const c = await g1.client.changes(cursor, { waitSeconds: 5 });
        assert.ok(c.changed);
        assert.equal(c.reset, false);
        const actions = c.events.map((e) => e.action);
        assert.deepEqual(
          actions.filter((a) => a !== 'directory.change'),
          ['vpn.rotate', 'member.update', 'member.address', 'directory.add', 'member.add'],
        );
        // The prefix gw3 put into dept (not gw1's VPN) changed the directory every gateway holds.
        assert.ok(c.events.some((e) => e.action === 'directory.change'));
        assert.ok(c.events.every((e) => e.version > cursor));
        const s = await g1.snapshot(c);
        const corp = s.vpns.find((v) => v.name === 'corp')!;
        assert.equal(Math.max(...corp.epochs.map((e) => e.epoch)), 3);
        const m2 = corp.members.find((m) => m.gateway === 'gw2')!;
        assert.equal(m2.address, '192.0.2.22');
        assert.deepEqual(m2.prefixes.map(String).sort(), ['10.2.0.0/16', '10.22.0.0/16']);
        const m4 = corp.members.find((m) => m.gateway === 'gw4b')!;
        assert.ok(m4.spis.length >= 1);
        assert.ok(s.protectedPrefixes.some((p) => p.equals(Prefix.from('172.16.0.0/12'))));
        assert.ok(
          s.protectedPrefixes.some((p) => p.equals(Prefix.from('10.33.0.0/16'))),
          'the directory lists every VPN prefix',
        );
        // Resuming from the answer's version: nothing new.
        const again = await g1.client.changes(c.version, { waitSeconds: 1 });
        assert.equal(again.changed, false);
        // A cursor ahead of the authority (restored database): full resync.
        const ahead = await g1.client.changes(c.version + 1000);
        assert.ok(ahead.changed && ahead.reset && ahead.delivery);
        // The new member decrypts the same current keys.
        const k4 = keysOf(await g4.snapshot(await g4.client.changes(0)), 'corp');
        assert.equal(k4.get(3), keysOf(s, 'corp').get(3));
      } finally {
        g4.client.close();
        await t.admin.removeMember('corp', 'gw4b');
        await t.admin.updateMember('corp', 'gw2', { remove: ['10.22.0.0/16'] });
      }
    });

    it('a removed member gets no new keys; the VPN re-keys at once', async () => {
      const g5 = await tokenGateway(t, 'gw5', '192.0.2.5');
      try {
        await t.admin.addMember('corp', 'gw5', ['10.5.0.0/16']);
        const c5 = await g5.client.changes(0);
        const held = keysOf(await g5.snapshot(c5), 'corp');
        assert.ok(held.size >= 1);
        const c1 = await g1.client.changes(0);
        const w1 = g1.client.changes(c1.version, { waitSeconds: 10 });
        const w5 = g5.client.changes(c5.version, { waitSeconds: 10 });
        await new Promise((r) => setTimeout(r, 50));
        const removedAt = Date.now();
        await t.admin.removeMember('corp', 'gw5');
        const [n1, n5] = await Promise.all([w1, w5]);
        assert.ok(n1.changed && n5.changed);
        const s1 = await g1.snapshot(n1);
        const corp = s1.vpns.find((v) => v.name === 'corp')!;
        const newest = corp.epochs[corp.epochs.length - 1];
        assert.ok(!held.has(newest.epoch), 'a new epoch the removed member never held');
        assert.ok(newest.activeFrom <= Date.now() && newest.activeFrom >= removedAt - 5, 'active at once');
        for (const e of corp.epochs.slice(0, -1))
          assert.ok(e.expiresAt <= Date.now() + 3000 + 50, 'old epochs end after the short grace');
        assert.ok(!corp.members.some((m) => m.gateway === 'gw5'));
        const s5 = await g5.snapshot(n5);
        assert.ok(!s5.vpns.some((v) => v.name === 'corp'), 'the removed gateway no longer receives the VPN');
        // Later rotations never reach it either.
        await t.admin.rotateVpn('corp');
        const later = await g5.client.changes(n5.version, { waitSeconds: 1 });
        assert.equal(later.changed, false);
        assert.ok(!(await g5.snapshot(await g5.client.changes(0))).vpns.some((v) => v.name === 'corp'));
      } finally {
        g5.client.close();
      }
    });

    it('a revoked gateway is refused by mutual TLS and by the API, and its VPNs re-key', async () => {
      const g6 = await bundleGateway(t, 'gw6', '192.0.2.6');
      await t.admin.addMember('dept', 'gw6', ['10.6.0.0/16']);
      await g6.client.changes(0);
      const before = keysOf(await g3.snapshot(await g3.client.changes(0)), 'dept');
      await t.admin.revokeGateway('gw6', { reason: 'stolen', compromised: true });
      // The open keep-alive connection: refused by the API.
      let e = await apiError(g6.client.changes(0));
      assert.deepEqual([e.status, e.code], [403, 'gateway-revoked']);
      // A new TLS connection: the certificate is on the CRL.
      const fresh = gatewayClient(g6.bundle);
      e = await apiError(fresh.changes(0));
      assert.deepEqual([e.status, e.code], [403, 'certificate-revoked']);
      fresh.close();
      g6.client.close();
      const crl = (await t.admin.crls()).issuing;
      assert.match(crl, /BEGIN X509 CRL/);
      const after = keysOf(await g3.snapshot(await g3.client.changes(0)), 'dept');
      assert.ok(
        [...after.keys()].some((k) => !before.has(k)),
        'dept got a new epoch',
      );
      const info = await t.admin.getGateway('gw6');
      assert.equal(info.status, 'revoked');
      assert.equal(info.certificate?.revokeReason, 'key-compromise');
      // Audit: who did what.
      const log = await t.admin.audit({ gateway: 'gw6' });
      assert.ok(log.some((x) => x.action === 'gateway.revoke' && x.actor === 'admin:initial'));
    });

    it('refuses invalid changes with precise 4xx errors and changes nothing', async () => {
      const before = await t.admin.status();
      const cases: [string, () => Promise<unknown>, number, string][] = [
        ['bad CIDR', () => t.admin.addMember('corp', 'gw1', ['10.0.0.0/33']), 400, 'bad-cidr'],
        ['host bits', () => t.admin.addMember('corp', 'gw1', ['10.9.0.1/16']), 400, 'bad-cidr'],
        ['not an address', () => t.admin.addMember('corp', 'gw1', ['banana']), 400, 'bad-cidr'],
        ['unknown VPN', () => t.admin.addMember('nope', 'gw1', ['10.9.0.0/16']), 404, 'unknown-vpn'],
        ['unknown gateway', () => t.admin.addMember('corp', 'nope', ['10.9.0.0/16']), 404, 'unknown-gateway'],
        [
          'ambiguous: another gateway, same VPN',
          () => t.admin.addMember('corp', 'gw2', ['10.1.5.0/24']),
          409,
          'ambiguous-prefix',
        ],
        [
          'overlap inside one membership',
          () => t.admin.addMember('corp', 'gw1', ['10.1.7.0/24']),
          409,
          'overlapping-prefixes',
        ],
        [
          'duplicate in one request',
          () => t.admin.addMember('corp', 'gw1', ['10.8.0.0/16', '10.8.0.0/16']),
          409,
          'overlapping-prefixes',
        ],
        ['no prefixes', () => t.admin.addMember('corp', 'gw1', []), 400, 'bad-request'],
        [
          'remove unknown prefix',
          () => t.admin.updateMember('corp', 'gw1', { remove: ['10.99.0.0/16'] }),
          404,
          'unknown-prefix',
        ],
        ['remove non-member', () => t.admin.removeMember('corp', 'gw3'), 404, 'not-member'],
        ['VPN name with a control character', () => t.admin.createVpn({ name: 'bad\u0007name' }), 400, 'bad-name'],
        ['VPN name of 64 bytes', () => t.admin.createVpn({ name: 'é'.repeat(32) }), 400, 'bad-name'],
        ['gateway name of 64 bytes', () => t.admin.addGateway('x'.repeat(64), '192.0.2.9'), 400, 'bad-name'],
        ['VPN id 0', () => t.admin.createVpn({ name: 'zero', id: 0 }), 400, 'bad-request'],
        ['VPN id too large', () => t.admin.createVpn({ name: 'big', id: 2 ** 32 }), 400, 'bad-request'],
        ['VPN id taken', () => t.admin.createVpn({ name: 'other', id: 10 }), 409, 'vpn-id-taken'],
        ['VPN exists', () => t.admin.createVpn({ name: 'corp' }), 409, 'vpn-exists'],
        ['bad mode', () => t.admin.request('POST', '/v1/vpns', { name: 'm', mode: 'mesh' }), 400, 'bad-request'],
        ['unknown field', () => t.admin.request('POST', '/v1/vpns', { name: 'm', colour: 'red' }), 400, 'bad-request'],
        [
          'wrong type',
          () => t.admin.request('POST', '/v1/gateways', { name: 5, address: '192.0.2.9' }),
          400,
          'bad-request',
        ],
        ['bad address', () => t.admin.addGateway('gwx', '300.1.1.1'), 400, 'bad-address'],
        ['multicast address', () => t.admin.addGateway('gwx', '224.0.0.1'), 400, 'bad-address'],
        ['gateway exists', () => t.admin.addGateway('gw1', '192.0.2.1'), 409, 'gateway-exists'],
        [
          'short rotation period',
          () => t.admin.createVpn({ name: 'fast', rotationPeriodMs: 10 }),
          400,
          'bad-rotation-period',
        ],
        ['delete VPN with members', () => t.admin.deleteVpn('corp'), 409, 'vpn-has-members'],
        ['rotate unknown VPN', () => t.admin.rotateVpn('nope'), 404, 'unknown-vpn'],
        ['no such endpoint', () => t.admin.request('GET', '/v1/nothing'), 404, 'not-found'],
      ];
      for (const [what, call, status, code] of cases) {
        const e = await apiError(call());
        assert.deepEqual([e.status, e.code], [status, code], `${what}: ${e.message}`);
        assert.ok(e.message.length > 10, `${what} has a message`);
      }
      // Bad JSON, missing or bad credentials.
      const r = await rawRequest(t, 'POST', '/v1/vpns', '{"name": ', {
        authorization: `Bearer ${t.adminToken}`,
        'content-type': 'application/json',
      });
      assert.equal(r.status, 400);
      assert.equal(JSON.parse(r.body).error, 'bad-json');
      let e = await apiError(t.clientWith(undefined).listVpns());
      assert.deepEqual([e.status, e.code], [401, 'unauthorized']);
      e = await apiError(t.clientWith('kasane-admin-v1.0000000000000000.' + 'A'.repeat(43)).listVpns());
      assert.deepEqual([e.status, e.code], [401, 'bad-token']);
      e = await apiError(t.clientWith('garbage').listVpns());
      assert.deepEqual([e.status, e.code], [401, 'bad-token']);
      e = await apiError(t.clientWith(t.adminToken).request('GET', '/v1/gateway/changes'));
      assert.deepEqual([e.status, e.code], [401, 'client-certificate-required']);
      e = await apiError(g1.client.request('GET', '/v1/gateway/changes', undefined, { query: { since: '-1' } }));
      assert.deepEqual([e.status, e.code], [400, 'bad-request']);
      // Nothing changed but the version counter.
      const afterStatus = await t.admin.status();
      assert.deepEqual(
        [afterStatus.vpns, afterStatus.memberships, afterStatus.gateways],
        [before.vpns, before.memberships, before.gateways],
      );
      // Nested VPNs are legitimate: an inner gateway's prefix inside an outer gateway's, in another VPN.
      await t.admin.addMember('dept', 'gw1', ['10.1.1.0/24']);
      // And multi-homing: the same gateway, the same prefix, in two VPNs.
      await t.admin.addMember('dept', 'gw2', ['10.2.0.0/16']);
      const dept = await t.admin.listMembers('dept');
      assert.ok(dept.some((m) => m.gateway === 'gw1') && dept.some((m) => m.gateway === 'gw2'));
      await t.admin.removeMember('dept', 'gw1');
      await t.admin.removeMember('dept', 'gw2');
    });

    it('U+0000 anywhere in a request is refused at the edge (400 bad-character) on every route, and nothing changes', async () => {
      const before = { status: await t.admin.status(), audit: await t.admin.audit({ limit: 1000 }) };
      const nul = 'x\u0000y';
      const refused: string[] = [];
      const expectRefused = async (what: string, call: () => Promise<unknown>) => {
        const e = await apiError(call());
        assert.deepEqual([e.status, e.code], [400, 'bad-character'], `${what}: ${e.message}`);
        assert.match(e.message, /U\+0000/);
        refused.push(what);
      };
      // Every route with a path parameter ({vpn}, {gateway}, {peer}, {id}), NUL in each parameter in turn.
      for (const r of routeList(t.running.app)) {
        const [method, path] = r.route.split(' ');
        const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        for (const p of params) {
          const url = path.replace(/\{(\w+)\}/g, (_, name: string) =>
            encodeURIComponent(name === p ? nul : name === 'gateway' ? 'gw1' : name === 'vpn' ? 'corp' : 'peer'),
          );
          await expectRefused(`${r.route} with NUL in {${p}}`, () =>
            t.admin.request(method, url, method === 'POST' || method === 'PATCH' ? {} : undefined),
          );
        }
        // Every string field of every body (strings and lists of strings).
        const props =
          (r.body as { properties?: Record<string, { type?: string; items?: unknown }> } | undefined)?.properties ?? {};
        for (const [field, schema] of Object.entries(props)) {
          if (schema.type !== 'string' && !(schema.type === 'array' && schema.items)) continue;
          if (path.startsWith('/v1/gateway/') || path === '/v1/federation/exchange') continue; // other credentials: below
          const url = path
            .replace(/\{vpn\}/g, 'corp')
            .replace(/\{gateway\}/g, 'gw1')
            .replace(/\{\w+\}/g, 'x');
          await expectRefused(`${r.route} with NUL in body.${field}`, () =>
            t.admin.request(method, url, { [field]: schema.type === 'array' ? [nul] : nul }),
          );
        }
      }
      for (const q of ['vpn', 'gateway'])
        await expectRefused(`GET /v1/audit?${q}=`, () =>
          t.admin.request('GET', '/v1/audit', undefined, { query: { [q]: nul } }),
        );
      await expectRefused('DELETE /v1/directory?prefix=', () =>
        t.admin.request('DELETE', '/v1/directory', undefined, { query: { prefix: nul } }),
      );
      await expectRefused('POST /v1/enroll', () =>
        t.clientWith(undefined).request('POST', '/v1/enroll', { token: nul, csr: 'x' }),
      );
      await expectRefused('POST /v1/gateway/ike-certificate', () =>
        g1.client.request('POST', '/v1/gateway/ike-certificate', { csr: nul }),
      );
      assert.ok(refused.length >= 40, `${refused.length} places tried`);
      assert.equal((await t.admin.status()).version, before.status.version, 'no version taken');
      assert.deepEqual(await t.admin.audit({ limit: 1000 }), before.audit, 'no audit entry');
    });

    it('framework-level refusals use the API error shape; a peer-authority exchange authenticates before it reads the body', async () => {
      const auth = { authorization: `Bearer ${t.adminToken}` };
      const shape = (r: { status: number; body: string }, status: number, code: string) => {
        assert.equal(r.status, status, r.body);
        const b = JSON.parse(r.body) as Record<string, unknown>;
        assert.deepEqual(Object.keys(b).sort(), ['error', 'message'], r.body);
        assert.equal(b.error, code);
      };
      shape(await rawRequest(t, 'GET', '/v1/vpns/%E0%A4%A', '', auth), 400, 'bad-url');
      shape(await rawRequest(t, 'GET', `/v1/vpns/${'a'.repeat(501)}`, '', auth), 414, 'path-too-long');
      shape(
        await rawRequest(t, 'GET', '/v1/vpns', '', { ...auth, 'x-big': 'a'.repeat(20_000) }),
        431,
        'headers-too-large',
      );
      shape(
        await rawRequest(t, 'POST', '/v1/vpns', '{"name": ', { ...auth, 'content-type': 'application/json' }),
        400,
        'bad-json',
      );
      shape(
        await rawRequest(t, 'POST', '/v1/vpns', JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }), {
          ...auth,
          'content-type': 'application/json',
        }),
        413,
        'body-too-large',
      );
      // Without a peer authority's certificate: 401 whatever the body is (bad JSON, too large, wrong fields).
      for (const body of ['{}', '{x', JSON.stringify({ format: 'x'.repeat(2 * 1024 * 1024) })]) {
        shape(
          await rawRequest(t, 'POST', '/v1/federation/exchange', body, { 'content-type': 'application/json' }),
          401,
          'client-certificate-required',
        );
      }
    });

    it('a no-op member add changes no version; a CSR with text before its PEM boundary is refused without using the token', async () => {
      const v0 = (await t.admin.status()).version;
      const audit0 = await t.admin.audit({ limit: 1000 });
      const m = await t.admin.addMember('corp', 'gw1', ['10.1.0.0/16']); // already there
      assert.deepEqual(m.prefixes, ['10.1.0.0/16']);
      await t.admin.updateMember('corp', 'gw1', { add: ['10.1.0.0/16'] });
      await t.admin.updateGateway('gw1', { address: '192.0.2.1' }); // the same address
      assert.equal((await t.admin.status()).version, v0);
      assert.deepEqual(await t.admin.audit({ limit: 1000 }), audit0);
      // A real change still takes a version and an entry.
      await t.admin.updateMember('corp', 'gw1', { add: ['10.7.0.0/16'] });
      assert.equal((await t.admin.status()).version, v0 + 1);
      await t.admin.updateMember('corp', 'gw1', { remove: ['10.7.0.0/16'] });
      // CSR: text before (or after) the one PEM block.
      await t.admin.addGateway('gw-csr', '192.0.2.77');
      const tok = await t.admin.createEnrollToken('gw-csr');
      const keys = await generateKeyPair();
      const pem = await createCsr(keys, 'gw-csr');
      for (const bad of [
        `Subject: CN=gw-csr\n${pem}`,
        `${pem}\n-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n`,
        `${pem}trailing words\n`,
      ]) {
        const e = await apiError(t.clientWith(undefined).request('POST', '/v1/enroll', { token: tok.token, csr: bad }));
        assert.deepEqual([e.status, e.code], [400, 'bad-csr'], e.message);
      }
      const ok = await t
        .clientWith(undefined)
        .request<{ gateway: { name: string } }>('POST', '/v1/enroll', { token: tok.token, csr: pem });
      assert.equal(ok.gateway.name, 'gw-csr', 'the token was not used up by the refused CSRs');
    });

    it('names may be any UTF-8 that shows as what it is, up to 63 bytes; invisible, bidi and separator characters are refused', async () => {
      const name = '東京/gw #1 "α"';
      await t.admin.addGateway(name, '2001:db8::1');
      const g = await t.admin.getGateway(name);
      assert.equal(g.name, name);
      assert.equal(g.address, '2001:db8::1');
      const vname = 'v'.repeat(63);
      await t.admin.createVpn({ name: vname, mode: 'pairwise' });
      assert.equal((await t.admin.getVpn(vname)).mode, 'pairwise');
      const e = await apiError(t.admin.rotateVpn(vname));
      assert.deepEqual([e.status, e.code], [409, 'not-group-vpn']);
      await t.admin.deleteVpn(vname);
      for (const bad of ['admin\u202Etxt.exe', 'gw\u200B1', 'line\u2028sep', '\uFEFFgw', 'pua\uE000']) {
        const e = await apiError(t.admin.addGateway(bad, '192.0.2.99'));
        assert.deepEqual([e.status, e.code], [400, 'bad-name'], bad);
        const v = await apiError(t.admin.createVpn({ name: bad }));
        assert.deepEqual([v.status, v.code], [400, 'bad-name'], bad);
      }
    });

    it('a change that fails half-way leaves nothing written', async () => {
      const inj = { arm: (_: boolean) => undefined as unknown };
      const t2 = await startTestAuthority({
        database: await backend.database(),
        wrapStore: (s) => {
          const f = failingStore(s, 'insertSealedKeys');
          inj.arm = f.arm;
          return f.store;
        },
      });
      try {
        await t2.admin.createVpn({ name: 'v' });
        const a = await bundleGateway(t2, 'a', '192.0.2.1');
        const b = await bundleGateway(t2, 'b', '192.0.2.2');
        await t2.admin.addMember('v', 'a', ['10.0.0.0/8']);
        await t2.admin.addMember('v', 'b', ['172.16.0.0/12']);
        const before = {
          status: await t2.admin.status(),
          vpn: await t2.admin.getVpn('v'),
          audit: await t2.admin.audit({ limit: 1000 }),
          delivery: await a.client.changes(0),
        };
        inj.arm(true);
        const e = await apiError(t2.admin.rotateVpn('v'));
        assert.equal(e.status, 500);
        const e2 = await apiError(t2.admin.removeMember('v', 'a'));
        assert.equal(e2.status, 500);
        inj.arm(false);
        const afterVpn = await t2.admin.getVpn('v');
        assert.deepEqual(afterVpn, before.vpn, 'no epoch, member or SPI change');
        assert.deepEqual(await t2.admin.audit({ limit: 1000 }), before.audit, 'no audit entry');
        assert.equal((await t2.admin.status()).version, before.status.version, 'no version taken');
        const d = await a.client.changes(0);
        assert.deepEqual(d.delivery!.vpns, before.delivery.delivery!.vpns);
        a.client.close();
        b.client.close();
      } finally {
        await t2.close();
      }
    });

    it('rotates on schedule, delivering each epoch before it becomes active', async () => {
      const t3 = await startTestAuthority({
        database: await backend.database(),
        rotation: { overlapMs: 1500, graceMs: 1000 },
        schedulerIntervalMs: 100,
      });
      try {
        await t3.admin.createVpn({ name: 'tick', rotationPeriodMs: 1000 });
        const a = await bundleGateway(t3, 'a', '192.0.2.1');
        const b = await bundleGateway(t3, 'b', '192.0.2.2');
        await t3.admin.addMember('tick', 'a', ['10.1.0.0/16']);
        await t3.admin.addMember('tick', 'b', ['10.2.0.0/16']);
        let since = (await a.client.changes(0)).version;
        const seen: { epoch: number; activeFrom: number; receivedAt: number }[] = [];
        const deadline = Date.now() + 6000;
        while (seen.length < 2 && Date.now() < deadline) {
          const c = await a.client.changes(since, { waitSeconds: 3 });
          since = c.version;
          if (!c.changed) continue;
          const s = await a.snapshot(c);
          const known = new Set(seen.map((x) => x.epoch));
          for (const e of s.vpns[0].epochs)
            if (e.epoch > 1 && !known.has(e.epoch))
              seen.push({ epoch: e.epoch, activeFrom: e.activeFrom, receivedAt: Date.now() });
        }
        assert.ok(seen.length >= 2, `scheduled rotations seen: ${JSON.stringify(seen)}`);
        for (const x of seen)
          assert.ok(
            x.receivedAt < x.activeFrom,
            `epoch ${x.epoch} arrived ${x.activeFrom - x.receivedAt} ms before activation`,
          );
        const log = await t3.admin.audit({ vpn: 'tick', limit: 1000 });
        assert.ok(log.some((x) => x.action === 'vpn.rotate' && x.actor === 'authority:scheduler'));
        a.client.close();
        b.client.close();
      } finally {
        await t3.close();
      }
    });

    it('a killed (SIGKILL) authority restarts with all its state', async () => {
      const db = await backend.database();
      const seed = await startTestAuthority({ database: db });
      const dir = join(seed.dir, 'a');
      await seed.running.close(); // keep the data directory; run it as a separate process from here
      const port = await freePort();
      let child = await spawnAuthority(dir, port);
      const url = `https://127.0.0.1:${port}`;
      const admin = new AuthorityClient({ url, ca: seed.ca, adminToken: seed.adminToken });
      let gw: TestGateway | undefined;
      try {
        await admin.createVpn({ name: 'keep', id: 77 });
        await admin.addGateway('k1', '192.0.2.1');
        const bundle = await admin.makeBundle('k1');
        await admin.addMember('keep', 'k1', ['10.7.0.0/16']);
        await admin.rotateVpn('keep');
        const token = await admin.createEnrollToken('k1', { replace: true });
        const client = gatewayClient(bundle);
        gw = {
          name: 'k1',
          bundle,
          key: bundle.privateKey!,
          client,
          snapshot: (c) => openDelivery(c.delivery, bundle.privateKey!, { gateway: 'k1' }),
        };
        const beforeSnap = await gw.snapshot(await client.changes(0));
        const before = {
          vpn: await admin.getVpn('keep'),
          gw: await admin.getGateway('k1'),
          audit: await admin.audit({ limit: 1000 }),
          status: await admin.status(),
        };
        await killAndWait(child, 'SIGKILL');
        child = await spawnAuthority(dir, port);
        const afterVpn = await admin.getVpn('keep');
        assert.deepEqual(afterVpn, before.vpn);
        assert.deepEqual(await admin.getGateway('k1'), before.gw);
        assert.deepEqual(await admin.audit({ limit: 1000 }), before.audit);
        assert.equal((await admin.status()).version, before.status.version);
        // The gateway's certificate still works, and its keys are the same.
        const afterSnap = await gw.snapshot(await client.changes(0));
        assert.deepEqual(keysOf(afterSnap, 'keep'), keysOf(beforeSnap, 'keep'));
        // The token made before the crash is still single-use and valid.
        const b2 = await enroll({ url, token: token.token, ca: seed.ca, name: 'k1' });
        assert.equal(b2.gateway.name, 'k1');
      } finally {
        gw?.client.close();
        admin.close();
        await killAndWait(child, 'SIGTERM');
        rmSync(seed.dir, { recursive: true, force: true });
      }
    });

    it('serves on IPv6: [::1] with v6 URLs in tokens, bundles and the replica list; [::] for both families; gateways fail over between v6 URLs', async () => {
      // Spelled unusually on purpose: the configuration, the URL and the certificate all use ::1.
      const v6 = await startTestAuthority({
        database: await backend.database(),
        listen: { host: '0:0:0:0:0:0:0:1', port: 0 },
      });
      const both = await startTestAuthority({ database: await backend.database(), listen: { host: '::', port: 0 } });
      const gws: TestGateway[] = [];
      try {
        const port = Number(new URL(v6.url).port);
        assert.equal(v6.url, `https://[::1]:${port}`);
        assert.equal(JSON.parse(readFileSync(join(v6.dir, 'a', 'authority.json'), 'utf8')).listen.host, '::1');
        await v6.admin.createVpn({ name: 'six' });
        const a = await tokenGateway(v6, 'gw-a', '2001:db8:a::1');
        const b = await bundleGateway(v6, 'gw-b', '192.0.2.66');
        gws.push(a, b);
        assert.equal(b.bundle.authority.url, v6.url, 'the bundle names the v6 URL');
        await v6.admin.addMember('six', 'gw-a', ['2001:db8:1::/48', '10.61.0.0/16']);
        await v6.admin.addMember('six', 'gw-b', ['2001:DB8:2::/48']);
        const s = await b.snapshot(await b.client.changes(0));
        const other = s.vpns[0].members.find((m) => m.gateway === 'gw-a');
        assert.deepEqual(
          [other?.address, other?.prefixes.map(String)],
          ['2001:db8:a::1', ['10.61.0.0/16', '2001:db8:1::/48']],
        );
        assert.deepEqual(s.protectedPrefixes.map(String), ['10.61.0.0/16', '2001:db8:1::/48', '2001:db8:2::/48']);
        assert.deepEqual(
          (await v6.admin.replicas()).map((r) => r.url),
          [v6.url],
        );

        // [::] takes connections to either family (dual stack); a gateway's authority URLs may be v6 literals.
        const bothPort = Number(new URL(both.url).port);
        assert.equal(both.url, `https://[::1]:${bothPort}`);
        const viaV4 = new AuthorityClient({
          url: `https://127.0.0.1:${bothPort}`,
          ca: both.ca,
          adminToken: both.adminToken,
        });
        try {
          await both.admin.addGateway('gw-c', 'fd00:c::1');
          assert.equal((await viaV4.getGateway('gw-c')).address, 'fd00:c::1', 'the same authority over IPv4');
          const c = gatewayOf(parseBundle(JSON.stringify(await viaV4.makeBundle('gw-c'))));
          gws.push(c);
          const closed = await freePort();
          const moving = gatewayClient(c.bundle, undefined, {
            urls: [`https://[::1]:${closed}`, `https://[::1]:${bothPort}`],
          });
          try {
            assert.equal((await moving.self()).address, 'fd00:c::1');
            assert.equal(moving.url.href, `https://[::1]:${bothPort}/`, 'moved to the v6 URL that answers');
          } finally {
            moving.close();
          }
        } finally {
          viaV4.close();
        }
      } finally {
        for (const g of gws) g.client.close();
        await both.close();
        await v6.close();
      }
    });

    it('a restart on an IPv6 listen address keeps its TLS certificate; v4-mapped listen addresses and names are refused', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kasane-v6-'));
      try {
        const data = join(dir, 'a');
        await initAuthority({
          dataDir: data,
          name: 'v6',
          database: await backend.database(),
          listen: { host: '::1', port: 0 },
          sans: ['2001:DB8::7', 'authority.example'],
        });
        const cert = (): string => readFileSync(join(data, 'certs', 'server.pem'), 'utf8');
        const first = cert();
        assert.ok(new X509Certificate(first).checkIP('2001:db8::7'));
        for (const listen of [{ host: '::1', port: 0 }, parseListen('[0::1]:0')]) {
          const r = await startAuthority({ dataDir: data, listen, logLevel: 'silent', schedulerIntervalMs: 0 });
          await r.close();
          assert.equal(cert(), first, 'not issued again');
        }
        const r = await startAuthority({
          dataDir: data,
          listen: { host: '::', port: 0 },
          logLevel: 'silent',
          schedulerIntervalMs: 0,
        });
        await r.close();
        assert.equal(cert(), first, '[::] needs no new name either');
        await assert.rejects(
          initAuthority({ dataDir: join(dir, 'b'), name: 'm', listen: { host: '::ffff:127.0.0.1', port: 0 } }),
          /IPv4-mapped.*give the IPv4 address 127\.0\.0\.1/,
        );
        await assert.rejects(
          initAuthority({ dataDir: join(dir, 'c'), name: 'm', sans: ['::ffff:10.0.0.1'] }),
          /IPv4-mapped/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('every version the tests above took has an audit entry', async () => {
      assert.deepEqual(await unauditedVersions(t), []);
    });
  });
}

async function createCsrP384(keys: CryptoKeyPair): Promise<string> {
  const { x509 } = await import('../../../src/pki/x509.js');
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=gw-tok',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
  });
  return csr.toString('pem');
}

async function rawRequest(
  t: TestAuthority,
  method: string,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, t.url), { method, headers, ca: t.ca, agent: false }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

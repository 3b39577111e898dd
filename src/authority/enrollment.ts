// Enrollment: how a registered gateway gets its certificate and becomes active. Online (a
// single-use token and a CSR made with the gateway's own key, which never leaves it) or offline
// (seed 000: a bundle with a key pair the authority makes and does not keep). Enrolling makes the
// gateway's configured memberships effective; re-enrolling an enrolled gateway (`replace`)
// supersedes its old certificate and seals every key it holds again to its new key.
import { verifyCsr } from '../pki/ca.js';
import { exportPkcs8Pem, exportSpkiDer, generateKeyPair, joinPem } from '../pki/keys.js';
import type { x509 } from '../pki/x509.js';
import type { Certificates } from './certificates.js';
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import type { Epochs } from './epochs.js';
import { badRequest, conflict, unauthorized } from './errors.js';
import type { Gateways } from './gateways.js';
import { activeMemberNames, gatewayOrThrow, vpnIdsOf, type GatewayKey } from './lookups.js';
import type { GatewayRow, StoreOps } from './storage/types.js';
import { newToken, parseToken, secretMatches } from './tokens.js';
import { BUNDLE_FORMAT, type EnrollResponse, type EnrollTokenView, type GatewayBundle } from './wire.js';

export const MAX_TOKEN_TTL_MS = 30 * 86_400_000;

export interface TokenOptions {
  ttlMs?: number;
  /** For an enrolled gateway: re-enroll it with a new key. */
  replace?: boolean;
}

export interface BundleOptions {
  /** For an enrolled gateway: a new key and certificate, the old one superseded. */
  replace?: boolean;
  validityDays?: number;
}

export class Enrollment {
  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      /** Lifetime of a token made without one. */
      tokenTtlMs: number;
      certificates: Certificates;
      epochs: Epochs;
      gateways: Gateways;
    },
  ) {}

  /** A single-use token for online enrollment; only its hash is stored. */
  async createToken(actor: string, name: string, p: TokenOptions): Promise<EnrollTokenView> {
    const ttl = p.ttlMs ?? this.o.tokenTtlMs;
    if (!Number.isSafeInteger(ttl) || ttl < 1000 || ttl > MAX_TOKEN_TTL_MS) {
      throw badRequest('bad-ttl', `token lifetime must be between 1 s and 30 days, got ${ttl} ms`);
    }
    const t = newToken('enroll', this.ctx.random);
    const expiresAt = await this.ctx.change(actor, async (c) => {
      const g = await gatewayOrThrow(c.tx, name);
      if (g.status === 'active' && !p.replace) {
        throw conflict(
          'gateway-enrolled',
          `gateway ${name} is already enrolled; make the token with replace to re-enroll it with a new key`,
        );
      }
      const expiresAt = c.now + ttl;
      await c.tx.insertEnrollToken({
        id: t.id,
        secretHash: t.secretHash,
        gateway: name,
        replaceCert: Boolean(p.replace),
        createdAt: c.now,
        expiresAt,
        usedAt: null,
        createdBy: actor,
      });
      c.audit('token.create', {
        gateway: name,
        scope: 'none',
        detail: { tokenId: t.id, expiresAt, replace: Boolean(p.replace) },
      });
      return expiresAt;
    });
    return { token: t.token, gateway: name, expiresAt, replace: Boolean(p.replace), authority: this.ctx.identity() };
  }

  /** Online enrollment: a one-time token and a CSR made with the gateway's own key. */
  async enroll(p: { token: string; csr: string }): Promise<EnrollResponse> {
    const parsed = parseToken('enroll', p.token);
    if (!parsed)
      throw unauthorized('bad-token', 'the enrollment token is malformed (expected kasane-enroll-v1.<id>.<secret>)');
    const { id, secret } = parsed;
    const check = async (tx: StoreOps, now: number) => {
      const t = await tx.getEnrollToken(id);
      if (!t || !secretMatches(t.secretHash, secret))
        throw unauthorized('bad-token', 'the enrollment token is not valid');
      if (t.usedAt !== null)
        throw unauthorized(
          'token-used',
          `the enrollment token was already used at ${new Date(t.usedAt).toISOString()}; tokens are single-use`,
        );
      if (t.expiresAt <= now)
        throw unauthorized('token-expired', `the enrollment token expired at ${new Date(t.expiresAt).toISOString()}`);
      const g = (await tx.getGateway(t.gateway))!;
      if (g.revokedAt !== null && g.revokedAt >= t.createdAt)
        throw unauthorized('token-revoked', `gateway ${g.name} was revoked after this token was made`);
      if (g.status === 'active' && !t.replaceCert)
        throw conflict('gateway-enrolled', `gateway ${g.name} enrolled after this token was made`);
      return { t, g };
    };
    // Checked before the CSR (which must name the token's gateway), and again inside the change, where it counts.
    const { g: pre } = await this.ctx.store.read((tx) => check(tx, this.ctx.now()));
    const csr = await verifyCsr(p.csr);
    if (!csr.ok) throw badRequest(csr.error.code, csr.error.message);
    if (csr.value.commonName !== undefined && csr.value.commonName !== pre.name) {
      throw badRequest(
        'csr-name-mismatch',
        `the CSR names ${JSON.stringify(csr.value.commonName)} but the token is for gateway ${JSON.stringify(pre.name)}`,
      );
    }
    const cert = await this.ctx.change(`gateway:${pre.name}`, async (c) => {
      const { g } = await check(c.tx, c.now);
      if (!(await c.tx.useEnrollToken(id, c.now)))
        throw unauthorized('token-used', 'the enrollment token was already used; tokens are single-use');
      c.audit('token.use', { gateway: g.name, scope: 'none', detail: { tokenId: id } });
      return this.install(c, g, csr.value.spki, 'csr', undefined);
    });
    const gw = await this.o.gateways.get(pre.name);
    return {
      format: BUNDLE_FORMAT,
      gateway: { name: gw.name, address: gw.address },
      authority: { ...this.ctx.identity(), caCertificate: this.o.certificates.rootPem() },
      certificate: joinPem(cert.toString('pem')),
      chain: this.o.certificates.chainPem(),
    };
  }

  /** Offline enrollment (seed 000): the authority makes the key pair and certificate. */
  async makeBundle(actor: string, name: string, p: BundleOptions): Promise<GatewayBundle> {
    if (
      p.validityDays !== undefined &&
      (!Number.isInteger(p.validityDays) || p.validityDays < 1 || p.validityDays > 3650)
    ) {
      throw badRequest('bad-validity', `certificate validity must be 1..3650 days, got ${p.validityDays}`);
    }
    const keys = await generateKeyPair();
    const spki = await exportSpkiDer(keys.publicKey);
    const { cert, gw } = await this.ctx.change(actor, async (c) => {
      const g = await gatewayOrThrow(c.tx, name);
      if (g.status === 'active' && !p.replace) {
        throw conflict(
          'gateway-enrolled',
          `gateway ${name} is already enrolled; pass replace to issue a new key and certificate (the old one is superseded)`,
        );
      }
      const cert = await this.install(c, g, spki, 'bundle', p.validityDays);
      return { cert, gw: g };
    });
    return {
      format: BUNDLE_FORMAT,
      gateway: { name: gw.name, address: gw.address },
      authority: { ...this.ctx.identity(), caCertificate: this.o.certificates.rootPem() },
      privateKey: await exportPkcs8Pem(keys.privateKey),
      certificate: joinPem(cert.toString('pem')),
      chain: this.o.certificates.chainPem(),
    };
  }

  /**
   * Installs a new certificate for a gateway. A pending or revoked gateway becomes active and joins
   * the VPNs configured for it (SPIs and sealed keys of every live epoch); an active one (re-keyed)
   * gets every live key sealed again to its new key, and its old certificate is superseded.
   */
  private async install(
    c: Change,
    g: GatewayRow,
    spki: Uint8Array,
    method: 'bundle' | 'csr',
    validityDays: number | undefined,
  ): Promise<x509.X509Certificate> {
    const cert = await this.o.certificates.issue(c, g.name, spki, method, validityDays);
    if (g.certSerial) {
      await c.tx.revokeCertificate(g.certSerial, c.now, 'superseded');
      c.crlChanged = true;
    }
    const wasActive = g.status === 'active';
    await c.tx.updateGateway(g.name, {
      status: 'active',
      certSerial: cert.serialNumber,
      publicKey: spki,
      enrolledAt: c.now,
      revokedAt: null,
      revokeReason: null,
    });
    const me: GatewayKey = { name: g.name, publicKey: spki };
    const vpnIds = await vpnIdsOf(c.tx, g.name);
    if (wasActive) await c.tx.deleteSealedKeys({ gateway: g.name });
    for (const id of vpnIds) {
      const v = (await c.tx.getVpnById(id))!;
      if (v.mode === 'group')
        await this.o.epochs.provision(c, v, await this.o.epochs.liveKeys(c.tx, id, c.now), [me], !wasActive);
      if (!wasActive) {
        c.vpnsChanged.add(id);
        c.touch(await activeMemberNames(c.tx, id));
        c.audit('member.join', { vpn: v, gateway: g.name, scope: 'vpn', detail: {} });
      }
    }
    c.touch([g.name]);
    c.audit('gateway.enroll', {
      gateway: g.name,
      scope: 'gateway',
      detail: { method, serial: cert.serialNumber, notAfter: cert.notAfter.getTime(), rekey: wasActive },
    });
    return cert;
  }
}

// The certificates this authority's CA issues to gateways, and what hangs on them: the chain and
// root sent with them, the CRLs (rebuilt after every revocation and by the lifecycle's periodic
// job, so that the TLS layer refuses revoked gateways), the mapping of a TLS client certificate to
// its gateway, and the separate IKE certificate of a gateway whose IKE key lives in a token.
import { createCrl, issueGatewayCertificate, verifyCsr, type AuthorityCa, type CrlEntry } from '../pki/ca.js';
import { derToPem, joinPem } from '../pki/keys.js';
import type { x509 } from '../pki/x509.js';
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import { badRequest, forbidden, notFound } from './errors.js';
import { gatewayOrThrow, membersOf, vpnIdsOf } from './lookups.js';
import type { CertificateRow } from './storage/types.js';
import type { CaView } from './wire.js';

export interface Crls {
  root: string;
  issuing: string;
}

/** How long a CRL is valid: a week, so that a few missed refreshes do not break TLS. */
const CRL_VALIDITY_MS = 7 * 86_400_000;

export class Certificates {
  private crls: Crls | undefined;
  private readonly crlListeners: ((crls: Crls) => void)[] = [];
  /** TLS connections already mapped to their gateway, with the generation they were checked at. */
  private readonly connections = new WeakMap<object, { gateway: string; generation: number }>();
  /**
   * Moves at every CRL rebuild, which follows whatever revokes or supersedes a certificate (on this
   * replica at once, on another within its version poll): it ends every mapping made before.
   */
  private generation = 0;

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: { ca: AuthorityCa; certificateDays: number },
  ) {}

  caView(): CaView {
    return {
      authority: this.ctx.name,
      rootCertificate: this.rootPem(),
      issuingCertificate: joinPem(this.o.ca.issuing.cert.toString('pem')),
      fingerprint: this.ctx.identity().caFingerprint,
    };
  }

  rootPem(): string {
    return joinPem(this.o.ca.root.cert.toString('pem'));
  }

  /** What a gateway presents after its own certificate: the issuing CA, then the root. */
  chainPem(): string[] {
    return [joinPem(this.o.ca.issuing.cert.toString('pem')), this.rootPem()];
  }

  /** Issues a gateway certificate for `spki` and records it; superseding the previous one is the caller's. */
  async issue(
    c: Change,
    gateway: string,
    spki: Uint8Array,
    method: CertificateRow['method'],
    validityDays = this.o.certificateDays,
  ): Promise<x509.X509Certificate> {
    const cert = await issueGatewayCertificate({
      issuing: this.o.ca.issuing,
      authority: this.ctx.name,
      gateway,
      publicKey: spki,
      now: c.now,
      validityDays,
      random: this.ctx.random,
    });
    await c.tx.insertCertificate({
      serial: cert.serialNumber,
      gateway,
      der: new Uint8Array(cert.rawData),
      issuedAt: c.now,
      notAfter: cert.notAfter.getTime(),
      method,
      revokedAt: null,
      revokeReason: null,
    });
    return cert;
  }

  /** The gateway's certificate (PEM) and chain, for `gateway show --certificate`. */
  async ofGateway(name: string): Promise<{ certificate: string; chain: string[] }> {
    const cert = await this.ctx.store.read(async (tx) => {
      const g = await gatewayOrThrow(tx, name);
      if (!g.certSerial) throw notFound('no-certificate', `gateway ${name} has not enrolled yet`);
      return (await tx.getCertificate(g.certSerial))!;
    });
    return { certificate: derToPem(cert.der, 'CERTIFICATE'), chain: this.chainPem() };
  }

  /** Maps a verified TLS client certificate to its gateway; refuses revoked and superseded ones. */
  async authenticate(der: Uint8Array, serialHex: string): Promise<string> {
    const serial = serialHex.toLowerCase().replace(/^0+(?=[0-9a-f])/, '');
    const r = await this.ctx.store.read(async (tx) => {
      const cert = await tx.getCertificate(serial);
      if (!cert || Buffer.compare(Buffer.from(cert.der), Buffer.from(der)) !== 0) return undefined;
      return { cert, gateway: (await tx.getGateway(cert.gateway))! };
    });
    if (!r)
      throw forbidden('unknown-certificate', 'the client certificate was not issued to any gateway of this authority');
    if (r.gateway.status === 'revoked') throw forbidden('gateway-revoked', `gateway ${r.gateway.name} is revoked`);
    if (r.cert.revokedAt !== null || r.gateway.certSerial !== r.cert.serial) {
      throw forbidden(
        'certificate-revoked',
        `this certificate of gateway ${r.gateway.name} was ${r.cert.revokeReason === 'superseded' ? 'superseded by a newer one' : 'revoked'}`,
      );
    }
    return r.gateway.name;
  }

  /**
   * The gateway a mutual-TLS connection belongs to. A gateway's long polls follow one another on
   * one connection, so the store is asked once per connection (`authenticate`), and again after
   * any certificate was revoked or superseded. `peer` gives the connection's client certificate,
   * or throws the refusal.
   */
  async authenticateConnection(connection: object, peer: () => { der: Uint8Array; serial: string }): Promise<string> {
    const known = this.connections.get(connection);
    if (known && known.generation === this.generation) return known.gateway;
    const generation = this.generation;
    const { der, serial } = peer();
    const gateway = await this.authenticate(der, serial);
    this.connections.set(connection, { gateway, generation });
    return gateway;
  }

  /**
   * A certificate for the gateway's IKE identity when its IKE key lives in a PKCS#11 token (seed
   * 001's IC chip): the gateway sends a CSR signed in the token over its mutual-TLS channel. The
   * certificate names the gateway like its TLS one; it authenticates IKE only (never the channel),
   * and it is what peers get pinned and what permits are issued to. A new one supersedes the old.
   */
  async issueIke(gateway: string, csrPem: string): Promise<{ certificate: string }> {
    const csr = await verifyCsr(csrPem);
    if (!csr.ok) throw badRequest(csr.error.code, csr.error.message);
    if (csr.value.commonName !== undefined && csr.value.commonName !== gateway)
      throw badRequest('csr-name-mismatch', `the request names ${csr.value.commonName}, not ${gateway}`);
    const cert = await this.ctx.change(`gateway:${gateway}`, async (c) => {
      const g = await gatewayOrThrow(c.tx, gateway);
      if (g.status !== 'active') throw forbidden('gateway-revoked', `gateway ${gateway} is not active`);
      const cert = await this.issue(c, gateway, csr.value.spki, 'ike');
      if (g.ikeCertSerial) await c.tx.revokeCertificate(g.ikeCertSerial, c.now, 'superseded');
      await c.tx.updateGateway(gateway, { ikeCertSerial: cert.serialNumber });
      // Its pairwise peers get the new certificate pinned, and permits are issued to it.
      for (const id of await vpnIdsOf(c.tx, gateway)) {
        if ((await c.tx.getVpnById(id))?.mode !== 'pairwise') continue;
        c.vpnsChanged.add(id);
        const { gateways } = await membersOf(c.tx, id);
        c.touch([...gateways.keys()]);
      }
      c.audit('gateway.ike-certificate', { gateway, scope: 'gateway', detail: { serial: cert.serialNumber } });
      return cert;
    });
    return { certificate: joinPem(cert.toString('pem')) };
  }

  /** The current CRLs (PEM) of the root and the issuing CA. */
  currentCrls(): Crls {
    if (!this.crls) throw new Error('CRLs are not built yet (call start())');
    return this.crls;
  }

  /** Called with every new pair of CRLs (the API server reloads its TLS context). */
  onCrlChange(listener: (crls: Crls) => void): void {
    this.crlListeners.push(listener);
  }

  async refreshCrls(): Promise<void> {
    this.generation++;
    const now = this.ctx.now();
    const revoked = await this.ctx.store.read((tx) => tx.listRevokedCertificates(now));
    const entries: CrlEntry[] = revoked.map((r) => ({
      serial: r.serial,
      revokedAt: r.revokedAt!,
      reason:
        r.revokeReason === 'superseded'
          ? 'superseded'
          : r.revokeReason === 'key-compromise'
            ? 'keyCompromise'
            : 'cessationOfOperation',
    }));
    const nextUpdate = now + CRL_VALIDITY_MS;
    const [root, issuing] = await Promise.all([
      createCrl({ issuer: this.o.ca.root, entries: [], now, nextUpdate }),
      createCrl({ issuer: this.o.ca.issuing, entries, now, nextUpdate }),
    ]);
    this.crls = { root: derToPem(root.rawData, 'X509 CRL'), issuing: derToPem(issuing.rawData, 'X509 CRL') };
    for (const l of this.crlListeners) l(this.crls);
  }
}

// The authority's two-tier CA (root -> issuing), the certificates it issues (gateways, its own TLS
// server), CSR verification for online enrollment and CRLs for revoked certificates. Everything
// is standard DER X.509 (ECDSA P-256 with SHA-256) that openssl and strongSwan read.
// Attribute certificates (permits, seed 001) will live next to this file (src/pki/permit.ts).
import { isIP } from 'node:net';
import { err, ok, type Result } from '../base/result.js';
import { EC_SIGN_ALG, generateKeyPair, parsePem } from './keys.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';
import { CERTIFICATE_LIMITS, checkDer } from './der.js';
import { cryptoImpl, x509 } from './x509.js';

const DAY = 86_400_000;
/** Certificates start a little in the past so that peers with a slow clock accept them. */
const BACKDATE = 5 * 60_000;

export interface CertAndKey {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export interface AuthorityCa {
  root: CertAndKey;
  issuing: CertAndKey;
}

export const ROOT_VALIDITY_DAYS = 20 * 365;
export const ISSUING_VALIDITY_DAYS = 10 * 365;
export const GATEWAY_VALIDITY_DAYS = 365;
export const SERVER_VALIDITY_DAYS = 397;

/** A positive 128-bit serial number (hex), from the injected random source. */
export function randomSerial(random: RandomSource = cryptoRandom): string {
  const b = random(16);
  b[0] = (b[0] & 0x3f) | 0x40; // positive, no leading zero byte
  return Buffer.from(b).toString('hex');
}

/** A distinguished name as structured data, so that any UTF-8 name is encoded as-is (no escaping). */
function dn(authority: string, commonName: string): x509.Name {
  return new x509.Name([{ '2.5.4.10': [{ utf8String: authority }] }, { '2.5.4.3': [{ utf8String: commonName }] }]);
}

/**
 * A new root and issuing CA. Their keys are made here, in memory, unless `keys` gives them (key
 * pairs made in a PKCS#11 token: the private key a stand-in that signs there, x509.ts).
 */
export async function createAuthorityCa(opts: {
  authority: string;
  now: number;
  random?: RandomSource;
  keys?: { root: CryptoKeyPair; issuing: CryptoKeyPair };
}): Promise<AuthorityCa> {
  const random = opts.random ?? cryptoRandom;
  const rootKeys = opts.keys?.root ?? (await generateKeyPair());
  const rootName = dn(opts.authority, `${opts.authority} root CA`);
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(random),
    name: rootName,
    notBefore: new Date(opts.now - BACKDATE),
    notAfter: new Date(opts.now + ROOT_VALIDITY_DAYS * DAY),
    keys: rootKeys,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const issuingKeys = opts.keys?.issuing ?? (await generateKeyPair());
  const issuingCert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(random),
    subject: dn(opts.authority, `${opts.authority} issuing CA`),
    issuer: rootCert.subjectName,
    notBefore: new Date(opts.now - BACKDATE),
    notAfter: new Date(opts.now + ISSUING_VALIDITY_DAYS * DAY),
    publicKey: issuingKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(issuingKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  return {
    root: { cert: rootCert, key: rootKeys.privateKey },
    issuing: { cert: issuingCert, key: issuingKeys.privateKey },
  };
}

export interface IssueParams {
  issuing: CertAndKey;
  authority: string;
  /** SubjectPublicKeyInfo DER or a public CryptoKey. */
  publicKey: Uint8Array | CryptoKey;
  now: number;
  validityDays?: number;
  random?: RandomSource;
}

/**
 * A gateway certificate: CN = gateway name. Key usage digitalSignature (TLS client auth, later IKE
 * signatures) and keyAgreement (the key is also the HPKE recipient key for group-key delivery).
 */
export async function issueGatewayCertificate(p: IssueParams & { gateway: string }): Promise<x509.X509Certificate> {
  const publicKey = p.publicKey instanceof Uint8Array ? toAb(p.publicKey) : p.publicKey;
  return issueEndEntity(p, p.gateway, GATEWAY_VALIDITY_DAYS, [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ]);
}

/** The authority's own TLS server certificate; `sans` are IP addresses or DNS names. */
export async function issueServerCertificate(p: IssueParams & { sans: string[] }): Promise<x509.X509Certificate> {
  const names: x509.JsonGeneralName[] = p.sans.map((s) =>
    isIP(s) ? { type: 'ip', value: s } : { type: 'dns', value: s },
  );
  return issueEndEntity(p, `${p.authority} authority`, SERVER_VALIDITY_DAYS, [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(names),
  ]);
}

/** A certificate of the issuing CA that is not a CA (basic constraints first, the issuer's key id last). */
async function issueEndEntity(
  p: IssueParams,
  commonNameValue: string,
  defaultDays: number,
  usage: x509.Extension[],
): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(p.random),
    subject: dn(p.authority, commonNameValue),
    issuer: p.issuing.cert.subjectName,
    notBefore: new Date(p.now - BACKDATE),
    notAfter: new Date(p.now + (p.validityDays ?? defaultDays) * DAY),
    publicKey: p.publicKey instanceof Uint8Array ? toAb(p.publicKey) : p.publicKey,
    signingKey: p.issuing.key,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...usage,
      await x509.AuthorityKeyIdentifierExtension.create(p.issuing.cert.publicKey),
    ],
  });
}

/** The subject alternative names of a certificate, as plain strings. */
export function certificateSans(cert: x509.X509Certificate): string[] {
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return ext ? ext.names.items.map((n) => n.value) : [];
}

export function commonName(name: x509.Name): string | undefined {
  return name.getField('CN')[0];
}

export interface VerifiedCsr {
  /** SubjectPublicKeyInfo DER of the requested key. */
  spki: Uint8Array;
  /** The subject's CN, when the CSR names one. */
  commonName?: string;
}

/** Largest CSR accepted (a P-256 CSR is well under 1 KiB). */
export const MAX_CSR_BYTES = 16 * 1024;

/**
 * Parses a PKCS#10 request (PEM or DER), checks its self-signature and that its key is ECDSA P-256.
 * Errors: `bad-csr` (not a CSR, bad signature), `bad-csr-key` (another algorithm or curve).
 */
export async function verifyCsr(input: string | Uint8Array): Promise<Result<VerifiedCsr>> {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > MAX_CSR_BYTES) return err('bad-csr', `CSR is ${size} bytes; at most ${MAX_CSR_BYTES} are accepted`);
  let der: Uint8Array;
  if (typeof input === 'string') {
    // Exactly one PEM block: text around it would be unchecked data riding along.
    const pem = parsePem(input.replace(/NEW CERTIFICATE REQUEST/g, 'CERTIFICATE REQUEST'), 'CERTIFICATE REQUEST');
    if (!pem.ok)
      return err('bad-csr', `CSR must be one PEM block ("-----BEGIN CERTIFICATE REQUEST-----"): ${pem.reason}`);
    der = pem.der;
  } else {
    der = input;
  }
  const shape = checkDer(der, CERTIFICATE_LIMITS);
  if (!shape.ok) return err('bad-csr', `not a PKCS#10 certificate request in DER: ${shape.error.message}`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(toAb(der));
  } catch (e) {
    return err('bad-csr', `not a PKCS#10 certificate request: ${e instanceof Error ? e.message : String(e)}`);
  }
  let alg: EcKeyAlgorithm;
  try {
    alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  } catch {
    return err('bad-csr-key', 'the CSR key algorithm is not supported; use ECDSA P-256');
  }
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    return err(
      'bad-csr-key',
      `the CSR key is ${alg.name}${alg.namedCurve ? ' ' + alg.namedCurve : ''}; only ECDSA P-256 is accepted`,
    );
  }
  let valid = false;
  try {
    valid = await csr.verify(cryptoImpl);
  } catch {
    valid = false;
  }
  if (!valid) return err('bad-csr', 'the CSR signature does not verify with its own public key');
  let cn: string | undefined;
  try {
    cn = commonName(csr.subjectName);
  } catch {
    return err('bad-csr', 'the CSR subject cannot be decoded');
  }
  return ok({ spki: new Uint8Array(csr.publicKey.rawData), commonName: cn });
}

/**
 * Makes a CSR (what an enrolling gateway does with its own key). Without a common name the subject
 * is empty: the authority names the certificate after the gateway the enrollment token is for.
 */
export async function createCsr(keys: CryptoKeyPair, commonNameValue?: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: new x509.Name(commonNameValue === undefined ? [] : [{ '2.5.4.3': [{ utf8String: commonNameValue }] }]),
      keys,
      signingAlgorithm: EC_SIGN_ALG,
    },
    cryptoImpl,
  );
  return csr.toString('pem');
}

export interface CrlEntry {
  serial: string;
  revokedAt: number;
  reason: 'keyCompromise' | 'superseded' | 'cessationOfOperation' | 'unspecified';
}

/** A CRL signed by `issuer` listing `entries`, valid from `now` until `nextUpdate`. */
export async function createCrl(p: {
  issuer: CertAndKey;
  entries: CrlEntry[];
  now: number;
  nextUpdate: number;
}): Promise<x509.X509Crl> {
  return x509.X509CrlGenerator.create(
    {
      issuer: p.issuer.cert.subjectName,
      thisUpdate: new Date(p.now - BACKDATE),
      nextUpdate: new Date(p.nextUpdate),
      signingAlgorithm: EC_SIGN_ALG,
      signingKey: p.issuer.key,
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(p.issuer.cert.publicKey)],
      entries: p.entries.map((e) => ({
        serialNumber: e.serial,
        revocationDate: new Date(e.revokedAt),
        reason: x509.X509CrlReason[e.reason],
      })),
    },
    cryptoImpl,
  );
}

function toAb(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

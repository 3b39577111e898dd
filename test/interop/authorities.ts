// Two (or more) authorities made with kasane's own PKI for the interop tests: a CA, an attribute
// authority and one gateway certificate each, and permits between them (seed 001 Figure 2).
import { createAuthorityCa, issueGatewayCertificate, type AuthorityCa } from '../../src/pki/ca.js';
import { exportPkcs8Pem, generateKeyPair } from '../../src/pki/keys.js';
import { createAttributeAuthority, issuePermit, permitToPem } from '../../src/pki/permit.js';
import type { x509 } from '../../src/pki/x509.js';

export const HOUR = 3_600_000;

export interface Side {
  ca: AuthorityCa;
  aa: { cert: x509.X509Certificate; key: CryptoKey };
  cert: x509.X509Certificate;
  keyPem: string;
}

export async function authority(name: string, gateway: string, now: number): Promise<Side> {
  const ca = await createAuthorityCa({ authority: name, now });
  const aa = await createAttributeAuthority({ root: ca.root, now });
  const keys = await generateKeyPair();
  const cert = await issueGatewayCertificate({ issuing: ca.issuing, authority: name, publicKey: keys.publicKey, now, gateway });
  return { ca, aa, cert, keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** A permit (PEM) the issuer's authority gives the holder's gateway for VPN `group`. */
export const permitPem = async (issuer: Side, holder: Side, group: string, from: number, to: number): Promise<string> =>
  permitToPem(await issuePermit({ attributeAuthority: { cert: issuer.aa.cert, privateKey: issuer.aa.key }, holder: holder.cert, groups: [group], notBefore: new Date(from), notAfter: new Date(to) }));

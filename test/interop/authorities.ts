// Two (or more) authorities made with kasane's own PKI for the interop tests: a CA, an attribute
// authority and one gateway certificate each, and permits between them (seed 001 Figure 2).
import { createAuthorityCa, issueGatewayCertificate, type AuthorityCa } from '../../src/pki/ca.js';
import { exportPkcs8Pem, generateKeyPair } from '../../src/pki/keys.js';
import { createAttributeAuthority, issuePermit, permitToPem } from '../../src/pki/permit.js';
import type { x509 } from '../../src/pki/x509.js';
import type { Testbed } from '../../src/testbed/netns.js';

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

/**
 * The interop topology: hostA (10.1.0.10) - gwA (10.200.1.2) - R - gwB (10.200.2.2) - hostB
 * (10.2.0.10), as namespaces of `tb` (deleted with it).
 */
export function twoSites(tb: Testbed): Record<'hostA' | 'gwA' | 'R' | 'gwB' | 'hostB', string> {
  const ns = { hostA: tb.ns('hostA'), gwA: tb.ns('gwA'), R: tb.ns('R'), gwB: tb.ns('gwB'), hostB: tb.ns('hostB') };
  tb.link(ns.hostA, 'eth0', '10.1.0.10/24', ns.gwA, 'lan0', '10.1.0.1/24');
  tb.link(ns.hostB, 'eth0', '10.2.0.10/24', ns.gwB, 'lan0', '10.2.0.1/24');
  tb.link(ns.gwA, 'wan0', '10.200.1.2/24', ns.R, 'ra', '10.200.1.1/24');
  tb.link(ns.gwB, 'wan0', '10.200.2.2/24', ns.R, 'rb', '10.200.2.1/24');
  tb.ip(ns.hostA, 'route', 'add', 'default', 'via', '10.1.0.1');
  tb.ip(ns.hostB, 'route', 'add', 'default', 'via', '10.2.0.1');
  tb.ip(ns.gwA, 'route', 'add', 'default', 'via', '10.200.1.1');
  tb.ip(ns.gwB, 'route', 'add', 'default', 'via', '10.200.2.1');
  for (const n of [ns.gwA, ns.gwB, ns.R]) tb.sysctl(n, 'net.ipv4.ip_forward', '1');
  return ns;
}

// Two (or more) authorities made with kasane's own PKI for the interop tests: a CA, an attribute
// authority and one gateway certificate each, and permits between them (seed 001 Figure 2).
import { createAuthorityCa, issueGatewayCertificate, type AuthorityCa } from '../../src/pki/ca.js';
import { exportPkcs8Pem, generateKeyPair } from '../../src/pki/keys.js';
import { createAttributeAuthority, issuePermit, permitToPem } from '../../src/pki/permit.js';
import type { x509 } from '../../src/pki/x509.js';
import assert from 'node:assert/strict';
import { hasCommand, type Testbed } from '../../src/testbed/netns.js';
import { acertPlugin } from '../../src/testbed/strongswan.js';

export const HOUR = 3_600_000;

/** The acert plugin built for charon (from the repository at `root`); fails the test without it or swanctl. */
export function acertPluginPath(root: string): string {
  const plugin = acertPlugin(root);
  assert.ok(plugin.ok, `the acert plugin could not be built: ${plugin.ok ? '' : plugin.reason}`);
  assert.ok(hasCommand('swanctl'), 'swanctl is installed by scripts/strongswan-acert.sh');
  return plugin.path;
}

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
  const cert = await issueGatewayCertificate({
    issuing: ca.issuing,
    authority: name,
    publicKey: keys.publicKey,
    now,
    gateway,
  });
  return { ca, aa, cert, keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** A permit (PEM) the issuer's authority gives the holder's gateway for VPN `group`. */
export const permitPem = async (issuer: Side, holder: Side, group: string, from: number, to: number): Promise<string> =>
  permitToPem(
    await issuePermit({
      attributeAuthority: { cert: issuer.aa.cert, privateKey: issuer.aa.key },
      holder: holder.cert,
      groups: [group],
      notBefore: new Date(from),
      notAfter: new Date(to),
    }),
  );

export type SiteFamily = 4 | 6;

/** The addresses of the interop topology per family (the namespaces have both: dual stack). */
export const SITES = {
  4: {
    hostA: '10.1.0.10',
    lanA: '10.1.0.0/24',
    gwA: '10.200.1.2',
    gwB: '10.200.2.2',
    hostB: '10.2.0.10',
    lanB: '10.2.0.0/24',
  },
  6: {
    hostA: 'fd01::10',
    lanA: 'fd01::/64',
    gwA: 'fd00:200:1::2',
    gwB: 'fd00:200:2::2',
    hostB: 'fd02::10',
    lanB: 'fd02::/64',
  },
} as const;

/**
 * The interop topology, dual stack: hostA (10.1.0.10, fd01::10) - gwA (10.200.1.2,
 * fd00:200:1::2) - R - gwB (10.200.2.2, fd00:200:2::2) - hostB (10.2.0.10, fd02::10), as
 * namespaces of `tb` (deleted with it). IPv6 addresses skip duplicate address detection.
 */
export function twoSites(tb: Testbed): Record<'hostA' | 'gwA' | 'R' | 'gwB' | 'hostB', string> {
  const ns = { hostA: tb.ns('hostA'), gwA: tb.ns('gwA'), R: tb.ns('R'), gwB: tb.ns('gwB'), hostB: tb.ns('hostB') };
  const link = (a: string, ifA: string, addrA: [string, string], b: string, ifB: string, addrB: [string, string]) => {
    tb.link(a, ifA, addrA[0], b, ifB, addrB[0]);
    tb.ip(a, 'addr', 'add', addrA[1], 'dev', ifA, 'nodad');
    tb.ip(b, 'addr', 'add', addrB[1], 'dev', ifB, 'nodad');
  };
  link(ns.hostA, 'eth0', ['10.1.0.10/24', 'fd01::10/64'], ns.gwA, 'lan0', ['10.1.0.1/24', 'fd01::1/64']);
  link(ns.hostB, 'eth0', ['10.2.0.10/24', 'fd02::10/64'], ns.gwB, 'lan0', ['10.2.0.1/24', 'fd02::1/64']);
  link(ns.gwA, 'wan0', ['10.200.1.2/24', 'fd00:200:1::2/64'], ns.R, 'ra', ['10.200.1.1/24', 'fd00:200:1::1/64']);
  link(ns.gwB, 'wan0', ['10.200.2.2/24', 'fd00:200:2::2/64'], ns.R, 'rb', ['10.200.2.1/24', 'fd00:200:2::1/64']);
  const via = (n: string, v4: string, v6: string) => {
    tb.ip(n, 'route', 'add', 'default', 'via', v4);
    tb.ip(n, '-6', 'route', 'add', 'default', 'via', v6);
  };
  via(ns.hostA, '10.1.0.1', 'fd01::1');
  via(ns.hostB, '10.2.0.1', 'fd02::1');
  via(ns.gwA, '10.200.1.1', 'fd00:200:1::1');
  via(ns.gwB, '10.200.2.1', 'fd00:200:2::1');
  for (const n of [ns.gwA, ns.gwB, ns.R]) {
    tb.sysctl(n, 'net.ipv4.ip_forward', '1');
    tb.sysctl(n, 'net.ipv6.conf.all.forwarding', '1');
  }
  return ns;
}

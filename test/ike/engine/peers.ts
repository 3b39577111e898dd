// Two authorities and a gateway under each, with the permits seed 001 Figure 2 has them exchange,
// as the IKE engine tests need them: real certificates and attribute certificates from src/pki.
import { KeyObject } from 'node:crypto';
import { Prefix } from '../../../src/base/addr.js';
import { createAuthorityCa, issueGatewayCertificate, type AuthorityCa } from '../../../src/pki/ca.js';
import { generateKeyPair } from '../../../src/pki/keys.js';
import { createAttributeAuthority, issuePermit } from '../../../src/pki/permit.js';
import type { x509 } from '../../../src/pki/x509.js';
import { keyObjectSigner } from '../../../src/ike/crypto/signature.js';
import type { IkePeer, LocalIdentity } from '../../../src/ike/engine/types.js';

export const HOUR = 3_600_000;

export interface Authority {
  name: string;
  ca: AuthorityCa;
  aa: { cert: x509.X509Certificate; key: CryptoKey };
}

export interface Gateway {
  authority: Authority;
  name: string;
  cert: x509.X509Certificate;
  key: CryptoKey;
  identity: LocalIdentity;
}

export async function makeAuthority(name: string, now: number): Promise<Authority> {
  const ca = await createAuthorityCa({ authority: name, now });
  return { name, ca, aa: await createAttributeAuthority({ root: ca.root, now }) };
}

export async function makeGateway(authority: Authority, name: string, now: number): Promise<Gateway> {
  const keys = await generateKeyPair();
  const cert = await issueGatewayCertificate({
    issuing: authority.ca.issuing,
    authority: authority.name,
    publicKey: keys.publicKey,
    now,
    gateway: name,
  });
  const signer = keyObjectSigner(KeyObject.from(keys.privateKey), 'ecdsa-with-SHA256');
  return {
    authority,
    name,
    cert,
    key: keys.privateKey,
    identity: {
      certificate: new Uint8Array(cert.rawData),
      signer,
      attributeAuthority: new Uint8Array(authority.aa.cert.rawData),
      certificateAuthorities: [authority.ca.issuing.cert, authority.ca.root.cert].map((c) => new Uint8Array(c.rawData)),
    },
  };
}

/** A permit the issuer's authority gives `holder` (for presenting to the issuer's gateways). */
export async function permitFor(
  issuer: Authority,
  holder: Gateway,
  group: string,
  from: number,
  to: number,
): Promise<Uint8Array> {
  const p = await issuePermit({
    attributeAuthority: { cert: issuer.aa.cert, privateKey: issuer.aa.key },
    holder: holder.cert,
    groups: [group],
    notBefore: new Date(from),
    notAfter: new Date(to),
  });
  return new Uint8Array(p.der);
}

/** What `self`'s authority delivers to `self` about `other` in a pairwise VPN. */
export function peerEntry(o: {
  other: Gateway;
  permit: Uint8Array;
  vpnId: number;
  vpnName: string;
  address: string;
  port?: number;
  local: string[];
  remote: string[];
}): IkePeer {
  return {
    id: o.other.name,
    vpnId: o.vpnId,
    vpnName: o.vpnName,
    endpoint: { address: o.address, port: o.port ?? 500 },
    certificate: new Uint8Array(o.other.cert.rawData),
    permit: o.permit,
    localPrefixes: o.local.map((p) => Prefix.from(p)),
    remotePrefixes: o.remote.map((p) => Prefix.from(p)),
  };
}

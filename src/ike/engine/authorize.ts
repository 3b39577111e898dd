// Who may connect (issue 5, seed 001): a peer authenticates with the certificate ITS authority
// delivered to OUR authority, which delivered it to us (pinned: byte-equal, never a chain we build
// ourselves), and is authorised by a permit that OUR authority's attribute authority issued to
// exactly that certificate for this VPN. Anything else is AUTHENTICATION_FAILED, with the reason.
import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../../base/result.js';
import { CertEncoding, IdType, type Payload } from '../message/index.js';
import { verifyAuth } from '../crypto/signature.js';
import { verifyPermit } from '../../pki/permit.js';
import { x509 } from '../../pki/x509.js';
import type { IkePeer } from './types.js';

/** Parses DER we hold (delivered by our authority, or our own); copies into a plain ArrayBuffer. */
export function certificateOf(der: Uint8Array): x509.X509Certificate {
  return new x509.X509Certificate(new Uint8Array(der).buffer as ArrayBuffer);
}

/** The ID payload a certificate authenticates: its subject DN (ID_DER_ASN1_DN), as strongSwan sends it. */
export function idOf(certificate: Uint8Array): { idType: number; data: Buffer } {
  const c = certificateOf(certificate);
  return { idType: IdType.ID_DER_ASN1_DN, data: Buffer.from(c.subjectName.toArrayBuffer()) };
}

/**
 * The same distinguished name: byte-equal, or equal attribute by attribute (strongSwan encodes an
 * ID configured as a string with its own choice of string types).
 */
export function sameDn(a: Uint8Array, b: Uint8Array): boolean {
  if (Buffer.from(a).equals(Buffer.from(b))) return true;
  try {
    const text = (d: Uint8Array) => new x509.Name(new Uint8Array(d).buffer as ArrayBuffer).toString();
    return text(a) === text(b);
  } catch {
    return false;
  }
}

/** The CERTREQ payload for these CAs (encoding 4: SHA-1 of each SubjectPublicKeyInfo), or none. */
export function certificateRequest(cas: Uint8Array[] | undefined): Payload[] {
  if (!cas || cas.length === 0) return [];
  const hashes = cas.map((der) => createHash('sha1').update(Buffer.from(certificateOf(der).publicKey.rawData)).digest());
  return [{ kind: 'CERTREQ', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) }];
}

export interface PeerProof {
  id: { idType: number; data: Buffer };
  certs: Buffer[];
  permits: Buffer[];
  auth?: { method: number; data: Buffer };
}

/** The identity, certificates and AUTH a peer sent in its IKE_AUTH message. */
export function proofOf(payloads: Payload[], idKind: 'IDi' | 'IDr'): PeerProof | undefined {
  const id = payloads.find((p) => p.kind === idKind);
  if (!id || id.kind !== idKind) return undefined;
  const certs: Buffer[] = [];
  const permits: Buffer[] = [];
  for (const p of payloads) {
    if (p.kind !== 'CERT') continue;
    if (p.encoding === CertEncoding.X509_SIGNATURE) certs.push(p.data);
    else if (p.encoding === CertEncoding.X509_ATTRIBUTE) permits.push(p.data);
  }
  const auth = payloads.find((p) => p.kind === 'AUTH');
  return { id: { idType: id.idType, data: id.data }, certs, permits, auth: auth?.kind === 'AUTH' ? { method: auth.method, data: auth.data } : undefined };
}

/**
 * Checks a peer's proof against a candidate peer entry: pinned certificate, AUTH over `octets`,
 * and a permit for this VPN from our own attribute authority held by exactly that certificate.
 */
export async function authorizePeer(proof: PeerProof, peer: IkePeer, octets: Buffer, ownAttributeAuthority: Uint8Array, now: number): Promise<Result<{ notAfter: number }>> {
  const pinned = Buffer.from(peer.certificate);
  if (proof.id.idType !== IdType.ID_DER_ASN1_DN || !sameDn(idOf(pinned).data, proof.id.data)) return err('auth-id-mismatch', `the peer's ID is not the subject of ${peer.id}'s certificate`);
  const sent = proof.certs[0];
  if (!sent || !sent.equals(pinned)) return err('auth-cert-not-pinned', `the certificate sent is not the one our authority delivered for ${peer.id}`);
  if (!proof.auth) return err('auth-missing', 'no AUTH payload');
  if (proof.auth.method !== 14) return err('auth-method', `AUTH method ${proof.auth.method}; only digital signatures (14, RFC 7427) are accepted`);
  const cert = certificateOf(pinned);
  const v = verifyAuth(new Uint8Array(cert.publicKey.rawData), octets, proof.auth.data);
  if (!v.ok) return err('auth-bad-signature', `AUTH does not verify with ${peer.id}'s certificate: ${v.error.message}`);
  if (proof.permits.length === 0) return err('permit-missing', `${peer.id} sent no permit`);
  const aa = certificateOf(ownAttributeAuthority);
  const reasons: string[] = [];
  for (const der of proof.permits) {
    const r = await verifyPermit(der, { attributeAuthority: aa, holder: cert, group: peer.vpnName, now: new Date(now) });
    if (r.ok) return ok({ notAfter: r.value.notAfter.getTime() });
    reasons.push(`${r.error.code}: ${r.error.message}`);
  }
  return err('permit-refused', `no permit of ${peer.id} authorises VPN ${peer.vpnName}: ${reasons.join('; ')}`);
}

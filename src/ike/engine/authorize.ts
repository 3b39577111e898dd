// Who may connect (issue 5, seed 001): a peer authenticates with the certificate ITS authority
// delivered to OUR authority, which delivered it to us (pinned: byte-equal, never a chain we build
// ourselves), and is authorised by a permit that OUR authority's attribute authority issued to
// exactly that certificate for this VPN. Anything else is AUTHENTICATION_FAILED, with the reason.
//
// Order matters under attack (issue 11): anyone who ran IKE_SA_INIT with us can send an IKE_AUTH
// that decrypts. Until its AUTH verifies, only byte comparisons and one signature verification
// are spent on it: the certificate is compared byte for byte with the pinned one, the AUTH is
// verified with the pinned certificate's key (parsed once and cached: it is our authority's DER,
// not the peer's), and the ID is compared with the certificate's subject by a bounded, linear DN
// comparison (src/pki/der.ts). Permits, the only DER of the peer's that an ASN.1 library reads,
// are looked at after the AUTH verified, at most MAX_PERMITS_TRIED of them, each within the DER
// bounds of src/pki/der.ts.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { err, ok, type Result } from '../../base/result.js';
import { CertEncoding, IdType, type Payload } from '../message/index.js';
import { verifyAuth } from '../crypto/signature.js';
import { verifyPermit, type Permit } from '../../pki/permit.js';
import { NAME_LIMITS, sameName } from '../../pki/der.js';
import { x509 } from '../../pki/x509.js';
import type { IkePeer } from './types.js';

/** Permits of one IKE_AUTH that are verified; the others are ignored (a gateway sends one). */
export const MAX_PERMITS_TRIED = 4;

/**
 * Parsed certificates we hold (our own, our authority's CAs, the pinned certificates of our
 * peers): parsing one costs about a millisecond, and an IKE_SA_INIT or IKE_AUTH must not. Keyed
 * by the DER itself; bounded (a delivery that changes every certificate just refills it).
 */
const parsed = new Map<string, { cert: x509.X509Certificate; subject: Buffer; key: KeyObject }>();
const PARSED_MAX = 1024;

function held(der: Uint8Array): { cert: x509.X509Certificate; subject: Buffer; key: KeyObject } {
  const k = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  let p = parsed.get(k);
  if (!p) {
    const cert = new x509.X509Certificate(new Uint8Array(der).buffer as ArrayBuffer);
    p = {
      cert,
      subject: Buffer.from(cert.subjectName.toArrayBuffer()),
      key: createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' }),
    };
    if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
    parsed.set(k, p);
  }
  return p;
}

/** Parses DER we hold (delivered by our authority, or our own). Cached. */
export function certificateOf(der: Uint8Array): x509.X509Certificate {
  return held(der).cert;
}

/** The ID payload a certificate authenticates: its subject DN (ID_DER_ASN1_DN), as strongSwan sends it. */
export function idOf(certificate: Uint8Array): { idType: number; data: Buffer } {
  return { idType: IdType.ID_DER_ASN1_DN, data: held(certificate).subject };
}

const certReqs = new Map<string, Payload[]>();

/** The CERTREQ payload for these CAs (encoding 4: SHA-1 of each SubjectPublicKeyInfo), or none. Cached. */
export function certificateRequest(cas: Uint8Array[] | undefined): Payload[] {
  if (!cas || cas.length === 0) return [];
  const k = cas.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('latin1')).join('\u0000');
  let p = certReqs.get(k);
  if (!p) {
    const hashes = cas.map((der) =>
      createHash('sha1')
        .update(Buffer.from(certificateOf(der).publicKey.rawData))
        .digest(),
    );
    p = [{ kind: 'CERTREQ', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) }];
    if (certReqs.size >= 16) certReqs.clear();
    certReqs.set(k, p);
  }
  return p;
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
  return {
    id: { idType: id.idType, data: id.data },
    certs,
    permits,
    auth: auth?.kind === 'AUTH' ? { method: auth.method, data: auth.data } : undefined,
  };
}

/**
 * Authentication: the certificate sent is the pinned one (bytes), its AUTH verifies over
 * `octets` with that certificate's key, and its ID is that certificate's subject. `who` names the
 * peer in the reasons.
 */
export function authenticatePeer(proof: PeerProof, pinned: Uint8Array, octets: Buffer, who: string): Result<void> {
  const sent = proof.certs[0];
  if (!sent || !sent.equals(Buffer.from(pinned.buffer, pinned.byteOffset, pinned.byteLength))) {
    return err('auth-cert-not-pinned', `the certificate sent is not the one our authority delivered for ${who}`);
  }
  // An ID longer than any name we compare cannot be the certificate's subject: no need to verify anything.
  if (proof.id.data.length > NAME_LIMITS.maxBytes)
    return err(
      'auth-id-mismatch',
      `the peer's ID is ${proof.id.data.length} bytes, not the subject of ${who}'s certificate`,
    );
  if (!proof.auth) return err('auth-missing', 'no AUTH payload');
  if (proof.auth.method !== 14)
    return err('auth-method', `AUTH method ${proof.auth.method}; only digital signatures (14, RFC 7427) are accepted`);
  const cert = held(pinned);
  const v = verifyAuth(cert.key, octets, proof.auth.data);
  if (!v.ok) return err('auth-bad-signature', `AUTH does not verify with ${who}'s certificate: ${v.error.message}`);
  // The AUTH signed the ID bytes; they must name the certificate's subject (strongSwan may encode
  // it with other string types: sameName compares the text, in linear time, without a library).
  if (proof.id.idType !== IdType.ID_DER_ASN1_DN || !sameName(cert.subject, proof.id.data)) {
    return err('auth-id-mismatch', `the peer's ID is not the subject of ${who}'s certificate`);
  }
  return ok(undefined);
}

/** The permits an authenticated peer sent that verify (issuer, holder, time), and why the others did not. */
export interface CheckedPermits {
  valid: Permit[];
  reasons: string[];
}

/** Verifies the first MAX_PERMITS_TRIED permits of an authenticated peer against our own attribute authority. */
export function checkPermits(
  proof: PeerProof,
  pinned: Uint8Array,
  ownAttributeAuthority: Uint8Array,
  now: number,
): CheckedPermits {
  const out: CheckedPermits = { valid: [], reasons: [] };
  const aa = certificateOf(ownAttributeAuthority);
  const holder = certificateOf(pinned);
  for (const der of proof.permits.slice(0, MAX_PERMITS_TRIED)) {
    const r = verifyPermit(der, { attributeAuthority: aa, holder, now: new Date(now) });
    if (r.ok) out.valid.push(r.value);
    else out.reasons.push(`${r.error.code}: ${r.error.message}`);
  }
  if (proof.permits.length > MAX_PERMITS_TRIED)
    out.reasons.push(
      `${proof.permits.length - MAX_PERMITS_TRIED} more permits were not looked at (at most ${MAX_PERMITS_TRIED})`,
    );
  return out;
}

/** The permit among the verified ones that authorises `peer`'s VPN. */
export function permitForVpn(checked: CheckedPermits, peer: IkePeer): Result<{ notAfter: number }> {
  const p = checked.valid.find((x) => x.groups.includes(peer.vpnName));
  if (p) return ok({ notAfter: p.notAfter.getTime() });
  const reasons = [
    ...checked.valid.map(
      (x) =>
        `permit-wrong-group: the permit does not name the group ${JSON.stringify(peer.vpnName)} (it names ${x.groups.map((g) => JSON.stringify(g)).join(', ')})`,
    ),
    ...checked.reasons,
  ];
  if (checked.valid.length === 0 && checked.reasons.length === 0)
    return err('permit-missing', `${peer.id} sent no permit`);
  return err('permit-refused', `no permit of ${peer.id} authorises VPN ${peer.vpnName}: ${reasons.join('; ')}`);
}

/**
 * Checks a peer's proof against one candidate peer entry: pinned certificate, AUTH over `octets`,
 * then a permit for this VPN from our own attribute authority held by exactly that certificate.
 */
export function authorizePeer(
  proof: PeerProof,
  peer: IkePeer,
  octets: Buffer,
  ownAttributeAuthority: Uint8Array,
  now: number,
): Result<{ notAfter: number }> {
  const a = authenticatePeer(proof, peer.certificate, octets, peer.id);
  if (!a.ok) return a;
  return permitForVpn(checkPermits(proof, peer.certificate, ownAttributeAuthority, now), peer);
}

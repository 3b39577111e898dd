// Permits (seed 001's connection permits): RFC 5755 attribute certificates in the form
// strongSwan's `acert` plugin accepts (docs/interop.md: how that plugin is built and loaded here),
// with issuing, strict parsing and verification.
//
// Which key signs permits: a dedicated attribute-authority (AA) certificate per authority, signed
// by the authority's root, CA:FALSE, key usage digitalSignature only (createAttributeAuthority).
// - strongSwan only accepts an AC whose issuer is loaded locally as an AA certificate
//   (`swanctl/x509aa/`), which it then trusts for ACs by itself. Loading the root or the issuing
//   CA there would make a CA certificate double as a permit issuer; a separate AA keeps the CA keys
//   for certificates and CRLs only, and can be replaced without touching any gateway certificate.
// - "Each gateway verifies a permit with its own authority's public key": the gateway pins the AA
//   certificate its authority delivers, and can check it against the root it already trusts
//   (checkAttributeAuthority).
// - Its subject ("<authority> attribute authority") never equals a gateway's subject, so a
//   permit can never be self-issued (which crashes strongSwan; we refuse those anyway).
//
// Format: v2; holder = baseCertificateID only (the holder certificate's issuer as one
// directoryName + its serial); issuer = v2Form with issuerName = the AA's subject; ECDSA P-256 with
// SHA-256; one `group` attribute (IetfAttrSyntax) with one UTF8String per VPN; extensions
// authorityKeyIdentifier (SHA-1 of the AA's public key bits, RFC 5280 §4.2.1.2 method 1) and
// noRevAvail (strongSwan checks no revocation for ACs: permits are short-lived instead).
//
// Parsing is strict DER: the decoded structure must re-encode to exactly the input bytes, so
// nothing the signature covers can be read two ways.
import { createHash, createPublicKey, KeyObject, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import {
  AsnConvert,
  AsnNullConverter,
  AsnProp,
  AsnPropTypes,
  AsnType,
  AsnTypeTypes,
  OctetString,
} from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Attribute,
  AuthorityKeyIdentifier,
  Certificate,
  Extension,
  Extensions,
  GeneralName,
  GeneralNames,
  KeyIdentifier,
  Name as AsnName,
  SubjectPublicKeyInfo,
  id_ce_authorityKeyIdentifier,
} from '@peculiar/asn1-x509';
import {
  AttCertIssuer,
  AttCertValidityPeriod,
  AttCertVersion,
  AttributeCertificate,
  AttributeCertificateInfo,
  Holder,
  IssuerSerial,
  V2Form,
  id_aca_group,
} from '@peculiar/asn1-x509-attr';
import { err, ok, type Result } from '../base/result.js';
import { randomSerial, type CertAndKey } from './ca.js';
import { derToPem, EC_SIGN_ALG, generateKeyPair, parsePem, toArrayBuffer } from './keys.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';
import { cryptoImpl, x509 } from './x509.js';
import { checkDer, PERMIT_LIMITS, readTlv } from './der.js';

const DAY = 86_400_000;
/** AA certificates start a little in the past, as the CA's certificates do. */
const BACKDATE = 5 * 60_000;

export const PERMIT_PEM_LABEL = 'ATTRIBUTE CERTIFICATE';
/** Longest permit validity verifyPermit accepts unless told otherwise. */
export const DEFAULT_MAX_PERMIT_VALIDITY_MS = 7 * DAY;
/** Largest permit parsed (ours are about 500 bytes). */
export const MAX_PERMIT_BYTES = 16 * 1024;
export const AA_VALIDITY_DAYS = 5 * 365;

export const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
export const OID_GROUP = id_aca_group; // 1.3.6.1.5.5.7.10.4
export const OID_AUTHORITY_KEY_IDENTIFIER = id_ce_authorityKeyIdentifier; // 2.5.29.35
export const OID_NO_REV_AVAIL = '2.5.29.56';

export interface PermitHolder {
  /** The holder certificate's issuer DN, as @peculiar/x509 prints it. */
  issuer: string;
  /** The holder certificate's serial number (hex, as @peculiar/x509 prints it). */
  serialNumber: string;
}

export interface Permit {
  der: Uint8Array;
  serialNumber: string;
  /** The issuing AA's subject DN. */
  issuer: string;
  holder: PermitHolder;
  /** UTF8String values of the group attribute (other value types are ignored). */
  groups: string[];
  notBefore: Date;
  notAfter: Date;
  /** authorityKeyIdentifier keyIdentifier (hex), when present. */
  authorityKeyId?: string;
  /** Whether the noRevAvail extension is present. */
  noRevAvail: boolean;
}

export interface IssuePermitParams {
  /** The issuing authority's AA certificate and its key. */
  attributeAuthority: { cert: x509.X509Certificate; privateKey: CryptoKey };
  /** The certificate of the gateway being authorised (possibly under another authority). */
  holder: x509.X509Certificate;
  /** One per VPN; encoded as UTF8String values. */
  groups: string[];
  notBefore: Date;
  notAfter: Date;
  random?: RandomSource;
}

export interface VerifyPermitOptions {
  /** The AA certificate the verifier's own authority delivered (pinned). */
  attributeAuthority: x509.X509Certificate;
  /** The certificate that authenticated the peer. */
  holder: x509.X509Certificate;
  /** The VPN the permit must name; without it the caller checks `groups` itself (one verification for several VPNs). */
  group?: string;
  now: Date;
  maxValidityMs?: number;
}

// --- ASN.1 for the group values ---------------------------------------------------------------
// @peculiar/asn1-x509-attr's IetfAttrSyntax value type is not declared a CHOICE (it encodes each
// value wrapped in a SEQUENCE), so the syntax is declared here with the same schema tools.

class GroupValue {
  octets?: OctetString;
  oid?: string;
  string?: string;
  constructor(p: Partial<GroupValue> = {}) {
    Object.assign(this, p);
  }
}
AsnProp({ type: OctetString })(GroupValue.prototype, 'octets');
AsnProp({ type: AsnPropTypes.ObjectIdentifier })(GroupValue.prototype, 'oid');
AsnProp({ type: AsnPropTypes.Utf8String })(GroupValue.prototype, 'string');
AsnType({ type: AsnTypeTypes.Choice })(GroupValue);

class GroupSyntax {
  policyAuthority?: GeneralNames;
  values: GroupValue[] = [];
  constructor(p: Partial<GroupSyntax> = {}) {
    Object.assign(this, p);
  }
}
AsnProp({ type: GeneralNames, implicit: true, context: 0, optional: true })(GroupSyntax.prototype, 'policyAuthority');
AsnProp({ type: GroupValue, repeated: 'sequence' })(GroupSyntax.prototype, 'values');
AsnType({ type: AsnTypeTypes.Sequence })(GroupSyntax);

const NULL_DER = new Uint8Array(AsnNullConverter.toASN(null).toBER(false));

/** One IetfAttrSyntax value: a string (UTF8String, what we issue and read), octets or an OID. */
export type GroupValueInput = string | { octets: Uint8Array } | { oid: string };

/**
 * The `group` attribute with one IetfAttrSyntax holding `values` in order. issuePermit uses only
 * strings; the other kinds exist so that tests can build permits strongSwan would ignore.
 */
export function groupAttribute(values: GroupValueInput[]): Attribute {
  const group = new GroupSyntax({
    values: values.map((v) =>
      typeof v === 'string'
        ? new GroupValue({ string: v })
        : 'oid' in v
          ? new GroupValue({ oid: v.oid })
          : new GroupValue({ octets: new OctetString(toArrayBuffer(v.octets)) }),
    ),
  });
  return new Attribute({ type: OID_GROUP, values: [AsnConvert.serialize(group)] });
}

// --- helpers ---------------------------------------------------------------------------------

function bytes(b: ArrayBuffer | ArrayBufferView): Uint8Array {
  return b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

function hex(b: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes(b)).toString('hex');
}

function der(obj: unknown): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(obj));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifierOf(spkiDer: Uint8Array): Uint8Array {
  const spki = AsnConvert.parse(toArrayBuffer(spkiDer), SubjectPublicKeyInfo);
  return new Uint8Array(createHash('sha1').update(bytes(spki.subjectPublicKey)).digest());
}

/** The parts of a certificate a permit refers to, as exact DER. */
interface CertParts {
  subject: Uint8Array;
  issuer: Uint8Array;
  serial: Uint8Array;
  spki: Uint8Array;
  subjectName: AsnName;
  issuerName: AsnName;
}

/**
 * Parsed parts of the certificates a permit is checked against (the AA's and the holder's, which we hold): parsed once.
 */
const partsOf = new WeakMap<x509.X509Certificate, CertParts>();

function certParts(cert: x509.X509Certificate): CertParts {
  let p = partsOf.get(cert);
  if (!p) partsOf.set(cert, (p = parseCertParts(cert)));
  return p;
}

function parseCertParts(cert: x509.X509Certificate): CertParts {
  const c = AsnConvert.parse(cert.rawData, Certificate);
  const tbs = c.tbsCertificate;
  return {
    subject: der(tbs.subject),
    issuer: der(tbs.issuer),
    serial: bytes(tbs.serialNumber),
    spki: der(tbs.subjectPublicKeyInfo),
    subjectName: tbs.subject,
    issuerName: tbs.issuer,
  };
}

function nameString(nameDer: Uint8Array): string {
  return new x509.Name(toArrayBuffer(nameDer)).toString();
}

/**
 * Whether two names would count as one for a self-issued permit. Wider than byte equality on
 * purpose: strongSwan matches some string types case-insensitively, and a near-miss is refused too.
 */
function sameNameLoosely(a: Uint8Array, b: Uint8Array): boolean {
  if (equalBytes(a, b)) return true;
  try {
    return nameString(a).toLowerCase() === nameString(b).toLowerCase();
  } catch {
    return false;
  }
}

/** Whole seconds (DER GeneralizedTime carries no fraction in this profile). */
function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

// --- the attribute authority -----------------------------------------------------------------

/**
 * The authority's attribute-authority certificate: subject O=<authority>, CN="<authority>
 * attribute authority", signed by the authority's root, CA:FALSE, key usage digitalSignature.
 * `authority` defaults to the root's O.
 */
export async function createAttributeAuthority(p: {
  root: CertAndKey;
  authority?: string;
  now: number;
  validityDays?: number;
  random?: RandomSource;
}): Promise<CertAndKey> {
  const authority = p.authority ?? p.root.cert.subjectName.getField('O')[0];
  if (!authority) throw new Error('createAttributeAuthority: no authority name given and the root has no O');
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(p.random),
    subject: new x509.Name([
      { '2.5.4.10': [{ utf8String: authority }] },
      { '2.5.4.3': [{ utf8String: `${authority} attribute authority` }] },
    ]),
    issuer: p.root.cert.subjectName,
    notBefore: new Date(p.now - BACKDATE),
    notAfter: new Date(p.now + (p.validityDays ?? AA_VALIDITY_DAYS) * DAY),
    publicKey: keys.publicKey,
    signingKey: p.root.key,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(p.root.cert.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

/**
 * Checks that `aa` is a usable AA certificate under `root`: signed by it, issuer = root subject,
 * CA:FALSE, digitalSignature allowed, ECDSA P-256, valid at `now`. Never throws.
 */
export async function checkAttributeAuthority(
  aa: x509.X509Certificate,
  root: x509.X509Certificate,
  now: Date,
): Promise<Result<void>> {
  try {
    if (aa.issuer !== root.subject)
      return err('aa-wrong-issuer', `AA certificate issuer "${aa.issuer}" is not the root "${root.subject}"`);
    const signed = await aa.verify({ publicKey: root.publicKey, signatureOnly: true }, cryptoImpl);
    if (!signed) return err('aa-bad-signature', 'AA certificate is not signed by the root');
    if (now < aa.notBefore || now > aa.notAfter)
      return err(
        'aa-not-valid',
        `AA certificate is valid ${aa.notBefore.toISOString()} to ${aa.notAfter.toISOString()}`,
      );
    const bc = aa.getExtension(x509.BasicConstraintsExtension);
    if (bc?.ca) return err('aa-is-ca', 'AA certificate has the CA bit set');
    const ku = aa.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.digitalSignature))
      return err('aa-key-usage', 'AA certificate key usage lacks digitalSignature');
    const key = createPublicKey({ key: Buffer.from(aa.publicKey.rawData), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      return err('aa-key', 'AA key is not ECDSA P-256');
    return ok(undefined);
  } catch (e) {
    return err('aa-malformed', `AA certificate cannot be checked: ${message(e)}`);
  }
}

// --- issuing ---------------------------------------------------------------------------------

/**
 * Issues a permit. Throws on invalid parameters (no or empty groups, notAfter not after notBefore,
 * a key that does not match the AA certificate, a holder whose subject is the AA's subject).
 * Dates are truncated to whole seconds.
 */
export async function issuePermit(p: IssuePermitParams): Promise<Permit> {
  if (p.groups.length === 0) throw new Error('issuePermit: at least one group is required');
  for (const g of p.groups)
    if (typeof g !== 'string' || g.length === 0) throw new Error('issuePermit: groups must be non-empty strings');
  const notBefore = wholeSeconds(p.notBefore);
  const notAfter = wholeSeconds(p.notAfter);
  if (!(notAfter.getTime() > notBefore.getTime())) throw new Error('issuePermit: notAfter must be after notBefore');
  const aa = certParts(p.attributeAuthority.cert);
  const holder = certParts(p.holder);
  if (sameNameLoosely(aa.subject, holder.subject))
    throw new Error('issuePermit: the holder certificate has the AA subject (a self-issued permit)');

  const alg = () => new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA256 });
  const info = new AttributeCertificateInfo({
    version: AttCertVersion.v2,
    holder: new Holder({
      baseCertificateID: new IssuerSerial({
        issuer: new GeneralNames([new GeneralName({ directoryName: holder.issuerName })]),
        serial: toArrayBuffer(holder.serial),
        issuerUID: undefined as unknown as ArrayBuffer, // the library defaults to an empty BIT STRING
      }),
    }),
    issuer: new AttCertIssuer({
      v2Form: new V2Form({ issuerName: new GeneralNames([new GeneralName({ directoryName: aa.subjectName })]) }),
    }),
    signature: alg(),
    serialNumber: toArrayBuffer(Buffer.from(randomSerial(p.random ?? cryptoRandom), 'hex')),
    attrCertValidityPeriod: new AttCertValidityPeriod({ notBeforeTime: notBefore, notAfterTime: notAfter }),
    attributes: [groupAttribute(p.groups)],
    extensions: new Extensions([
      new Extension({
        extnID: OID_AUTHORITY_KEY_IDENTIFIER,
        critical: false,
        extnValue: new OctetString(
          AsnConvert.serialize(
            new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(toArrayBuffer(keyIdentifierOf(aa.spki))) }),
          ),
        ),
      }),
      new Extension({ extnID: OID_NO_REV_AVAIL, critical: false, extnValue: new OctetString(toArrayBuffer(NULL_DER)) }),
    ]),
  });
  const signed = await signPermitInfo(info, p.attributeAuthority.privateKey);
  // The key must belong to the AA certificate: a permit nobody can verify is a configuration error.
  if (!verifySignature(signed, aa.spki))
    throw new Error('issuePermit: the private key does not match the AA certificate');
  const parsed = parsePermit(signed);
  if (!parsed.ok) throw new Error(`issuePermit: produced an unparsable permit: ${parsed.error.message}`);
  return parsed.value;
}

/**
 * Signs an AttributeCertificateInfo as given (ECDSA P-256 / SHA-256) and returns the AC's DER.
 * Low level: no checks at all, so tests and hostile-peer simulations can build malformed permits.
 */
export async function signPermitInfo(info: AttributeCertificateInfo, privateKey: CryptoKey): Promise<Uint8Array> {
  const tbs = der(info);
  const signature = nodeSign('sha256', tbs, { key: KeyObject.from(privateKey), dsaEncoding: 'der' });
  const ac = new AttributeCertificate({
    acinfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA256 }),
    signatureValue: toArrayBuffer(signature),
  });
  return der(ac);
}

/** Decodes a permit into the library's ASN.1 objects (for tests that alter and re-sign one). Throws. */
export function decodePermitAsn(permitDer: Uint8Array): AttributeCertificate {
  const ac = AsnConvert.parse(toArrayBuffer(permitDer), AttributeCertificate);
  dropEmptyIssuerUids(ac);
  return ac;
}

export function permitToPem(p: Permit): string {
  return derToPem(p.der, PERMIT_PEM_LABEL);
}

/** Parses a PEM "ATTRIBUTE CERTIFICATE" block. Never throws. */
export function permitFromPem(pem: string): Result<Permit> {
  const d = parsePem(pem, PERMIT_PEM_LABEL);
  return d.ok ? parsePermit(d.der) : err('permit-pem', d.reason);
}

// --- parsing ---------------------------------------------------------------------------------

interface Decoded {
  permit: Permit;
  tbs: Uint8Array;
  signature: Uint8Array;
  issuerName: Uint8Array;
  holderIssuer: Uint8Array;
  holderSerial: Uint8Array;
}

/** An absent issuerUID parses as the library's default (an empty buffer); make it absent again. */
function dropEmptyIssuerUids(ac: AttributeCertificate): void {
  const fix = (s: IssuerSerial | undefined) => {
    if (s && s.issuerUID !== undefined && s.issuerUID.byteLength === 0)
      s.issuerUID = undefined as unknown as ArrayBuffer;
  };
  fix(ac.acinfo?.holder?.baseCertificateID);
  fix(ac.acinfo?.issuer?.v2Form?.baseCertificateID);
}

/** The single directoryName of a GeneralNames, or undefined. */
function singleDirectoryName(names: GeneralNames | GeneralName[] | undefined): AsnName | undefined {
  if (!names || names.length !== 1) return undefined;
  return names[0].directoryName;
}

/** Permit error codes for the DER shape checks of src/pki/der.ts. */
const DER_CODES: Record<string, string> = {
  'der-not-an-element': 'permit-malformed',
  'der-trailing-bytes': 'permit-trailing-bytes',
  'der-too-large': 'permit-too-large',
  'der-too-many-elements': 'permit-too-large',
  'der-too-deep': 'permit-too-large',
};

function decode(input: Uint8Array): Result<Decoded> {
  if (!(input instanceof Uint8Array)) return err('permit-malformed', 'a permit must be given as bytes');
  if (input.byteLength > MAX_PERMIT_BYTES)
    return err('permit-too-large', `permit is ${input.byteLength} bytes; at most ${MAX_PERMIT_BYTES} are accepted`);
  const d = new Uint8Array(input); // our own copy: the caller may reuse its buffer
  // The peer's bytes reach the ASN.1 library only within bounds it decodes in linear time.
  const shape = checkDer(d, { ...PERMIT_LIMITS, maxBytes: MAX_PERMIT_BYTES });
  if (!shape.ok) {
    const code = DER_CODES[shape.error.code];
    return err(code ?? 'permit-not-der', `not an attribute certificate in DER: ${shape.error.message}`);
  }
  let ac: AttributeCertificate;
  let again: Uint8Array;
  try {
    ac = AsnConvert.parse(toArrayBuffer(d), AttributeCertificate);
    dropEmptyIssuerUids(ac);
    again = der(ac);
  } catch (e) {
    return err('permit-malformed', `not an attribute certificate: ${message(e)}`);
  }
  if (!equalBytes(again, d)) {
    if (again.byteLength < d.byteLength && equalBytes(again, d.subarray(0, again.byteLength))) {
      return err('permit-trailing-bytes', `${d.byteLength - again.byteLength} bytes follow the attribute certificate`);
    }
    return err('permit-not-der', 'the attribute certificate is not in canonical DER');
  }
  const info = ac.acinfo;
  if (info.version !== AttCertVersion.v2)
    return err('permit-version', `attribute certificate version ${info.version} (v2 = 1 is required)`);
  for (const a of [info.signature, ac.signatureAlgorithm]) {
    if (a.algorithm !== OID_ECDSA_WITH_SHA256 || a.parameters !== undefined) {
      return err(
        'permit-signature-algorithm',
        `signature algorithm ${a.algorithm}${a.parameters !== undefined ? ' with parameters' : ''}; only ecdsa-with-SHA256 is accepted`,
      );
    }
  }

  const h = info.holder;
  const base = h.baseCertificateID;
  const holderIssuerName = singleDirectoryName(base?.issuer);
  if (!base || h.entityName || h.objectDigestInfo || !holderIssuerName || base.issuerUID !== undefined) {
    return err(
      'permit-holder-form',
      'the holder must be a baseCertificateID (one directoryName and a serial) and nothing else',
    );
  }
  if (info.issuer.v1Form) return err('permit-issuer-form', 'the issuer uses v1Form; v2Form is required');
  const v2 = info.issuer.v2Form;
  const issuerName = singleDirectoryName(v2?.issuerName);
  if (!v2 || !issuerName || v2.baseCertificateID || v2.objectDigestInfo) {
    return err('permit-issuer-form', 'the issuer must be a v2Form with exactly one directoryName');
  }
  const serial = bytes(info.serialNumber);
  if (serial.byteLength === 0 || serial.byteLength > 20 || serial[0] & 0x80 || serial.every((b) => b === 0)) {
    return err('permit-serial', 'the serial number must be a positive integer of at most 20 octets');
  }
  const holderSerial = bytes(base.serial);
  if (holderSerial.byteLength === 0) return err('permit-holder-form', 'the holder serial is empty');
  if (info.issuerUniqueID !== undefined) return err('permit-malformed', 'issuerUniqueID is not supported');

  const notBefore = info.attrCertValidityPeriod.notBeforeTime;
  const notAfter = info.attrCertValidityPeriod.notAfterTime;
  for (const t of [notBefore, notAfter]) {
    if (!(t instanceof Date) || !Number.isFinite(t.getTime()) || t.getTime() % 1000 !== 0) {
      return err('permit-validity', 'validity times must be GeneralizedTime in whole seconds');
    }
  }
  if (notAfter.getTime() < notBefore.getTime()) return err('permit-validity', 'notAfter is before notBefore');

  const seen = new Set<string>();
  const groups: string[] = [];
  for (const a of info.attributes) {
    if (seen.has(a.type)) return err('permit-duplicate-attribute', `attribute ${a.type} appears more than once`);
    seen.add(a.type);
    if (a.type !== OID_GROUP) continue;
    if (a.values.length === 0) return err('permit-group-syntax', 'the group attribute has no value');
    for (const v of a.values) {
      let g: GroupSyntax;
      try {
        g = AsnConvert.parse(v, GroupSyntax);
        if (!equalBytes(der(g), bytes(v)))
          return err('permit-group-syntax', 'the group attribute value is not in canonical DER');
      } catch (e) {
        return err('permit-group-syntax', `the group attribute value is not an IetfAttrSyntax: ${message(e)}`);
      }
      // Octet and OID values are ignored, as strongSwan does.
      for (const x of g.values) if (typeof x.string === 'string') groups.push(x.string);
    }
  }

  let authorityKeyId: string | undefined;
  let noRevAvail = false;
  const extSeen = new Set<string>();
  for (const e of info.extensions ?? []) {
    if (extSeen.has(e.extnID)) return err('permit-duplicate-extension', `extension ${e.extnID} appears more than once`);
    extSeen.add(e.extnID);
    const value = bytes(e.extnValue.buffer);
    if (e.extnID === OID_AUTHORITY_KEY_IDENTIFIER) {
      try {
        const aki = AsnConvert.parse(toArrayBuffer(value), AuthorityKeyIdentifier);
        if (!equalBytes(der(aki), value) || !aki.keyIdentifier) throw new Error('no keyIdentifier or not DER');
        authorityKeyId = hex(aki.keyIdentifier.buffer);
      } catch (x) {
        return err('permit-extension-value', `bad authorityKeyIdentifier: ${message(x)}`);
      }
    } else if (e.extnID === OID_NO_REV_AVAIL) {
      if (!equalBytes(value, NULL_DER)) return err('permit-extension-value', 'noRevAvail must be NULL');
      noRevAvail = true;
    } else if (e.critical) {
      return err('permit-critical-extension', `unknown critical extension ${e.extnID}`);
    }
  }

  let issuer: string;
  let holderIssuer: string;
  const issuerDer = der(issuerName);
  const holderIssuerDer = der(holderIssuerName);
  try {
    issuer = nameString(issuerDer);
    holderIssuer = nameString(holderIssuerDer);
  } catch (e) {
    return err('permit-malformed', `a name cannot be decoded: ${message(e)}`);
  }
  const permit: Permit = {
    der: d,
    serialNumber: hex(serial),
    issuer,
    holder: { issuer: holderIssuer, serialNumber: hex(holderSerial) },
    groups,
    notBefore,
    notAfter,
    noRevAvail,
  };
  if (authorityKeyId !== undefined) permit.authorityKeyId = authorityKeyId;
  // The input re-encoded to itself, so its first element is exactly the DER of acinfo: what was signed.
  const outer = readTlv(d, 0)!;
  const tbsTlv = readTlv(d, outer.start, outer.end)!;
  return ok({
    permit,
    tbs: d.subarray(outer.start, tbsTlv.end),
    signature: bytes(ac.signatureValue),
    issuerName: issuerDer,
    holderIssuer: holderIssuerDer,
    holderSerial,
  });
}

/** Parses and structurally checks a permit (DER). Checks no signature. Never throws. */
export function parsePermit(input: Uint8Array): Result<Permit> {
  try {
    const r = decode(input);
    return r.ok ? ok(r.value.permit) : r;
  } catch (e) {
    return err('permit-malformed', `cannot parse the permit: ${message(e)}`);
  }
}

// --- verification ----------------------------------------------------------------------------

function verifySignature(permitDer: Uint8Array, spki: Uint8Array): boolean {
  const r = decode(permitDer);
  return r.ok && verifyDecoded(r.value, spki);
}

function verifyDecoded(d: Decoded, spki: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return false;
  // OpenSSL refuses non-DER ECDSA signatures, so the signature cannot be re-encoded either.
  return nodeVerify('sha256', d.tbs, { key, dsaEncoding: 'der' }, d.signature);
}

/**
 * Verifies a permit for one use: issued by `attributeAuthority`, held by exactly `holder`, naming
 * `group`, current at `now`, short-lived. Error codes (each distinct): those of parsePermit, and
 * permit-self-issued, permit-wrong-issuer, permit-issuer-not-valid, permit-aki-mismatch,
 * permit-bad-signature, permit-wrong-holder, permit-not-yet-valid, permit-expired,
 * permit-validity-too-long, permit-no-groups, permit-wrong-group, permit-bad-input. Never throws.
 */
export function verifyPermit(input: Uint8Array, o: VerifyPermitOptions): Result<Permit> {
  try {
    return verifyInner(input, o);
  } catch (e) {
    return err('permit-bad-input', `cannot verify the permit: ${message(e)}`);
  }
}

function verifyInner(input: Uint8Array, o: VerifyPermitOptions): Result<Permit> {
  const now = o.now instanceof Date ? o.now.getTime() : NaN;
  const maxValidity = o.maxValidityMs ?? DEFAULT_MAX_PERMIT_VALIDITY_MS;
  if (!Number.isFinite(now) || !(maxValidity >= 0))
    return err('permit-bad-input', 'now must be a valid Date and maxValidityMs a non-negative number');
  const r = decode(input);
  if (!r.ok) return r;
  const d = r.value;
  const p = d.permit;
  let aa: CertParts;
  let holder: CertParts;
  try {
    aa = certParts(o.attributeAuthority);
    holder = certParts(o.holder);
  } catch (e) {
    return err('permit-bad-input', `the AA or holder certificate cannot be decoded: ${message(e)}`);
  }
  // strongSwan crashes on these; refuse them before anything else looks at the issuer.
  if (sameNameLoosely(d.issuerName, holder.subject))
    return err('permit-self-issued', `the permit issuer "${p.issuer}" is the holder's own subject`);
  if (!equalBytes(d.issuerName, aa.subject))
    return err(
      'permit-wrong-issuer',
      `the permit is issued by "${p.issuer}", not by "${o.attributeAuthority.subject}"`,
    );
  if (now < o.attributeAuthority.notBefore.getTime() || now > o.attributeAuthority.notAfter.getTime()) {
    return err('permit-issuer-not-valid', 'the AA certificate is not valid now');
  }
  if (p.authorityKeyId !== undefined && p.authorityKeyId !== hex(keyIdentifierOf(aa.spki))) {
    return err('permit-aki-mismatch', `the permit's authority key identifier ${p.authorityKeyId} is not the AA's key`);
  }
  if (!verifyDecoded(d, aa.spki))
    return err(
      'permit-bad-signature',
      `the permit signature does not verify with the key of "${o.attributeAuthority.subject}"`,
    );
  if (!equalBytes(d.holderIssuer, holder.issuer) || !equalBytes(d.holderSerial, holder.serial)) {
    return err(
      'permit-wrong-holder',
      `the permit is held by ${p.holder.issuer} serial ${p.holder.serialNumber}, not by the presented certificate (${o.holder.issuer} serial ${o.holder.serialNumber})`,
    );
  }
  if (now < p.notBefore.getTime())
    return err('permit-not-yet-valid', `the permit is valid from ${p.notBefore.toISOString()}`);
  if (now > p.notAfter.getTime()) return err('permit-expired', `the permit expired at ${p.notAfter.toISOString()}`);
  if (p.notAfter.getTime() - p.notBefore.getTime() > maxValidity) {
    return err(
      'permit-validity-too-long',
      `the permit is valid for ${(p.notAfter.getTime() - p.notBefore.getTime()) / 1000} s; at most ${maxValidity / 1000} s is accepted`,
    );
  }
  if (p.groups.length === 0) return err('permit-no-groups', 'the permit has no UTF8String group value');
  if (o.group !== undefined && !p.groups.includes(o.group))
    return err(
      'permit-wrong-group',
      `the permit does not name the group "${o.group}" (it names ${p.groups.map((g) => JSON.stringify(g)).join(', ')})`,
    );
  return ok(p);
}

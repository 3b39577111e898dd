// Where a gateway's private key lives and signs: a file keystore (the default) or a PKCS#11 token
// (src/pki/pkcs11-keystore.ts, seed 001's IC chip). Both give the same interface, so enrollment
// (the CSR) and IKE AUTH signatures do not care which one holds the key.
import { createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Name as AsnName, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { derToPem } from './keys.js';
import { x509 } from './x509.js';

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';

export type SignatureHash = 'SHA-256' | 'SHA-384';

export interface GatewayKeystore {
  /** The public key as DER SubjectPublicKeyInfo (ECDSA P-256). */
  publicKeySpki(): Uint8Array;
  /** ECDSA signature (DER Ecdsa-Sig-Value) over `data` hashed with `hash`. */
  sign(data: Uint8Array, hash?: SignatureHash): Uint8Array;
  /** A PKCS#10 request (PEM) signed in the keystore; without a name the subject is empty. */
  csr(commonName?: string): string;
  /** For logs and status: which keystore, which key. */
  describe(): string;
  close(): void;
}

/** The gateway's key as a PKCS#8 PEM file (see src/gateway/credentials.ts for where it lives). */
export class FileKeyKeystore implements GatewayKeystore {
  private readonly key: KeyObject;

  constructor(
    pkcs8Pem: string,
    private readonly where = 'file keystore',
  ) {
    this.key = createPrivateKey(pkcs8Pem);
  }

  publicKeySpki(): Uint8Array {
    return new Uint8Array(createPublicKey(this.key).export({ type: 'spki', format: 'der' }));
  }

  sign(data: Uint8Array, hash: SignatureHash = 'SHA-256'): Uint8Array {
    return new Uint8Array(
      nodeSign(hash === 'SHA-256' ? 'sha256' : 'sha384', data, { key: this.key, dsaEncoding: 'der' }),
    );
  }

  csr(commonName?: string): string {
    return buildCsr(this, commonName);
  }

  describe(): string {
    return this.where;
  }

  close(): void {}
}

/** A PKCS#10 request signed by the keystore (the key never leaves it). */
export function buildCsr(ks: GatewayKeystore, commonName?: string, hash: SignatureHash = 'SHA-256'): string {
  const spki = AsnConvert.parse(ks.publicKeySpki(), SubjectPublicKeyInfo);
  // Without a name the subject is empty: the authority names the certificate after the token's gateway.
  const subject = AsnConvert.parse(
    new x509.Name(commonName === undefined ? [] : [{ '2.5.4.3': [{ utf8String: commonName }] }]).toArrayBuffer(),
    AsnName,
  );
  const info = new CertificationRequestInfo({ version: 0, subject, subjectPKInfo: spki });
  const tbs = new Uint8Array(AsnConvert.serialize(info));
  const signature = ks.sign(tbs, hash);
  const req = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({
      algorithm: hash === 'SHA-256' ? ECDSA_WITH_SHA256 : ECDSA_WITH_SHA384,
    }),
    signature: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength) as ArrayBuffer,
  });
  return derToPem(new Uint8Array(AsnConvert.serialize(req)), 'CERTIFICATE REQUEST');
}

// The key and certificate a gateway authenticates with in IKE. By default the gateway's own key
// (file keystore) and its enrollment certificate. With `keystore.pkcs11` in the configuration the
// key is made and kept in a PKCS#11 token (seed 001's IC chip: it never leaves the token), and the
// authority certifies it from a CSR signed in the token, sent over the gateway's mutual-TLS
// channel; the certificate is kept beside the credentials and renewed when it nears its end.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AuthorityClient } from '../authority/client.js';
import type { AuthSigner } from '../ike/crypto/signature.js';
import { pemToDer } from '../pki/keys.js';
import { Pkcs11Keystore } from '../pki/pkcs11-keystore.js';
import { FileKeyKeystore, type GatewayKeystore, type SignatureHash } from '../pki/signer.js';
import { x509 } from '../pki/x509.js';
import type { GatewayRunConfig } from './config.js';
import type { Credentials } from './credentials.js';

export const IKE_CERTIFICATE_FILE = 'ike-certificate.pem';
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface IkeIdentity {
  certificate: Uint8Array;
  signer: AuthSigner;
  /** For logs and status: which keystore holds the key. */
  keystore: string;
  close(): void;
}

export class IkeIdentityError extends Error {}

export async function ikeIdentity(
  config: GatewayRunConfig,
  creds: Credentials,
  client: AuthorityClient,
  log: Logger,
  now = Date.now(),
): Promise<IkeIdentity> {
  if (!config.keystore) {
    const ks = new FileKeyKeystore(creds.privateKey);
    return {
      certificate: pemToDer(creds.bundle.certificate, 'CERTIFICATE'),
      signer: keystoreSigner(ks),
      keystore: ks.describe(),
      close: () => ks.close(),
    };
  }
  const o = config.keystore.pkcs11;
  let ks: GatewayKeystore & { ensureKey(): boolean };
  try {
    ks = Pkcs11Keystore.open({ module: o.module, token: o.token, pinFile: o.pinFile, keyLabel: o.key });
  } catch (e) {
    throw new IkeIdentityError(`the PKCS#11 keystore for IKE cannot be opened: ${(e as Error).message}`);
  }
  try {
    if (ks.ensureKey()) log.info({ token: o.token, key: o.key }, 'IKE key generated in the PKCS#11 token');
    const spki = Buffer.from(ks.publicKeySpki());
    const file = join(config.data, IKE_CERTIFICATE_FILE);
    const held = existsSync(file) ? new x509.X509Certificate(readFileSync(file, 'utf8')) : undefined;
    const matches =
      held !== undefined && Buffer.from(held.publicKey.rawData).equals(spki) && held.notAfter.getTime() > now;
    if (!matches || held!.notAfter.getTime() - now < RENEW_BEFORE_MS) {
      try {
        const { certificate } = await client.requestIkeCertificate(ks.csr(creds.bundle.gateway.name));
        const cert = new x509.X509Certificate(certificate);
        if (!Buffer.from(cert.publicKey.rawData).equals(spki))
          throw new Error("the authority's certificate is not for the token's key");
        writeFileSync(file, certificate, { mode: 0o644 });
        log.info(
          { serial: cert.serialNumber, notAfter: cert.notAfter.toISOString() },
          'IKE certificate for the token key received from the authority',
        );
        return {
          certificate: new Uint8Array(cert.rawData),
          signer: keystoreSigner(ks),
          keystore: ks.describe(),
          close: () => ks.close(),
        };
      } catch (e) {
        if (!matches)
          throw new IkeIdentityError(
            `no IKE certificate for the PKCS#11 key yet, and the authority did not issue one: ${(e as Error).message}`,
          );
        log.warn({ err: (e as Error).message }, 'IKE certificate renewal failed; using the current one');
      }
    }
    return {
      certificate: new Uint8Array(held!.rawData),
      signer: keystoreSigner(ks),
      keystore: ks.describe(),
      close: () => ks.close(),
    };
  } catch (e) {
    ks.close();
    throw e;
  }
}

/** IKE AUTH (RFC 7427, ECDSA with SHA-256) signs through the keystore: the key stays where it is. */
export function keystoreSigner(ks: GatewayKeystore, hash: SignatureHash = 'SHA-256'): AuthSigner {
  return { sign: (data: Buffer) => Buffer.from(ks.sign(data, hash)) };
}

// Where the authority's CA keys live. By default in the keystore (PKCS#8 files, 0600), which
// `kasane authority replica` copies file to file to each replica. With `ca.pkcs11` in
// authority.json (`kasane authority init --ca-pkcs11-module …`), the root and issuing CA keys are
// made inside a PKCS#11 token as sensitive, non-extractable keys and every signature (gateway and
// server certificates, CRLs, the attribute authority's certificate) is made there; a replica
// copies only the token's coordinates, and its host must reach the same keys (a network HSM's
// PKCS#11 module, or a token holding the same keys). Either way they never enter the database.
import { Pkcs11Keystore } from '../pki/pkcs11-keystore.js';
import { EC_KEY_ALG, importPrivateKey, toArrayBuffer, cryptoImpl } from '../pki/keys.js';
import { FileKeystore } from '../pki/keystore.js';
import { externalSigningKey, type x509 } from '../pki/x509.js';
import { dataPaths, KEY_ISSUING, KEY_ROOT, type AuthorityConfig, type CaPkcs11Config } from './config.js';

/** The CA's private keys, ready to sign; `close()` ends the token sessions. */
export interface CaKeys {
  root: CryptoKey;
  issuing: CryptoKey;
  close(): void;
}

/**
 * The labels of the CA keys in a token: those of the certificates' common names, so one token can hold several
 * authorities.
 */
export function caKeyLabels(authority: string): { rootKey: string; issuingKey: string } {
  return { rootKey: `${authority} root CA`, issuingKey: `${authority} issuing CA` };
}

function open(c: CaPkcs11Config, label: string): Pkcs11Keystore {
  return Pkcs11Keystore.open({ module: c.module, token: c.token, pinFile: c.pinFile, keyLabel: label });
}

async function publicKey(ks: Pkcs11Keystore): Promise<CryptoKey> {
  return cryptoImpl.subtle.importKey('spki', toArrayBuffer(await ks.publicKeySpki()), EC_KEY_ALG, true, ['verify']);
}

/**
 * New root and issuing key pairs made in the token (for `init`). Refuses a token that already
 * holds keys of these labels; `discard()` removes what was made when the creation fails later.
 */
export async function makeTokenCaKeys(
  c: CaPkcs11Config,
): Promise<{ root: CryptoKeyPair; issuing: CryptoKeyPair; close(): void; discard(): void }> {
  const made: Pkcs11Keystore[] = [];
  const close = (): void => made.forEach((k) => k.close());
  try {
    const pairs: CryptoKeyPair[] = [];
    for (const label of [c.rootKey, c.issuingKey]) {
      const ks = open(c, label);
      if (!ks.ensureKey()) {
        ks.close();
        throw new Error(
          `token "${c.token}" already holds a key "${label}": remove it, or make the authority with another name or token`,
        );
      }
      made.push(ks);
      pairs.push({ privateKey: externalSigningKey(ks), publicKey: await publicKey(ks) });
    }
    return {
      root: pairs[0],
      issuing: pairs[1],
      close,
      discard: () => {
        for (const k of made) k.destroyKey();
        close();
      },
    };
  } catch (e) {
    for (const k of made) k.destroyKey();
    close();
    throw e;
  }
}

/**
 * The CA keys of a data directory: from its token (checked against the CA certificates: the same
 * public keys), or from its keystore files.
 */
export async function openCaKeys(
  dataDir: string,
  config: AuthorityConfig,
  certs: { root: x509.X509Certificate; issuing: x509.X509Certificate },
): Promise<CaKeys> {
  const c = config.ca?.pkcs11;
  if (!c) {
    const keystore = new FileKeystore(dataPaths(dataDir).keystore);
    for (const k of [KEY_ROOT, KEY_ISSUING]) {
      if (!keystore.has(k))
        throw new Error(
          `the CA key ${dataPaths(dataDir).keystore}/${k} is missing, and authority.json names no PKCS#11 token for the CA keys`,
        );
    }
    return {
      root: await importPrivateKey(keystore.read(KEY_ROOT), 'sign'),
      issuing: await importPrivateKey(keystore.read(KEY_ISSUING), 'sign'),
      close: () => undefined,
    };
  }
  const opened: Pkcs11Keystore[] = [];
  const close = (): void => opened.forEach((k) => k.close());
  try {
    const keys: CryptoKey[] = [];
    for (const [label, cert] of [
      [c.rootKey, certs.root],
      [c.issuingKey, certs.issuing],
    ] as const) {
      const ks = open(c, label);
      opened.push(ks);
      if (!Buffer.from(await ks.publicKeySpki()).equals(Buffer.from(cert.publicKey.rawData))) {
        throw new Error(
          `the key "${label}" in token "${c.token}" is not the one of the certificate ${cert.subject}: is it this authority's token?`,
        );
      }
      keys.push(externalSigningKey(ks));
    }
    return { root: keys[0], issuing: keys[1], close };
  } catch (e) {
    close();
    throw e;
  }
}

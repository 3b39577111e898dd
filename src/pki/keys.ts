// Key material for the authority and its gateways: ECDSA P-256 key pairs (the same curve point
// also serves as the gateway's HPKE recipient key), PKCS#8 / SPKI encodings, PEM helpers.
import { createHash } from 'node:crypto';
import { cryptoImpl, x509 } from './x509.js';

export { cryptoImpl };

export const EC_KEY_ALG: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const EC_SIGN_ALG: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** A fresh P-256 key pair, extractable so that it can go to a keystore file or a bundle. */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await cryptoImpl.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = await cryptoImpl.subtle.exportKey('pkcs8', key);
  return joinPem(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

export async function exportSpkiDer(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await cryptoImpl.subtle.exportKey('spki', key));
}

/** Decodes one PEM block of the given label (or throws with a precise message). */
export function pemToDer(pem: string, label: string): Uint8Array {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`);
  const m = re.exec(pem);
  if (!m) throw new Error(`not a PEM ${label}`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/**
 * One PEM block and nothing else (white space around it aside), for PEM someone else gives us:
 * a CSR, a peer authority's certificates, a permit. Text before or after the block, a second
 * block, or characters outside base64 are refused, so what is checked is all there is.
 */
export function parsePem(text: string, label: string): { ok: true; der: Uint8Array } | { ok: false; reason: string } {
  const m = /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END ([A-Z0-9 ]+)-----\s*$/.exec(text);
  if (!m) {
    const at = text.indexOf('-----BEGIN ');
    if (at > 0 && text.slice(0, at).trim() !== '')
      return { ok: false, reason: `text before the PEM boundary: ${JSON.stringify(text.slice(0, Math.min(at, 40)))}` };
    return {
      ok: false,
      reason: `not exactly one PEM ${label} block (-----BEGIN ${label}----- ... -----END ${label}-----, nothing else)`,
    };
  }
  if (m[1] !== label || m[3] !== label)
    return { ok: false, reason: `a PEM ${m[1] === m[3] ? m[1] : `${m[1]}/${m[3]}`} block where ${label} was expected` };
  const b64 = m[2].replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0)
    return { ok: false, reason: `the PEM ${label} block is not base64` };
  return { ok: true, der: new Uint8Array(Buffer.from(b64, 'base64')) };
}

export function derToPem(der: Uint8Array | ArrayBuffer, label: string): string {
  return joinPem(x509.PemConverter.encode(der instanceof Uint8Array ? toArrayBuffer(der) : der, label));
}

export function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Imports a PKCS#8 P-256 private key for signing (ECDSA) or for HPKE decapsulation (ECDH). */
export async function importPrivateKey(pkcs8: string | Uint8Array, use: 'sign' | 'ecdh'): Promise<CryptoKey> {
  const der = typeof pkcs8 === 'string' ? pemToDer(pkcs8, 'PRIVATE KEY') : pkcs8;
  const alg = use === 'sign' ? EC_KEY_ALG : { name: 'ECDH', namedCurve: 'P-256' };
  return cryptoImpl.subtle.importKey(
    'pkcs8',
    toArrayBuffer(der),
    alg,
    true,
    use === 'sign' ? ['sign'] : ['deriveBits'],
  );
}

/** The public half of a PKCS#8 private key, as an ECDSA verify key (webcrypto cannot derive it). */
export async function publicKeyOf(privateKey: CryptoKey): Promise<CryptoKey> {
  const jwk = await cryptoImpl.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  return cryptoImpl.subtle.importKey('jwk', jwk, EC_KEY_ALG, true, ['verify']);
}

/** Imports a SubjectPublicKeyInfo (P-256) as an ECDH public key: the HPKE recipient key. */
export async function importEcdhPublicKey(spki: Uint8Array): Promise<CryptoKey> {
  return cryptoImpl.subtle.importKey('spki', toArrayBuffer(spki), { name: 'ECDH', namedCurve: 'P-256' }, true, []);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Colon-separated upper-case SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it. */
export function fingerprint(der: Uint8Array): string {
  return sha256Hex(der).toUpperCase().match(/../g)!.join(':');
}

/** Concatenates PEM blocks, one per line group, ending with a newline. */
export function joinPem(...blocks: string[]): string {
  return blocks.map((b) => b.trim()).join('\n') + '\n';
}

// The one place that loads @peculiar/x509: the Reflect shim must run before it, and the library
// must use node's webcrypto. Import x509 from here, never from '@peculiar/x509' directly.
//
// Keys that live outside the process (the authority's CA keys in a PKCS#11 token) sign through
// the same calls: `externalSigningKey` makes a stand-in CryptoKey, and this module's webcrypto
// sends `subtle.sign` for a stand-in to its signer; every other call goes to node's webcrypto.
import './reflect-shim.js';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** Signs outside the process: ECDSA P-256, the signature as r || s (what WebCrypto returns). */
export interface ExternalSigner {
  signRaw(data: Uint8Array, hash: 'SHA-256' | 'SHA-384'): Uint8Array;
  describe(): string;
}

const external = new WeakMap<object, ExternalSigner>();

/** A private ECDSA P-256 CryptoKey whose signatures `signer` makes (for the x509 generators and subtle.sign here). */
export function externalSigningKey(signer: ExternalSigner): CryptoKey {
  const key = Object.freeze({
    type: 'private',
    extractable: false,
    algorithm: Object.freeze({ name: 'ECDSA', namedCurve: 'P-256' }),
    usages: Object.freeze(['sign']),
  });
  external.set(key, signer);
  return key as unknown as CryptoKey;
}

/** Where a key signs, for logs: the external signer's description, or "in memory". */
export function describeKey(key: CryptoKey): string {
  return external.get(key)?.describe() ?? 'in memory';
}

const subtle = webcrypto.subtle;

async function sign(
  algorithm: AlgorithmIdentifier | EcdsaParams,
  key: CryptoKey,
  data: BufferSource,
): Promise<ArrayBuffer> {
  const signer = external.get(key);
  if (!signer) return subtle.sign(algorithm as EcdsaParams, key as webcrypto.CryptoKey, data as ArrayBuffer);
  const hash = typeof algorithm === 'object' && 'hash' in algorithm ? algorithm.hash : undefined;
  const hashName = typeof hash === 'string' ? hash : (hash as { name?: string } | undefined)?.name;
  if (hashName !== 'SHA-256' && hashName !== 'SHA-384')
    throw new Error(`a key in ${signer.describe()} signs ECDSA with SHA-256 or SHA-384, not ${String(hashName)}`);
  const bytes = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
  const sig = signer.signRaw(bytes, hashName);
  return sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.byteLength) as ArrayBuffer;
}

/** The webcrypto every PKI call uses: node's own, with `sign` also serving external keys. */
export const cryptoImpl = {
  subtle: new Proxy(subtle, {
    get(target, prop) {
      if (prop === 'sign') return sign;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }),
  getRandomValues: <T extends ArrayBufferView | null>(array: T): T => webcrypto.getRandomValues(array as never) as T,
  randomUUID: () => webcrypto.randomUUID(),
} as unknown as Crypto;
x509.cryptoProvider.set(cryptoImpl);

// asn1js (under every @peculiar package) decodes a BOOLEAN of n octets in O(n²) time: a 64 KB one
// costs about a second of CPU, wherever it sits (a certificate extension, a permit, an IKE ID).
// DER and BER both say a BOOLEAN is exactly one octet, so refuse any other length before the
// library looks at it. This is the library instance the @peculiar packages load (resolved from
// theirs), patched once at start. src/pki/der.ts bounds everything else about untrusted DER.
{
  const asn1js = createRequire(createRequire(import.meta.url).resolve('@peculiar/asn1-schema'))('asn1js') as {
    Boolean: new () => { valueBlock: object };
  };
  const block = Object.getPrototypeOf(new asn1js.Boolean().valueBlock) as {
    fromBER(this: { error: string }, buf: ArrayBuffer, offset: number, length: number): number;
    __kasaneOneOctet?: true;
  };
  if (!block.__kasaneOneOctet) {
    const decode = block.fromBER;
    block.fromBER = function (this: { error: string }, buf, offset, length) {
      if (length !== 1) {
        this.error = `a BOOLEAN is one octet, not ${length}`;
        return -1;
      }
      return decode.call(this, buf, offset, length);
    };
    block.__kasaneOneOctet = true;
  }
}

export { x509 };

/**
 * A certificate someone else gave us (DER), read within the bounds of src/pki/der.ts: its names,
 * key and extensions are parsed here, so that nothing later throws on them. Never throws.
 */
export async function readCertificate(
  der: Uint8Array,
): Promise<{ ok: true; value: x509.X509Certificate } | { ok: false; error: { code: string; message: string } }> {
  const { CERTIFICATE_LIMITS, checkDer } = await import('./der.js');
  const shape = checkDer(der, CERTIFICATE_LIMITS);
  if (!shape.ok)
    return {
      ok: false,
      error: { code: 'bad-certificate', message: `not a certificate in DER: ${shape.error.message}` },
    };
  try {
    const c = new x509.X509Certificate(new Uint8Array(der).buffer as ArrayBuffer);
    void [
      c.subject,
      c.issuer,
      c.serialNumber,
      c.notBefore,
      c.notAfter,
      c.publicKey.algorithm,
      c.extensions.map((e) => e.type),
    ];
    return { ok: true, value: c };
  } catch (e) {
    return {
      ok: false,
      error: { code: 'bad-certificate', message: `not a certificate: ${e instanceof Error ? e.message : String(e)}` },
    };
  }
}

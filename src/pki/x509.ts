// The one place that loads @peculiar/x509: the Reflect shim must run before it, and the library
// must use node's webcrypto. Import x509 from here, never from '@peculiar/x509' directly.
import './reflect-shim.js';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** The webcrypto every PKI call uses (node's own). */
export const cryptoImpl = webcrypto as unknown as Crypto;
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
export async function readCertificate(der: Uint8Array): Promise<{ ok: true; value: x509.X509Certificate } | { ok: false; error: { code: string; message: string } }> {
  const { CERTIFICATE_LIMITS, checkDer } = await import('./der.js');
  const shape = checkDer(der, CERTIFICATE_LIMITS);
  if (!shape.ok) return { ok: false, error: { code: 'bad-certificate', message: `not a certificate in DER: ${shape.error.message}` } };
  try {
    const c = new x509.X509Certificate(new Uint8Array(der).buffer as ArrayBuffer);
    void [c.subject, c.issuer, c.serialNumber, c.notBefore, c.notAfter, c.publicKey.algorithm, c.extensions.map((e) => e.type)];
    return { ok: true, value: c };
  } catch (e) {
    return { ok: false, error: { code: 'bad-certificate', message: `not a certificate: ${e instanceof Error ? e.message : String(e)}` } };
  }
}

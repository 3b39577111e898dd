// The one place that loads @peculiar/x509: the Reflect shim must run before it, and the library
// must use node's webcrypto. Import x509 from here, never from '@peculiar/x509' directly.
import './reflect-shim.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** The webcrypto every PKI call uses (node's own). */
export const cryptoImpl = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(cryptoImpl);

export { x509 };

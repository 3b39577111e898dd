// A gateway key inside a PKCS#11 token: seed 001's IC chip. The P-256 key pair is generated in the
// token as sensitive and non-extractable and is only ever used there (signatures: IKE AUTH, the
// enrollment CSR); the public key and signatures come out, the private key never does. SoftHSM2
// (Debian's softhsm2) is the token in the tests; any PKCS#11 module with CKM_EC_KEY_PAIR_GEN and
// CKM_ECDSA works.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { buildCsr, type GatewayKeystore, type SignatureHash } from './signer.js';
import { ecdsaRawToDer } from './ecdsa-signature.js';

// pkcs11js is CommonJS and builds its exports at run time, so an ES namespace import sees only some
// of them (its CK* constants are missing): load it through require.
const pkcs11js = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;
type Handle = Pkcs11Types.Handle;

/** DER of the named-curve OID prime256v1 (CKA_EC_PARAMS). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** SubjectPublicKeyInfo prefix for an uncompressed P-256 point (04 | x | y follows). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

export interface Pkcs11Options {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Label of the token that holds (or will hold) the key. */
  token: string;
  /** The user PIN, or a file holding it (first line). A file keeps it out of argv and the environment. */
  pin?: string;
  pinFile?: string;
  /** Label (and CKA_ID) of the key pair; default "kasane-gateway". */
  keyLabel?: string;
}

export class Pkcs11Error extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** A P-256 key in a PKCS#11 token. Open with `Pkcs11Keystore.open`, then `ensureKey()`; `close()` at the end. */
export class Pkcs11Keystore implements GatewayKeystore {
  private privateKey?: Handle;
  private publicKey?: Handle;
  private closed = false;

  private constructor(
    private readonly p11: Pkcs11Types.PKCS11,
    private readonly session: Handle,
    private readonly pin: string,
    readonly options: Pkcs11Options,
  ) {}

  /**
   * Loads the module (once per process: keystores of one module share it), finds the token by
   * label, logs in. Errors name what is wrong (module, token, PIN).
   */
  static open(o: Pkcs11Options): Pkcs11Keystore {
    const pin = o.pin ?? (o.pinFile ? readPin(o.pinFile) : undefined);
    if (!pin) throw new Pkcs11Error('a PKCS#11 token needs a PIN: give a PIN file', 'pkcs11-no-pin');
    const p11 = loadModule(o.module);
    try {
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === o.token);
      if (slot === undefined) throw new Pkcs11Error(`no token labelled "${o.token}" in ${o.module}`, 'pkcs11-no-token');
      const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      const ks = new Pkcs11Keystore(p11, session, pin, o);
      try {
        ks.login();
      } catch (e) {
        safe(() => p11.C_CloseSession(session));
        throw e;
      }
      return ks;
    } catch (e) {
      unloadModule(o.module);
      if (e instanceof Pkcs11Error) throw e;
      throw new Pkcs11Error(`PKCS#11 token "${o.token}": ${(e as Error).message}`, 'pkcs11-error');
    }
  }

  get label(): string {
    return this.options.keyLabel ?? 'kasane-gateway';
  }

  private login(): void {
    try {
      this.p11.C_Login(this.session, pkcs11js.CKU_USER, this.pin);
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return;
      if (code === pkcs11js.CKR_PIN_INCORRECT)
        throw new Pkcs11Error(`wrong PIN for token "${this.options.token}"`, 'pkcs11-pin');
      if (code === pkcs11js.CKR_PIN_LOCKED)
        throw new Pkcs11Error(`the PIN of token "${this.options.token}" is locked`, 'pkcs11-pin-locked');
      throw e;
    }
  }

  /** Runs a token operation, logging in again once if the token forgot the login (e.g. after a reset). */
  private withLogin<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if ((e as { code?: number }).code !== pkcs11js.CKR_USER_NOT_LOGGED_IN) throw e;
      this.login();
      return fn();
    }
  }

  private find(cls: number): Handle | undefined {
    return this.withLogin(() => {
      this.p11.C_FindObjectsInit(this.session, [
        { type: pkcs11js.CKA_CLASS, value: cls },
        { type: pkcs11js.CKA_LABEL, value: this.label },
      ]);
      try {
        return this.p11.C_FindObjects(this.session) ?? undefined;
      } finally {
        this.p11.C_FindObjectsFinal(this.session);
      }
    });
  }

  /** Finds the key pair by label, or generates it in the token. Returns true when it was generated. */
  ensureKey(): boolean {
    this.privateKey = this.find(pkcs11js.CKO_PRIVATE_KEY);
    this.publicKey = this.find(pkcs11js.CKO_PUBLIC_KEY);
    if (this.privateKey !== undefined && this.publicKey !== undefined) return false;
    if (this.privateKey !== undefined || this.publicKey !== undefined) {
      throw new Pkcs11Error(
        `token "${this.options.token}" holds only half of key pair "${this.label}"`,
        'pkcs11-half-key',
      );
    }
    const id = createHash('sha256').update(this.label).digest().subarray(0, 16);
    const keys = this.withLogin(() =>
      this.p11.C_GenerateKeyPair(
        this.session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: this.label },
          { type: pkcs11js.CKA_ID, value: id },
          { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
          { type: pkcs11js.CKA_VERIFY, value: true },
        ],
        [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_LABEL, value: this.label },
          { type: pkcs11js.CKA_ID, value: id },
          // The point of a token: the key can sign and can never be read out.
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: true },
        ],
      ),
    );
    this.privateKey = keys.privateKey;
    this.publicKey = keys.publicKey;
    return true;
  }

  /** Removes the key pair from the token (a key made for an authority whose creation then failed). */
  destroyKey(): void {
    for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) {
      const h = this.find(cls);
      if (h !== undefined) this.withLogin(() => this.p11.C_DestroyObject(this.session, h));
    }
    this.privateKey = undefined;
    this.publicKey = undefined;
  }

  private keys(): { priv: Handle; pub: Handle } {
    if (this.closed) throw new Pkcs11Error('the PKCS#11 keystore is closed', 'pkcs11-closed');
    if (this.privateKey === undefined || this.publicKey === undefined) this.ensureKeyExisting();
    return { priv: this.privateKey!, pub: this.publicKey! };
  }

  private ensureKeyExisting(): void {
    this.privateKey = this.find(pkcs11js.CKO_PRIVATE_KEY);
    this.publicKey = this.find(pkcs11js.CKO_PUBLIC_KEY);
    if (this.privateKey === undefined || this.publicKey === undefined)
      throw new Pkcs11Error(`no key pair "${this.label}" in token "${this.options.token}"`, 'pkcs11-no-key');
  }

  /** Attributes of the private key that say it cannot leave the token. */
  privateKeyProtection(): { sensitive: boolean; extractable: boolean; neverExtractable: boolean } {
    const { priv } = this.keys();
    const a = this.withLogin(() =>
      this.p11.C_GetAttributeValue(this.session, priv, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      ]),
    );
    const bool = (i: number) => Buffer.isBuffer(a[i].value) && (a[i].value as Buffer)[0] === 1;
    return { sensitive: bool(0), extractable: bool(1), neverExtractable: bool(2) };
  }

  /** Tries to read the private scalar; a token must refuse. Returns the error code it gave. */
  tryReadPrivateValue(): string {
    const { priv } = this.keys();
    try {
      this.withLogin(() => this.p11.C_GetAttributeValue(this.session, priv, [{ type: pkcs11js.CKA_VALUE }]));
      return 'read';
    } catch (e) {
      return `refused (PKCS#11 error ${(e as { code?: number }).code ?? '?'})`;
    }
  }

  publicKeySpki(): Uint8Array {
    const { pub } = this.keys();
    const [attr] = this.withLogin(() =>
      this.p11.C_GetAttributeValue(this.session, pub, [{ type: pkcs11js.CKA_EC_POINT }]),
    );
    const v = attr.value as Buffer;
    // CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give the bare point).
    const point = v[0] === 0x04 && v.length === 67 && v[1] === 65 ? v.subarray(2) : v;
    if (point.length !== 65 || point[0] !== 0x04)
      throw new Pkcs11Error(
        'the token returned an EC point that is not an uncompressed P-256 point',
        'pkcs11-bad-point',
      );
    return new Uint8Array(Buffer.concat([P256_SPKI_PREFIX, point]));
  }

  /** ECDSA over the hash of `data`, computed here; the token signs the digest (CKM_ECDSA). DER signature out. */
  sign(data: Uint8Array, hash: SignatureHash = 'SHA-256'): Uint8Array {
    return new Uint8Array(ecdsaRawToDer(Buffer.from(this.signRaw(data, hash))));
  }

  /** The same signature as r || s (32 bytes each), as CKM_ECDSA and WebCrypto give it. */
  signRaw(data: Uint8Array, hash: SignatureHash = 'SHA-256'): Uint8Array {
    const { priv } = this.keys();
    const digest = createHash(hash === 'SHA-256' ? 'sha256' : 'sha384')
      .update(data)
      .digest();
    return new Uint8Array(
      this.withLogin(() => {
        this.p11.C_SignInit(this.session, { mechanism: pkcs11js.CKM_ECDSA }, priv);
        return this.p11.C_Sign(this.session, digest, Buffer.alloc(64));
      }),
    );
  }

  csr(commonName?: string): string {
    return buildCsr(this, commonName);
  }

  describe(): string {
    return `PKCS#11 token "${this.options.token}" (${this.options.module}), key "${this.label}"`;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The login belongs to the token, not the session: the last keystore of the module logs out.
    if (moduleUsers(this.options.module) === 1) safe(() => this.p11.C_Logout(this.session));
    safe(() => this.p11.C_CloseSession(this.session));
    unloadModule(this.options.module);
  }
}

/**
 * PKCS#11 modules loaded in this process, with how many keystores use each: C_Initialize may run
 * once per module and process (a second one fails), and C_Finalize would end every session of it.
 */
const modules = new Map<string, { p11: Pkcs11Types.PKCS11; users: number }>();

function loadModule(path: string): Pkcs11Types.PKCS11 {
  const loaded = modules.get(path);
  if (loaded) {
    loaded.users++;
    return loaded.p11;
  }
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(path);
  } catch (e) {
    throw new Pkcs11Error(`cannot load the PKCS#11 module ${path}: ${(e as Error).message}`, 'pkcs11-module');
  }
  try {
    p11.C_Initialize();
  } catch (e) {
    safe(() => p11.close());
    throw new Pkcs11Error(`PKCS#11 module ${path}: ${(e as Error).message}`, 'pkcs11-error');
  }
  modules.set(path, { p11, users: 1 });
  return p11;
}

function moduleUsers(path: string): number {
  return modules.get(path)?.users ?? 0;
}

function unloadModule(path: string): void {
  const loaded = modules.get(path);
  if (!loaded || --loaded.users > 0) return;
  modules.delete(path);
  safe(() => loaded.p11.C_Finalize());
  safe(() => loaded.p11.close());
}

function readPin(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n')[0].trim();
  } catch (e) {
    throw new Pkcs11Error(`cannot read the PIN file ${file}: ${(e as Error).message}`, 'pkcs11-no-pin');
  }
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    /* closing: nothing more to do */
  }
}

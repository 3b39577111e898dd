// The authority's keystore: one file per key in a directory only its owner can read (0700), each
// file 0600. Private keys are PKCS#8 PEM; secrets (the key-encryption key) are base64 text.
// Files are written to a temporary name and renamed, so a crash never leaves half a key.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class FileKeystore {
  constructor(readonly dir: string) {}

  /** Creates the directory (0700) if needed. */
  ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
  }

  path(name: string): string {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw new Error(`bad keystore entry name ${JSON.stringify(name)}`);
    return join(this.dir, name);
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  write(name: string, content: string): void {
    const p = this.path(name);
    const tmp = `${p}.tmp-${process.pid}`;
    writeFileSync(tmp, content, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, p);
  }

  /** Reads an entry; refuses one that others can read (a key that leaked is no key). */
  read(name: string): string {
    const p = this.path(name);
    if (!existsSync(p)) throw new Error(`keystore entry ${p} is missing`);
    const mode = statSync(p).mode & 0o777;
    if (mode & 0o077)
      throw new Error(`keystore entry ${p} is readable by others (mode ${mode.toString(8)}); run chmod 600 on it`);
    return readFileSync(p, 'utf8');
  }

  writeSecret(name: string, bytes: Uint8Array): void {
    this.write(name, Buffer.from(bytes).toString('base64') + '\n');
  }

  readSecret(name: string): Uint8Array {
    return new Uint8Array(Buffer.from(this.read(name).trim(), 'base64'));
  }
}

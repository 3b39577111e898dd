// SoftHSM2 (Debian's softhsm2) as the PKCS#11 token of tests: installed when running as root (CI),
// each test with a private configuration and token directory (never the system's /var/lib/softhsm).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** Why SoftHSM2 cannot be used here (undefined: it can); installs it first when running as root. */
export function softhsmMissing(): string | undefined {
  if (existsSync(SOFTHSM_MODULE)) return undefined;
  if (process.getuid?.() !== 0) return 'SoftHSM2 is not installed (apt-get install softhsm2)';
  const install = (): void =>
    void execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'softhsm2'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    install();
  }
  return existsSync(SOFTHSM_MODULE) ? undefined : 'softhsm2 installed but its module is missing';
}

/**
 * A private SoftHSM2 configuration (SOFTHSM2_CONF, read when the module is initialised) with one
 * new token, and a PIN file (0600). `dir`: where (default: a new temporary directory).
 */
export function privateSofthsmToken(
  label: string,
  pin: string,
  dir = mkdtempSync(join(tmpdir(), 'kasane-softhsm-')),
): { dir: string; pinFile: string } {
  writeFileSync(
    join(dir, 'softhsm2.conf'),
    `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '87654321'], {
    stdio: 'ignore',
    env: process.env,
  });
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  return { dir, pinFile };
}

// strongSwan's charon as a peer in the testbed: one charon per network namespace, each with its
// own strongswan.conf, swanctl directory, vici socket and private /run (charon keeps its pid file
// there), user-space ESP (kernel-libipsec: the kernel here has no ESP) and the acert plugin built
// by scripts/strongswan-acert.sh, loaded with LD_PRELOAD. Used by the interop tests.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from './netns.js';

/** Plugins charon loads; kernel-libipsec must come before kernel-netlink. */
export const CHARON_PLUGINS =
  'random nonce aes sha1 sha2 hmac kdf gcm chapoly openssl curve25519 gmp pem pkcs1 pkcs8 x509 revocation constraints pubkey acert kernel-libipsec kernel-netlink socket-default vici updown';

export const CHARON = '/usr/lib/ipsec/charon';

export interface CharonFiles {
  /** End-entity certificate (PEM) and its private key (PKCS#8 PEM). */
  cert: string;
  key: string;
  /** CA certificates to trust (roots and intermediates of every authority involved), PEM each. */
  cas: string[];
  /** Attribute-authority certificates whose permits this charon accepts, PEM each. */
  aas: string[];
  /** Permits (attribute certificates) this charon presents, PEM each. */
  permits: string[];
}

export interface CharonConnection {
  name: string;
  localAddr: string;
  remoteAddr: string;
  /** Subject DN of the local certificate, and the peer's expected one. */
  localId: string;
  remoteId: string;
  /** `remote.groups`: permits must name one of these. */
  groups?: string[];
  localTs: string;
  remoteTs: string;
  ikeProposal?: string;
  espProposal?: string;
}

export class Charon {
  private proc?: ChildProcess;

  private constructor(
    readonly tb: Testbed,
    readonly ns: string,
    readonly dir: string,
    readonly acertPlugin: string,
  ) {}

  /** Writes the configuration and certificates under `dir`; call start() next. */
  static prepare(
    tb: Testbed,
    ns: string,
    dir: string,
    acertPlugin: string,
    files: CharonFiles,
    conns: CharonConnection[],
  ): Charon {
    const sw = join(dir, 'swanctl');
    for (const d of ['x509', 'x509ca', 'x509aa', 'x509ac', 'private']) mkdirSync(join(sw, d), { recursive: true });
    writeFileSync(join(sw, 'x509', 'gateway.pem'), files.cert);
    writeFileSync(join(sw, 'private', 'gateway.pem'), files.key, { mode: 0o600 });
    files.cas.forEach((c, i) => writeFileSync(join(sw, 'x509ca', `ca-${i}.pem`), c));
    files.aas.forEach((c, i) => writeFileSync(join(sw, 'x509aa', `aa-${i}.pem`), c));
    files.permits.forEach((c, i) => writeFileSync(join(sw, 'x509ac', `permit-${i}.pem`), c));
    writeFileSync(
      join(dir, 'strongswan.conf'),
      [
        'charon {',
        `  load = ${CHARON_PLUGINS}`,
        '  install_virtual_ip = no',
        `  plugins { vici { socket = unix://${join(dir, 'charon.vici')} } }`,
        `  filelog { main { path = ${join(dir, 'charon.log')}\n default = 1\n ike = 2\n cfg = 2\n flush_line = yes\n time_format = %T } }`,
        '}',
        '',
      ].join('\n'),
    );
    const conn = (c: CharonConnection) =>
      [
        `  ${c.name} {`,
        '    version = 2',
        `    local_addrs = ${c.localAddr}`,
        `    remote_addrs = ${c.remoteAddr}`,
        `    proposals = ${c.ikeProposal ?? 'aes256gcm16-prfsha256-ecp256'}`,
        '    send_cert = always',
        '    fragmentation = yes',
        `    local { auth = pubkey\n certs = gateway.pem\n id = "${c.localId}" }`,
        `    remote { auth = pubkey\n id = "${c.remoteId}"${c.groups ? `\n groups = ${c.groups.join(',')}` : ''} }`,
        `    children { ${c.name} { local_ts = ${c.localTs}\n remote_ts = ${c.remoteTs}\n esp_proposals = ${c.espProposal ?? 'aes256gcm16-ecp256'}\n start_action = none } }`,
        '  }',
      ].join('\n');
    writeFileSync(join(sw, 'swanctl.conf'), `connections {\n${conns.map(conn).join('\n')}\n}\n`);
    return new Charon(tb, ns, dir, acertPlugin);
  }

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      STRONGSWAN_CONF: join(this.dir, 'strongswan.conf'),
      SWANCTL_DIR: join(this.dir, 'swanctl'),
    };
  }

  /** Starts charon (private /run in the namespace's own mount namespace) and loads the configuration. */
  async start(): Promise<void> {
    const script = `mount -t tmpfs kasane-run /run && exec env LD_PRELOAD=${this.acertPlugin} STRONGSWAN_CONF=${join(this.dir, 'strongswan.conf')} ${CHARON}`;
    this.proc = this.tb.spawn(this.ns, 'sh', ['-c', script]);
    // charon also writes to stderr: drain it so a full pipe never blocks charon.
    this.proc.stdout!.resume();
    this.proc.stderr!.resume();
    const vici = join(this.dir, 'charon.vici');
    const end = Date.now() + 15_000;
    while (!existsSync(vici)) {
      if (this.proc.exitCode !== null) throw new Error(`charon exited at start: ${this.log(20)}`);
      if (Date.now() > end) throw new Error(`charon did not open its vici socket: ${this.log(20)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    this.swanctl('--load-all', '--noprompt');
  }

  /** Runs swanctl against this charon; returns stdout, throws with the output on failure. */
  swanctl(...args: string[]): string {
    try {
      return execFileSync(
        'ip',
        ['netns', 'exec', this.ns, 'swanctl', ...args, '--uri', `unix://${join(this.dir, 'charon.vici')}`],
        {
          env: this.env(),
          encoding: 'utf8',
          timeout: 30_000,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`swanctl ${args.join(' ')}: ${(x.stdout ?? '') + (x.stderr ?? '') || x.message}`);
    }
  }

  /** Initiates a Child SA; true on success (the output is in `lastOutput`). */
  initiate(child: string, timeoutS = 10): boolean {
    try {
      this.lastOutput = this.swanctl('--initiate', '--child', child, '--timeout', String(timeoutS));
      return true;
    } catch (e) {
      this.lastOutput = (e as Error).message;
      return false;
    }
  }

  lastOutput = '';

  /** The last `n` lines of charon's log. */
  log(n = 40): string {
    const f = join(this.dir, 'charon.log');
    return existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '(no log)';
  }

  /** The whole log (for assertions on what charon decided). */
  fullLog(): string {
    const f = join(this.dir, 'charon.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  /** Stops charon by the PID this object started (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    const done = await Promise.race([
      new Promise((r) => p.once('exit', () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!done) p.kill('SIGKILL');
  }
}

/** Builds (once) and returns the acert plugin, or an explanation why it cannot be had. */
export function acertPlugin(root: string): { ok: true; path: string } | { ok: false; reason: string } {
  try {
    const out = execFileSync('bash', [join(root, 'scripts/strongswan-acert.sh')], {
      encoding: 'utf8',
      timeout: 900_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { ok: true, path: out.trim().split('\n').at(-1)! };
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    return { ok: false, reason: (x.stderr ?? x.message).trim().split('\n').slice(-3).join(' ') };
  }
}

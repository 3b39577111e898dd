// Makes sure the programs the peers need are present: installs the missing Debian packages (as
// root, `apt-get update` once, then one `apt-get install` per package so that one broken package
// does not take the others down) and says, per command, why it is still missing if it is.
import { spawn } from 'node:child_process';

/** A command a peer runs, and the Debian package that provides it. */
export interface Requirement {
  command: string;
  debianPackage: string;
}

export interface InstallOutcome {
  /** Commands missing after the attempt, with the reason. */
  missing: Map<string, string>;
  /** Packages installed by this run. */
  installed: string[];
  /** One line per package installed or apt-get step that failed (missing commands are in `missing`). */
  notes: string[];
}

/** Runs a command without a shell; resolves with its exit status and output (never rejects). */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ status: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      signal: opts.signal,
    });
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-200_000)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-200_000)));
    let error: string | undefined;
    child.on('error', (e) => (error = e.message));
    child.on('close', (status) => {
      if (timer) clearTimeout(timer);
      resolve({ status, stdout, stderr, error });
    });
  });
}

export async function hasCommandAsync(command: string): Promise<boolean> {
  // `command -v` is a shell builtin; the name is passed as $1, never spliced into the script.
  const r = await runCommand('sh', ['-c', 'command -v "$1" >/dev/null', 'sh', command]);
  return r.status === 0;
}

let updated = false;

export async function ensureCommands(
  reqs: Requirement[],
  opts: { install: boolean; log: (line: string) => void; signal?: AbortSignal },
): Promise<InstallOutcome> {
  const out: InstallOutcome = { missing: new Map(), installed: [], notes: [] };
  const absent: Requirement[] = [];
  for (const r of uniqueBy(reqs, (r) => r.command)) if (!(await hasCommandAsync(r.command))) absent.push(r);
  if (absent.length === 0) return out;
  const packages = [...new Set(absent.map((r) => r.debianPackage))];
  const why = new Map<string, string>();
  if (!opts.install) {
    for (const p of packages) why.set(p, 'not installed and installing is disabled (KASANE_BENCH_INSTALL=0)');
  } else if (process.getuid?.() !== 0) {
    for (const p of packages) why.set(p, 'not installed, and installing needs root');
  } else if ((await hasCommandAsync('apt-get')) === false) {
    for (const p of packages) why.set(p, 'not installed, and there is no apt-get here');
  } else {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (!updated) {
      opts.log(`installing ${packages.join(', ')}: apt-get update`);
      const u = await runCommand('apt-get', ['update'], { env, timeoutMs: 300_000, signal: opts.signal });
      if (u.status === 0) updated = true;
      else out.notes.push(`apt-get update failed (status ${u.status}): ${tail(u.stderr || u.error || '')}`);
    }
    for (const p of packages) {
      opts.log(`apt-get install -y --no-install-recommends ${p}`);
      const r = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', p], {
        env,
        timeoutMs: 600_000,
        signal: opts.signal,
      });
      if (r.status === 0) {
        out.installed.push(p);
        out.notes.push(`installed ${p}`);
      } else {
        why.set(p, `apt-get install ${p} failed (status ${r.status}): ${tail(r.stderr || r.error || '')}`);
      }
    }
  }
  for (const r of absent) {
    if (await hasCommandAsync(r.command)) continue;
    const reason =
      why.get(r.debianPackage) ?? `package ${r.debianPackage} installed but ${r.command} is still not on PATH`;
    out.missing.set(r.command, `${r.command} (Debian package ${r.debianPackage}): ${reason}`);
  }
  return out;
}

function uniqueBy<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}

function tail(s: string): string {
  const lines = s.trim().split('\n');
  return lines.slice(-3).join(' | ');
}

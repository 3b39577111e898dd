// Processes inside the testbed's namespaces: one-shot commands with a timeout, and daemons that
// are stopped by their PID (never by name). `ip netns exec` execs the program, so the PID of the
// spawned child is the program's own.
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Testbed } from '../../test/native/netns.js';
import type { GatewaySide } from './topology.js';

export interface CommandResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const KEEP = 64 * 1024;

/** Runs `cmd` in namespace `ns` and collects its output; kills it on timeout or abort. */
export function runIn(
  tb: Testbed,
  ns: string,
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new Error('interrupted'));
    const child = tb.spawn(ns, cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-4 * KEEP)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-KEEP)));
    let why: string | undefined;
    const kill = (reason: string) => {
      why = reason;
      killPid(child.pid, 'SIGKILL');
    };
    const timer = setTimeout(() => kill(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs);
    const onAbort = () => kill('interrupted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => (why = e.message));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (why !== undefined)
        reject(new Error(`${cmd} ${args.join(' ')} in ${ns}: ${why}; ${lastLines(stderr || stdout)}`));
      else resolve({ status, signal, stdout, stderr });
    });
  });
}

/** A long-running program in a namespace, with the tail of its output kept for error messages. */
export class Daemon {
  private out = '';
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (d: string) => (this.out = (this.out + d).slice(-KEEP));
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    this.exit = new Promise((resolve) => {
      child.on('error', (e) => {
        keep(`\n[spawn error: ${e.message}]`);
        this.exited = true;
        resolve();
      });
      child.on('exit', () => {
        this.exited = true;
        resolve();
      });
    });
  }

  static start(tb: Testbed, ns: string, name: string, cmd: string, args: string[]): Daemon {
    return new Daemon(name, tb.spawn(ns, cmd, args));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return !this.exited;
  }

  output(): string {
    return lastLines(this.out, 8);
  }

  /** Throws with the daemon's last output if it has exited. */
  assertRunning(): void {
    if (!this.running)
      throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.output()}`);
  }

  /** SIGTERM by PID, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    killPid(this.child.pid, 'SIGTERM');
    const timedOut = await Promise.race([this.exit.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) {
      killPid(this.child.pid, 'SIGKILL');
      await Promise.race([this.exit, sleep(2000)]);
    }
  }
}

export function killPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** PIDs of the processes in a namespace. */
export function namespacePids(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Polls `check` (which may throw to say "not yet") until it returns true. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; lastError?: () => string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    if (opts.signal?.aborted) throw new Error('interrupted');
    try {
      if (await check()) return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) {
      const extra = opts.lastError?.() ?? last;
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${extra ? `: ${extra}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

export function lastLines(s: string, n = 3): string {
  return s.trim().split('\n').slice(-n).join(' | ');
}

/** The daemons a tunnel peer runs on its gateway sides, each owning interface `ifName`. */
export interface TunnelDaemons {
  tb: Testbed;
  daemons: Daemon[];
  sides: GatewaySide[];
}

/** Stops the daemons, then deletes an interface one may have left behind. */
export async function stopTunnelDaemons({ tb, daemons, sides }: TunnelDaemons, ifName: string): Promise<void> {
  await Promise.all(daemons.map((d) => d.stop()));
  for (const side of sides) {
    try {
      tb.ip(side.ns, 'link', 'del', ifName);
    } catch {
      /* gone with its daemon */
    }
  }
}

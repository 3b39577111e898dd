// The network-namespace testbed (tests, benchmarks, kasane demo): namespaces with a unique
// prefix per run, veth links created directly inside them (no names in the root namespace), and
// teardown that deletes everything it made, even after a failure.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostHasIpv6 } from '../native/routing.js';

export type Availability = { ok: true } | { ok: false; reason: string };

/** Whether namespace tests can run here (root, iproute2 with netns, /dev/net/tun). */
export function netnsAvailability(): Availability {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root: network namespace tests need CAP_NET_ADMIN' };
  const probe = `knprobe${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0)
    return { ok: false, reason: `ip netns unavailable: ${(add.stderr || add.error?.message || '').trim()}` };
  spawnSync('ip', ['netns', 'del', probe]);
  return { ok: true };
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export class Testbed {
  readonly prefix = `kn${randomBytes(3).toString('hex')}`;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** Creates namespace `<prefix>-<name>` with loopback up; returns its full name. */
  ns(name: string): string {
    const full = `${this.prefix}-${name}`;
    run('ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    this.ip(full, 'link', 'set', 'lo', 'up');
    return full;
  }

  ip(ns: string, ...args: string[]): string {
    return run('ip', ['-n', ns, ...args]);
  }

  exec(ns: string, cmd: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** Writes /proc/sys inside the namespace (no procps needed). */
  sysctl(ns: string, key: string, value: string): void {
    this.exec(ns, 'sh', '-c', `echo ${value} > /proc/sys/${key.replaceAll('.', '/')}`);
  }

  /**
   * A veth pair between two namespaces, addressed and up: one address on each end, or several
   * (IPv4 and IPv6 for a dual-stack link). IPv6 addresses skip duplicate address detection, so
   * they are usable at once.
   */
  link(nsA: string, ifA: string, addrA: string | string[], nsB: string, ifB: string, addrB: string | string[]): void {
    this.ip(nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB);
    this.address(nsA, ifA, addrA);
    this.address(nsB, ifB, addrB);
    this.ip(nsA, 'link', 'set', ifA, 'up');
    this.ip(nsB, 'link', 'set', ifB, 'up');
  }

  /** Adds addresses (IPv4 or IPv6, with their length) to an interface. */
  address(ns: string, iface: string, addrs: string | string[]): void {
    for (const a of typeof addrs === 'string' ? [addrs] : addrs)
      this.ip(ns, 'addr', 'add', a, 'dev', iface, ...(a.includes(':') ? ['nodad'] : []));
  }

  /** Turns forwarding on in a namespace (a router): IPv4, and IPv6 where the host has it. */
  forwarding(ns: string): void {
    this.sysctl(ns, 'net.ipv4.ip_forward', '1');
    if (hostHasIpv6()) this.sysctl(ns, 'net.ipv6.conf.all.forwarding', '1');
  }

  /** Starts a process in a namespace; it is killed (by PID) at teardown if still running. */
  spawn(ns: string, cmd: string, args: string[], opts: { stdin?: boolean; cwd?: string } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      cwd: opts.cwd,
    });
    this.children.push(child);
    return child;
  }

  /** Kills what it started and deletes its namespaces. Never throws. */
  teardown(): void {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const ns of this.namespaces.reverse()) {
      // Processes started with `ip netns exec` may outlive the wrapper: kill them by PID first.
      const pids =
        spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split(/\s+/).filter(Boolean) ?? [];
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    this.namespaces.length = 0;
  }
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr || err.message).trim()}`);
  }
}

/** Resolves with the child's exit code, or rejects after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Reads newline-delimited JSON events from a child's stdout. */
export class JsonLines {
  private buf = '';
  readonly events: Record<string, unknown>[] = [];
  private waiters: { pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] =
    [];
  stderr = '';

  constructor(child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.trim()) continue;
        let e: Record<string, unknown>;
        try {
          e = JSON.parse(line) as Record<string, unknown>;
        } catch {
          e = { event: 'text', line };
        }
        this.events.push(e);
        this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (this.stderr += d));
  }

  wait(pred: (e: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`)),
        ms,
      );
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }
}

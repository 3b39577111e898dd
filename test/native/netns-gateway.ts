// What the namespace tests of the native datapath share: the run-or-skip decision, a gateway
// process (gateway-helper.ts) driven over stdin/stdout, and a TCP transfer whose content is checked.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HelperConfig } from './gateway-helper.js';
import { hasCommand, JsonLines, netnsAvailability, Testbed, waitExit } from './netns.js';
import { inCi, nativeOrSkip } from './support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const helper = fileURLToPath(new URL('./gateway-helper.ts', import.meta.url));
const sockBuffers = join(root, 'test/support/sock-buffers.py');
const tcpTool = fileURLToPath(new URL('./tcp-tool.ts', import.meta.url));

/** True when the test can run (root, namespaces, the addon, the commands); in CI a missing part fails. */
export function canRunNetns(t: TestContext, commands: string[] = []): boolean {
  if (!nativeOrSkip(t)) return false;
  const a = netnsAvailability();
  if (!a.ok) {
    if (inCi) throw new Error(`CI=true but the namespace tests cannot run: ${a.reason}`);
    t.skip(`skipped: ${a.reason}`);
    return false;
  }
  for (const cmd of commands) {
    if (hasCommand(cmd)) continue;
    if (inCi) throw new Error(`CI=true but ${cmd} is not installed`);
    t.skip(`skipped: ${cmd} is not installed`);
    return false;
  }
  return true;
}

/**
 * Runs `body` with a fresh testbed and a scratch directory when the test can run here (canRunNetns
 * with `commands`); deletes the namespaces and the directory after, whatever happened.
 */
export async function inTestbed(
  t: TestContext,
  commands: string[],
  body: (tb: Testbed, dir: string) => Promise<void>,
): Promise<void> {
  if (!canRunNetns(t, commands)) return;
  const tb = new Testbed();
  const dir = mkdtempSync(join(tmpdir(), 'kasane-netns-'));
  try {
    await body(tb, dir);
  } finally {
    tb.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface HelperGateway {
  lines: JsonLines;
  /** Names of the helper process's threads (/proc/<pid>/task/<tid>/comm). */
  threadNames(): string[];
  /** CPU time (user + system, clock ticks) of each thread so far, by name. */
  threadCpu(): Record<string, number>;
  /** The process's sockets with their buffers (test/support/sock-buffers.py). */
  sockets(): { family: number; type: number; protocol: number; sndbuf: number; rcvbuf: number }[];
  send(line: string): void;
  /** Closes the datapath; the process must then exit by itself (no reader thread or TUN left). */
  close(): Promise<Record<string, unknown>>;
}

export async function startHelperGateway(tb: Testbed, ns: string, cfg: HelperConfig): Promise<HelperGateway> {
  const child = tb.spawn(ns, process.execPath, ['--import', 'tsx', helper, JSON.stringify(cfg)], {
    stdin: true,
    cwd: root,
  });
  const lines = new JsonLines(child);
  const first = await lines.wait((e) => e.event === 'ready' || e.event === 'error', 30_000, `gateway in ${ns}`);
  if (first.event === 'error') throw new Error(`gateway in ${ns}: ${String(first.message)}`);
  return {
    lines,
    threadNames: () =>
      readdirSync(`/proc/${child.pid}/task`).map((tid) =>
        readFileSync(`/proc/${child.pid}/task/${tid}/comm`, 'utf8').trim(),
      ),
    threadCpu: () =>
      Object.fromEntries(
        readdirSync(`/proc/${child.pid}/task`).map((tid) => {
          const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
          // After "(comm) ": state is field 3, utime 14, stime 15.
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          const name = readFileSync(`/proc/${child.pid}/task/${tid}/comm`, 'utf8').trim();
          return [name, Number(f[11]) + Number(f[12])];
        }),
      ),
    sockets: () =>
      execFileSync('python3', [sockBuffers, String(child.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    send: (line) => child.stdin!.write(line + '\n'),
    async close() {
      child.stdin!.write('close\n');
      const rep = await lines.wait((e) => e.event === 'closed', 10_000, 'datapath closed');
      // No process.exit in the helper: it exits only if the reader threads and the TUN are gone.
      const code = await waitExit(child, 10_000);
      assert.equal(code, 0, `gateway exit code; stderr: ${lines.stderr}`);
      return rep;
    },
  };
}

/**
 * Two sites around a WAN, in fresh namespaces: h1 (10.1.0.2) - gi gwA go == 192.168.0.0/24 == go gwB
 * gi - h2 (10.2.0.2), each terminal routed through its gateway.
 */
export function twoSites(tb: Testbed): { ga: string; gb: string; h1: string; h2: string } {
  const ga = tb.ns('gwa');
  const gb = tb.ns('gwb');
  const h1 = tb.ns('h1');
  const h2 = tb.ns('h2');
  tb.link(h1, 'e0', '10.1.0.2/24', ga, 'gi', '10.1.0.1/24');
  tb.link(gb, 'gi', '10.2.0.1/24', h2, 'e0', '10.2.0.2/24');
  tb.link(ga, 'go', '192.168.0.1/24', gb, 'go', '192.168.0.2/24');
  tb.ip(h1, 'route', 'add', 'default', 'via', '10.1.0.1');
  tb.ip(h2, 'route', 'add', 'default', 'via', '10.2.0.1');
  return { ga, gb, h1, h2 };
}

/** Runs `check` on each closing report of a pair of gateways (by name), with its counters and stats. */
export function eachReport(
  reports: Record<string, Record<string, unknown>>,
  check: (
    name: string,
    counters: Record<string, number>,
    stats: Record<string, number>,
    rep: Record<string, unknown>,
  ) => void,
): void {
  for (const [name, rep] of Object.entries(reports))
    check(name, rep.counters as Record<string, number>, rep.stats as Record<string, number>, rep);
}

/** Sends `bytes` over TCP from clientNs to a server in serverNs; checks count and SHA-256; returns the client's ms. */
export async function tcpTransfer(
  tb: Testbed,
  serverNs: string,
  clientNs: string,
  host: string,
  bytes: number,
  port = 5201,
): Promise<number> {
  const srv = new JsonLines(
    tb.spawn(serverNs, process.execPath, ['--import', 'tsx', tcpTool, 'server', String(port)], { cwd: root }),
  );
  await srv.wait((e) => e.event === 'listening', 30_000, 'TCP server');
  const cli = new JsonLines(
    tb.spawn(clientNs, process.execPath, ['--import', 'tsx', tcpTool, 'client', host, String(port), String(bytes)], {
      cwd: root,
    }),
  );
  const sent = await cli.wait((e) => e.event === 'sent' || e.event === 'error', 60_000, 'TCP client');
  assert.equal(sent.event, 'sent', `client: ${JSON.stringify(sent)} ${cli.stderr}`);
  const done = await srv.wait((e) => e.event === 'done', 30_000, 'TCP server done');
  assert.equal(done.bytes, bytes);
  assert.equal(done.sha256, sent.sha256, 'content arrived intact');
  return Number(sent.ms);
}

// Multi-stage (seed 000 Figure 1(2)) on real Linux networking: terminals behind an inner and an
// outer gateway on each side; one key search sets up both layers and the WAN carries ESP in ESP.
//
//   A 10.1.1.10 - Gi1 (dept) - Go1 (company) - R - Go2 (company) - Gi2 (dept) - B 10.2.1.10
//                                              |
//                                             AUTH
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { isEsp, readPcap, startCapture, stopCapture } from '../support/capture.js';
import { netnsAvailability, Testbed } from '../../src/testbed/netns.js';

const avail = netnsAvailability();
const skip = !avail.ok && !process.env.CI ? `skipped: ${avail.ok ? '' : avail.reason} (runs as root, and always in CI)` : false;
const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = ['--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

test('multi-stage in namespaces: nested VPNs, one search, ESP inside ESP on the WAN', { skip, timeout: 240_000 }, async () => {
  assert.ok(avail.ok, `network namespaces are required in CI: ${avail.ok ? '' : avail.reason}`);
  const tb = new Testbed();
  const dir = mkdtempSync(join(tmpdir(), 'kasane-e2e-ms-'));
  const procs: ChildProcess[] = [];
  try {
    const ns = Object.fromEntries(['A', 'B', 'Gi1', 'Go1', 'Gi2', 'Go2', 'R', 'AUTH'].map((n) => [n, tb.ns(n)])) as Record<string, string>;
    for (const n of [1, 2]) {
      const [t, gi, go] = [n === 1 ? ns.A : ns.B, ns[`Gi${n}`], ns[`Go${n}`]];
      tb.link(t, 'eth0', `10.${n}.1.10/24`, gi, 'lan0', `10.${n}.1.1/24`);
      tb.ip(t, 'route', 'add', 'default', 'via', `10.${n}.1.1`);
      tb.link(gi, 'wan0', `10.${n}.0.2/24`, go, 'lan0', `10.${n}.0.1/24`);
      tb.ip(gi, 'route', 'add', 'default', 'via', `10.${n}.0.1`);
      tb.ip(go, 'route', 'add', `10.${n}.1.0/24`, 'via', `10.${n}.0.2`);
      tb.link(go, 'wan0', `10.200.${n}.2/24`, ns.R, `g${n}`, `10.200.${n}.1/24`);
      tb.ip(go, 'route', 'add', 'default', 'via', `10.200.${n}.1`);
      tb.ip(ns.R, 'route', 'add', `10.${n}.0.0/16`, 'via', `10.200.${n}.2`);
    }
    tb.link(ns.AUTH, 'eth0', '10.200.9.2/24', ns.R, 'auth', '10.200.9.1/24');
    tb.ip(ns.AUTH, 'route', 'add', 'default', 'via', '10.200.9.1');
    tb.sysctl(ns.R, 'net.ipv4.ip_forward', '1');

    const kasane = (where: string, ...args: string[]) => tb.exec(where, process.execPath, ...CLI, ...args);
    const adata = join(dir, 'authority');
    kasane(ns.AUTH, 'authority', 'init', '--data', adata, '--name', 'multistage', '--listen', '10.200.9.2:7443');
    procs.push(tb.spawn(ns.AUTH, process.execPath, [...CLI, 'authority', 'serve', '--data', adata, '--log-level', 'warn']));
    const admin = (...args: string[]) => kasane(ns.AUTH, ...args, '--data', adata);
    await waitFor(() => {
      try {
        admin('authority', 'status');
        return true;
      } catch {
        return false;
      }
    }, 30_000, 'the authority');
    admin('vpn', 'create', 'company', '--id', '10');
    admin('vpn', 'create', 'dept', '--id', '20');
    for (const n of [1, 2]) {
      admin('gateway', 'add', `Go${n}`, '--address', `10.200.${n}.2`);
      admin('gateway', 'add', `Gi${n}`, '--address', `10.${n}.0.2`);
      admin('member', 'add', 'company', `Go${n}`, `10.${n}.0.0/16`);
      admin('member', 'add', 'dept', `Gi${n}`, `10.${n}.1.0/24`);
    }
    for (const g of ['Go1', 'Go2', 'Gi1', 'Gi2']) {
      const gdata = join(dir, g);
      admin('gateway', 'bundle', g, '-o', join(dir, `${g}.bundle.json`));
      kasane(ns[g], 'gateway', 'enroll', '--data', gdata, '--bundle', join(dir, `${g}.bundle.json`));
      // The outer gateways let their inner gateways reach the authority in the clear (its own TLS protects that).
      const extra = g.startsWith('Go') ? 'allowPlain: [10.200.9.0/24]\n' : '';
      writeFileSync(join(dir, `${g}.yaml`), `data: ${gdata}\ninside: [lan0]\noutside: [wan0]\n${extra}`);
      const d = tb.spawn(ns[g], process.execPath, [...CLI, 'gateway', 'run', '--config', join(dir, `${g}.yaml`)]);
      procs.push(d);
      let log = '';
      d.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      await waitFor(() => log.includes('gateway running') || d.exitCode !== null, 40_000, `${g} to start`);
      assert.equal(d.exitCode, null, `${g} exited: ${log.slice(-1500)}`);
    }

    const pcap = join(dir, 'wan.pcap');
    const capture = await startCapture(tb, ns.R, 'g1', pcap);
    let ok = false;
    try {
      tb.exec(ns.B, 'ping', '-c', '5', '-i', '0.3', '-W', '2', '10.1.1.10');
      ok = true;
    } catch {
      ok = false;
    }
    await new Promise((r) => setTimeout(r, 500));
    await stopCapture(capture);
    assert.ok(ok, 'B -> A through both layers');

    // On the WAN: ESP between the terminals, and the inner payload after the outer ESP header is
    // itself ESP (its next header is only visible decrypted; its size shows two layers of overhead).
    const esp = readPcap(pcap).filter((p) => isEsp(p) && p.src === '10.2.1.10' && p.dst === '10.1.1.10');
    assert.ok(esp.length >= 3, `ESP packets B->A on the WAN: ${esp.length}`);
    // ping's 84-byte IP packet grows by two layers (ESP in UDP, 42..45 bytes each).
    assert.ok(esp.every((p) => p.totalLength >= 84 + 2 * 42 && p.totalLength <= 84 + 2 * 45), esp.map((p) => p.totalLength).join(','));

    const paths = (g: string) => (JSON.parse(kasane(ns[g], 'gateway', 'status', '--data', join(dir, g), '--json')) as { paths: { remote: string; action: string; vpnName?: string; peer?: string; reason?: string }[] }).paths;
    assert.ok(paths('Go2').some((p) => p.remote === '10.1.1.10' && p.action === 'encrypt' && p.vpnName === 'company' && p.peer === 'Go1'));
    assert.ok(paths('Gi2').some((p) => p.remote === '10.1.1.10' && p.action === 'encrypt' && p.vpnName === 'dept' && p.peer === 'Gi1' && p.reason === 'search'));
    assert.ok(paths('Gi1').some((p) => p.remote === '10.2.1.10' && p.action === 'encrypt' && p.vpnName === 'dept'));
  } finally {
    for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)))));
    tb.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
});



async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

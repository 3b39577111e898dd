// End to end on real Linux networking: seed 000 Figure 2 in network namespaces, with a real
// authority process, three real gateway daemons (TUN + native datapath + policy routing) and the
// kernel's own ping between unmodified terminals.
//
//   A (10.1.0.10) -- G1 --+                      VPN1 = {G1 + A, G2 + B}
//   B (10.2.0.10) -- G2 --+-- R -- AUTH          VPN2 = {G2 + B, G3 + C}
//   C (10.3.0.10) -- G3 --+
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { netnsAvailability, Testbed } from '../../src/testbed/netns.js';

const avail = netnsAvailability();
const skip = !avail.ok && !process.env.CI ? `skipped: ${avail.ok ? '' : avail.reason} (runs as root, and always in CI)` : false;
const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = ['--import', 'tsx', join(ROOT, 'test/authority/helpers/kasane.ts')];

test('Figure 2 in namespaces: B reaches A and C, A never reaches C; gateways show the key search paths', { skip, timeout: 240_000 }, async () => {
  assert.ok(avail.ok, `network namespaces are required in CI: ${avail.ok ? '' : avail.reason}`);
  const tb = new Testbed();
  const dir = mkdtempSync(join(tmpdir(), 'kasane-e2e-'));
  const daemons: ChildProcess[] = [];
  after(() => {
    tb.teardown();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    const ns = {
      A: tb.ns('A'),
      B: tb.ns('B'),
      C: tb.ns('C'),
      G1: tb.ns('G1'),
      G2: tb.ns('G2'),
      G3: tb.ns('G3'),
      R: tb.ns('R'),
      AUTH: tb.ns('AUTH'),
    };
    const sites = [
      { t: ns.A, g: ns.G1, n: 1 },
      { t: ns.B, g: ns.G2, n: 2 },
      { t: ns.C, g: ns.G3, n: 3 },
    ];
    for (const { t, g, n } of sites) {
      tb.link(t, 'eth0', `10.${n}.0.10/24`, g, 'lan0', `10.${n}.0.1/24`);
      tb.ip(t, 'route', 'add', 'default', 'via', `10.${n}.0.1`);
      tb.link(g, 'wan0', `10.200.${n}.2/24`, ns.R, `g${n}`, `10.200.${n}.1/24`);
      tb.ip(g, 'route', 'add', 'default', 'via', `10.200.${n}.1`);
      tb.ip(ns.R, 'route', 'add', `10.${n}.0.0/24`, 'via', `10.200.${n}.2`);
    }
    tb.link(ns.AUTH, 'eth0', '10.200.9.2/24', ns.R, 'auth', '10.200.9.1/24');
    tb.ip(ns.AUTH, 'route', 'add', 'default', 'via', '10.200.9.1');
    tb.sysctl(ns.R, 'net.ipv4.ip_forward', '1');

    // The authority, as a real process in its own namespace.
    const adata = join(dir, 'authority');
    const kasane = (where: string, ...args: string[]) => tb.exec(where, process.execPath, ...CLI, ...args);
    kasane(ns.AUTH, 'authority', 'init', '--data', adata, '--name', 'figure2', '--listen', '10.200.9.2:7443');
    const auth = tb.spawn(ns.AUTH, process.execPath, [...CLI, 'authority', 'serve', '--data', adata, '--log-level', 'warn']);
    await waitFor(() => {
      try {
        kasane(ns.AUTH, 'authority', 'status', '--data', adata);
        return true;
      } catch {
        return false;
      }
    }, 30_000, 'the authority to serve');
    const admin = (...args: string[]) => kasane(ns.AUTH, ...args, '--data', adata);
    admin('vpn', 'create', 'VPN1', '--id', '1');
    admin('vpn', 'create', 'VPN2', '--id', '2');
    for (const n of [1, 2, 3]) admin('gateway', 'add', `G${n}`, '--address', `10.200.${n}.2`);
    admin('member', 'add', 'VPN1', 'G1', '10.1.0.0/24');
    admin('member', 'add', 'VPN1', 'G2', '10.2.0.0/24');
    admin('member', 'add', 'VPN2', 'G2', '10.2.0.0/24');
    admin('member', 'add', 'VPN2', 'G3', '10.3.0.0/24');

    // Each gateway: offline enrollment from a bundle, then the daemon.
    for (const n of [1, 2, 3]) {
      const g = sites[n - 1].g;
      const gdata = join(dir, `G${n}`);
      admin('gateway', 'bundle', `G${n}`, '-o', join(dir, `G${n}.bundle.json`));
      kasane(g, 'gateway', 'enroll', '--data', gdata, '--bundle', join(dir, `G${n}.bundle.json`));
      const cfg = join(dir, `G${n}.yaml`);
      writeFileSync(cfg, `data: ${gdata}\ninside: [lan0]\noutside: [wan0]\nlogLevel: info\n`);
      const d = tb.spawn(g, process.execPath, [...CLI, 'gateway', 'run', '--config', cfg]);
      daemons.push(d);
      let log = '';
      d.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      await waitFor(() => log.includes('gateway running'), 30_000, `G${n} to start; its log: ${log.slice(-1500)}`);
    }

    // Capture the WAN between R and G1 while the terminals talk.
    const pcap = join(dir, 'wan-g1.pcap');
    const capture = tb.spawn(ns.R, 'tcpdump', ['-i', 'g1', '-U', '-n', '-w', pcap]);
    await new Promise((r) => setTimeout(r, 1000));
    const MARKER = '6b6173616e652d7365637265742121'; // "kasane-secret!!" as ping's fill pattern
    const ping = (from: string, to: string) => {
      try {
        tb.exec(from, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-p', MARKER, to);
        return true;
      } catch {
        return false;
      }
    };
    assert.equal(ping(ns.B, '10.1.0.10'), true, 'B -> A over VPN1');
    assert.equal(ping(ns.B, '10.3.0.10'), true, 'B -> C over VPN2');
    assert.equal(ping(ns.A, '10.3.0.10'), false, 'A -> C must not pass');
    assert.equal(ping(ns.A, '10.2.0.10'), true, 'A -> B (the path is already in the key tables)');

    await new Promise((r) => setTimeout(r, 500));
    capture.kill('SIGINT');
    await new Promise((r) => (capture.exitCode !== null ? r(null) : capture.once('exit', r)));
    const packets = readPcap(pcap);
    const between = packets.filter((p) => (p.src === '10.2.0.10' && p.dst === '10.1.0.10') || (p.src === '10.1.0.10' && p.dst === '10.2.0.10'));
    assert.ok(between.filter((p) => p.proto === 50).length >= 6, `ESP between A and B on the WAN: ${between.length} packets`);
    // Apart from ESP, only the key search (ICMP echo carrying the KSRC payload) crosses in the clear.
    for (const p of between) assert.ok(p.proto === 50 || (p.proto === 1 && p.payload.includes(Buffer.from('KSRC'))), `plaintext packet ${p.proto} on the WAN`);
    for (const p of packets) assert.ok(!p.payload.includes(Buffer.from(MARKER, 'hex').subarray(0, 12)), 'the marker never appears on the WAN');

    const status = (g: string, n: number) => JSON.parse(kasane(g, 'gateway', 'status', '--data', join(dir, `G${n}`), '--json')) as { paths: { local: string; remote: string; action: string; vpnName?: string; peer?: string; packets: number }[] };
    const g2 = status(ns.G2, 2).paths;
    assert.ok(g2.some((p) => p.remote === '10.1.0.10' && p.action === 'encrypt' && p.vpnName === 'VPN1' && p.peer === 'G1' && p.packets > 0), JSON.stringify(g2));
    assert.ok(g2.some((p) => p.remote === '10.3.0.10' && p.action === 'encrypt' && p.vpnName === 'VPN2' && p.peer === 'G3'), JSON.stringify(g2));
    const g1 = status(ns.G1, 1).paths;
    assert.ok(g1.some((p) => p.remote === '10.3.0.10' && p.action === 'discard'), JSON.stringify(g1));
    void auth;
  } finally {
    for (const d of daemons) d.kill('SIGTERM');
    await Promise.all(daemons.map((d) => new Promise((r) => (d.exitCode !== null ? r(null) : d.once('exit', r)))));
  }
});

/** IPv4 packets of a classic pcap file (Ethernet link type). */
function readPcap(path: string): { src: string; dst: string; proto: number; payload: Buffer }[] {
  const buf = readFileSync(path);
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: { src: string; dst: string; proto: number; payload: Buffer }[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const len = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + len);
    off += 16 + len;
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    const ihl = (ip[0] & 15) * 4;
    out.push({ src: [...ip.subarray(12, 16)].join('.'), dst: [...ip.subarray(16, 20)].join('.'), proto: ip[9], payload: ip.subarray(ihl) });
  }
  return out;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

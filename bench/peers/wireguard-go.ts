// `wireguard-go`: the userspace WireGuard (TUN) between gwA and gwB, configured with `wg`.
// wireguard-go keeps its control socket in the fixed directory /var/run/wireguard, which is not
// per network namespace; each daemon therefore gets its own /run (a directory of this run,
// bind-mounted in the private mount namespace `ip netns exec` makes), and `wg` joins that
// daemon's mount and network namespaces by its PID. It listens on the WAN port in its namespace
// (wireguard-go has no option to bind one address; the namespace holds only testbed addresses).
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from '../../test/native/netns.js';
import { runCommand } from './install.js';
import { Daemon, lastLines, waitFor, stopTunnelDaemons, type TunnelDaemons } from './proc.js';
import type { PeerSetup, PeerTopology } from './topology.js';

const IF = 'wg0';
const PORT = 51820;

/** A WireGuard key pair, base64 as `wg` writes them. */
export function wireguardKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const b64 = (u: string | undefined) => Buffer.from(u ?? '', 'base64url').toString('base64');
  return { privateKey: b64(jwk.d), publicKey: b64(jwk.x) };
}

export function wireguardGoPeer(): PeerSetup {
  let state: TunnelDaemons | undefined;
  return {
    name: 'wireguard-go',
    description: 'userspace WireGuard on TUN (ChaCha20-Poly1305)',
    requires: [
      { command: 'wireguard-go', debianPackage: 'wireguard-go' },
      { command: 'wg', debianPackage: 'wireguard-tools' },
      { command: 'nsenter', debianPackage: 'util-linux' },
    ],
    async version() {
      const r = await runCommand('wireguard-go', ['--version']);
      return /\d+\.[\d.]+/.exec(r.stdout.split('\n')[0] ?? '')?.[0];
    },
    async setUp(tb: Testbed, topo: PeerTopology) {
      const dir = join(topo.tmpDir, 'wireguard-go');
      rmSync(dir, { recursive: true, force: true });
      const sides = [topo.gwA, topo.gwB];
      state = { tb, daemons: [], sides };
      const keys = sides.map(() => wireguardKeyPair());
      for (const [i, side] of sides.entries()) {
        const other = sides[1 - i];
        const sideDir = join(dir, i === 0 ? 'gwA' : 'gwB');
        const runDir = join(sideDir, 'run');
        mkdirSync(runDir, { recursive: true, mode: 0o700 });
        const conf = join(sideDir, 'wg.conf');
        writeFileSync(
          conf,
          [
            '[Interface]',
            `PrivateKey = ${keys[i].privateKey}`,
            `ListenPort = ${PORT}`,
            '',
            '[Peer]',
            `PublicKey = ${keys[1 - i].publicKey}`,
            `Endpoint = ${other.wanAddr}:${PORT}`,
            `AllowedIPs = ${other.lanPrefix}, ${other.overlayAddr}/32`,
            '',
          ].join('\n'),
          { mode: 0o600 },
        );
        const d = Daemon.start(tb, side.ns, `wireguard-go in ${side.ns}`, 'sh', [
          '-c',
          'mount --bind "$1" /run && exec wireguard-go -f "$2"',
          'sh',
          runDir,
          IF,
        ]);
        state.daemons.push(d);
        await waitFor(
          'the wireguard-go control socket',
          () => (d.assertRunning(), existsSync(join(runDir, 'wireguard', `${IF}.sock`))),
          {
            timeoutMs: 10_000,
            lastError: () => d.output(),
          },
        );
        const r = await runCommand('nsenter', ['-t', String(d.pid), '-m', '-n', 'wg', 'setconf', IF, conf], {
          timeoutMs: 10_000,
        });
        if (r.status !== 0) throw new Error(`wg setconf in ${side.ns}: ${lastLines(r.stderr || r.error || '')}`);
        tb.ip(side.ns, 'addr', 'add', `${side.overlayAddr}/${topo.overlayPrefixLen}`, 'dev', IF);
        tb.ip(side.ns, 'link', 'set', IF, 'mtu', String(topo.mtu), 'up');
        tb.ip(side.ns, 'route', 'add', other.lanPrefix, 'dev', IF);
      }
    },
    async tearDown() {
      if (!state) return;
      const stopping = state;
      state = undefined;
      await stopTunnelDaemons(stopping, IF);
    },
  };
}

// `nebula`: a throwaway CA and one certificate per gateway (made with nebula-cert in this run's
// directory), gwA the lighthouse, both addresses in static_host_map so the first packet starts the
// handshake at once; each gateway's certificate carries its terminal LAN (`-subnets`) and the
// other gateway routes that LAN into its TUN with unsafe_routes. Listens on its WAN address only.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Testbed } from '../../test/native/netns.js';
import { runCommand } from './install.js';
import { Daemon, lastLines, runIn, waitFor, stopTunnelDaemons, type TunnelDaemons } from './proc.js';
import type { PeerSetup, PeerTopology } from './topology.js';

const IF = 'neb0';
const PORT = 4242;

export type NebulaCipher = 'aes' | 'chachapoly';

async function cert(args: string[]): Promise<void> {
  const r = await runCommand('nebula-cert', args, { timeoutMs: 20_000 });
  if (r.status !== 0) throw new Error(`nebula-cert ${args[0]}: ${lastLines(r.stderr || r.stdout || r.error || '')}`);
}

export function nebulaPeer(cipher: NebulaCipher = 'aes', name = 'nebula'): PeerSetup {
  let state: TunnelDaemons | undefined;
  return {
    name,
    description: `Nebula on TUN (${cipher === 'aes' ? 'AES-256-GCM' : 'ChaCha20-Poly1305'})`,
    requires: [
      { command: 'nebula', debianPackage: 'nebula' },
      { command: 'nebula-cert', debianPackage: 'nebula' },
    ],
    async version() {
      const r = await runCommand('nebula', ['-version']);
      return /[\d]+\.[\d.]+/.exec(r.stdout)?.[0];
    },
    async setUp(tb: Testbed, topo: PeerTopology) {
      const dir = join(topo.tmpDir, name);
      // A fresh CA and fresh certificates every turn.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const sides = [topo.gwA, topo.gwB];
      const names = ['gwA', 'gwB'];
      state = { tb, daemons: [], sides };
      const ca = { crt: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
      await cert([
        'ca',
        '-name',
        `kasane-bench ${topo.prefix}`,
        '-duration',
        '24h',
        '-out-crt',
        ca.crt,
        '-out-key',
        ca.key,
      ]);
      const staticHostMap = Object.fromEntries(sides.map((s) => [s.overlayAddr, [`${s.wanAddr}:${PORT}`]]));
      for (const [i, side] of sides.entries()) {
        const other = sides[1 - i];
        const sideDir = join(dir, names[i]);
        mkdirSync(sideDir, { recursive: true, mode: 0o700 });
        const crt = join(sideDir, 'host.crt');
        const key = join(sideDir, 'host.key');
        await cert([
          'sign',
          '-ca-crt',
          ca.crt,
          '-ca-key',
          ca.key,
          '-name',
          names[i],
          '-ip',
          `${side.overlayAddr}/${topo.overlayPrefixLen}`,
          '-subnets',
          side.lanPrefix,
          '-out-crt',
          crt,
          '-out-key',
          key,
        ]);
        const lighthouse = i === 0;
        const config = {
          pki: { ca: ca.crt, cert: crt, key },
          static_host_map: staticHostMap,
          lighthouse: lighthouse
            ? { am_lighthouse: true, interval: 60 }
            : { am_lighthouse: false, interval: 60, hosts: [sides[0].overlayAddr] },
          listen: { host: side.wanAddr, port: PORT },
          punchy: { punch: false },
          relay: { am_relay: false, use_relays: false },
          cipher,
          tun: {
            disabled: false,
            dev: IF,
            drop_local_broadcast: false,
            drop_multicast: false,
            tx_queue: 500,
            mtu: topo.mtu,
            routes: [],
            unsafe_routes: [{ route: other.lanPrefix, via: other.overlayAddr, mtu: topo.mtu }],
          },
          logging: { level: 'info', format: 'text' },
          firewall: {
            outbound: [{ port: 'any', proto: 'any', host: 'any' }],
            inbound: [{ port: 'any', proto: 'any', host: 'any' }],
          },
        };
        const configPath = join(sideDir, 'config.yml');
        writeFileSync(configPath, stringify(config), { mode: 0o600 });
        const d = Daemon.start(tb, side.ns, `nebula in ${side.ns}`, 'nebula', ['-config', configPath]);
        state.daemons.push(d);
        await waitFor(
          'nebula to bring up its TUN device, route and UDP socket',
          async () => {
            d.assertRunning();
            const route = await runIn(tb, side.ns, 'ip', ['route', 'show', other.lanPrefix, 'dev', IF], {
              timeoutMs: 5000,
            });
            if (route.status !== 0 || route.stdout.trim() === '') return false;
            const udp = await runIn(tb, side.ns, 'ss', ['-Hlun', `sport = :${PORT}`], { timeoutMs: 5000 });
            return udp.stdout.includes(`:${PORT}`);
          },
          { timeoutMs: 15_000, intervalMs: 100, lastError: () => d.output() },
        );
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

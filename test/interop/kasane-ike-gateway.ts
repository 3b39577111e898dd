// kasane's IKE gateway against strongSwan, without an authority: run inside a namespace as
//   ip netns exec NS node --import tsx test/interop/kasane-ike-gateway.ts '<json config>'
// It is the gateway's own IKE edge (src/gateway/ike-driver.ts: the IKE engine, UDP 500, UDP 4500
// through the native datapath, Child SAs installed in the native executor), with the peer, the
// permit and the attribute authority given in the config instead of delivered by an authority,
// and with the one path rule the core would install once the Child SA is up. Reports JSON lines
// on stdout ({"event": "ready" | "ike" | "status" | "closed", ...}); stdin: "initiate", "status",
// "close" (the process then exits by itself).
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { ipFamily, ipFromBytes, Prefix } from '../../src/base/addr.js';
import type { TunnelExecutor } from '../../src/core/executor.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { IkeDriver } from '../../src/gateway/ike-driver.js';
import { FileKeyKeystore } from '../../src/pki/signer.js';
import { keystoreSigner } from '../../src/gateway/ike-identity.js';
import { pemToDer } from '../../src/pki/keys.js';
import { NativeDatapath, type DatapathOptions, type PuntBatch } from '../../src/native/datapath.js';
import { NativeExecutor } from '../../src/native/native-executor.js';
import { routingSetup, routingTeardown, runRouting, type TunRouting } from '../../src/native/routing.js';
import type { AuthoritySnapshot } from '../../src/core/types.js';

export interface KasaneIkeGatewayConfig {
  name: string;
  /** The outside address IKE uses toward the peer (IPv4 or IPv6)... */
  address: string;
  /** ...and the other family's, for a dual-stack gateway. */
  addresses?: string[];
  routing: TunRouting;
  certificatePem: string;
  keyPem: string;
  /** Our own authority's attribute authority (verifies the peer's permit). */
  attributeAuthorityPem: string;
  /** Our own authority's CA certificates, named in CERTREQ. */
  caPems: string[];
  peer: {
    name: string;
    address: string;
    certificatePem: string;
    vpnId: number;
    vpnName: string;
    localPrefixes: string[];
    remotePrefixes: string[];
  };
  /** The permit we present (issued by the peer's authority). */
  permitPem: string;
  /** The terminals whose path rules the core would install: local and remote host (one pair per family). */
  hosts: { local: string; remote: string }[];
  timers?: Record<string, number>;
}

const cfg = JSON.parse(process.argv[2]) as KasaneIkeGatewayConfig;
const emit = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + '\n');
const fail = (message: string) => {
  emit({ event: 'error', message });
  process.exitCode = 2;
};

const made = NativeExecutor.create();
if (!made.ok) fail(made.error.message);
else {
  const ex = made.value;
  let ike: IkeDriver | undefined;
  const onUdp: NonNullable<DatapathOptions['onUdp']> = (b) => {
    for (let i = 0; i < b.count; i++)
      if (b.reason(i) === 'ike') ike?.natDatagram(b.srcAddr(i), b.srcPort(i), b.payload(i));
  };
  // IPv6 outside addresses while the native datapath has no IPv6 tunnel port: the Child SAs go to the
  // TypeScript executor (the reference implementation of tunnel mode); the native executor misses
  // the terminals' packets and punts them here, and ESP arrives on the driver's own [v6]:4500.
  let tsEx: TsExecutor | undefined;
  const onPunt = (b: PuntBatch) => {
    for (let i = 0; i < b.count; i++) {
      if (!tsEx || b.side(i) !== 'inside') continue; // misses before the Child SA is up are dropped, as a pending path would
      const v = tsEx.process('inside', b.packet(i).slice(), Date.now());
      if (v.kind !== 'forward' || v.note.op !== 'tunnel-encrypt') continue;
      const outer = v.bytes; // IPv6 (40) | UDP (8) | ESP
      ike?.sendTunnel(ipFromBytes(outer, 24, 6), (outer[42] << 8) | outer[43], outer.subarray(48));
    }
  };
  const devices = { inside: cfg.routing.insideTun, outside: cfg.routing.outsideTun, onPunt };
  // The tunnel port on the address IKE uses. A datapath without a tunnel port of that family (the
  // native one is IPv4 until its IPv6 socket lands) leaves IKE's UDP 4500 to the driver's own socket.
  let opened = NativeDatapath.open(ex, { ...devices, udp: { address: cfg.address, port: 4500 }, onUdp });
  const ownNatPort: (4 | 6)[] = [];
  if (!opened.ok && opened.error.code === 'bad-config' && ipFamily(cfg.address) === 6) {
    ownNatPort.push(6);
    tsEx = new TsExecutor();
    const v4 = cfg.addresses?.find((a) => ipFamily(a) === 4);
    opened = NativeDatapath.open(ex, { ...devices, ...(v4 ? { udp: { address: v4, port: 4500 }, onUdp } : {}) });
  }
  if (!opened.ok) fail(opened.error.message);
  else {
    const dp = opened.value;
    const executor: TunnelExecutor = tsEx ?? ex;
    const natEsp = (from: string, port: number, payload: Uint8Array) => {
      const v = tsEx?.processUdp(from, port, payload, Date.now());
      if (v?.kind === 'forward' && v.note.op === 'tunnel-decrypt') dp.write('inside', v.bytes);
    };
    const log = pino(
      { level: 'debug' },
      { write: (line: string) => emit({ ...(JSON.parse(line) as Record<string, unknown>), event: 'ike' }) },
    );
    ike = new IkeDriver({
      gateway: cfg.name,
      address: cfg.address,
      addresses: cfg.addresses,
      ownNatPort,
      natEsp,
      certificate: pemToDer(cfg.certificatePem, 'CERTIFICATE'),
      signer: keystoreSigner(new FileKeyKeystore(cfg.keyPem)),
      certificateAuthorities: cfg.caPems.map((p) => pemToDer(p, 'CERTIFICATE')),
      ports: { ike: 500, nat: 4500 },
      timers: cfg.timers,
      idleTimeout: 3_600_000,
      executor,
      sendNat: (to, port, bytes) => void dp.sendUdp(to, port, bytes),
      childUp: (peer, vpnId, spi) => {
        for (const h of cfg.hosts)
          executor.installPath({
            local: h.local,
            remote: h.remote,
            action: 'encrypt',
            vpnId,
            peer,
            mtu: 1400,
            tunnel: { spi },
          });
        emit({ event: 'child-up', peer, vpnId, spi });
      },
      childDown: (peer, vpnId, reason) => {
        for (const h of cfg.hosts) executor.removePath(h.local, h.remote);
        emit({ event: 'child-down', peer, vpnId, reason });
      },
      log,
      random: (n) => new Uint8Array(randomBytes(n)),
    });
    const snapshot: AuthoritySnapshot = {
      version: 1,
      protectedPrefixes: [],
      attributeAuthority: pemToDer(cfg.attributeAuthorityPem, 'CERTIFICATE'),
      vpns: [
        {
          id: cfg.peer.vpnId,
          name: cfg.peer.vpnName,
          mode: 'pairwise',
          epochs: [],
          members: [
            {
              gateway: cfg.name,
              address: cfg.address,
              prefixes: cfg.peer.localPrefixes.map((p) => Prefix.from(p)),
              spis: [],
            },
            {
              gateway: cfg.peer.name,
              address: cfg.peer.address,
              prefixes: cfg.peer.remotePrefixes.map((p) => Prefix.from(p)),
              spis: [],
              certificate: pemToDer(cfg.peer.certificatePem, 'CERTIFICATE'),
              permit: pemToDer(cfg.permitPem, 'ATTRIBUTE CERTIFICATE'),
            },
          ],
        },
      ],
    };
    ike.snapshot(snapshot);
    const routed = runRouting(routingSetup(cfg.routing));
    if (!routed.ok) fail(routed.error.message);
    await ike.start();
    emit({ event: 'ready' });
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const cmd = line.trim();
      if (cmd === 'initiate') ike!.request(cfg.peer.name, cfg.peer.vpnId);
      if (cmd === 'status') emit({ event: 'status', sas: ike!.status(), counters: ex.counters() });
      if (cmd === 'close') {
        void ike!.stop().then(() => {
          runRouting(routingTeardown(cfg.routing));
          dp.close();
          emit({ event: 'closed', counters: ex.counters() });
          rl.close();
          process.stdin.destroy();
        });
      }
    });
  }
}

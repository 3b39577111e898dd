// The gateway daemon (paper: MES): the core on real packets. The native datapath owns two TUN
// devices fed by policy routing (inside, outside), executes the key table and punts what needs a
// decision; the core decides; the authority's change stream keeps keys and members current.
//
// Start-up order: credentials → keys (authority, or the cached delivery when it is unreachable;
// authority-link.ts, which also follows the change stream across the authority's replicas)
// → executor + core → TUN devices → policy routing → change stream, status socket, metrics.
// Stop undoes it in reverse but for the policy routing and the forwarding guard, which stay (fail
// closed: with the TUN devices gone, the protected terminals' traffic is refused rather than
// forwarded in the clear) until the next start takes them over or `kasane gateway teardown`.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import pino from 'pino';
import { ipFamily, parseIp, Prefix, type Ip } from '../base/addr.js';
import type { Executor } from '../core/executor.js';
import { GatewayCore } from '../core/gateway-core.js';
import { TsExecutor } from '../core/ts-executor.js';
import {
  guardTableName,
  NativeDatapath,
  NativeExecutor,
  routingSetup,
  routingTeardown,
  runRouting,
  type TunRouting,
} from '../native/index.js';
import { hostHasIpv6 } from '../native/routing.js';
import type { GatewayRunConfig } from './config.js';
import { CoreDriver } from './core-driver.js';
import { AuthorityLink, GatewayStartError } from './authority-link.js';
import { loadCredentials, type Credentials } from './credentials.js';
import { gatewayRegistry } from './metrics.js';
import { queryStatus, serveStatus, type GatewayStatus } from './status.js';
import { StatusReporter } from './status-report.js';
import { SeqReservations } from './seq-reservation.js';
import { ReceiveJournal } from './rx-journal.js';
import { warmUpSearchPath } from './warmup.js';
import { kernelPathMtu, wanPathMtu } from './wan-mtu.js';
import { IkeDriver } from './ike-driver.js';
import { ikeIdentity, type IkeIdentity } from './ike-identity.js';
import { pemToDer } from '../pki/keys.js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export { GatewayStartError };

export class GatewayDaemon {
  private driver?: CoreDriver;
  private ike?: IkeDriver;
  private ikeIdentity?: IkeIdentity;
  private datapath?: NativeDatapath;
  private statusServer?: Server;
  private reporter?: StatusReporter;
  private metricsServer?: HttpServer;
  private link?: AuthorityLink;
  private readonly abort = new AbortController();
  private watching?: Promise<unknown>;
  private readonly startedAt = Date.now();
  private stopped = false;
  private seqTimer?: NodeJS.Timeout;
  private mtuTimer?: NodeJS.Timeout;
  private readonly udpDrops = new Map<string, number>();
  private failWith?: (e: Error) => void;
  /**
   * Settles when the gateway cannot go on forwarding (a TUN device was deleted or failed under it);
   * never while it runs well. `kasane gateway run` then stops it and exits 1, for its supervisor to
   * start it again: the forwarding guard holds in between, as after a crash.
   */
  readonly failed: Promise<Error> = new Promise((resolve) => (this.failWith = resolve));

  private constructor(
    readonly config: GatewayRunConfig,
    private readonly creds: Credentials,
    readonly log: Logger,
  ) {}

  get id(): string {
    return this.creds.bundle.gateway.name;
  }

  static async start(
    config: GatewayRunConfig,
    log: Logger = pino({ name: 'kasane-gateway', level: config.logLevel }, pino.destination(2)),
  ): Promise<GatewayDaemon> {
    preflight(config);
    const creds = loadCredentials(config.data);
    const d = new GatewayDaemon(config, creds, log);
    try {
      await d.boot();
      return d;
    } catch (e) {
      await d.stop();
      throw e;
    }
  }

  private async boot(): Promise<void> {
    const { bundle } = this.creds;
    this.link = new AuthorityLink({
      data: this.config.data,
      creds: this.creds,
      urls: this.config.authorityUrls,
      push: { enabled: this.config.authorityPush },
      log: this.log,
    });
    const first = await this.link.initial();

    const native = NativeExecutor.create();
    const executor: Executor = native.ok ? native.value : new TsExecutor();
    if (!native.ok)
      throw new GatewayStartError(
        `the native datapath is unavailable (${native.error.message}); run npm install to build it`,
      );

    const reservations = new SeqReservations(join(this.config.data, 'tx-seq.json'));
    const received = new ReceiveJournal(join(this.config.data, 'rx-epochs.json'));
    if (received.damaged)
      this.log.warn({ err: received.damaged }, 'receive journal unreadable: every receiving SA learns its floor first');
    const core = new GatewayCore({
      config: {
        id: bundle.gateway.name,
        address: bundle.gateway.address,
        // The source of the ICMPv6 Packet Too Big it sends IPv6 terminals: its own IPv6 outside
        // address, or else the first global IPv6 address of its outside interfaces.
        address6:
          ipFamily(bundle.gateway.address) === 6 ? bundle.gateway.address : outsideAddress6(this.config.outside),
        attached: this.config.attached ?? insidePrefixes(this.config.inside),
        allowPlain: this.config.allowPlain,
        pathMtu: wanPathMtu(this.config.pathMtu, this.config.outside),
        rawEspVpns: this.config.rawEspVpns,
        timers: this.config.timers,
        limits: this.config.limits,
      },
      snapshot: first,
      now: Date.now(),
      executor,
      txSeqStart: (vpnId, epoch) => reservations.begin(vpnId, epoch),
      // Replay windows across restarts (docs/protocol.md §3.2): an SA an earlier run received on
      // takes ESP only once its sender's floor is learned.
      rxNeedsFloor: (sa) => received.begin(sa.vpnId, sa.epoch),
    });
    this.seqTimer = setInterval(() => {
      const sas = core.sendingSas();
      for (const sa of sas) reservations.ensure(sa.vpnId, sa.epoch, sa.nextSeq);
      reservations.retain(sas);
      received.retain(core.ring.rxSas());
    }, 1000);
    this.seqTimer.unref();
    // An outside interface's MTU may change at run time: the paths follow it. Pairwise paths also
    // follow the kernel's path MTU toward their peer (ICMP about ESP in UDP goes to the kernel).
    // A failure here is logged and tried again at the next tick: a timer that throws would end the
    // daemon without a word (an IPv6 peer once did, before kernelPathMtu took 16-byte addresses).
    this.mtuTimer = setInterval(() => {
      try {
        this.driver?.pathMtu(wanPathMtu(this.config.pathMtu, this.config.outside));
      } catch (e) {
        this.log.error({ err: (e as Error).message }, "reading the outside interfaces' MTU failed");
      }
      for (const t of this.ike?.tunnelPeers() ?? []) {
        try {
          this.driver?.tunnelPathMtu(t.peer, kernelPathMtu(native.value.binding, t.address));
        } catch (e) {
          this.log.error({ err: (e as Error).message, peer: t.peer }, 'reading the path MTU toward a peer failed');
        }
      }
    }, 2000);
    this.mtuTimer.unref();
    const dp = NativeDatapath.open(native.value, {
      inside: this.config.tun.inside,
      outside: this.config.tun.outside,
      queues: this.config.tun.queues,
      onPunt: (batch) => {
        for (let i = 0; i < batch.count; i++) this.driver?.packet(batch.side(i), batch.packet(i).slice(), true);
      },
      onFailure: (message) => {
        this.log.fatal({ err: message }, 'the datapath stopped: this gateway can no longer forward');
        this.failWith?.(new Error(message));
      },
      // The tunnel port: ESP in UDP for pairwise VPNs' Child SAs (native), IKE on 4500 (to JavaScript).
      udp: { address: bundle.gateway.address, port: this.config.ike.natPort },
      onUdp: (batch) => {
        for (let i = 0; i < batch.count; i++) {
          if (batch.reason(i) === 'ike') this.ike?.natDatagram(batch.srcAddr(i), batch.srcPort(i), batch.payload(i));
          else this.udpDrops.set(batch.reason(i), (this.udpDrops.get(batch.reason(i)) ?? 0) + 1);
        }
      },
    });
    if (!dp.ok) throw new GatewayStartError(`cannot open the TUN devices: ${dp.error.message}`);
    this.datapath = dp.value;
    this.driver = new CoreDriver(core, {
      // Whatever the core emits is routed by the kernel from the TUN device, by destination.
      emit: (bytes, action) => {
        // Tunnel mode (pairwise VPNs): the executor made the outer IPv4/UDP packet; it leaves
        // through the tunnel port's socket, not the TUN (its source is this host). So do the
        // core's ICMP errors (from this host's address: a TUN write would be a martian).
        const op = action.note.op;
        const r =
          op === 'tunnel-encrypt'
            ? this.datapath?.sendTunnelPacket(bytes)
            : op === 'icmp-error'
              ? this.datapath?.sendLocal(bytes)
              : this.datapath?.write('inside', bytes);
        if (r && !r.ok) this.log.warn({ err: r.error.message }, 'TUN write failed');
      },
      drop: (reason) => this.log.trace({ reason }, 'drop'),
      trace: (event) => {
        if (
          event.event === 'search-complete' ||
          event.event === 'search-failed' ||
          event.event === 'path-revoked' ||
          event.event === 'age-out' ||
          event.event === 'search-forged'
        ) {
          this.log.info({ event: event.event, ...event.detail }, event.event);
        } else this.log.debug({ event: event.event, kind: event.kind, ...event.detail }, event.event);
      },
      ikeRequest: (req) => this.ike?.request(req.peer, req.vpnId, req.address),
    });

    // IKEv2 for pairwise VPNs (seed 001): UDP 500 here, 4500 through the datapath above.
    try {
      this.ikeIdentity = await ikeIdentity(this.config, this.creds, this.link.client, this.log);
    } catch (e) {
      throw new GatewayStartError((e as Error).message);
    }
    this.log.info({ keystore: this.ikeIdentity.keystore }, 'IKE identity');
    this.ike = new IkeDriver({
      gateway: bundle.gateway.name,
      address: bundle.gateway.address,
      certificate: this.ikeIdentity.certificate,
      signer: this.ikeIdentity.signer,
      certificateAuthorities: bundle.chain.map((pem) => pemToDer(pem, 'CERTIFICATE')),
      ports: { ike: this.config.ike.port, nat: this.config.ike.natPort },
      timers: this.config.ike.timers,
      idleTimeout: this.config.ike.idleTimeout,
      executor: native.value,
      sendNat: (to, port, bytes) => {
        const r = this.datapath?.sendUdp(to, port, bytes);
        if (r && !r.ok) this.log.warn({ err: r.error.message, to, port }, 'IKE send on the tunnel port failed');
      },
      childUp: (peer, vpnId, spi) => this.driver?.childSaUp(peer, vpnId, spi),
      childDown: (peer, vpnId, reason) => this.driver?.childSaDown(peer, vpnId, reason),
      log: this.log.child({ part: 'ike' }),
      random: (n) => new Uint8Array(randomBytes(n)),
    });
    this.ike.snapshot(first);
    try {
      await this.ike.start();
    } catch (e) {
      throw new GatewayStartError(
        `cannot open the IKE port ${bundle.gateway.address}:${this.config.ike.port}: ${(e as Error).message}`,
      );
    }

    const r = runRouting(routingSetup(tunRouting(this.config)));
    if (!r.ok) throw new GatewayStartError(`cannot set up policy routing: ${r.error.message}`);

    this.statusServer = await serveStatus(this.config.statusSocket, () => this.status());
    if (this.config.metrics) await this.serveMetrics(this.config.metrics.host, this.config.metrics.port);
    this.watching = this.follow();
    if (this.config.statusReport.interval > 0) {
      this.reporter = new StatusReporter({
        client: this.link.client,
        status: () => this.status(),
        intervalMs: this.config.statusReport.interval,
        log: this.log,
      });
      this.reporter.start();
    }
    this.log.info(
      {
        gateway: this.id,
        address: bundle.gateway.address,
        version: this.link.version,
        authority: this.link.client.endpoint,
        vpns: first.vpns.map((v) => v.name),
        inside: this.config.inside,
        outside: this.config.outside,
      },
      'gateway running',
    );
    // In the background: the first searches should not run on cold code (see warmup.ts).
    // Private native executors: the live core's executor class (see warmup.ts for why it matters).
    const warmExecutor = (): NativeExecutor => {
      const e = NativeExecutor.create();
      if (!e.ok) throw e.error;
      return e.value;
    };
    void warmUpSearchPath({ executor: warmExecutor }).then(
      (w) =>
        this.log.debug({ searches: w.searches, completed: w.completed, ms: Math.round(w.ms) }, 'search path warmed up'),
      (e: unknown) => this.log.warn({ err: (e as Error).message }, 'search warm-up failed'),
    );
  }

  /** Follows the change stream; every change reaches the core without a restart. */
  private follow(): Promise<void> {
    return this.link!.follow(
      this.abort.signal,
      (s, c) => {
        if (!this.driver) return;
        this.driver.snapshot(s);
        this.ike?.snapshot(s);
        this.log.info(
          { version: c.version, events: c.events.map((e) => e.action), authority: this.link!.client.endpoint },
          'configuration applied',
        );
      },
      (e) => {
        this.log.error({ err: e.message }, 'the authority refused this gateway: its keys are withdrawn');
        // A revoked gateway must not keep VPN keys: drop to an empty configuration.
        const version = this.link!.version;
        this.driver?.snapshot({ version, protectedPrefixes: [], vpns: [] });
        this.ike?.snapshot({ version, protectedPrefixes: [], vpns: [] });
      },
    );
  }

  private async serveMetrics(host: string, port: number): Promise<void> {
    const registry = gatewayRegistry(
      () => this.driver!.core,
      this.id,
      () => this.stats(),
    );
    this.metricsServer = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('see /metrics\n');
        return;
      }
      registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
        .catch((e: Error) => res.writeHead(500).end(e.message));
    });
    await new Promise<void>((resolve, reject) => {
      this.metricsServer!.once('error', reject);
      this.metricsServer!.listen(port, host, () => resolve());
    });
  }

  status(): GatewayStatus {
    const core = this.driver!.core;
    const now = Date.now();
    return {
      gateway: this.id,
      address: this.creds.bundle.gateway.address,
      authorityVersion: this.link?.version ?? 0,
      authority: this.link?.client.endpoint,
      vpns: core.ring.vpnIds().map((id) => {
        const v = core.ring.vpn(id)!;
        return { id, name: v.name, mode: v.mode, epoch: core.ring.currentEpoch(id, now) };
      }),
      startedAt: this.startedAt,
      now,
      paths: core.paths(),
      ike: this.ike?.status() ?? [],
      ikeLoad: this.ike?.engine.load(),
      stats: this.stats(),
    };
  }

  /**
   * Every counter: the core's and the executor's, the datapath's (batches, punts, punt-queue
   * overflow) and the kernel's drops at the TUN queues (packets the kernel could not hand to a
   * gateway that fell behind), so that every packet a gateway did not forward is counted somewhere.
   */
  stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.driver!.core.stats() };
    for (const [k, v] of Object.entries(this.datapath?.stats() ?? {})) out[`datapath.${k}`] = v;
    for (const [k, v] of this.ike?.counters ?? []) out[`ike.${k}`] = v;
    for (const [k, v] of this.udpDrops) out[`datapath.udp-punt.${k}`] = v;
    for (const [side, dev] of [
      ['inside', this.config.tun.inside],
      ['outside', this.config.tun.outside],
    ] as const) {
      try {
        out[`kernel.tun-${side}.queue-dropped`] = Number(
          readFileSync(`/sys/class/net/${dev}/statistics/tx_dropped`, 'utf8'),
        );
      } catch {
        /* the device is gone (stopping): no figure rather than a wrong one */
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.reporter?.stop();
    if (this.seqTimer) clearInterval(this.seqTimer);
    if (this.mtuTimer) clearInterval(this.mtuTimer);
    await this.ike?.stop().catch(() => undefined);
    this.ikeIdentity?.close();
    this.driver?.stop();
    this.statusServer?.close();
    this.metricsServer?.close();
    // The routing and the forwarding guard stay: see the header comment.
    this.datapath?.close();
    this.link?.close();
    await this.watching?.catch(() => undefined);
    this.log.info(
      { gateway: this.creds.bundle.gateway.name },
      'gateway stopped; forwarded traffic between the inside and the outside stays blocked until it runs again (kasane gateway teardown unprotects)',
    );
  }
}

/** The policy routing and forwarding guard of a configuration (src/native/routing.ts). */
export function tunRouting(config: GatewayRunConfig): TunRouting {
  return {
    insideTun: config.tun.inside,
    outsideTun: config.tun.outside,
    insideIfaces: config.inside,
    outsideIfaces: config.outside,
    table: config.routingTable,
    pref: config.routingTable,
    ipv6: hostHasIpv6(),
  };
}

/**
 * `kasane gateway teardown`: unprotects on purpose. Removes what a gateway leaves in place when it
 * stops or dies (its ip rules, tables and forwarding guard), so that forwarded traffic between its
 * inside and outside interfaces follows the main table again, in the clear. Refused while the
 * gateway runs (its TUN devices exist, or its status socket answers). Returns what it did.
 */
export async function teardownGateway(config: GatewayRunConfig): Promise<string> {
  if (process.getuid?.() !== 0)
    throw new GatewayStartError('teardown needs root (CAP_NET_ADMIN) to change policy routing and nftables');
  const tuns = [config.tun.inside, config.tun.outside].filter((t) => existsSync(`/sys/class/net/${t}`));
  let answers = false;
  if (existsSync(config.statusSocket))
    answers = await queryStatus(config.statusSocket).then(
      () => true,
      () => false,
    );
  if (tuns.length > 0 || answers) {
    const why = answers
      ? `its status socket ${config.statusSocket} answers`
      : `its TUN device ${tuns.join(', ')} exists`;
    throw new GatewayStartError(
      `the gateway is running (${why}): stop it first; teardown would leave its terminals' traffic unprotected under it`,
    );
  }
  const routing = tunRouting(config);
  const r = runRouting(routingTeardown(routing));
  if (!r.ok) throw new GatewayStartError(`teardown failed: ${r.error.message}`);
  const t = config.routingTable;
  return (
    `unprotected: removed the ip rules at preferences ${t} and ${t + 1}, the routes of tables ${t} and ${t + 1} ` +
    `(IPv4${routing.ipv6 ? ' and IPv6' : ''}) and the nftables table inet ${guardTableName(routing)}.\n` +
    `Forwarded traffic between ${config.inside.join(', ')} and ${config.outside.join(', ')} now follows the main tables, in the clear ` +
    `(net.ipv4.ip_forward and net.ipv6.conf.all.forwarding are left as they are). \`kasane gateway run\` protects again.\n`
  );
}

/** Refuses early and clearly when the gateway cannot work here. */
function preflight(config: GatewayRunConfig): void {
  if (process.platform !== 'linux')
    throw new GatewayStartError('the gateway needs Linux (TUN devices, policy routing)');
  if (process.getuid?.() !== 0)
    throw new GatewayStartError('the gateway needs root (CAP_NET_ADMIN) to create TUN devices and policy routing');
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new GatewayStartError(
      'the gateway needs nftables for its forwarding guard: the nft command is missing (Debian: apt-get install nftables)',
    );
  }
  for (const i of [...config.inside, ...config.outside]) {
    try {
      execFileSync('ip', ['link', 'show', 'dev', i], { stdio: 'ignore' });
    } catch {
      throw new GatewayStartError(`interface ${i} does not exist in this network namespace`);
    }
  }
}

type AddrShow = {
  addr_info?: {
    family?: string;
    local: string;
    prefixlen: number;
    scope?: string;
    deprecated?: boolean;
    tentative?: boolean;
  }[];
}[];
const addrShow = (i: string): string =>
  execFileSync('ip', ['-j', 'addr', 'show', 'dev', i, 'scope', 'global'], { encoding: 'utf8' });

/** The first usable global IPv6 address of the outside interfaces (not deprecated, not tentative), or undefined. */
export function outsideAddress6(ifaces: string[], show = addrShow): Ip | undefined {
  for (const i of ifaces) {
    for (const a of (JSON.parse(show(i)) as AddrShow)[0]?.addr_info ?? []) {
      if (a.family !== 'inet6' || (a.scope ?? 'global') !== 'global' || a.deprecated || a.tentative) continue;
      const ip = parseIp(a.local);
      if (ip.ok) return ip.value;
    }
  }
  return undefined;
}

/**
 * The prefixes configured on the inside interfaces, IPv4 and IPv6 (global scope: link-local
 * addresses name no LAN, and link-local traffic is never intercepted): the LANs whose terminals we
 * serve first-hand.
 */
export function insidePrefixes(ifaces: string[], show = addrShow): Prefix[] {
  const out: Prefix[] = [];
  for (const i of ifaces) {
    const j = JSON.parse(show(i)) as AddrShow;
    for (const a of j[0]?.addr_info ?? []) {
      if ((a.family !== 'inet' && a.family !== 'inet6') || (a.scope !== undefined && a.scope !== 'global')) continue;
      const p = Prefix.of(a.local, a.prefixlen);
      if (!out.some((q) => q.equals(p))) out.push(p);
    }
  }
  return out;
}

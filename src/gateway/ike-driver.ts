// The edge between the sans-I/O IKE engine (src/ike/engine) and the gateway: UDP 500 on a node
// socket per outside address (IPv4 and IPv6: a dual-stack gateway has one of each), UDP 4500
// through the native datapath (it shares the port with ESP-in-UDP, RFC 3948, and hands IKE over
// behind the non-ESP marker) or, for an address family the datapath has no tunnel port of, on a
// node socket of our own; one timer for the engine's next deadline, Child SAs installed in the
// executor, and the core told when a peer's Child SA comes and goes.
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import { ipFamily, parseIp, type IpFamily, type Prefix } from '../base/addr.js';
import type { AddressRange, TunnelExecutor } from '../core/executor.js';
import type { AuthoritySnapshot } from '../core/types.js';
import { selectorFromPrefix } from '../ike/message/index.js';
import { IkeEngine, type IkeSaView } from '../ike/engine/engine.js';
import type { IkeOutput, IkePeer, IkeTimers, LocalIdentity } from '../ike/engine/types.js';
import type { AuthSigner } from '../ike/crypto/signature.js';
import type { Clock } from './core-driver.js';
import { systemClock } from './core-driver.js';
import type { RandomSource } from '../base/random.js';

const NON_ESP_MARKER = Buffer.alloc(4);

export interface IkeDriverOptions {
  gateway: string;
  /** The gateway's outside address (IPv4 or IPv6). */
  address: string;
  /** A dual-stack gateway's outside address of the other family. */
  addresses?: string[];
  /**
   * Families whose UDP 4500 this driver binds itself, because the datapath has no tunnel port of
   * that family: IKE after IKE_SA_INIT goes there; ESP arriving on it goes to `natEsp` (or is
   * counted as `dropped.esp-no-tunnel-port`).
   */
  ownNatPort?: IpFamily[];
  natEsp?(from: string, port: number, payload: Uint8Array): void;
  certificate: Uint8Array;
  signer: AuthSigner;
  /** Our authority's CA certificates (DER), named in CERTREQ. */
  certificateAuthorities?: Uint8Array[];
  ports: { ike: number; nat: number };
  timers?: Partial<IkeTimers>;
  /** A Child SA unused this long (no packet either way) is deleted with its IKE SA. */
  idleTimeout: number;
  executor: TunnelExecutor;
  /** Sends a datagram from the tunnel port (the native datapath's socket), for the families it has. */
  sendNat(to: string, port: number, bytes: Uint8Array): void;
  /** The core's answers: a Child SA with a peer is up (send with `outboundSpi`) or gone. */
  childUp(peer: string, vpnId: number, outboundSpi: number): void;
  childDown(peer: string, vpnId: number, reason: string): void;
  log: Logger;
  random: RandomSource;
  clock?: Clock;
}

interface Installed {
  peer: string;
  vpnId: number;
  inboundSpi: number;
  outboundSpi: number;
  /** Where its ESP in UDP goes. */
  remoteAddr: string;
}

/** The pairwise peers a snapshot delivers to gateway `self`: other members with a certificate and a permit. */
export function peersOf(s: AuthoritySnapshot, self: string): IkePeer[] {
  const out: IkePeer[] = [];
  for (const v of s.vpns) {
    if (v.mode !== 'pairwise') continue;
    const me = v.members.find((m) => m.gateway === self);
    if (!me) continue;
    for (const m of v.members) {
      if (m.gateway === self || !m.certificate || !m.permit) continue;
      out.push({
        id: m.gateway,
        vpnId: v.id,
        vpnName: v.name,
        endpoint: { address: canonical(m.address), port: 500 },
        certificate: m.certificate,
        permit: m.permit,
        localPrefixes: me.prefixes,
        remotePrefixes: m.prefixes,
      });
    }
  }
  return out;
}

/** The name the core knows a peer by: a peer authority's `gateway@authority` is `gateway` in the key search. */
export function coreName(id: string): string {
  const at = id.indexOf('@');
  return at < 0 ? id : id.slice(0, at);
}

/** One spelling per address (RFC 5952 for IPv6), as the engine compares them: sockets and deliveries may differ. */
function canonical(address: string): string {
  const p = parseIp(address);
  return p.ok ? p.value : address;
}

function ranges(prefixes: Prefix[]): AddressRange[] {
  return prefixes.map((p) => {
    const s = selectorFromPrefix(p);
    return { start: s.startAddr, end: s.endAddr };
  });
}

export class IkeDriver {
  readonly engine: IkeEngine;
  private readonly identity: LocalIdentity;
  private peers: IkePeer[] = [];
  /** UDP 500 per family, and UDP 4500 for the families in `ownNatPort`. */
  private readonly ikeSockets = new Map<IpFamily, Socket>();
  private readonly natSockets = new Map<IpFamily, Socket>();
  private timer: unknown;
  private armedFor?: number;
  private stopped = false;
  private readonly clock: Clock;
  /** Child SAs in the executor, by our inbound SPI. */
  private readonly installed = new Map<number, Installed>();
  /** Engine steps asked for while one is being applied (see run). */
  private readonly pending: ((now: number) => IkeOutput)[] = [];
  private running = false;
  readonly counters = new Map<string, number>();

  constructor(private readonly o: IkeDriverOptions) {
    this.clock = o.clock ?? systemClock;
    // No attribute authority until the first delivery that has one: until then every permit fails.
    this.identity = {
      certificate: o.certificate,
      signer: o.signer,
      attributeAuthority: new Uint8Array(0),
      certificateAuthorities: o.certificateAuthorities,
    };
    this.engine = new IkeEngine({
      local: this.identity,
      endpoint: { address: canonical(o.address), port: o.ports.ike },
      addresses: (o.addresses ?? []).map(canonical),
      natPort: o.ports.nat,
      peers: () => this.peers,
      random: o.random,
      timers: o.timers,
    });
  }

  /** Binds UDP 500 on each outside address (and UDP 4500 for the families in `ownNatPort`). */
  async start(): Promise<void> {
    try {
      for (const address of [this.o.address, ...(this.o.addresses ?? [])]) {
        const family = ipFamily(canonical(address));
        if (this.ikeSockets.has(family)) throw new Error(`two outside addresses of IPv${family}: ${address}`);
        this.ikeSockets.set(
          family,
          await this.bind(address, this.o.ports.ike, (msg, from, port) =>
            this.run((now) => this.engine.receive({ address: from, port }, msg, now, this.o.ports.ike)),
          ),
        );
        if (!this.o.ownNatPort?.includes(family)) continue;
        this.natSockets.set(
          family,
          await this.bind(address, this.o.ports.nat, (msg, from, port) => this.natOwn(from, port, msg)),
        );
      }
    } catch (e) {
      await this.closeSockets();
      throw e;
    }
    this.rearm();
  }

  /** A UDP socket on address:port; an IPv6 one takes IPv6 only (no IPv4-mapped peers). */
  private async bind(
    address: string,
    port: number,
    onMessage: (msg: Buffer, from: string, port: number) => void,
  ): Promise<Socket> {
    const v6 = ipFamily(canonical(address)) === 6;
    const s = createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: false, ipv6Only: v6 });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, address, () => {
        s.off('error', reject);
        resolve();
      });
    });
    s.on('error', (e) => this.o.log.warn({ err: e.message, address, port }, 'IKE socket error'));
    s.on('message', (msg, rinfo) => onMessage(msg, canonical(rinfo.address), rinfo.port));
    return s;
  }

  /**
   * Sends tunnel ESP (no marker) from our own UDP 4500 socket of `to`'s family (see `ownNatPort`):
   * for a gateway whose executor's tunnel packets of that family cannot leave through the datapath.
   */
  sendTunnel(to: string, port: number, payload: Uint8Array): boolean {
    const s = this.natSockets.get(ipFamily(to));
    if (!s) return false;
    s.send(payload, port, to);
    return true;
  }

  /** A datagram on a UDP 4500 socket of our own: IKE behind the non-ESP marker, a NAT-keepalive, or ESP. */
  private natOwn(from: string, port: number, payload: Buffer): void {
    if (payload.length === 1 && payload[0] === 0xff) return this.count('nat-keepalive');
    if (payload.length >= 4 && NON_ESP_MARKER.equals(payload.subarray(0, 4)))
      return this.natDatagram(from, port, payload);
    if (this.o.natEsp) this.o.natEsp(from, port, payload);
    else this.count('dropped.esp-no-tunnel-port');
  }

  private async closeSockets(): Promise<void> {
    const all = [...this.ikeSockets.values(), ...this.natSockets.values()];
    this.ikeSockets.clear();
    this.natSockets.clear();
    await Promise.all(all.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  /** A datagram from the tunnel port that the datapath punted as IKE (non-ESP marker in front). */
  natDatagram(from: string, port: number, payload: Uint8Array): void {
    if (payload.length < 4 || !NON_ESP_MARKER.equals(payload.subarray(0, 4))) return this.count('dropped.not-ike');
    const bytes = Buffer.from(payload.subarray(4)); // the datapath reuses its buffer
    this.run((now) => this.engine.receive({ address: canonical(from), port }, bytes, now, this.o.ports.nat));
  }

  /**
   * The core wants a Child SA with `peer` for `vpnId` (its ike-request). The core knows a peer
   * by the name it claims in the key search (its own name); our authority delivers a gateway of a
   * peer authority as `name@authority`: the claimed name and the address pick the delivered peer.
   */
  request(peer: string, vpnId: number, address?: string): void {
    const p =
      this.peers.find((x) => x.vpnId === vpnId && x.id === peer && (!address || x.endpoint.address === address)) ??
      this.peers.find(
        (x) => x.vpnId === vpnId && coreName(x.id) === peer && (!address || x.endpoint.address === address),
      );
    this.run((now) => this.engine.initiate(p?.id ?? peer, vpnId, now));
  }

  /** A new delivery: peers, certificates, permits and our attribute authority may have changed. */
  snapshot(s: AuthoritySnapshot): void {
    this.peers = peersOf(s, this.o.gateway);
    if (s.attributeAuthority) this.identity.attributeAuthority = s.attributeAuthority;
    this.run((now) => this.engine.refresh(now));
  }

  status(): IkeSaView[] {
    return this.engine.status(this.clock.now());
  }

  /** The peers (as the core names them) with a Child SA in the executor, and where their ESP in UDP goes. */
  tunnelPeers(): { peer: string; address: string }[] {
    const out = new Map<string, string>();
    for (const c of this.installed.values()) out.set(coreName(c.peer), c.remoteAddr);
    return [...out].map(([peer, address]) => ({ peer, address }));
  }

  async stop(): Promise<void> {
    // Tell every peer (best effort): their Child SAs to us go at once instead of at their liveness check.
    const now = this.clock.now();
    for (const sa of this.engine.status(now))
      if (sa.peer !== undefined && sa.vpnId !== undefined)
        this.apply(this.engine.close(sa.peer, sa.vpnId, now, 'gateway stopping'));
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    await this.closeSockets();
  }

  /**
   * One engine step. The engine is synchronous, so a step runs to its end at once; a step asked
   * for while another's output is being applied (the core answering a Child SA going down with a
   * new ike-request) runs right after it, so steps never nest and keep the order they came in.
   */
  private run(step: (now: number) => IkeOutput): void {
    if (this.stopped) return;
    this.pending.push(step);
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.pending.shift(); next && !this.stopped; next = this.pending.shift()) {
        try {
          this.apply(next(this.clock.now()));
        } catch (e) {
          this.o.log.error({ err: (e as Error).message }, 'IKE engine failure');
        }
      }
    } finally {
      this.pending.length = 0;
      this.running = false;
    }
    this.rearm();
  }

  private apply(out: IkeOutput): void {
    for (const s of out.send) {
      const family = ipFamily(s.to.address);
      if (s.localPort === this.o.ports.ike) {
        const sock = this.ikeSockets.get(family);
        if (sock) sock.send(s.bytes, s.to.port, s.to.address);
        else this.count('dropped.no-socket');
        continue;
      }
      const nat = this.natSockets.get(family);
      const bytes = Buffer.concat([NON_ESP_MARKER, s.bytes]);
      if (nat) nat.send(bytes, s.to.port, s.to.address);
      else this.o.sendNat(s.to.address, s.to.port, bytes);
    }
    for (const c of out.install) {
      // The executor checks decrypted packets against the core's path rules, which name the peer as the core knows it.
      const common = {
        vpnId: c.vpnId,
        peer: coreName(c.peer),
        localAddr: c.local.address,
        localPort: c.local.port,
        remoteAddr: c.remote.address,
        remotePort: c.remote.port,
      };
      try {
        this.o.executor.installTunnelRx({
          ...common,
          spi: c.inbound.spi,
          key: c.inbound.key.key,
          salt: c.inbound.key.salt,
          localSelectors: ranges(c.localPrefixes),
          remoteSelectors: ranges(c.remotePrefixes),
        });
        this.o.executor.installTunnelTx({
          ...common,
          spi: c.outbound.spi,
          key: c.outbound.key.key,
          salt: c.outbound.key.salt,
        });
      } catch (e) {
        // An executor that cannot carry this SA (an address family its tunnel mode lacks): the
        // peer must not send into it, nor the core route into it.
        this.o.executor.removeTunnelRx(c.inbound.spi);
        this.count('install-failed');
        this.o.log.error(
          { err: (e as Error).message, peer: c.peer, vpnId: c.vpnId, remote: c.remote.address },
          'IKE Child SA not installed: the executor refused it',
        );
        this.pending.push((now) =>
          this.engine.close(c.peer, c.vpnId, now, `executor-refused: ${(e as Error).message}`),
        );
        continue;
      }
      this.installed.set(c.inbound.spi, {
        peer: c.peer,
        vpnId: c.vpnId,
        inboundSpi: c.inbound.spi,
        outboundSpi: c.outbound.spi,
        remoteAddr: c.remote.address,
      });
      this.o.childUp(coreName(c.peer), c.vpnId, c.outbound.spi);
    }
    for (const r of out.remove) {
      if (r.inboundSpi !== 0) {
        this.o.executor.removeTunnelRx(r.inboundSpi);
        this.o.executor.removeTunnelTx(r.outboundSpi);
        this.installed.delete(r.inboundSpi);
      }
      if (r.last) this.o.childDown(coreName(r.peer), r.vpnId, r.reason);
    }
    for (const e of out.events) {
      this.count(e.event);
      const fields = { event: e.event, peer: e.peer, vpnId: e.vpnId, reason: e.reason, ...e.detail };
      if (e.event === 'auth-failed' || e.event === 'failed') this.o.log.warn(fields, `IKE ${e.event}`);
      else if (e.event === 'dropped' || e.event === 'cookie-sent') this.o.log.debug(fields, `IKE ${e.event}`);
      else this.o.log.info(fields, `IKE ${e.event}`);
    }
  }

  /** Child SAs nobody used for idleTimeout go, with their IKE SA (the core searches again on the next packet). */
  private ageIdle(now: number): void {
    const lastUse = new Map<string, number>();
    for (const c of this.installed.values()) {
      const k = `${c.peer}\u0000${c.vpnId}`;
      const used = Math.max(
        this.o.executor.tunnelRxStats(c.inboundSpi)?.lastUsed ?? 0,
        this.o.executor.tunnelTxStats(c.outboundSpi)?.lastUsed ?? 0,
      );
      lastUse.set(k, Math.max(lastUse.get(k) ?? 0, used));
    }
    const views = this.engine.status(now);
    for (const [k, used] of lastUse) {
      const [peer, vpn] = k.split('\u0000');
      const vpnId = Number(vpn);
      const born = Math.min(
        ...views
          .filter((v) => v.peer === peer && v.vpnId === vpnId)
          .flatMap((v) => v.children.map((c) => now - c.ageMs)),
      );
      if (now - Math.max(used, Number.isFinite(born) ? born : now) >= this.o.idleTimeout)
        this.apply(this.engine.close(peer, vpnId, now, 'idle'));
    }
  }

  private tick = (): void => {
    this.timer = undefined;
    this.armedFor = undefined;
    this.run((now) => {
      this.ageIdle(now);
      return this.engine.tick(now);
    });
  };

  /** One timer: the engine's next deadline, and at least every few seconds for idle aging. */
  private rearm(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const next = Math.min(this.engine.nextDeadline(), now + Math.min(5_000, this.o.idleTimeout / 4));
    if (next === this.armedFor) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.armedFor = next;
    this.timer = this.clock.setTimeout(this.tick, Math.max(0, next - now));
  }

  private count(k: string): void {
    this.counters.set(k, (this.counters.get(k) ?? 0) + 1);
  }
}

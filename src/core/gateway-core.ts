// The sans-I/O gateway core (paper: MES, 多重帰属VPN実行サーバ). Events in: a packet from inside,
// a packet from outside, the clock advanced, a new authority snapshot. Actions out: emit these
// bytes (the edge routes them by destination), drop with this reason, trace. The executor carries
// out installed key-table entries; everything it punts is decided here.
import { ipFamily, type Ip } from '../base/addr.js';
import { DEFAULT_LIMITS, DEFAULT_TIMERS, type CoreContext, type ResolvedConfig } from './context.js';
import type { Executor, PathRule, PuntReason, RxSa, Side } from './executor.js';
import type { CoreAction, EmitNote, GatewayConfig, PathView, TraceEvent } from './gateway-api.js';
import { onInsideMiss, onInsidePending, onInsideTooBig } from './inside.js';
import { KeyRing } from './key-ring.js';
import { KeyTable, pathKey, PendingBuffers, type KeyTableEntry } from './key-table.js';
import { onOutsideMiss } from './outside.js';
import { ReceiveFloors } from './rx-floors.js';
import { PMTU_MIN, PMTU_SEQ_WINDOW, type EspFragNeeded } from './pmtu.js';
import { IPV6_MIN_MTU } from './packet/ipv6.js';
import { SearchOriginator } from './search/originator.js';
import { SearchRelay } from './search/relay.js';
import { parseSearchPacket } from './search/search-packet.js';
import { TimerQueue } from './timer-queue.js';
import { timerId, type CoreTimer } from './timers.js';
import { TsExecutor } from './ts-executor.js';
import type { AuthoritySnapshot, GatewayId, Spi, VpnId } from './types.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';

export interface GatewayCoreOptions {
  config: GatewayConfig;
  snapshot: AuthoritySnapshot;
  /** Initial clock, ms. */
  now: number;
  /** Randomness for transaction ids; CSPRNG by default, the simulator injects a seeded one. */
  random?: RandomSource;
  /** The TypeScript reference executor by default. */
  executor?: Executor;
  /**
   * First sequence number of a new sending SA (default 1). A gateway that restarts within an epoch
   * must resume above every number it already sent under that key (nonce uniqueness, and the
   * receivers' replay windows): the daemon passes its persisted reservation here.
   */
  txSeqStart?: (vpnId: VpnId, epoch: number, spi: Spi) => bigint;
  /**
   * The mirror for receiving: true when an earlier run of this gateway may have accepted packets
   * on this receiving SA (its replay window is lost). Such an SA is installed only once a floor is
   * learned from its sender (src/core/rx-floors.ts). Asked once per SA, before it would be
   * installed. Default: never (a first run, the simulator).
   */
  rxNeedsFloor?: (sa: RxSa) => boolean;
}

export class GatewayCore implements CoreContext {
  readonly id: string;
  readonly config: ResolvedConfig;
  ring: KeyRing;
  readonly table: KeyTable;
  readonly pending: PendingBuffers;
  readonly executor: Executor;
  readonly timers = new TimerQueue<CoreTimer>(timerId);
  out: CoreAction[] = [];
  private readonly counters = new Map<string, number>();
  private readonly originator: SearchOriginator;
  private readonly relay: SearchRelay;
  private readonly randomSource: RandomSource;
  private installedTx = new Map<VpnId, Spi>();
  private readonly txSeqStart: (vpnId: VpnId, epoch: number, spi: Spi) => bigint;
  private readonly txEpochs = new Map<VpnId, number>();
  /** Receiving SAs in use: installed in the executor, or waiting in `floors`. */
  private installedRx = new Set<Spi>();
  private readonly rxNeedsFloor: (sa: RxSa) => boolean;
  readonly floors: ReceiveFloors;
  /** Pairwise VPNs: Child SAs that are up, "vpnId/peer" (childKey) → outbound SPI. */
  private readonly childSas = new Map<string, Spi>();
  /** Pairwise VPNs: paths waiting for IKE, "vpnId/peer" (childKey) → path keys; present while a request is out. */
  private readonly awaitingIke = new Map<string, Set<string>>();
  /** Path MTUs learned from ICMP about our ESP, by "peer/mtuReserve/family" (see pmtuKey). */
  private readonly learnedMtu = new Map<string, number>();
  /** Pairwise VPNs: the kernel's path MTU toward a peer's tunnel address (it gets the ICMP about ESP in UDP). */
  private readonly tunnelMtu = new Map<GatewayId, number>();

  constructor(opts: GatewayCoreOptions) {
    const c = opts.config;
    this.id = c.id;
    this.config = {
      id: c.id,
      address: c.address,
      address6: c.address6 ?? (ipFamily(c.address) === 6 ? c.address : undefined),
      attached: c.attached,
      allowPlain: c.allowPlain ?? [],
      pathMtu: c.pathMtu ?? 1500,
      rawEspVpns: c.rawEspVpns ?? [],
      timers: { ...DEFAULT_TIMERS, ...c.timers },
      limits: { ...DEFAULT_LIMITS, ...c.limits },
    };
    const l = this.config.limits;
    this.table = new KeyTable(l.maxPaths);
    this.pending = new PendingBuffers(l.pendingPerPath, l.pendingTotal, l.pendingBytes);
    this.executor = opts.executor ?? new TsExecutor();
    this.randomSource = opts.random ?? cryptoRandom;
    this.txSeqStart = opts.txSeqStart ?? (() => 1n);
    this.rxNeedsFloor = opts.rxNeedsFloor ?? (() => false);
    this.ring = new KeyRing(c.id, opts.snapshot);
    this.originator = new SearchOriginator(this);
    this.relay = new SearchRelay(this);
    this.floors = new ReceiveFloors((local, remote, now) => {
      if (this.originator.has(local, remote)) return true;
      if (this.originator.full()) return false;
      this.originator.start(local, remote, now, { learnOnly: true });
      return true;
    });
    this.syncSas(opts.now);
    this.timers.set(SWEEP, opts.now + this.config.timers.sweepInterval);
  }

  // ---- events -------------------------------------------------------------------------------

  /**
   * A packet from one side. `punted`: the datapath's own executor ran it already and punted it
   * (its punt is counted there); it runs again here because the table may have changed since, and
   * is not counted twice.
   */
  onPacket(from: Side, bytes: Uint8Array, now: number, punted = false): CoreAction[] {
    return this.run(() => {
      const reason = this.execute(from, bytes, now, punted);
      switch (reason) {
        case undefined:
          return;
        case 'search':
          return this.onSearch(from, bytes, now);
        case 'miss':
          if (from === 'inside') onInsideMiss(this, this.originator, bytes, now);
          else onOutsideMiss(this, bytes, now);
          return;
        case 'pending':
          if (from === 'inside') onInsidePending(this, bytes);
          else this.drop('pending-inbound', bytes);
          return;
        case 'too-big':
          return onInsideTooBig(this, bytes);
        case 'unknown-spi':
          if (from === 'outside' && this.floors.onUnknownSpi(this, bytes, now)) return;
          return this.drop('unknown-spi', bytes);
      }
    });
  }

  onTick(now: number): CoreAction[] {
    return this.run(() => {
      for (const timer of this.timers.popDue(now)) {
        switch (timer.kind) {
          case 'sweep':
            this.sweep(now);
            this.timers.set(SWEEP, now + this.config.timers.sweepInterval);
            break;
          case 'epoch':
            this.syncSas(now);
            break;
          case 'pmtu':
            // RFC 1191 §6.3: a learned estimate ages out, so a path that grew again is used again.
            this.learnedMtu.delete(timer.path);
            this.count('pmtu.expired');
            this.refreshMtu((e) => pmtuKey(e) === timer.path);
            break;
          case 'ike':
            this.failWaiting(timer.peer, timer.vpnId, 'ike-timeout', now);
            break;
          case 'origin':
            this.originator.onTimer(timer, now);
            break;
          case 'relay':
          case 'proxy':
            this.relay.onTimer(timer, now);
            break;
        }
      }
    });
  }

  /**
   * The path MTU toward other gateways changed (the daemon watches its outside interfaces): every
   * encrypting path takes it at once, as the limit for its packets and the MSS it clamps.
   */
  setPathMtu(mtu: number): CoreAction[] {
    return this.run(() => {
      if (mtu === this.config.pathMtu) return;
      this.trace({ event: 'path-mtu', kind: 'config', detail: { from: this.config.pathMtu, to: mtu } });
      this.config.pathMtu = mtu;
      this.refreshMtu(() => true);
    });
  }

  /**
   * Pairwise VPNs: the path MTU toward `peer`'s tunnel address as this host's kernel knows it. ESP in
   * UDP leaves from the gateway's own address, so routers' ICMP about it reaches the kernel, which
   * lowers its route's MTU; the daemon reads that back (undefined: forget it) and the paths on
   * Child SAs with that peer take it, so their terminals get "fragmentation needed" in time.
   */
  setTunnelPathMtu(peer: GatewayId, mtu: number | undefined): CoreAction[] {
    return this.run(() => {
      if (this.tunnelMtu.get(peer) === mtu) return;
      if (mtu === undefined) this.tunnelMtu.delete(peer);
      else this.tunnelMtu.set(peer, mtu);
      this.refreshMtu((e) => e.childSpi !== undefined && e.peer === peer);
    });
  }

  nextDeadline(): number | undefined {
    return this.timers.peek();
  }

  applySnapshot(snapshot: AuthoritySnapshot, now: number): CoreAction[] {
    return this.run(() => {
      this.ring = new KeyRing(this.id, snapshot);
      this.syncSas(now);
      // Entries that the new configuration no longer supports go at once (a removed member must
      // stop carrying traffic now, not at the next aging).
      for (const e of [...this.table.values()]) {
        if (this.stillValid(e)) continue;
        this.remove(e.local, e.remote);
        this.trace({
          event: 'path-revoked',
          kind: 'data',
          detail: { local: e.local, remote: e.remote, vpnId: e.vpnId, peer: e.peer },
        });
      }
      this.trace({
        event: 'snapshot',
        kind: 'config',
        detail: { version: snapshot.version, vpns: this.ring.vpnIds() },
      });
    });
  }

  /**
   * Pairwise VPNs: IKE made (or rekeyed) the Child SA with `peer` for `vpnId`; `outboundSpi` is
   * the SA the executor sends with (the edge installed it there). Paths waiting for it carry
   * traffic now, their buffered packets first; paths already on it move to the new SA.
   */
  onChildSaUp(peer: GatewayId, vpnId: VpnId, outboundSpi: Spi, now: number): CoreAction[] {
    return this.run(() => {
      const k = childKey(peer, vpnId);
      this.childSas.set(k, outboundSpi);
      this.timers.cancel({ kind: 'ike', peer, vpnId });
      const waiting = this.awaitingIke.get(k) ?? new Set<string>();
      this.awaitingIke.delete(k);
      this.count('ike.child-up');
      this.trace({
        event: 'child-sa-up',
        kind: 'ike',
        detail: { peer, vpnId, spi: outboundSpi, waiting: waiting.size },
      });
      for (const e of [...this.table.values()]) {
        const onIt = e.action === 'encrypt' && e.peer === peer && e.vpnId === vpnId;
        if (!onIt && !waiting.has(pathKey(e.local, e.remote))) continue;
        if (!onIt && !(e.action === 'pending' && e.reason === 'ike')) continue;
        this.install({ ...e, action: 'encrypt', reason: 'search', childSpi: outboundSpi }, now);
      }
    });
  }

  /**
   * Pairwise VPNs: IKE could not make the Child SA (refused, timed out) or deleted it. Waiting
   * paths fail for the negative TTL (their packets are dropped and counted); paths that used it
   * go, so their next packet searches again.
   */
  onChildSaDown(peer: GatewayId, vpnId: VpnId, reason: string, now: number): CoreAction[] {
    return this.run(() => {
      const k = childKey(peer, vpnId);
      this.childSas.delete(k);
      this.count(`ike.child-down.${reason}`);
      this.trace({ event: 'child-sa-down', kind: 'ike', detail: { peer, vpnId, reason } });
      for (const e of [...this.table.values()])
        if (e.action === 'encrypt' && e.peer === peer && e.vpnId === vpnId) this.remove(e.local, e.remote);
      this.failWaiting(peer, vpnId, reason, now);
    });
  }

  paths(): PathView[] {
    const out: PathView[] = [];
    for (const e of this.table.values()) {
      const s = this.executor.pathStats(e.local, e.remote);
      out.push({
        local: e.local,
        remote: e.remote,
        action: e.action,
        vpnId: e.vpnId,
        vpnName: e.vpnId !== undefined ? this.ring.vpn(e.vpnId)?.name : undefined,
        peer: e.peer,
        layers: e.layers,
        reason: e.reason,
        mtu: e.action === 'encrypt' ? e.mtu : undefined,
        installedAt: e.installedAt,
        lastUsed: Math.max(e.lastUsed, s?.lastUsed ?? 0),
        expiresAt: e.expiresAt,
        packets: s?.packets ?? 0,
        bytes: s?.bytes ?? 0,
      });
    }
    return out;
  }

  /** The sending SAs in use: VPN, epoch, SPI and the next sequence number. */
  sendingSas(): { vpnId: VpnId; epoch: number; spi: Spi; nextSeq: bigint }[] {
    return [...this.installedTx].map(([vpnId, spi]) => ({
      vpnId,
      spi,
      epoch: this.txEpochs.get(vpnId)!,
      nextSeq: this.executor.txNextSeq(vpnId) ?? 0n,
    }));
  }

  sendingSeq(vpnId: VpnId, epoch: number, now: number): bigint {
    const current = () => this.installedTx.has(vpnId) && this.txEpochs.get(vpnId) === epoch;
    // The epoch may have turned before its timer fired: install its sending SA first.
    if (!current() && this.ring.txSa(vpnId, now)?.epoch === epoch) this.syncSas(now);
    return current() ? (this.executor.txNextSeq(vpnId) ?? 0n) : 0n;
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.executor.counters())) out[`executor.${k}`] = v;
    for (const [k, v] of this.counters) out[k] = v;
    out['table.paths'] = this.table.size;
    out['pending.packets'] = this.pending.totalPacketCount;
    out['search.originating'] = this.originator.size;
    out['search.relaying'] = this.relay.size;
    out['rx-floor.waiting'] = this.floors.size;
    out['pmtu.path'] = this.config.pathMtu;
    out['pmtu.learned-peers'] = this.learnedMtu.size;
    return out;
  }

  // ---- CoreContext ----------------------------------------------------------------------------

  random(n: number): Uint8Array {
    return this.randomSource(n);
  }

  count(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  emit(bytes: Uint8Array, note: EmitNote, origin?: Uint8Array): void {
    this.out.push(origin === undefined ? { type: 'emit', bytes, note } : { type: 'emit', bytes, note, origin });
  }

  drop(reason: string, bytes: Uint8Array): void {
    this.count(`drop.${reason}`);
    this.out.push({ type: 'drop', reason, bytes });
  }

  trace(event: TraceEvent): void {
    this.out.push({ type: 'trace', event });
  }

  install(entry: KeyTableEntry, now: number): void {
    if (
      entry.action === 'encrypt' &&
      entry.childSpi === undefined &&
      entry.peer !== undefined &&
      entry.vpnId !== undefined &&
      this.ring.vpn(entry.vpnId)?.mode === 'pairwise'
    ) {
      const spi = this.childSas.get(childKey(entry.peer, entry.vpnId));
      // No Child SA with that peer yet: hold the path and its packets until IKE has made one.
      if (spi === undefined) return this.awaitIke(entry, now);
      entry = { ...entry, childSpi: spi };
    }
    if (entry.action === 'encrypt') entry = { ...entry, mtu: this.pathLimit(entry) };
    const evicted = this.table.set(entry);
    if (evicted) {
      this.executor.removePath(evicted.local, evicted.remote);
      this.dropBuffered(evicted.local, evicted.remote, 'evicted');
      this.originator.cancel(evicted.local, evicted.remote);
      this.count('table.evicted');
    }
    this.executor.installPath(ruleOf(entry));
    if (entry.action === 'pending') return;
    // A settled path: stop our own search if one runs (simultaneous searches converge), then flush.
    if (this.originator.cancel(entry.local, entry.remote)) {
      this.count('search.converged');
      this.trace({
        event: 'search-converged',
        kind: 'data',
        detail: { local: entry.local, remote: entry.remote, txid: entry.txid },
      });
    }
    const buffered = this.pending.take(pathKey(entry.local, entry.remote));
    if (buffered.length === 0) return;
    this.trace({
      event: 'flush',
      kind: 'data',
      step: 11,
      detail: { local: entry.local, remote: entry.remote, packets: buffered.length, action: entry.action },
    });
    for (const p of buffered) {
      // Buffered packets were punted once already (miss or pending): their punt is counted.
      const punt = this.execute('inside', p, now, true);
      if (punt === 'too-big') onInsideTooBig(this, p);
      else if (punt !== undefined) this.drop(`flush-${punt}`, p);
    }
  }

  /** A pairwise path waits for its Child SA; the first one for a (peer, VPN) asks the edge for IKE. */
  private awaitIke(entry: KeyTableEntry, now: number): void {
    const k = childKey(entry.peer!, entry.vpnId!);
    this.install({ ...entry, action: 'pending', reason: 'ike', expiresAt: Number.MAX_SAFE_INTEGER }, now);
    let waiting = this.awaitingIke.get(k);
    if (!waiting) {
      const address = this.ring.peerMember(entry.vpnId!, entry.peer!)?.address;
      if (address === undefined) {
        // Not (or no longer) delivered: the path just held fails like any waiting one, or it would
        // stay pending with its packets until it aged out.
        this.awaitingIke.set(k, new Set([pathKey(entry.local, entry.remote)]));
        return this.failWaiting(entry.peer!, entry.vpnId!, 'peer-unknown', now);
      }
      this.awaitingIke.set(k, (waiting = new Set()));
      this.timers.set({ kind: 'ike', peer: entry.peer!, vpnId: entry.vpnId! }, now + this.config.timers.ikeTimeout);
      this.count('ike.requested');
      this.out.push({ type: 'ike-request', peer: entry.peer!, vpnId: entry.vpnId!, address });
      this.trace({
        event: 'ike-request',
        kind: 'ike',
        detail: { peer: entry.peer, vpnId: entry.vpnId, address, local: entry.local, remote: entry.remote },
      });
    }
    waiting.add(pathKey(entry.local, entry.remote));
  }

  /** Paths that waited for a Child SA that will not come: negative entries, buffered packets dropped. */
  private failWaiting(peer: GatewayId, vpnId: VpnId, reason: string, now: number): void {
    const k = childKey(peer, vpnId);
    this.timers.cancel({ kind: 'ike', peer, vpnId });
    const waiting = this.awaitingIke.get(k);
    this.awaitingIke.delete(k);
    for (const pk of waiting ?? []) {
      const [local, remote] = pk.split('>') as [Ip, Ip];
      const e = this.table.get(local, remote);
      if (!e || e.action !== 'pending' || e.reason !== 'ike') continue;
      this.dropBuffered(local, remote, reason);
      this.install({ ...e, action: 'discard', reason, expiresAt: now + this.config.timers.negativeTtl }, now);
    }
  }

  execute(from: Side, packet: Uint8Array, now: number, recheck: boolean): PuntReason | undefined {
    const v = this.executor.process(from, packet, now, recheck);
    if (v.kind === 'forward') {
      this.emit(v.bytes, v.note, packet);
      for (const more of v.more ?? []) this.emit(more, v.note, packet);
    } else if (v.kind === 'drop') this.drop(v.reason, packet);
    else return v.reason;
    return undefined;
  }

  onEspFragNeeded(f: EspFragNeeded, packet: Uint8Array, now: number): void {
    // Only about ESP we sent, recently: our current sending SA for the path's VPN, and a sequence
    // number among the last we used. Anything else could shrink a path for nothing.
    const e = this.table.get(f.local, f.remote);
    const tx =
      e?.action === 'encrypt' && e.childSpi === undefined && e.vpnId !== undefined
        ? this.ring.txSa(e.vpnId, now)
        : undefined;
    const next = tx ? this.executor.txNextSeq(e!.vpnId!) : undefined;
    const age = next !== undefined ? (Number(next & 0xffffffffn) - f.seqLow) >>> 0 : 0;
    if (!e || !tx || tx.spi !== f.spi || age === 0 || age > PMTU_SEQ_WINDOW)
      return this.drop('pmtu-unverified', packet);
    this.count('pmtu.icmp');
    const mtu = Math.max(ipFamily(f.local) === 6 ? IPV6_MIN_MTU : PMTU_MIN, f.mtu);
    if (mtu >= (e.mtu ?? this.config.pathMtu)) return;
    const key = pmtuKey(e);
    this.learnedMtu.set(key, mtu);
    this.timers.set({ kind: 'pmtu', path: key }, now + this.config.timers.pathMtuTimeout);
    this.count('pmtu.learned');
    this.trace({
      event: 'pmtu-learned',
      kind: 'data',
      detail: { peer: e.peer, mtu, about: { local: f.local, remote: f.remote } },
    });
    this.refreshMtu((x) => pmtuKey(x) === key);
  }

  remove(local: Ip, remote: Ip): void {
    const e = this.table.delete(local, remote);
    this.executor.removePath(local, remote);
    if (e?.action === 'pending') {
      this.dropBuffered(local, remote, 'path-removed');
      this.originator.cancel(local, remote);
    }
  }

  isAttached(terminal: Ip): boolean {
    return this.config.attached.some((p) => p.contains(terminal));
  }

  plainAllowed(remote: Ip): boolean {
    return this.config.allowPlain.some((p) => p.contains(remote));
  }

  // ---- internals --------------------------------------------------------------------------------

  private run(fn: () => void): CoreAction[] {
    this.out = [];
    fn();
    const out = this.out;
    this.out = [];
    return out;
  }

  private onSearch(from: Side, bytes: Uint8Array, now: number): void {
    const p = parseSearchPacket(bytes);
    if (!p.ok) return this.drop(`search-malformed`, bytes);
    if (p.value.icmpType === 0 && this.originator.owns(p.value.msg))
      return this.originator.onReply(p.value, from, bytes, now);
    if (p.value.icmpType === 8) return this.relay.onRequest(p.value, from, bytes, now);
    this.relay.onReply(p.value, bytes, now);
  }

  /**
   * The largest packet a path may send after our encryption: the path MTU less what outer layers add, or less if
   * learned.
   */
  private pathLimit(e: KeyTableEntry): number {
    const base = this.config.pathMtu - (e.mtuReserve ?? 0);
    const learned =
      e.childSpi !== undefined && !e.mtuReserve ? this.tunnelMtu.get(e.peer!) : this.learnedMtu.get(pmtuKey(e));
    return learned === undefined ? base : Math.min(base, learned);
  }

  /** Gives the encrypting paths chosen their current limit (executor included). */
  private refreshMtu(which: (e: KeyTableEntry) => boolean): void {
    for (const e of this.table.values()) {
      if (e.action !== 'encrypt' || !which(e)) continue;
      const mtu = this.pathLimit(e);
      if (mtu === e.mtu) continue;
      e.mtu = mtu;
      this.table.replace(e); // e is a copy
      this.executor.installPath(ruleOf(e));
    }
  }

  private dropBuffered(local: Ip, remote: Ip, reason: string): void {
    for (const p of this.pending.take(pathKey(local, remote))) this.drop(`buffer-${reason}`, p);
  }

  /** Aging (seed 000 §3.3: an entry not used for a while ages out; the next packet searches again). */
  private sweep(now: number): void {
    const t = this.config.timers;
    for (const e of [...this.table.values()]) {
      if (e.action === 'pending') continue;
      const s = this.executor.pathStats(e.local, e.remote);
      const lastUsed = Math.max(e.lastUsed, s?.lastUsed ?? 0);
      const why = now >= e.expiresAt ? 'lifetime' : now - lastUsed >= t.idleTimeout ? 'idle' : undefined;
      if (!why) continue;
      this.remove(e.local, e.remote);
      this.count(`table.aged.${why}`);
      this.trace({
        event: 'age-out',
        kind: 'data',
        detail: { local: e.local, remote: e.remote, action: e.action, why },
      });
    }
  }

  private stillValid(e: KeyTableEntry): boolean {
    const covering = this.ring.coveringVpns(e.local);
    if (e.action === 'encrypt') {
      return e.vpnId !== undefined && covering.includes(e.vpnId) && !!e.peer && !!this.ring.peerMember(e.vpnId, e.peer);
    }
    if (e.action === 'plain' && e.reason === 'unprotected') return covering.length === 0;
    return e.action === 'pending';
  }

  /** Installs the sending SA of each VPN for the current epoch and the receiving SAs still valid. */
  private syncSas(now: number): void {
    const wantTx = new Map<VpnId, Spi>();
    for (const vpnId of this.ring.vpnIds()) {
      const tx = this.ring.txSa(vpnId, now);
      if (!tx) continue;
      wantTx.set(vpnId, tx.spi);
      if (this.installedTx.get(vpnId) !== tx.spi) {
        // A new epoch has a new key: its sequence numbers start again (at 1, or above a persisted mark).
        const encapsulation = this.config.rawEspVpns.includes(vpnId) ? 'esp' : 'udp';
        this.executor.installTxSa({ ...tx, nextSeq: this.txSeqStart(vpnId, tx.epoch, tx.spi), encapsulation });
        this.txEpochs.set(vpnId, tx.epoch);
        this.trace({ event: 'epoch-send', kind: 'config', detail: { vpnId, epoch: tx.epoch, spi: tx.spi } });
      }
    }
    for (const vpnId of this.installedTx.keys()) if (!wantTx.has(vpnId)) this.executor.removeTxSa(vpnId);
    this.installedTx = wantTx;

    const wantRx = new Set<Spi>();
    for (const rx of this.ring.rxSas()) {
      if (rx.expiresAt <= now) continue;
      wantRx.add(rx.spi);
      if (this.installedRx.has(rx.spi)) continue;
      // An SA an earlier run of this gateway received on: not before its floor is known.
      if (this.rxNeedsFloor(rx)) this.floors.hold(rx.spi);
      else this.executor.installRxSa(rx);
    }
    for (const spi of this.installedRx) {
      if (wantRx.has(spi)) continue;
      this.executor.removeRxSa(spi);
      this.floors.release(spi);
    }
    this.installedRx = wantRx;

    const next = this.ring.epochEvents(now);
    if (next.length > 0) this.timers.set(EPOCH, Math.min(...next));
    else this.timers.cancel(EPOCH);
  }
}

const childKey = (peer: GatewayId, vpnId: VpnId) => `${vpnId}/${peer}`;
const SWEEP: CoreTimer = { kind: 'sweep' };
const EPOCH: CoreTimer = { kind: 'epoch' };
/** The executor's rule for a key-table entry. */
function ruleOf(e: KeyTableEntry): PathRule {
  return {
    local: e.local,
    remote: e.remote,
    action: e.action,
    vpnId: e.vpnId,
    peer: e.peer,
    mtu: e.mtu,
    ...(e.childSpi !== undefined ? { tunnel: { spi: e.childSpi } } : {}),
  };
}

/**
 * Paths toward one peer with the same outer layering on our side and address family share the WAN
 * path: one estimate.
 */
const pmtuKey = (e: KeyTableEntry) => `${e.peer}/${e.mtuReserve ?? 0}/${ipFamily(e.local)}`;

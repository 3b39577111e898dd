// The IKEv2 engine of one gateway, sans-I/O and synchronous: datagrams and the clock in; datagrams
// to send, Child SAs to install or remove, and events out (an IkeOutput per call, as the gateway
// core returns its output). The gateway calls receive() for every IKE datagram, tick() when
// nextDeadline() comes, initiate() on the core's ike-request and refresh() when its authority's
// delivery changes.
//
// Three layers, as strongSwan has them: this file is the SA table (charon's ike_sa_manager) and
// the dispatch of each message to its exchange's task (tasks/*.ts); exchange.ts is the exchange
// layer (message IDs, window, retransmission, cached responses: task_manager_v2); lifecycle.ts is
// the SA lifecycle (rekey, reauthentication, liveness, expiry, deletion: ike_sa.c). Admission of
// new responder SAs (cookies, half-open limits) is here, with its counting in half-open.ts.
import {
  decodeMessage,
  encodeMessage,
  ExchangeType,
  NotifyType,
  notify,
  findNotify,
  type DecodedMessage,
  type IkeHeader,
  type Payload,
} from '../message/index.js';
import { CookieSecrets, newCookieSecret } from '../crypto/cookie.js';
import { ipFamily, ipToBytes } from '../../base/addr.js';
import { IkeSa } from './ike-sa.js';
import { ReassemblyPool } from './fragments.js';
import { HalfOpenTable } from './half-open.js';
import { Exchanges } from './exchange.js';
import { current, permitNotAfter, SaLifecycle } from './lifecycle.js';
import { answerChildRekey } from './tasks/child-rekey.js';
import { answerAuthRequest, buildAuthRequest, processAuthResponse } from './tasks/ike-auth.js';
import { answerInitRequest, buildInitRequest, processInitResponse } from './tasks/ike-init.js';
import { answerIkeRekey, isIkeRekey } from './tasks/ike-rekey.js';
import { answerInformational } from './tasks/informational.js';
import type { TaskContext } from './tasks/task.js';
import {
  DEFAULT_IKE_TIMERS,
  emptyOutput,
  endpointText,
  type Endpoint,
  type IkeOutput,
  type IkePeer,
  type IkeTimers,
  type LocalIdentity,
} from './types.js';
import type { RandomSource } from '../../base/random.js';

export interface IkeEngineOptions {
  local: LocalIdentity;
  /** Our address and IKE port (500) as peers see them. */
  endpoint: Endpoint;
  /**
   * A dual-stack gateway's other outside address (IPv6 beside IPv4, or the reverse). Each IKE SA
   * runs over the family of the peer's address and uses our address of that family (NAT
   * detection, ESP endpoints); a peer of a family we have no address of cannot be reached.
   */
  addresses?: string[];
  /** The port IKE floats to after IKE_SA_INIT and ESP-in-UDP uses (RFC 3948): 4500. */
  natPort?: number;
  /** The pairwise-VPN peers our authority delivered now (read on every exchange: deliveries change). */
  peers: () => IkePeer[];
  random: RandomSource;
  timers?: Partial<IkeTimers>;
}

export interface IkeSaView {
  peer?: string;
  vpnId?: number;
  role: string;
  state: string;
  spiI: string;
  spiR: string;
  remote: string;
  /** NAT detection (RFC 7296 §2.23): whether we, or the peer, are behind an address translator. */
  nat?: { local: boolean; remote: boolean };
  ageMs: number;
  children: { inboundSpi: number; outboundSpi: number; state: string; ageMs: number; rekeyInMs: number }[];
}

export class IkeEngine {
  private readonly sas = new Map<string, IkeSa>();
  /** Initiations held back for the peer's own (see initiate). */
  private readonly deferred = new Map<string, number>();
  private readonly timers: IkeTimers;
  private readonly natPort: number;
  private readonly cookies: CookieSecrets;
  private cookieVersion = 0;
  private cookieRotatedAt = -Infinity;
  /** Responder SAs between IKE_SA_INIT and IKE_AUTH, counted per source (half-open.ts). */
  private readonly halfOpen = new HalfOpenTable<IkeSa>(() => this.timers);
  /** Bytes of incomplete fragmented messages, bounded per SA and for all SAs together. */
  private readonly fragmentPool: ReassemblyPool;
  private readonly exchanges: Exchanges;
  private readonly lifecycle: SaLifecycle;

  constructor(private readonly o: IkeEngineOptions) {
    this.timers = { ...DEFAULT_IKE_TIMERS, ...o.timers };
    this.fragmentPool = new ReassemblyPool(this.timers.maxFragmentBytesPerSa, this.timers.maxFragmentBytesTotal);
    this.natPort = o.natPort ?? 4500;
    this.cookies = new CookieSecrets(newCookieSecret(this.cookieVersion, o.random));
    this.exchanges = new Exchanges(this.timers);
    this.lifecycle = new SaLifecycle({
      timers: this.timers,
      random: o.random,
      localAddress: (remote) => this.localFor(remote)?.address ?? o.endpoint.address,
      natPort: this.natPort,
      peers: o.peers,
      exchanges: this.exchanges,
      table: {
        forPeer: (peerId, vpnId) => this.forPeer(peerId, vpnId),
        add: (sa) => this.sas.set(sa.key, sa),
        forget: (sa) => this.forget(sa),
        start: (peer, now, out) => this.start(peer, now, out),
      },
    });
  }

  /** IKE SAs and their Child SAs, for status views and tests. */
  status(now: number): IkeSaView[] {
    return [...this.sas.values()].map((s) => ({
      peer: s.peer?.id,
      vpnId: s.peer?.vpnId,
      role: s.role,
      state: s.state,
      spiI: s.spiI.toString('hex'),
      spiR: s.spiR.toString('hex'),
      remote: endpointText(s.remote),
      nat: s.nat,
      ageMs: now - s.createdAt,
      children: s.children.map((c) => ({
        inboundSpi: c.inboundSpi,
        outboundSpi: c.outboundSpi,
        state: c.state,
        ageMs: now - c.createdAt,
        rekeyInMs: c.rekeyAt - now,
      })),
    }));
  }

  /** Starts an IKE SA with a Child SA toward a peer of a pairwise VPN (the core's ike-request). */
  initiate(peerId: string, vpnId: number, now: number): IkeOutput {
    const out = emptyOutput();
    const live = this.forPeer(peerId, vpnId);
    const up = live.find((s) => s.state === 'established' && s.children.some((c) => c.state !== 'rekeyed'));
    if (up) {
      // The core asks again (e.g. after a restart of its table): the SA we have answers it.
      out.install.push(this.lifecycle.install(up, current(up)!));
      return out;
    }
    if (live.length > 0) return out; // one is on its way
    const peerAt = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId)?.endpoint.address;
    // The peer is already starting one with us (its IKE_SA_INIT came first): that one will answer.
    if (
      peerAt &&
      [...this.sas.values()].some(
        (s) => s.role === 'responder' && !s.peer && s.state === 'init-done' && s.remote.address === peerAt,
      )
    )
      return out;
    const peer = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId);
    if (!peer) {
      out.events.push({
        event: 'failed',
        peer: peerId,
        vpnId,
        reason: 'peer-unknown: our authority delivered no such pairwise peer',
      });
      out.remove.push({ peer: peerId, vpnId, inboundSpi: 0, outboundSpi: 0, last: true, reason: 'peer-unknown' });
      return out;
    }
    const local = this.localFor(peer.endpoint.address);
    if (!local) {
      const reason = `no-local-address: the peer is at ${peer.endpoint.address} and this gateway has no outside address of that family`;
      out.events.push({ event: 'failed', peer: peerId, vpnId, reason });
      out.remove.push({ peer: peerId, vpnId, inboundSpi: 0, outboundSpi: 0, last: true, reason: 'no-local-address' });
      return out;
    }
    // Both gateways of a path usually ask at once (the key search ends at both). The one with the
    // higher address waits a moment for the other's IKE_SA_INIT, which makes duplicate SAs (and
    // buffered packets sent on an SA about to go) rare; the lifecycle settles the rest.
    if (
      this.timers.collisionDelay > 0 &&
      compareAddress(local.address, peer.endpoint.address) > 0 &&
      !this.deferred.has(`${peerId}\u0000${vpnId}`)
    ) {
      this.deferred.set(`${peerId}\u0000${vpnId}`, now + this.timers.collisionDelay);
      return out;
    }
    this.start(peer, now, out);
    return out;
  }

  /** Deletes the IKE SAs (and Child SAs) with a peer for a VPN: idle, membership ended, operator. */
  close(peerId: string, vpnId: number, now: number, reason: string): IkeOutput {
    const out = emptyOutput();
    for (const sa of this.forPeer(peerId, vpnId)) this.lifecycle.deleteSa(sa, reason, out);
    return out;
  }

  /** After a delivery: SAs whose peer, certificate or permit our authority no longer delivers are deleted. */
  refresh(_now: number): IkeOutput {
    const out = emptyOutput();
    const peers = this.o.peers();
    for (const sa of [...this.sas.values()]) {
      if (!sa.peer) continue;
      const p = peers.find((x) => x.id === sa.peer!.id && x.vpnId === sa.peer!.vpnId);
      if (!p) this.lifecycle.deleteSa(sa, 'peer-withdrawn', out);
      else if (!Buffer.from(p.certificate).equals(Buffer.from(sa.peer.certificate)))
        this.lifecycle.deleteSa(sa, 'peer-certificate-changed', out);
      else if (
        sa.reauthStarted &&
        permitNotAfter(p.permit) > permitNotAfter(sa.peer.permit) &&
        this.forPeer(p.id, p.vpnId).length === 1
      )
        sa.reauthStarted = false; // renewed: try again
    }
    return out;
  }

  /** What untrusted peers make this engine hold now: for status views, metrics and tests. */
  load(): { halfOpen: number; fragmentBytes: number; refusedKept: number } {
    return {
      halfOpen: this.halfOpen.size,
      fragmentBytes: this.fragmentPool.used,
      refusedKept: this.exchanges.refusedKept,
    };
  }

  /** When tick() next has work. */
  nextDeadline(): number {
    let t = Math.min(this.cookieRotatedAt + this.timers.cookieRotate, this.exchanges.refusalDeadline());
    for (const at of this.deferred.values()) t = Math.min(t, at);
    for (const sa of this.sas.values()) t = Math.min(t, this.exchanges.deadline(sa), this.lifecycle.deadline(sa));
    return t;
  }

  /** Timers: retransmissions, half-open expiry, rekeys, liveness checks, lifetimes, cookie secrets. */
  tick(now: number): IkeOutput {
    const out = emptyOutput();
    this.exchanges.expireRefusals(now);
    if (now >= this.cookieRotatedAt + this.timers.cookieRotate) {
      if (this.cookieRotatedAt !== -Infinity)
        this.cookies.rotate(newCookieSecret(++this.cookieVersion & 0xffffffff, this.o.random));
      this.cookieRotatedAt = now;
    }
    for (const [k, at] of [...this.deferred]) {
      if (now < at) continue;
      this.deferred.delete(k);
      const [peerId, vpn] = k.split('\u0000');
      const vpnId = Number(vpn);
      const peer = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId);
      const busy =
        this.forPeer(peerId, vpnId).length > 0 ||
        (peer &&
          [...this.sas.values()].some(
            (s) => s.role === 'responder' && s.state !== 'dead' && s.remote.address === peer.endpoint.address,
          ));
      if (peer && !busy) this.start(peer, now, out);
    }
    for (const sa of [...this.sas.values()]) {
      try {
        const unresponsive = this.exchanges.retransmit(sa, now, out);
        if (unresponsive)
          this.lifecycle.dead(sa, sa.state === 'established' ? 'ike-down' : 'failed', unresponsive, out);
        else this.lifecycle.tick(sa, now, out);
      } catch (e) {
        this.lifecycle.dead(sa, 'failed', `internal error: ${(e as Error).message}`, out);
      }
    }
    return out;
  }

  /** A datagram for IKE (port 500, or 4500 after the edge took the non-ESP marker off). Never throws. */
  receive(from: Endpoint, bytes: Uint8Array, now: number, localPort = this.o.endpoint.port): IkeOutput {
    const out = emptyOutput();
    const d = decodeMessage(bytes);
    if (!d.ok) {
      const h = d.error.header;
      if (
        h &&
        !h.response &&
        h.exchangeType === ExchangeType.IKE_SA_INIT &&
        h.messageId === 0 &&
        d.error.code === 'ike-unsupported-critical'
      ) {
        // §2.5: say which payload we do not understand; stateless, and never larger than the request.
        const reply = encodeInit(
          { ...h, spiR: Buffer.alloc(8), initiator: false, response: true, higherVersion: false },
          [notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.of(d.error.payloadType))],
        );
        if (reply.length <= bytes.length) out.send.push({ to: from, bytes: reply, localPort });
      }
      out.events.push({ event: 'dropped', reason: `malformed: ${d.error.message}` });
      return out;
    }
    try {
      const h = d.value.message.header;
      if (h.exchangeType === ExchangeType.IKE_SA_INIT && !h.response)
        return (this.onInitRequest(from, d.value, Buffer.from(bytes), now, localPort, out), out);
      const sa = this.sas.get(IkeSa.keyOf(h.spiI, from));
      if (!sa && !h.response && this.exchanges.answerRefused(from, h, d.value, out)) return out;
      // The I flag says who sent it: a message from the SA's initiator has it set.
      if (
        !sa ||
        sa.state === 'dead' ||
        h.initiator === (sa.role === 'initiator') ||
        (!h.spiR.equals(sa.spiR) && !(h.response && h.exchangeType === ExchangeType.IKE_SA_INIT))
      ) {
        out.events.push({ event: 'dropped', reason: 'no IKE SA for these SPIs' });
      } else if (h.response) this.onResponse(sa, from, d.value, Buffer.from(bytes), now, out);
      else this.onRequest(sa, from, d.value, now, localPort, out);
    } catch (e) {
      // A bug must not take the gateway down: the event says why; the SA stays as it was.
      out.events.push({ event: 'failed', reason: `internal error: ${(e as Error).message}` });
    }
    return out;
  }

  /** What the tasks get for a step at `now` on `sa`: our endpoint is the one of the peer's address family. */
  private context(now: number, sa: IkeSa): TaskContext {
    const endpoint = this.localFor(sa.remote.address) ?? this.o.endpoint;
    return { local: this.o.local, endpoint, peers: this.o.peers, random: this.o.random, timers: this.timers, now };
  }

  /** Our outside address (with the IKE port) of the same family as `remote`. */
  private localFor(remote: string): Endpoint | undefined {
    const family = ipFamily(remote);
    const address = [this.o.endpoint.address, ...(this.o.addresses ?? [])].find((a) => ipFamily(a) === family);
    return address === undefined ? undefined : { address, port: this.o.endpoint.port };
  }

  // --- the SA table ---------------------------------------------------------------------------

  /** A new IKE SA with `peer`, as initiator: IKE_SA_INIT goes out. */
  private start(peer: IkePeer, now: number, out: IkeOutput): IkeSa {
    const sa = new IkeSa(
      'initiator',
      Buffer.from(this.o.random(8)),
      { ...peer.endpoint },
      now,
      this.o.endpoint.port,
      this.fragmentPool,
    );
    sa.peer = peer;
    this.sas.set(sa.key, sa);
    this.exchanges.sendInit(sa, buildInitRequest(sa, this.context(now, sa)), now, out);
    return sa;
  }

  private forget(sa: IkeSa): void {
    this.halfOpen.remove(sa);
    sa.discardFragments();
    sa.state = 'dead';
    sa.inFlight = undefined;
    sa.queue.length = 0;
    if (this.sas.get(sa.key) === sa) this.sas.delete(sa.key);
  }

  private forPeer(peerId: string, vpnId: number): IkeSa[] {
    return [...this.sas.values()].filter((s) => s.state !== 'dead' && s.peer?.id === peerId && s.peer.vpnId === vpnId);
  }

  // --- responses to our requests --------------------------------------------------------------

  private onResponse(sa: IkeSa, from: Endpoint, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): void {
    const r = this.exchanges.acceptResponse(sa, from, d, now);
    switch (r.kind) {
      case 'dropped':
        out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: r.reason });
        return;
      case 'incomplete':
        return;
      case 'init':
        return this.onInitResponse(sa, d, bytes, now, out);
      case 'malformed':
        if (sa.state === 'established') return this.lifecycle.deleteSa(sa, r.reason, out);
        return this.lifecycle.dead(sa, 'failed', r.reason, out);
      case 'complete':
        r.task.process(r.inner, now, out);
        this.exchanges.sendNext(sa, now, out);
    }
  }

  private onInitResponse(sa: IkeSa, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): void {
    const r = processInitResponse(sa, bytes, d.message.header.spiR, d.message.payloads, this.context(now, sa).endpoint);
    if (r.kind === 'cookie') {
      sa.cookie = r.cookie;
      out.events.push({ event: 'cookie-sent', peer: sa.peer?.id, reason: 'the responder asked for a cookie' });
      return this.exchanges.sendInit(sa, buildInitRequest(sa, this.context(now, sa), sa.dh?.group.id), now, out);
    }
    if (r.kind === 'retry')
      return this.exchanges.sendInit(sa, buildInitRequest(sa, this.context(now, sa), r.group), now, out);
    if (r.kind === 'failed') return this.lifecycle.dead(sa, 'failed', `ike-init-refused: ${r.reason}`, out);
    this.exchanges.initDone(sa, now, this.natPort);
    const peer = sa.peer!;
    this.exchanges.queue(
      sa,
      {
        task: 'ike-auth',
        exchange: ExchangeType.IKE_AUTH,
        build: () => buildAuthRequest(sa, this.o),
        process: (inner, t, o) => {
          const a = processAuthResponse(sa, this.context(t, sa), inner);
          if (!a.ok) {
            if (a.code !== 'peer-refused-auth' && a.code !== 'peer-refused')
              this.lifecycle.refuseAuthAnswer(sa, a.code.startsWith('child-'), o);
            const authFailure =
              a.code === 'peer-refused-auth' || a.code.startsWith('auth-') || a.code.startsWith('permit-');
            return this.lifecycle.dead(sa, authFailure ? 'auth-failed' : 'failed', `${a.code}: ${a.reason}`, o);
          }
          this.lifecycle.established(sa, a.child, Math.min(a.permitNotAfter, permitNotAfter(peer.permit)), t, o);
        },
      },
      now,
      out,
    );
  }

  // --- the peer's requests --------------------------------------------------------------------

  private onInitRequest(
    from: Endpoint,
    d: DecodedMessage,
    bytes: Buffer,
    now: number,
    localPort: number,
    out: IkeOutput,
  ): void {
    const h = d.message.header;
    if (!h.spiR.equals(Buffer.alloc(8)) || h.messageId !== 0) {
      out.events.push({ event: 'dropped', reason: 'IKE_SA_INIT request with a responder SPI or a message id' });
      return;
    }
    const key = IkeSa.keyOf(h.spiI, from);
    const known = this.sas.get(key);
    if (known) {
      // A retransmission gets the same answer; anything else with these SPIs is dropped.
      if (known.role === 'responder' && known.initResponse && known.initRequest?.equals(bytes))
        out.send.push({ to: from, bytes: known.initResponse, localPort });
      else out.events.push({ event: 'dropped', reason: 'IKE_SA_INIT for an SA we already have' });
      return;
    }
    // §2.6 and issue 11: admission per source address, per prefix and in total (half-open.ts).
    const nonce = d.message.payloads.find((p) => p.kind === 'Nonce');
    const input = { ni: nonce?.kind === 'Nonce' ? nonce.data : Buffer.alloc(0), ipI: from.address, spiI: h.spiI };
    const sent = findNotify(d.message.payloads, NotifyType.COOKIE);
    const proven = sent !== undefined && this.cookies.verify(sent.data, input).ok;
    const admission = this.halfOpen.admit(from.address, proven, now);
    if (admission.kind === 'cookie') {
      // Under load, state is kept only for initiators that prove they receive at their address.
      const reply = {
        spiI: h.spiI,
        spiR: Buffer.alloc(8),
        exchangeType: ExchangeType.IKE_SA_INIT,
        initiator: false,
        response: true,
        higherVersion: false,
        messageId: 0,
      };
      out.send.push({
        to: from,
        bytes: encodeInit(reply, [notify(NotifyType.COOKIE, this.cookies.make(input))]),
        localPort,
      });
      out.events.push({
        event: 'cookie-sent',
        reason: sent ? `the cookie did not verify (${admission.reason})` : admission.reason,
      });
      return;
    }
    if (admission.kind === 'drop') {
      out.events.push({
        event: 'dropped',
        reason: `IKE_SA_INIT from ${from.address} not admitted: ${admission.reason}`,
      });
      return;
    }
    const sa = new IkeSa('responder', h.spiI, from, now, localPort, this.fragmentPool);
    const a = answerInitRequest(
      sa,
      this.context(now, sa),
      bytes,
      d.message.payloads.filter((p) => !(p.kind === 'N' && p.notifyType === NotifyType.COOKIE)),
    );
    if (a.response) out.send.push({ to: from, bytes: a.response, localPort });
    if (!a.ok) {
      out.events.push({ event: 'failed', reason: a.reason });
      return;
    }
    for (const old of admission.evict) {
      this.forget(old);
      out.events.push({
        event: 'dropped',
        reason: `half-open IKE SA from ${old.remote.address} made without a cookie replaced by one with a cookie from ${from.address}`,
      });
    }
    this.sas.set(key, sa);
    this.halfOpen.add(sa, from.address, proven, now);
  }

  private onRequest(
    sa: IkeSa,
    from: Endpoint,
    d: DecodedMessage,
    now: number,
    localPort: number,
    out: IkeOutput,
  ): void {
    const h = d.message.header;
    const r = this.exchanges.acceptRequest(sa, from, d, now, localPort, out);
    if (r.kind === 'handled') return;
    if (r.kind === 'malformed') {
      // It authenticated but its payloads do not decode: §2.5 / §3.10.1 say which, in the answer.
      const m = r.error;
      r.respond([
        m.code === 'ike-unsupported-critical'
          ? notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.of(m.payloadType))
          : notify(NotifyType.INVALID_SYNTAX),
      ]);
      const reason = `${m.code === 'ike-unsupported-critical' ? 'UNSUPPORTED_CRITICAL_PAYLOAD' : 'INVALID_SYNTAX'} answered to exchange ${h.exchangeType}: ${m.message}`;
      if (h.exchangeType === ExchangeType.IKE_AUTH && sa.role === 'responder' && sa.state === 'init-done') {
        // An IKE_AUTH that failed leaves no SA (§2.21.2); retransmissions get the same answer.
        this.exchanges.keepRefusal(sa, h.messageId, now);
        return this.lifecycle.dead(sa, 'failed', reason, out);
      }
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason });
      return;
    }
    switch (h.exchangeType) {
      case ExchangeType.IKE_AUTH:
        return this.answerAuth(sa, r.inner, r.respond, now, out);
      case ExchangeType.CREATE_CHILD_SA:
        return this.answerCreateChild(sa, r.inner, r.respond, now, out);
      case ExchangeType.INFORMATIONAL:
        return this.answerInformational(sa, r.inner, r.respond, out);
      default:
        out.events.push({
          event: 'dropped',
          peer: sa.peer?.id,
          reason: `exchange ${h.exchangeType} is not one kasane answers`,
        });
    }
  }

  private answerAuth(sa: IkeSa, inner: Payload[], respond: (p: Payload[]) => void, now: number, out: IkeOutput): void {
    if (sa.role !== 'responder' || sa.state !== 'init-done') {
      respond([notify(NotifyType.INVALID_SYNTAX)]);
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `IKE_AUTH request in state ${sa.state}` });
      return;
    }
    const a = answerAuthRequest(sa, this.context(now, sa), inner);
    respond(a.response);
    if (!a.ok) {
      this.exchanges.keepRefusal(sa, sa.lastResponse!.messageId, now);
      return this.lifecycle.dead(sa, 'auth-failed', `${a.code}: ${a.reason}`, out, a.peer);
    }
    this.halfOpen.remove(sa);
    this.lifecycle.established(sa, a.child, Math.min(a.permitNotAfter, permitNotAfter(sa.peer!.permit)), now, out);
  }

  private answerCreateChild(
    sa: IkeSa,
    inner: Payload[],
    respond: (p: Payload[]) => void,
    now: number,
    out: IkeOutput,
  ): void {
    if (sa.state !== 'established') {
      respond([notify(NotifyType.TEMPORARY_FAILURE)]);
      return;
    }
    if (isIkeRekey(inner)) {
      const a = answerIkeRekey(sa, this.context(now, sa), inner, sa.inFlight?.task === 'ike-rekey');
      respond(a.response);
      if (!a.sa) {
        out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `IKE rekey refused: ${a.refused}` });
        return;
      }
      this.lifecycle.adoptRekeyed(sa, a.sa, now, out);
      return;
    }
    const a = answerChildRekey(sa, this.context(now, sa), inner);
    respond(a.response);
    if (!a.child) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `CREATE_CHILD_SA refused: ${a.refused}` });
      return;
    }
    sa.children.push(a.child);
    out.install.push(this.lifecycle.install(sa, a.child));
    out.events.push({
      event: 'child-rekeyed',
      peer: sa.peer!.id,
      vpnId: sa.peer!.vpnId,
      detail: { old: a.old?.inboundSpi, inbound: a.child.inboundSpi, outbound: a.child.outboundSpi },
    });
  }

  private answerInformational(sa: IkeSa, inner: Payload[], respond: (p: Payload[]) => void, out: IkeOutput): void {
    const a = answerInformational(sa, inner);
    respond(a.response);
    if (a.ike)
      return this.lifecycle.dead(
        sa,
        'ike-down',
        a.error === NotifyType.AUTHENTICATION_FAILED
          ? 'the peer refused our authentication (AUTHENTICATION_FAILED)'
          : a.error
            ? `deleted by the peer with notify ${a.error}`
            : 'deleted by the peer',
        out,
      );
    if (a.children.length > 0) this.lifecycle.removeChildren(sa, a.children, 'deleted by the peer', out);
  }
}

/** Orders two IP addresses by their bytes (v4 before v6). */
function compareAddress(a: string, b: string): number {
  return Buffer.compare(Buffer.from(ipToBytes(a)), Buffer.from(ipToBytes(b)));
}

function encodeInit(header: IkeHeader, payloads: Payload[]): Buffer {
  return encodeMessage({ header, payloads });
}

// The IKEv2 engine of one gateway, sans-I/O: datagrams and the clock in; datagrams to send, Child
// SAs to install or remove, and events out. The gateway calls receive() for every IKE datagram,
// tick() when nextDeadline() comes, initiate() on the core's ike-request and refresh() when its
// authority's delivery changes. Exchanges are tasks (tasks/*.ts); this file routes messages to
// them, keeps one request in flight per IKE SA (window 1, RFC 7296 §2.3), retransmits with
// backoff, and runs the SA lifecycles (rekey, liveness, expiry, duplicate SAs).
import { decodeMessage, encodeMessage, ExchangeType, NotifyType, notify, findNotify, type DecodedMessage, type IkeHeader, type Payload } from '../message/index.js';
import { CookieSecrets, newCookieSecret } from '../crypto/cookie.js';
import { parsePermit } from '../../pki/permit.js';
import { ipToBytes } from '../../base/addr.js';
import { IkeSa, type ChildSa, type QueuedRequest } from './ike-sa.js';
import { certificateRequest } from './authorize.js';
import { installOf } from './tasks/child.js';
import { answerChildRekey, buildChildRekey, processChildRekeyResponse } from './tasks/child-rekey.js';
import { answerAuthRequest, buildAuthRequest, processAuthResponse } from './tasks/ike-auth.js';
import { answerInitRequest, buildInitRequest, processInitResponse } from './tasks/ike-init.js';
import { answerIkeRekey, buildIkeRekey, isIkeRekey, processIkeRekeyResponse } from './tasks/ike-rekey.js';
import { answerInformational, deleteChildren, deleteIke } from './tasks/informational.js';
import { DEFAULT_IKE_TIMERS, emptyOutput, type Endpoint, type IkeOutput, type IkePeer, type IkeTimers, type LocalIdentity } from './types.js';
import type { RandomSource } from '../../base/random.js';

export interface IkeEngineOptions {
  local: LocalIdentity;
  /** Our address and IKE port (500) as peers see them. */
  endpoint: Endpoint;
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
  ageMs: number;
  children: { inboundSpi: number; outboundSpi: number; state: string; ageMs: number; rekeyInMs: number }[];
}

/** Two SAs for one (peer, VPN) made within this of each other are a simultaneous start, not a reauthentication. */
const COLLISION_WINDOW = 5_000;

export class IkeEngine {
  private readonly sas = new Map<string, IkeSa>();
  /** Initiations held back for the peer's own (see initiate). */
  private readonly deferred = new Map<string, number>();
  private readonly timers: IkeTimers;
  private readonly natPort: number;
  private readonly cookies: CookieSecrets;
  private cookieVersion = 0;
  private cookieRotatedAt = -Infinity;

  constructor(private readonly o: IkeEngineOptions) {
    this.timers = { ...DEFAULT_IKE_TIMERS, ...o.timers };
    this.natPort = o.natPort ?? 4500;
    this.cookies = new CookieSecrets(newCookieSecret(this.cookieVersion, o.random));
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
      remote: `${s.remote.address}:${s.remote.port}`,
      ageMs: now - s.createdAt,
      children: s.children.map((c) => ({ inboundSpi: c.inboundSpi, outboundSpi: c.outboundSpi, state: c.state, ageMs: now - c.createdAt, rekeyInMs: c.rekeyAt - now })),
    }));
  }

  /** Starts an IKE SA with a Child SA toward a peer of a pairwise VPN (the core's ike-request). */
  initiate(peerId: string, vpnId: number, now: number): IkeOutput {
    const out = emptyOutput();
    const live = this.forPeer(peerId, vpnId);
    const up = live.find((s) => s.state === 'established' && s.children.some((c) => c.state !== 'rekeyed'));
    if (up) {
      // The core asks again (e.g. after a restart of its table): the SA we have answers it.
      out.install.push(installOf(up, current(up)!, this.o.endpoint.address, this.natPort));
      return out;
    }
    if (live.length > 0) return out; // one is on its way
    const peerAt = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId)?.endpoint.address;
    // The peer is already starting one with us (its IKE_SA_INIT came first): that one will answer.
    if (peerAt && [...this.sas.values()].some((s) => s.role === 'responder' && !s.peer && s.state === 'init-done' && s.remote.address === peerAt)) return out;
    const peer = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId);
    if (!peer) {
      out.events.push({ event: 'failed', peer: peerId, vpnId, reason: 'peer-unknown: our authority delivered no such pairwise peer' });
      out.remove.push({ peer: peerId, vpnId, inboundSpi: 0, outboundSpi: 0, last: true, reason: 'peer-unknown' });
      return out;
    }
    // Both gateways of a path usually ask at once (the key search ends at both). The one with the
    // higher address waits a moment for the other's IKE_SA_INIT, which makes duplicate SAs (and
    // buffered packets sent on an SA about to go) rare; settleDuplicates handles the rest.
    if (this.timers.collisionDelay > 0 && compareAddress(this.o.endpoint.address, peer.endpoint.address) > 0 && !this.deferred.has(`${peerId}\u0000${vpnId}`)) {
      this.deferred.set(`${peerId}\u0000${vpnId}`, now + this.timers.collisionDelay);
      return out;
    }
    this.start(peer, now, out);
    return out;
  }

  /** Deletes the IKE SAs (and Child SAs) with a peer for a VPN: idle, membership ended, operator. */
  close(peerId: string, vpnId: number, now: number, reason: string): IkeOutput {
    const out = emptyOutput();
    for (const sa of this.forPeer(peerId, vpnId)) this.deleteSa(sa, reason, now, out);
    return out;
  }

  /** After a delivery: SAs whose peer, certificate or permit our authority no longer delivers are deleted. */
  refresh(now: number): IkeOutput {
    const out = emptyOutput();
    const peers = this.o.peers();
    for (const sa of [...this.sas.values()]) {
      if (!sa.peer) continue;
      const p = peers.find((x) => x.id === sa.peer!.id && x.vpnId === sa.peer!.vpnId);
      if (!p) this.deleteSa(sa, 'peer-withdrawn', now, out);
      else if (!Buffer.from(p.certificate).equals(Buffer.from(sa.peer.certificate))) this.deleteSa(sa, 'peer-certificate-changed', now, out);
      else if (sa.reauthStarted && permitNotAfter(p.permit) > permitNotAfter(sa.peer.permit) && this.forPeer(p.id, p.vpnId).length === 1) sa.reauthStarted = false; // renewed: try again
    }
    return out;
  }

  /** When tick() next has work. */
  nextDeadline(): number {
    let t = this.cookieRotatedAt + this.timers.cookieRotate;
    for (const at of this.deferred.values()) t = Math.min(t, at);
    for (const sa of this.sas.values()) {
      if (sa.inFlight) t = Math.min(t, sa.inFlight.nextAt);
      if (sa.role === 'responder' && sa.state === 'init-done') t = Math.min(t, sa.createdAt + this.timers.halfOpenTimeout);
      if (sa.state !== 'established') continue;
      t = Math.min(t, this.reauthAt(sa), sa.permitNotAfter + this.timers.halfOpenTimeout, sa.rekeyAt);
      if (!sa.inFlight && sa.queue.length === 0) t = Math.min(t, sa.lastHeardAt + this.timers.dpdDelay);
      for (const c of sa.children) t = Math.min(t, c.expiresAt, c.state === 'installed' ? c.rekeyAt : Infinity);
    }
    return t;
  }

  /** Timers: retransmissions, half-open expiry, rekeys, liveness checks, lifetimes, cookie secrets. */
  async tick(now: number): Promise<IkeOutput> {
    const out = emptyOutput();
    if (now >= this.cookieRotatedAt + this.timers.cookieRotate) {
      if (this.cookieRotatedAt !== -Infinity) this.cookies.rotate(newCookieSecret(++this.cookieVersion & 0xffffffff, this.o.random));
      this.cookieRotatedAt = now;
    }
    for (const [k, at] of [...this.deferred]) {
      if (now < at) continue;
      this.deferred.delete(k);
      const [peerId, vpn] = k.split('\u0000');
      const vpnId = Number(vpn);
      const peer = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId);
      const busy = this.forPeer(peerId, vpnId).length > 0 || (peer && [...this.sas.values()].some((s) => s.role === 'responder' && s.state !== 'dead' && s.remote.address === peer.endpoint.address));
      if (peer && !busy) this.start(peer, now, out);
    }
    for (const sa of [...this.sas.values()]) {
      try {
        await this.tickSa(sa, now, out);
      } catch (e) {
        this.dead(sa, 'failed', `internal error: ${(e as Error).message}`, now, out);
      }
    }
    return out;
  }

  /** A datagram for IKE (port 500, or 4500 after the edge took the non-ESP marker off). Never throws. */
  async receive(from: Endpoint, bytes: Uint8Array, now: number, localPort = this.o.endpoint.port): Promise<IkeOutput> {
    const out = emptyOutput();
    const d = decodeMessage(bytes);
    if (!d.ok) {
      out.events.push({ event: 'dropped', reason: `malformed: ${d.error.message}` });
      return out;
    }
    try {
      const h = d.value.message.header;
      if (h.exchangeType === ExchangeType.IKE_SA_INIT && !h.response) return (this.onInitRequest(from, d.value, Buffer.from(bytes), now, localPort, out), out);
      const sa = this.sas.get(IkeSa.keyOf(h.spiI, from));
      // The I flag says who sent it: a message from the SA's initiator has it set.
      if (!sa || sa.state === 'dead' || h.initiator === (sa.role === 'initiator') || (!h.spiR.equals(sa.spiR) && !(h.response && h.exchangeType === ExchangeType.IKE_SA_INIT))) {
        out.events.push({ event: 'dropped', reason: 'no IKE SA for these SPIs' });
      } else if (h.response) await this.onResponse(sa, from, d.value, Buffer.from(bytes), now, out);
      else await this.onRequest(sa, from, d.value, now, localPort, out);
    } catch (e) {
      // A bug must not take the gateway down: the event says why; the SA stays as it was.
      out.events.push({ event: 'failed', reason: `internal error: ${(e as Error).message}` });
    }
    return out;
  }

  // --- initiator ------------------------------------------------------------------------------

  private start(peer: IkePeer, now: number, out: IkeOutput): IkeSa {
    const sa = new IkeSa('initiator', Buffer.from(this.o.random(8)), { ...peer.endpoint }, now, this.o.endpoint.port);
    sa.peer = peer;
    this.sas.set(sa.key, sa);
    this.sendInit(sa, buildInitRequest(sa, this.o.endpoint, this.o.random), now, out);
    return sa;
  }

  private sendInit(sa: IkeSa, bytes: Buffer, now: number, out: IkeOutput): void {
    sa.inFlight = { task: 'ike-init', messageId: 0, exchange: ExchangeType.IKE_SA_INIT, packets: [bytes], localPort: sa.localPort, sentAt: now, tries: 0, nextAt: now + this.timers.retransmitBase, onResponse: () => undefined };
    out.send.push({ to: sa.remote, bytes, localPort: sa.localPort });
  }

  /** Queues a request; sends it now when none is in flight. */
  private async request(sa: IkeSa, q: QueuedRequest, now: number, out: IkeOutput): Promise<void> {
    sa.queue.push(q);
    await this.sendNext(sa, now, out);
  }

  private async sendNext(sa: IkeSa, now: number, out: IkeOutput): Promise<void> {
    while (!sa.inFlight && sa.queue.length > 0 && sa.state !== 'dead') {
      const q = sa.queue.shift()!;
      const inner = await q.build(now);
      const messageId = sa.nextRequestId++;
      const packets = sa.protect(q.exchange, false, messageId, inner, this.timers.fragmentSize);
      sa.inFlight = { task: q.task, messageId, exchange: q.exchange, packets, localPort: sa.localPort, sentAt: now, tries: 0, nextAt: now + this.timers.retransmitBase, onResponse: q.onResponse };
      for (const bytes of packets) out.send.push({ to: sa.remote, bytes, localPort: sa.localPort });
    }
  }

  private async onResponse(sa: IkeSa, from: Endpoint, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): Promise<void> {
    const h = d.message.header;
    const f = sa.inFlight;
    if (!f || h.messageId !== f.messageId || h.exchangeType !== f.exchange) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `unexpected response (exchange ${h.exchangeType}, message id ${h.messageId})` });
      return;
    }
    if (h.exchangeType === ExchangeType.IKE_SA_INIT) return this.onInitResponse(sa, d, bytes, now, out);
    const inner = sa.unprotect(d, now);
    if (!inner.ok) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `response does not authenticate: ${inner.error.message}` });
      return;
    }
    if (!inner.value) return; // more fragments to come
    this.heard(sa, from, now);
    sa.inFlight = undefined;
    await f.onResponse(inner.value, now, out);
    await this.sendNext(sa, now, out);
  }

  private async onInitResponse(sa: IkeSa, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): Promise<void> {
    const r = processInitResponse(sa, bytes, d.message.header.spiR, d.message.payloads);
    if (r.kind === 'cookie') {
      sa.cookie = r.cookie;
      out.events.push({ event: 'cookie-sent', peer: sa.peer?.id, reason: 'the responder asked for a cookie' });
      return this.sendInit(sa, buildInitRequest(sa, this.o.endpoint, this.o.random, sa.dh?.group.id), now, out);
    }
    if (r.kind === 'retry') return this.sendInit(sa, buildInitRequest(sa, this.o.endpoint, this.o.random, r.group), now, out);
    if (r.kind === 'failed') return this.dead(sa, 'failed', `ike-init-refused: ${r.reason}`, now, out);
    sa.inFlight = undefined;
    sa.lastHeardAt = now;
    // §2.23: after IKE_SA_INIT the initiator moves to port 4500 (kasane's ESP is always in UDP).
    sa.localPort = this.natPort;
    sa.remote = { address: sa.remote.address, port: this.natPort };
    const peer = sa.peer!;
    await this.request(sa, {
      task: 'ike-auth',
      exchange: ExchangeType.IKE_AUTH,
      build: () => buildAuthRequest(sa, this.o.local, this.o.random),
      onResponse: async (inner, t, o) => {
        const a = await processAuthResponse(sa, inner, this.o.local, t, this.timers, this.o.random);
        if (!a.ok) {
          if (a.code !== 'peer-refused-auth' && a.code !== 'peer-refused') {
            // §2.21.2: the responder thinks the SA is up; tell it we refused (best effort).
            const packets = sa.protect(ExchangeType.INFORMATIONAL, false, sa.nextRequestId++, [notify(a.code.startsWith('child-') ? NotifyType.NO_PROPOSAL_CHOSEN : NotifyType.AUTHENTICATION_FAILED), ...deleteIke()], this.timers.fragmentSize);
            for (const bytes of packets) o.send.push({ to: sa.remote, bytes, localPort: sa.localPort });
          }
          const authFailure = a.code === 'peer-refused-auth' || a.code.startsWith('auth-') || a.code.startsWith('permit-');
          return this.dead(sa, authFailure ? 'auth-failed' : 'failed', `${a.code}: ${a.reason}`, t, o);
        }
        this.established(sa, a.child, Math.min(a.permitNotAfter, permitNotAfter(peer.permit)), t, o);
      },
    }, now, out);
  }

  // --- responder ------------------------------------------------------------------------------

  private onInitRequest(from: Endpoint, d: DecodedMessage, bytes: Buffer, now: number, localPort: number, out: IkeOutput): void {
    const h = d.message.header;
    if (!h.spiR.equals(Buffer.alloc(8)) || h.messageId !== 0) {
      out.events.push({ event: 'dropped', reason: 'IKE_SA_INIT request with a responder SPI or a message id' });
      return;
    }
    const key = IkeSa.keyOf(h.spiI, from);
    const known = this.sas.get(key);
    if (known) {
      // A retransmission gets the same answer; anything else with these SPIs is dropped.
      if (known.role === 'responder' && known.initResponse && known.initRequest?.equals(bytes)) out.send.push({ to: from, bytes: known.initResponse, localPort });
      else out.events.push({ event: 'dropped', reason: 'IKE_SA_INIT for an SA we already have' });
      return;
    }
    const halfOpen = [...this.sas.values()].filter((s) => s.role === 'responder' && s.state === 'init-done').length;
    if (halfOpen >= this.timers.maxHalfOpen) {
      out.events.push({ event: 'dropped', reason: 'too many half-open IKE SAs' });
      return;
    }
    if (halfOpen >= this.timers.cookieThreshold) {
      // §2.6: under load, state is kept only for initiators that prove they receive at their address.
      const nonce = d.message.payloads.find((p) => p.kind === 'Nonce');
      const input = { ni: nonce?.kind === 'Nonce' ? nonce.data : Buffer.alloc(0), ipI: from.address, spiI: h.spiI };
      const sent = findNotify(d.message.payloads, NotifyType.COOKIE);
      if (!sent || !this.cookies.verify(sent.data, input).ok) {
        const reply = { spiI: h.spiI, spiR: Buffer.alloc(8), exchangeType: ExchangeType.IKE_SA_INIT, initiator: false, response: true, higherVersion: false, messageId: 0 };
        out.send.push({ to: from, bytes: encodeInit(reply, [notify(NotifyType.COOKIE, this.cookies.make(input))]), localPort });
        out.events.push({ event: 'cookie-sent', reason: sent ? 'the cookie did not verify' : `${halfOpen} half-open SAs` });
        return;
      }
    }
    const sa = new IkeSa('responder', h.spiI, from, now, localPort);
    const a = answerInitRequest(sa, bytes, d.message.payloads.filter((p) => !(p.kind === 'N' && p.notifyType === NotifyType.COOKIE)), this.o.endpoint, this.o.random, certificateRequest(this.o.local.certificateAuthorities));
    if (a.response) out.send.push({ to: from, bytes: a.response, localPort });
    if (!a.ok) {
      out.events.push({ event: 'failed', reason: a.reason });
      return;
    }
    this.sas.set(key, sa);
  }

  private async onRequest(sa: IkeSa, from: Endpoint, d: DecodedMessage, now: number, localPort: number, out: IkeOutput): Promise<void> {
    const h = d.message.header;
    const e = d.message.encrypted;
    if (sa.lastResponse && h.messageId === sa.lastResponse.messageId) {
      // A retransmitted request: the same answer, once per message (the first fragment of it).
      if (!e || e.kind === 'SK' || e.fragmentNumber === 1) for (const bytes of sa.lastResponse.packets) out.send.push({ to: sa.remote, bytes, localPort: sa.lastResponse.localPort });
      return;
    }
    if (h.messageId !== sa.expectRequestId) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `request with message id ${h.messageId}, expected ${sa.expectRequestId}` });
      return;
    }
    const inner = sa.unprotect(d, now);
    if (!inner.ok) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `request does not authenticate: ${inner.error.message}` });
      return;
    }
    if (!inner.value) return;
    this.heard(sa, from, now);
    sa.localPort = localPort;
    const respond = (payloads: Payload[]) => {
      const packets = sa.protect(h.exchangeType, true, h.messageId, payloads, this.timers.fragmentSize);
      sa.lastResponse = { messageId: h.messageId, packets, localPort };
      sa.expectRequestId++;
      for (const bytes of packets) out.send.push({ to: sa.remote, bytes, localPort });
    };
    switch (h.exchangeType) {
      case ExchangeType.IKE_AUTH:
        return this.answerAuth(sa, inner.value, respond, now, out);
      case ExchangeType.CREATE_CHILD_SA:
        return this.answerCreateChild(sa, inner.value, respond, now, out);
      case ExchangeType.INFORMATIONAL:
        return this.answerInformational(sa, inner.value, respond, now, out);
      default:
        out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `exchange ${h.exchangeType} is not one kasane answers` });
    }
  }

  private async answerAuth(sa: IkeSa, inner: Payload[], respond: (p: Payload[]) => void, now: number, out: IkeOutput): Promise<void> {
    if (sa.role !== 'responder' || sa.state !== 'init-done') {
      respond([notify(NotifyType.INVALID_SYNTAX)]);
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `IKE_AUTH request in state ${sa.state}` });
      return;
    }
    const a = await answerAuthRequest(sa, inner, this.o.peers(), this.o.local, this.o.random, now, this.timers);
    respond(a.response);
    if (!a.ok) return this.dead(sa, 'auth-failed', `${a.code}: ${a.reason}`, now, out, a.peer);
    this.established(sa, a.child, Math.min(a.permitNotAfter, permitNotAfter(sa.peer!.permit)), now, out);
  }

  private answerCreateChild(sa: IkeSa, inner: Payload[], respond: (p: Payload[]) => void, now: number, out: IkeOutput): void {
    if (sa.state !== 'established') {
      respond([notify(NotifyType.TEMPORARY_FAILURE)]);
      return;
    }
    if (isIkeRekey(inner)) {
      const a = answerIkeRekey(sa, inner, sa.inFlight?.task === 'ike-rekey', this.o.random, now);
      respond(a.response);
      if (!a.sa) {
        out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `IKE rekey refused: ${a.refused}` });
        return;
      }
      this.adoptRekeyed(sa, a.sa, now, out);
      return;
    }
    const a = answerChildRekey(sa, inner, now, this.timers, this.o.random);
    respond(a.response);
    if (!a.child) {
      out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `CREATE_CHILD_SA refused: ${a.refused}` });
      return;
    }
    sa.children.push(a.child);
    out.install.push(installOf(sa, a.child, this.o.endpoint.address, this.natPort));
    out.events.push({ event: 'child-rekeyed', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, detail: { old: a.old?.inboundSpi, inbound: a.child.inboundSpi, outbound: a.child.outboundSpi } });
  }

  private answerInformational(sa: IkeSa, inner: Payload[], respond: (p: Payload[]) => void, now: number, out: IkeOutput): void {
    const a = answerInformational(sa, inner);
    respond(a.response);
    if (a.ike) return this.dead(sa, 'ike-down', a.error === NotifyType.AUTHENTICATION_FAILED ? 'the peer refused our authentication (AUTHENTICATION_FAILED)' : a.error ? `deleted by the peer with notify ${a.error}` : 'deleted by the peer', now, out);
    if (a.children.length > 0) this.removeChildren(sa, a.children, 'deleted by the peer', out);
  }

  // --- lifecycle ------------------------------------------------------------------------------

  private established(sa: IkeSa, child: ChildSa, notAfter: number, now: number, out: IkeOutput): void {
    sa.state = 'established';
    sa.establishedAt = now;
    sa.permitNotAfter = notAfter;
    sa.children.push(child);
    const jitter = (Buffer.from(this.o.random(2)).readUInt16BE(0) / 65536) * 0.02 * this.timers.ikeLifetime;
    sa.rekeyAt = now + (sa.role === 'initiator' ? 0.9 : 0.95) * this.timers.ikeLifetime - jitter;
    const peer = sa.peer!;
    out.events.push({ event: 'ike-up', peer: peer.id, vpnId: peer.vpnId, detail: { role: sa.role, remote: `${sa.remote.address}:${sa.remote.port}`, permitNotAfter: new Date(notAfter).toISOString() } });
    out.install.push(installOf(sa, child, this.o.endpoint.address, this.natPort));
    out.events.push({ event: 'child-up', peer: peer.id, vpnId: peer.vpnId, detail: { inbound: child.inboundSpi, outbound: child.outboundSpi } });
    this.settleDuplicates(sa, now, out);
  }

  /**
   * Two SAs with one peer for one VPN. Started within COLLISION_WINDOW of each other (both
   * gateways initiated at once): the one holding the lowest of the four nonces goes (RFC 7296
   * §2.8.1's rule, which both sides compute alike), deleted by its initiator. Otherwise the newer
   * one replaced the older (reauthentication), and the older goes.
   */
  private settleDuplicates(sa: IkeSa, now: number, out: IkeOutput): void {
    const others = this.forPeer(sa.peer!.id, sa.peer!.vpnId).filter((s) => s !== sa && s.state === 'established');
    for (const other of others) {
      const simultaneous = Math.abs(sa.createdAt - other.createdAt) < COLLISION_WINDOW;
      const minNonce = (s: IkeSa) => (Buffer.compare(s.ni!, s.nr!) <= 0 ? s.ni! : s.nr!);
      const loser = simultaneous ? (Buffer.compare(minNonce(sa), minNonce(other)) < 0 ? sa : other) : other;
      const winner = loser === sa ? other : sa;
      // A reauthentication that gained nothing (the peer's permit was not renewed) is not retried.
      if (!simultaneous && winner.permitNotAfter <= loser.permitNotAfter) winner.reauthStarted = true;
      const c = current(winner);
      if (c) out.install.push(installOf(winner, c, this.o.endpoint.address, this.natPort)); // send with the survivor
      out.events.push({ event: 'dropped', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, reason: simultaneous ? 'duplicate IKE SA from a simultaneous start' : 'replaced by a reauthenticated IKE SA', detail: { loser: loser.spiI.toString('hex') } });
      if (loser.role === 'initiator' || !simultaneous) this.deleteSa(loser, simultaneous ? 'duplicate' : 'reauthenticated', now, out);
    }
  }

  private async tickSa(sa: IkeSa, now: number, out: IkeOutput): Promise<void> {
    const f = sa.inFlight;
    if (f && now >= f.nextAt) {
      if (f.tries >= this.timers.retransmitTries) return this.dead(sa, sa.state === 'established' ? 'ike-down' : 'failed', `peer-unresponsive: no answer to ${f.task} after ${f.tries + 1} sends`, now, out);
      f.tries++;
      f.nextAt = now + this.timers.retransmitBase * 2 ** f.tries;
      for (const bytes of f.packets) out.send.push({ to: sa.remote, bytes, localPort: f.localPort });
    }
    if (sa.role === 'responder' && sa.state === 'init-done' && now >= sa.createdAt + this.timers.halfOpenTimeout) {
      this.sas.delete(sa.key);
      sa.state = 'dead';
      out.events.push({ event: 'dropped', reason: 'half-open IKE SA timed out' });
      return;
    }
    if (sa.state === 'deleting' && !sa.inFlight && now >= sa.lastHeardAt + 2 * this.timers.dpdDelay) return this.forget(sa); // the peer never deleted it
    if (sa.state !== 'established') return;
    if (now >= sa.permitNotAfter + this.timers.halfOpenTimeout) return this.deleteSa(sa, 'permit-expired', now, out);
    if (now >= this.reauthAt(sa) && !sa.reauthStarted) {
      // The permit that authorised this SA ends soon: authenticate anew with the permit our
      // authority delivered since (make before break); settleDuplicates then retires this SA.
      sa.reauthStarted = true;
      const peer = this.o.peers().find((p) => p.id === sa.peer!.id && p.vpnId === sa.peer!.vpnId);
      // Only worth it when it can last longer: our own permit must have been renewed if it is the
      // one ending (refresh() looks again after each delivery); the peer's we learn by trying.
      const ownEnds = permitNotAfter(sa.peer!.permit) <= sa.permitNotAfter;
      if (peer && (!ownEnds || permitNotAfter(peer.permit) > sa.permitNotAfter)) this.start(peer, now, out);
    }
    for (const c of [...sa.children]) {
      if (now >= c.expiresAt) this.removeChildren(sa, [c], 'lifetime-expired', out);
      else if (c.state === 'installed' && now >= c.rekeyAt) await this.rekeyChild(sa, c, now, out);
    }
    if (now >= sa.rekeyAt && !sa.queue.some((q) => q.task === 'ike-rekey') && sa.inFlight?.task !== 'ike-rekey') {
      sa.rekeyAt = Infinity;
      await this.rekeyIke(sa, now, out);
    }
    if (!sa.inFlight && sa.queue.length === 0 && now >= sa.lastHeardAt + this.timers.dpdDelay) {
      await this.request(sa, { task: 'liveness', exchange: ExchangeType.INFORMATIONAL, build: () => [], onResponse: () => undefined }, now, out);
    }
  }

  /**
   * Only the SA's initiator reauthenticates, ahead of the permit's end: 10 % of the time the SA
   * had left when it came up (2.4 h at most, 2 s at least). Authorities renew permits at 2/3 of
   * their validity, so the renewed ones are there by then.
   */
  private reauthAt(sa: IkeSa): number {
    if (sa.role !== 'initiator' || sa.reauthStarted || !Number.isFinite(sa.permitNotAfter)) return Infinity;
    return sa.permitNotAfter - Math.max(2_000, Math.min(8_640_000, 0.1 * (sa.permitNotAfter - (sa.establishedAt ?? sa.createdAt))));
  }

  private async rekeyChild(sa: IkeSa, old: ChildSa, now: number, out: IkeOutput, group?: number): Promise<void> {
    let state: ReturnType<typeof buildChildRekey>['state'];
    await this.request(sa, {
      task: 'child-rekey',
      exchange: ExchangeType.CREATE_CHILD_SA,
      build: () => {
        const b = buildChildRekey(old, this.o.random, group);
        state = b.state;
        return b.inner;
      },
      onResponse: async (inner, t, o) => {
        const r = processChildRekeyResponse(sa, state, inner, t, this.timers, this.o.random);
        if (r.ok) {
          sa.children.push(r.child);
          o.install.push(installOf(sa, r.child, this.o.endpoint.address, this.natPort));
          o.events.push({ event: 'child-rekeyed', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, detail: { old: old.inboundSpi, inbound: r.child.inboundSpi, outbound: r.child.outboundSpi } });
          await this.deleteChildSas(sa, [old], 'rekeyed', t, o);
          return;
        }
        if (r.code === 'retry-group') return this.rekeyChild(sa, old, t, o, r.group);
        if (r.code === 'not-found') return this.removeChildren(sa, [old], 'unknown to the peer', o);
        // The peer's own rekey of this SA won, or it refused: try again later if the SA still needs it.
        if (old.state === 'rekeying') old.state = 'installed';
        old.rekeyAt = t + (r.code === 'retry-later' ? 10_000 : 60_000);
        o.events.push({ event: 'dropped', peer: sa.peer!.id, reason: `child rekey: ${r.reason}` });
      },
    }, now, out);
  }

  private async rekeyIke(sa: IkeSa, now: number, out: IkeOutput): Promise<void> {
    let state: ReturnType<typeof buildIkeRekey>['state'];
    await this.request(sa, {
      task: 'ike-rekey',
      exchange: ExchangeType.CREATE_CHILD_SA,
      build: () => {
        const b = buildIkeRekey(sa, this.o.random);
        state = b.state;
        return b.inner;
      },
      onResponse: async (inner, t, o) => {
        const r = processIkeRekeyResponse(sa, state, inner, t);
        if (!r.ok) {
          sa.rekeyAt = t + (r.code === 'retry-later' ? 10_000 : 60_000);
          o.events.push({ event: 'dropped', peer: sa.peer!.id, reason: `IKE rekey: ${r.reason}` });
          return;
        }
        this.adoptRekeyed(sa, r.sa, t, o);
        // The rekey's initiator deletes the old IKE SA (its Child SAs live on in the new one).
        sa.state = 'deleting';
        await this.request(sa, { task: 'delete-ike', exchange: ExchangeType.INFORMATIONAL, build: () => deleteIke(), onResponse: () => this.forget(sa) }, t, o);
      },
    }, now, out);
  }

  private adoptRekeyed(old: IkeSa, sa: IkeSa, now: number, out: IkeOutput): void {
    const jitter = (Buffer.from(this.o.random(2)).readUInt16BE(0) / 65536) * 0.02 * this.timers.ikeLifetime;
    sa.rekeyAt = now + (sa.role === 'initiator' ? 0.9 : 0.95) * this.timers.ikeLifetime - jitter;
    sa.lastHeardAt = now;
    sa.reauthStarted = old.reauthStarted;
    sa.createdAt = old.createdAt; // for duplicate detection the SA is as old as its first key
    this.sas.set(sa.key, sa);
    if (old.state === 'established') old.state = 'deleting';
    out.events.push({ event: 'ike-rekeyed', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, detail: { spiI: sa.spiI.toString('hex'), spiR: sa.spiR.toString('hex') } });
  }

  /** Deletes Child SAs we hold with the peer (INFORMATIONAL), removing them when it answers. */
  private async deleteChildSas(sa: IkeSa, children: ChildSa[], reason: string, now: number, out: IkeOutput): Promise<void> {
    await this.request(sa, { task: 'delete-child', exchange: ExchangeType.INFORMATIONAL, build: () => deleteChildren(children), onResponse: (_inner, _t, o) => this.removeChildren(sa, children, reason, o) }, now, out);
  }

  /** Deletes an IKE SA with its Child SAs: they go now, the peer is told (best effort, no retransmission). */
  private deleteSa(sa: IkeSa, reason: string, now: number, out: IkeOutput): void {
    if (sa.hasKeys && sa.state === 'established') {
      const packets = sa.protect(ExchangeType.INFORMATIONAL, false, sa.nextRequestId++, deleteIke(), this.timers.fragmentSize);
      for (const bytes of packets) out.send.push({ to: sa.remote, bytes, localPort: sa.localPort });
    }
    this.dead(sa, 'ike-down', reason, now, out);
  }

  /** The SA is gone: its Child SAs leave the executor; a peer left without any gets the core told. */
  private dead(sa: IkeSa, event: 'failed' | 'auth-failed' | 'ike-down', reason: string, _now: number, out: IkeOutput, peerId?: string): void {
    const wasUp = sa.state === 'established' || sa.state === 'deleting';
    this.removeChildren(sa, [...sa.children], reason, out);
    this.forget(sa);
    const peer = peerId ?? sa.peer?.id;
    out.events.push({ event: wasUp ? 'ike-down' : event, peer, vpnId: sa.peer?.vpnId, reason });
    // An attempt that never came up: the core's waiting paths must hear it failed (unless another
    // SA with that peer is up or on its way).
    if (!wasUp && sa.peer && this.forPeer(sa.peer.id, sa.peer.vpnId).length === 0) {
      out.remove.push({ peer: sa.peer.id, vpnId: sa.peer.vpnId, inboundSpi: 0, outboundSpi: 0, last: true, reason });
    }
  }

  private forget(sa: IkeSa): void {
    sa.state = 'dead';
    sa.inFlight = undefined;
    sa.queue.length = 0;
    if (this.sas.get(sa.key) === sa) this.sas.delete(sa.key);
  }

  private removeChildren(sa: IkeSa, children: ChildSa[], reason: string, out: IkeOutput): void {
    for (const c of children) {
      const i = sa.children.indexOf(c);
      if (i < 0) continue;
      sa.children.splice(i, 1);
      const peer = sa.peer!;
      // Not the last while another SA with the peer has a Child SA or is still being made (two
      // gateways that started at once: the duplicate goes while the other SA is completing).
      const last = sa.children.length === 0 && !this.forPeer(peer.id, peer.vpnId).some((s) => s !== sa && (s.children.length > 0 || s.state !== 'established'));
      out.remove.push({ peer: peer.id, vpnId: peer.vpnId, inboundSpi: c.inboundSpi, outboundSpi: c.outboundSpi, last, reason });
      out.events.push({ event: 'child-down', peer: peer.id, vpnId: peer.vpnId, reason, detail: { inbound: c.inboundSpi, outbound: c.outboundSpi } });
    }
  }

  private heard(sa: IkeSa, from: Endpoint, now: number): void {
    sa.lastHeardAt = now;
    // Authenticated traffic tells where the peer is now (NAT rebinding, §2.23).
    if (from.address === sa.remote.address) sa.remote = { address: from.address, port: from.port };
  }

  private forPeer(peerId: string, vpnId: number): IkeSa[] {
    return [...this.sas.values()].filter((s) => s.state !== 'dead' && s.peer?.id === peerId && s.peer.vpnId === vpnId);
  }
}

/** Orders two IP addresses by their bytes (v4 before v6). */
function compareAddress(a: string, b: string): number {
  return Buffer.compare(Buffer.from(ipToBytes(a)), Buffer.from(ipToBytes(b)));
}

/** The Child SA an IKE SA sends with: the newest one not rekeyed away. */
function current(sa: IkeSa): ChildSa | undefined {
  return [...sa.children].reverse().find((c) => c.state !== 'rekeyed');
}

function permitNotAfter(der: Uint8Array): number {
  const p = parsePermit(der);
  return p.ok ? p.value.notAfter.getTime() : Infinity;
}

function encodeInit(header: IkeHeader, payloads: Payload[]): Buffer {
  return encodeMessage({ header, payloads });
}

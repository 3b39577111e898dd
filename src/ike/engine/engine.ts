// The IKEv2 engine of one gateway, sans-I/O: datagrams and the clock in, datagrams to send, Child
// SAs to install and events out. It runs the exchanges as tasks (tasks/ike-init.ts,
// tasks/ike-auth.ts). This version establishes IKE SAs and their first Child SA in both roles;
// rekeying, INFORMATIONAL (delete, liveness), retransmission timers, fragmentation and cookies are
// still to come (docs/ike.md).
import { decodeMessage, ExchangeType, type DecodedMessage } from '../message/index.js';
import { IkeSa } from './ike-sa.js';
import { answerAuthRequest, buildAuthRequest, processAuthResponse } from './tasks/ike-auth.js';
import { answerInitRequest, buildInitRequest, processInitResponse } from './tasks/ike-init.js';
import { emptyOutput, type Endpoint, type IkeOutput, type IkePeer, type LocalIdentity } from './types.js';

export interface IkeEngineOptions {
  local: LocalIdentity;
  /** Our address and IKE port as peers see them. */
  endpoint: Endpoint;
  /** The pairwise-VPN peers our authority delivered now (called on every exchange: deliveries change). */
  peers: () => IkePeer[];
  random: (n: number) => Uint8Array;
  /** Half-open SAs (IKE_SA_INIT answered, IKE_AUTH not yet) beyond this are refused. */
  maxHalfOpen?: number;
}

export class IkeEngine {
  private readonly sas = new Map<string, IkeSa>();

  constructor(private readonly o: IkeEngineOptions) {}

  /** IKE SAs by state, for status views and tests. */
  status(): { peer?: string; role: string; state: string; spiI: string; spiR: string }[] {
    return [...this.sas.values()].map((s) => ({ peer: s.peer?.id, role: s.role, state: s.state, spiI: s.spiI.toString('hex'), spiR: s.spiR.toString('hex') }));
  }

  /** Starts an IKE SA with a Child SA toward a peer of a pairwise VPN (the core's ike-request). */
  initiate(peerId: string, vpnId: number, now: number): IkeOutput {
    const out = emptyOutput();
    const peer = this.o.peers().find((p) => p.id === peerId && p.vpnId === vpnId);
    if (!peer) {
      out.events.push({ event: 'failed', peer: peerId, vpnId, reason: 'peer-unknown' });
      return out;
    }
    const sa = new IkeSa('initiator', Buffer.from(this.o.random(8)), peer.endpoint, now);
    sa.peer = peer;
    this.sas.set(sa.key, sa);
    out.send.push({ to: peer.endpoint, bytes: buildInitRequest(sa, this.o.endpoint, this.o.random) });
    return out;
  }

  /** A datagram for IKE (port 500, or 4500 after the non-ESP marker was taken off). Never throws. */
  async receive(from: Endpoint, bytes: Uint8Array, now: number): Promise<IkeOutput> {
    const out = emptyOutput();
    const d = decodeMessage(bytes);
    if (!d.ok) {
      out.events.push({ event: 'dropped', reason: `malformed: ${d.error.message}` });
      return out;
    }
    try {
      const h = d.value.message.header;
      if (h.exchangeType === ExchangeType.IKE_SA_INIT && !h.response) this.onInitRequest(from, d.value, Buffer.from(bytes), now, out);
      else {
        const sa = this.sas.get(IkeSa.keyOf(h.spiI, from));
        if (!sa || (h.response && !h.initiator && sa.role !== 'initiator') || (sa.role === 'initiator' && h.initiator)) {
          out.events.push({ event: 'dropped', reason: 'no IKE SA for these SPIs' });
        } else if (h.response) await this.onResponse(sa, d.value, Buffer.from(bytes), now, out);
        else await this.onRequest(sa, d.value, now, out);
      }
    } catch (e) {
      // A bug must not take the gateway down: the SA in question is dropped, the event says why.
      out.events.push({ event: 'failed', reason: `internal error: ${(e as Error).message}` });
    }
    return out;
  }

  private onInitRequest(from: Endpoint, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): void {
    const h = d.message.header;
    if (!h.spiR.equals(Buffer.alloc(8)) || h.messageId !== 0) {
      out.events.push({ event: 'dropped', reason: 'IKE_SA_INIT request with a responder SPI or a message id' });
      return;
    }
    const key = IkeSa.keyOf(h.spiI, from);
    const known = this.sas.get(key);
    if (known?.initResponse && known.initRequest?.equals(bytes)) {
      out.send.push({ to: from, bytes: known.initResponse }); // a retransmission: the same answer
      return;
    }
    const halfOpen = [...this.sas.values()].filter((s) => s.role === 'responder' && s.state === 'init-done').length;
    if (halfOpen >= (this.o.maxHalfOpen ?? 1024)) {
      out.events.push({ event: 'dropped', reason: 'too many half-open IKE SAs' });
      return;
    }
    const sa = new IkeSa('responder', h.spiI, from, now);
    const a = answerInitRequest(sa, bytes, d.message.payloads, this.o.endpoint, this.o.random);
    if (a.response) out.send.push({ to: from, bytes: a.response });
    if (!a.ok) {
      out.events.push({ event: 'failed', reason: a.reason });
      return;
    }
    this.sas.set(key, sa);
  }

  private async onResponse(sa: IkeSa, d: DecodedMessage, bytes: Buffer, now: number, out: IkeOutput): Promise<void> {
    const h = d.message.header;
    if (h.exchangeType === ExchangeType.IKE_SA_INIT && sa.state === 'init-sent' && h.messageId === 0) {
      const r = processInitResponse(sa, bytes, h.spiR, d.message.payloads);
      if (r.kind === 'retry') {
        out.send.push({ to: sa.remote, bytes: buildInitRequest(sa, this.o.endpoint, this.o.random, r.group) });
        return;
      }
      if (r.kind === 'failed') return this.fail(sa, 'failed', 'ike-init-refused', r.reason, out);
      out.send.push({ to: sa.remote, bytes: await buildAuthRequest(sa, this.o.local, this.o.random) });
      return;
    }
    if (h.exchangeType === ExchangeType.IKE_AUTH && sa.state === 'auth-sent' && h.messageId === sa.nextRequestId - 1 && h.spiR.equals(sa.spiR)) {
      const inner = sa.unprotect(d);
      if (!inner.ok) {
        out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `IKE_AUTH response does not authenticate: ${inner.error.message}` });
        return;
      }
      const r = await processAuthResponse(sa, inner.value, this.o.local, this.o.endpoint, now);
      if (!r.ok) return this.fail(sa, 'auth-failed', r.code, r.reason, out);
      out.install.push(r.child);
      out.events.push({ event: 'ike-up', peer: sa.peer!.id, vpnId: sa.peer!.vpnId });
      out.events.push({ event: 'child-up', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, detail: { inbound: r.child.inbound.spi, outbound: r.child.outbound.spi } });
      return;
    }
    out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `unexpected ${h.exchangeType} response (message id ${h.messageId}) in state ${sa.state}` });
  }

  private async onRequest(sa: IkeSa, d: DecodedMessage, now: number, out: IkeOutput): Promise<void> {
    const h = d.message.header;
    if (sa.lastResponse && h.messageId === sa.lastResponse.messageId) {
      out.send.push({ to: sa.remote, bytes: sa.lastResponse.bytes }); // retransmitted request
      return;
    }
    if (h.messageId !== sa.expectRequestId || !h.spiR.equals(sa.spiR)) {
      out.events.push({ event: 'dropped', reason: `request with message id ${h.messageId}, expected ${sa.expectRequestId}` });
      return;
    }
    const inner = sa.unprotect(d);
    if (!inner.ok) {
      out.events.push({ event: 'dropped', reason: `request does not authenticate: ${inner.error.message}` });
      return;
    }
    if (h.exchangeType === ExchangeType.IKE_AUTH && sa.role === 'responder' && sa.state === 'init-done') {
      const a = await answerAuthRequest(sa, h.messageId, inner.value, this.o.peers(), this.o.local, this.o.endpoint, this.o.random, now);
      sa.expectRequestId++;
      sa.lastResponse = { messageId: h.messageId, bytes: a.response };
      out.send.push({ to: sa.remote, bytes: a.response });
      if (!a.ok) return this.fail(sa, 'auth-failed', a.code, a.reason, out, a.peer);
      out.install.push(a.child);
      out.events.push({ event: 'ike-up', peer: sa.peer!.id, vpnId: sa.peer!.vpnId });
      out.events.push({ event: 'child-up', peer: sa.peer!.id, vpnId: sa.peer!.vpnId, detail: { inbound: a.child.inbound.spi, outbound: a.child.outbound.spi } });
      return;
    }
    out.events.push({ event: 'dropped', peer: sa.peer?.id, reason: `exchange ${h.exchangeType} is not handled in state ${sa.state}` });
  }

  /** Ends an SA that failed: nothing of it stays behind. */
  private fail(sa: IkeSa, event: 'failed' | 'auth-failed', code: string, reason: string, out: IkeOutput, peer?: string): void {
    sa.state = 'dead';
    this.sas.delete(sa.key);
    out.events.push({ event, peer: peer ?? sa.peer?.id, vpnId: sa.peer?.vpnId, reason: `${code}: ${reason}` });
  }
}

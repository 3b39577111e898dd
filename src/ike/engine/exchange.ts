// The exchange layer of one gateway's IKE SAs (strongSwan's task_manager_v2.c): message IDs, one
// request in flight per IKE SA (window size 1, RFC 7296 §2.3) with the others queued behind it,
// retransmission with backoff (§2.4), the last response kept for a retransmitted request (§2.1),
// and the answers to IKE_AUTH requests we refused, kept after their SA is gone. It knows nothing of
// what an exchange means: tasks build and process the payloads, and the SA lifecycle
// (lifecycle.ts) decides what a failed exchange means for the SA.
import {
  ExchangeType,
  type DecodedMessage,
  type IkeDecodeError,
  type IkeHeader,
  type Payload,
} from '../message/index.js';
import { IkeSa, type ExchangeTask, type InFlight } from './ike-sa.js';
import type { Endpoint, IkeOutput, IkeTimers } from './types.js';

/** A response that arrived for an SA, as far as the exchange layer can tell. */
export type ResponseIn =
  | { kind: 'dropped'; reason: string }
  /** More fragments to come. */
  | { kind: 'incomplete' }
  /** The IKE_SA_INIT answer (not encrypted): the engine hands it to the ike-init task. */
  | { kind: 'init' }
  /** It authenticated, so it is the peer's answer, and its payloads cannot be read: the exchange failed. */
  | { kind: 'malformed'; task: InFlight; reason: string }
  | { kind: 'complete'; task: InFlight; inner: Payload[] };

/** A request that arrived for an SA: answered from the cache or dropped here, or one for the tasks. */
export type RequestIn =
  | { kind: 'handled' }
  /**
   * It authenticated but its payloads do not decode: the peer is owed INVALID_SYNTAX or UNSUPPORTED_CRITICAL_PAYLOAD.
   */
  | { kind: 'malformed'; error: IkeDecodeError; respond: (payloads: Payload[]) => void }
  | { kind: 'complete'; inner: Payload[]; respond: (payloads: Payload[]) => void };

/**
 * An IKE_AUTH we refused, kept after its SA is gone so that a retransmission of the request gets
 * the same answer (RFC 7296 §2.1) instead of silence: small, bounded in number, kept for
 * halfOpenTimeout (the initiator's retransmissions end well within it).
 */
interface RefusedAuth {
  spiR: Buffer;
  messageId: number;
  packets: Buffer[];
  localPort: number;
  until: number;
}

/** Sends a message's datagrams (all fragments) to the SA's peer. */
function sendAll(out: IkeOutput, sa: IkeSa, packets: Buffer[], localPort: number): void {
  for (const bytes of packets) out.send.push({ to: sa.remote, bytes, localPort });
}

/** A retransmitted message is answered once, on its first fragment (or its only SK message). */
function firstOfMessage(d: DecodedMessage): boolean {
  const e = d.message.encrypted;
  return !e || e.kind === 'SK' || e.fragmentNumber === 1;
}

export class Exchanges {
  private readonly refused = new Map<string, RefusedAuth>();

  constructor(private readonly timers: IkeTimers) {}

  /** How many refused IKE_AUTH answers are kept (load views). */
  get refusedKept(): number {
    return this.refused.size;
  }

  // --- our requests ---------------------------------------------------------------------------

  /** Queues a request; sends it now when none is in flight. */
  queue(sa: IkeSa, task: ExchangeTask, now: number, out: IkeOutput): void {
    sa.queue.push(task);
    this.sendNext(sa, now, out);
  }

  /** Sends queued requests while the window is open (one in flight). */
  sendNext(sa: IkeSa, now: number, out: IkeOutput): void {
    while (!sa.inFlight && sa.queue.length > 0 && sa.state !== 'dead') {
      const task = sa.queue.shift()!;
      const inner = task.build(now);
      const messageId = sa.nextRequestId++;
      const packets = sa.protect(task.exchange, false, messageId, inner, this.timers.fragmentSize);
      sa.inFlight = {
        ...task,
        messageId,
        packets,
        localPort: sa.localPort,
        sentAt: now,
        tries: 0,
        nextAt: now + this.timers.retransmitBase,
      };
      sendAll(out, sa, packets, sa.localPort);
    }
  }

  /**
   * The IKE_SA_INIT request (message 0, not encrypted), in flight until answered; again after a COOKIE or
   * INVALID_KE_PAYLOAD.
   */
  sendInit(sa: IkeSa, bytes: Buffer, now: number, out: IkeOutput): void {
    sa.inFlight = {
      task: 'ike-init',
      messageId: 0,
      exchange: ExchangeType.IKE_SA_INIT,
      packets: [bytes],
      localPort: sa.localPort,
      sentAt: now,
      tries: 0,
      nextAt: now + this.timers.retransmitBase,
      build: () => [],
      process: () => undefined,
    };
    out.send.push({ to: sa.remote, bytes, localPort: sa.localPort });
  }

  /** IKE_SA_INIT answered: the window opens, and (§2.23) the initiator moves to the NAT-T port for the rest. */
  initDone(sa: IkeSa, now: number, natPort: number): void {
    sa.inFlight = undefined;
    sa.lastHeardAt = now;
    sa.localPort = natPort;
    sa.remote = { address: sa.remote.address, port: natPort };
  }

  /** A request sent once, not waited for (a delete on the way out, a refusal after IKE_AUTH): best effort. */
  sendOnce(sa: IkeSa, exchange: number, inner: Payload[], out: IkeOutput): void {
    sendAll(out, sa, sa.protect(exchange, false, sa.nextRequestId++, inner, this.timers.fragmentSize), sa.localPort);
  }

  /** Retransmits the request in flight when it is due. The reason when its tries are used up (the peer is gone). */
  retransmit(sa: IkeSa, now: number, out: IkeOutput): string | undefined {
    const f = sa.inFlight;
    if (!f || now < f.nextAt) return undefined;
    if (f.tries >= this.timers.retransmitTries)
      return `peer-unresponsive: no answer to ${f.task} after ${f.tries + 1} sends`;
    f.tries++;
    f.nextAt = now + this.timers.retransmitBase * 2 ** f.tries;
    sendAll(out, sa, f.packets, f.localPort);
    return undefined;
  }

  /** When the SA's request in flight is next retransmitted. */
  deadline(sa: IkeSa): number {
    return sa.inFlight?.nextAt ?? Infinity;
  }

  /** A response for `sa`: is it the answer to our request in flight, and does it authenticate? */
  acceptResponse(sa: IkeSa, from: Endpoint, d: DecodedMessage, now: number): ResponseIn {
    const h = d.message.header;
    const f = sa.inFlight;
    if (!f || h.messageId !== f.messageId || h.exchangeType !== f.exchange)
      return { kind: 'dropped', reason: `unexpected response (exchange ${h.exchangeType}, message id ${h.messageId})` };
    if (h.exchangeType === ExchangeType.IKE_SA_INIT) return { kind: 'init' };
    const inner = sa.unprotect(d, now);
    if (!inner.ok && !inner.malformed)
      return { kind: 'dropped', reason: `response does not authenticate: ${inner.error.message}` };
    if (inner.ok && !inner.value) return { kind: 'incomplete' };
    sa.heard(from, now);
    sa.inFlight = undefined;
    if (!inner.ok)
      return { kind: 'malformed', task: f, reason: `malformed ${f.task} response: ${inner.error.message}` };
    return { kind: 'complete', task: f, inner: inner.value! };
  }

  // --- the peer's requests --------------------------------------------------------------------

  /**
   * A request for `sa`: a retransmission gets the cached answer; the next message id, once it
   * authenticates (and all its fragments are in), goes to the tasks with `respond`, which sends
   * and caches the answer and moves the expected message id on.
   */
  acceptRequest(
    sa: IkeSa,
    from: Endpoint,
    d: DecodedMessage,
    now: number,
    localPort: number,
    out: IkeOutput,
  ): RequestIn {
    const h = d.message.header;
    if (sa.lastResponse && h.messageId === sa.lastResponse.messageId) {
      if (firstOfMessage(d)) sendAll(out, sa, sa.lastResponse.packets, sa.lastResponse.localPort);
      return { kind: 'handled' };
    }
    if (h.messageId !== sa.expectRequestId) {
      out.events.push({
        event: 'dropped',
        peer: sa.peer?.id,
        reason: `request with message id ${h.messageId}, expected ${sa.expectRequestId}`,
      });
      return { kind: 'handled' };
    }
    const inner = sa.unprotect(d, now);
    if (!inner.ok && !inner.malformed) {
      out.events.push({
        event: 'dropped',
        peer: sa.peer?.id,
        reason: `request does not authenticate: ${inner.error.message}`,
      });
      return { kind: 'handled' };
    }
    if (inner.ok && !inner.value) return { kind: 'handled' };
    sa.heard(from, now);
    sa.localPort = localPort;
    const respond = (payloads: Payload[]) => {
      const packets = sa.protect(h.exchangeType, true, h.messageId, payloads, this.timers.fragmentSize);
      sa.lastResponse = { messageId: h.messageId, packets, localPort };
      sa.expectRequestId++;
      sendAll(out, sa, packets, localPort);
    };
    return inner.ok
      ? { kind: 'complete', inner: inner.value!, respond }
      : { kind: 'malformed', error: inner.malformed!, respond };
  }

  // --- refused IKE_AUTH answers, after their SA -----------------------------------------------

  /** Keeps the answer to a refused IKE_AUTH for its retransmissions (bounded: the oldest go first). */
  keepRefusal(sa: IkeSa, messageId: number, now: number): void {
    if (!sa.lastResponse) return;
    this.refused.delete(sa.key);
    while (this.refused.size >= this.timers.maxHalfOpen) this.refused.delete(this.refused.keys().next().value!);
    this.refused.set(sa.key, {
      spiR: sa.spiR,
      messageId,
      packets: sa.lastResponse.packets,
      localPort: sa.lastResponse.localPort,
      until: now + this.timers.halfOpenTimeout,
    });
  }

  /** A retransmitted IKE_AUTH we refused (its SA is gone): the same AUTHENTICATION_FAILED again, once per message. */
  answerRefused(from: Endpoint, h: IkeHeader, d: DecodedMessage, out: IkeOutput): boolean {
    const r = this.refused.get(IkeSa.keyOf(h.spiI, from));
    if (!r || !h.spiR.equals(r.spiR) || h.messageId !== r.messageId || h.exchangeType !== ExchangeType.IKE_AUTH)
      return false;
    if (firstOfMessage(d)) for (const p of r.packets) out.send.push({ to: from, bytes: p, localPort: r.localPort });
    out.events.push({ event: 'dropped', reason: 'retransmitted IKE_AUTH that was refused: answered again' });
    return true;
  }

  expireRefusals(now: number): void {
    for (const [k, r] of this.refused) if (now >= r.until) this.refused.delete(k);
  }

  /** When the oldest refusal kept ends (they are kept in the order they end). */
  refusalDeadline(): number {
    return this.refused.values().next().value?.until ?? Infinity;
  }
}

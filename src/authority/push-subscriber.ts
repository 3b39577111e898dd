// The gateway's side of the wake-up channel (push.ts is the authority's): one UDP socket,
// connected to the replica whose API answered, SUBSCRIBEs with the cursor every refresh period
// (which also keeps a NAT mapping open), and on a WAKE — or an ACK naming a version beyond the
// cursor — fetches the changes over mutual TLS and SUBSCRIBEs again with the new cursor. A DELIVER
// (protocol 2 and 3) carries that answer itself: applied as a fetched one would be, then acknowledged
// by the next SUBSCRIBE (in 3 one that says so and waits for no ACK); one that does not apply
// (another cursor, a bad answer) is taken as a WAKE.
//
// A session ends, and the caller (client.ts `watch`) decides what next, when three SUBSCRIBEs in a
// row go unanswered ('no-answer'), when the network says the replica is gone (ICMP port
// unreachable on the connected socket) or a fetch fails ('unreachable'), when the fetches moved to
// another replica ('moved'), or when the key nears its end ('renew').
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import {
  answerKey,
  encodeDatagram,
  openAnswer,
  parseDatagram,
  unpackAnswer,
  verifyDatagram,
  type Deliver,
  type PushProtocol,
  type Wake,
} from './push-datagram.js';
import type { GatewayChanges, PushOffer } from './wire.js';

export type PushEnd = 'stopped' | 'no-answer' | 'unreachable' | 'moved' | 'renew';

/** SUBSCRIBEs unanswered in a row before the session ends. */
const MAX_UNANSWERED = 3;
/** A key is renewed this long before it ends. */
const RENEW_BEFORE_MS = 3_600_000;
/** A WAKE for a version already held is answered by a SUBSCRIBE at most this often. */
const RESUBSCRIBE_MIN_MS = 1000;
/**
 * Protocol 2: an ACK naming a version beyond the cursor is followed by the DELIVER (or WAKE) for it;
 * the gateway fetches by itself only when none has come this long after the ACK.
 */
const DELIVER_GRACE_MS = 2000;

export interface PushSessionOptions {
  /** The replica's address (or name), as the API was reached. */
  host: string;
  offer: PushOffer;
  cursor: number;
  signal?: AbortSignal;
  /** Fetches and applies the changes after `cursor` (over mutual TLS); resolves with the new cursor. */
  fetch: (cursor: number) => Promise<number>;
  /**
   * Applies an answer that came in a DELIVER, as `fetch` applies the fetched one; resolves with the
   * new cursor. Without it the session speaks protocol 1 (WAKEs only).
   */
  apply?: (c: GatewayChanges) => Promise<number>;
  /** After a fetch: did the fetches move to another replica than `host`? */
  moved?: () => boolean;
  /** How long an ACK may take (ms, default 1000). */
  ackTimeoutMs?: number;
  /** Told once the first ACK arrived (the channel works). */
  onSubscribed?: () => void;
  /** Test hook: a WAKE or DELIVER for which this returns true is ignored (as if lost). */
  dropWake?: (w: Wake | Deliver) => boolean;
}

export interface PushSessionEnd {
  end: PushEnd;
  cursor: number;
  /** Did any SUBSCRIBE of the session get an ACK? */
  acked: boolean;
  error?: unknown;
  /** Datagrams received and dropped (malformed, not authentic, replayed). */
  dropped: number;
  /** Answers applied from DELIVERs (no fetch). */
  delivered: number;
}

/** The answer a DELIVER carries, if it is one for `d` (its version, a change). Never throws. */
export function readDelivered(d: Deliver, key: Uint8Array): GatewayChanges | undefined {
  let v: unknown;
  try {
    v = JSON.parse(unpackAnswer(openAnswer(d.sealed, key)));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const c = v as Partial<GatewayChanges>;
  // The delivery itself is checked where it is opened, as a fetched one is.
  const shaped =
    c.version === d.version &&
    c.changed === true &&
    c.reset === false &&
    typeof c.delivery === 'object' &&
    c.delivery !== null &&
    Array.isArray(c.events) &&
    typeof c.eventsTruncated === 'boolean';
  return shaped ? (c as GatewayChanges) : undefined;
}

/** The newest protocol both speak: 2 and 3 (DELIVERs) only when the session can apply answers. */
function protocolOf(o: PushSessionOptions): PushProtocol {
  const offered = o.offer.protocol ?? 1;
  return !o.apply || offered < 2 ? 1 : offered < 3 ? 2 : 3;
}

function connect(socket: Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/** Runs one session of the wake-up channel until it ends (see above). Fetch errors end it ('unreachable'). */
export async function runPushSession(o: PushSessionOptions): Promise<PushSessionEnd> {
  const offer = o.offer;
  const key = Buffer.from(offer.key, 'base64');
  if (protocolOf(o) >= 2) answerKey(key); // derived now, not when a rotation's DELIVER arrives
  // Sequence numbers follow the authority's clock (the replay window), whatever ours says.
  const offset = offer.now - Date.now();
  const socket = createSocket(isIPv6(o.host.replace(/^\[|\]$/g, '')) ? 'udp6' : 'udp4');
  const protocol = protocolOf(o);
  let cursor = o.cursor;
  let delivered: GatewayChanges | undefined;
  /** The version of the DELIVER being applied (0: none). */
  let applying = 0;
  /** Protocol 2: the newest version an ACK said we lack, and when (DELIVER_GRACE_MS). */
  let behind = 0;
  let behindAt = 0;
  let deliveredCount = 0;
  let seq = 0;
  let firstSeq = Infinity;
  let lastAck = 0;
  let lastReset = 0;
  let wanted = 0;
  let reset = false;
  let resubscribe = false;
  let resubscribeAcknowledging = false;
  let awaitingAck = false;
  let unanswered = 0;
  let sentAt = 0;
  let acked = false;
  let dropped = 0;
  let failure: unknown;
  let kick: (() => void) | undefined;
  const wake = (): void => kick?.();

  /**
   * `acknowledging`: it answers a DELIVER, which showed the replica alive. In protocol 3 it says so,
   * the authority sends no ACK for it unless more is due, and none is waited for (if it is lost, the
   * DELIVER comes again).
   */
  const subscribe = (acknowledging = false): void => {
    seq = Math.max(seq + 1, Math.round(Date.now() + offset));
    firstSeq = Math.min(firstSeq, seq);
    const quiet = acknowledging && protocol >= 3;
    const d = encodeDatagram(
      {
        type: 'subscribe',
        keyId: offer.keyId,
        seq,
        cursor,
        gateway: offer.gateway,
        ...(quiet && { acknowledges: true }),
      },
      key,
      protocol,
    );
    awaitingAck = !quiet;
    if (quiet) unanswered = 0;
    sentAt = performance.now();
    socket.send(d, (e) => {
      if (e) {
        failure ??= e;
        wake();
      }
    });
  };

  socket.on('message', (b) => {
    const p = parseDatagram(b);
    if (!p.ok || p.value.datagram.type === 'subscribe' || p.value.datagram.keyId !== offer.keyId) return void dropped++;
    if (!verifyDatagram(p.value, key)) return void dropped++;
    const d = p.value.datagram;
    if (d.type === 'ack') {
      // Only an answer to a SUBSCRIBE of ours that is newer than the last answered.
      if (d.seq <= lastAck || d.seq > seq) return void dropped++;
      lastAck = d.seq;
      awaitingAck = false;
      unanswered = 0;
      if (!acked) o.onSubscribed?.();
      acked = true;
      if (d.version <= cursor) {
        // Nothing new.
      } else if (protocol >= 2) {
        // The DELIVER (or a WAKE) for it follows the ACK: fetch only if none comes in time.
        if (d.version > behind) [behind, behindAt] = [d.version, performance.now()];
      } else wanted = Math.max(wanted, d.version);
    } else if (d.type === 'deliver') {
      // Only answers to this session's SUBSCRIBEs since the last reset (the cursor may have gone back
      // then: an older answer replayed must not apply).
      if (d.seq < lastReset || d.seq < firstSeq || d.seq > seq) return void dropped++;
      if (o.dropWake?.(d)) return;
      if (d.version <= cursor) {
        resubscribeAcknowledging = true; // a resend of what we hold: our acknowledgement was lost
      } else if (d.version > Math.max(delivered?.version ?? 0, applying)) {
        // (Not a resend of the one about to apply: that would be read again for nothing.)
        const c = d.since === cursor ? readDelivered(d, key) : undefined;
        if (c) delivered = c;
        else wanted = Math.max(wanted, d.version); // not for our cursor: fetch it
      }
    } else {
      if (o.dropWake?.(d)) return;
      // The replica is stopping: subscribe again (only as an answer to our newest SUBSCRIBE).
      if (d.gone) {
        if (d.seq === seq) failure ??= new Error('the authority replica is stopping');
      } else if (d.version > cursor) wanted = Math.max(wanted, d.version);
      else if (d.reset && d.seq === seq && d.seq !== lastReset) {
        lastReset = d.seq;
        reset = true;
      } else resubscribe = true; // a resend of what we hold: our SUBSCRIBE saying so was lost
    }
    wake();
  });
  // ICMP port unreachable on the connected socket: the replica's process is gone.
  socket.on('error', (e) => {
    failure ??= e;
    wake();
  });
  const onAbort = (): void => wake();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const end = (e: PushEnd, error?: unknown): PushSessionEnd => ({
    end: e,
    cursor,
    acked,
    error,
    dropped,
    delivered: deliveredCount,
  });
  try {
    try {
      await connect(socket, offer.port, o.host);
    } catch (e) {
      return end('unreachable', e);
    }
    subscribe();
    let lastResubscribe = 0;
    while (!o.signal?.aborted) {
      if (failure) return end('unreachable', failure);
      if (delivered) {
        const c = delivered;
        delivered = undefined;
        if (c.version > cursor) {
          try {
            applying = c.version;
            cursor = await o.apply!(c);
            deliveredCount++;
            subscribe(true);
          } catch {
            // Not applicable after all (a delivery that does not open): fetch it instead.
            dropped++;
            wanted = Math.max(wanted, c.version);
          } finally {
            applying = 0;
          }
          continue;
        }
      }
      if (behind > cursor && performance.now() - behindAt >= DELIVER_GRACE_MS) {
        wanted = Math.max(wanted, behind);
        behind = 0;
      }
      if (wanted > cursor || reset) {
        const before = cursor;
        reset = false;
        try {
          cursor = await o.fetch(cursor);
        } catch (e) {
          return end('unreachable', e);
        }
        // A replica that has not seen the version yet: its resend brings the WAKE again.
        if (cursor <= before || cursor < wanted) wanted = 0;
        if (o.moved?.()) return end('moved');
        subscribe();
        continue;
      }
      const now = performance.now();
      if (resubscribe || resubscribeAcknowledging) {
        const acknowledging = !resubscribe;
        resubscribe = resubscribeAcknowledging = false;
        if (now - lastResubscribe >= RESUBSCRIBE_MIN_MS) {
          lastResubscribe = now;
          subscribe(acknowledging);
        }
      }
      if (Date.now() + offset > offer.expiresAt - Math.min(RENEW_BEFORE_MS, (offer.expiresAt - offer.now) / 2))
        return end('renew');
      const due = sentAt + (awaitingAck ? (o.ackTimeoutMs ?? 1000) : offer.refreshSeconds * 1000);
      if (now >= due) {
        if (awaitingAck && ++unanswered >= MAX_UNANSWERED) return end('no-answer');
        subscribe();
        continue;
      }
      const until = behind > cursor ? Math.min(due, behindAt + DELIVER_GRACE_MS) : due;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, until - now));
        kick = () => {
          clearTimeout(t);
          resolve();
        };
      });
      kick = undefined;
    }
    return end('stopped');
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    socket.close();
  }
}

// The authority's side of the wake-up channel (docs/authority.md, "The wake-up channel"): instead
// of holding a mutual-TLS connection and a pending request per gateway (the long poll, ~80 KB
// each in node), a gateway SUBSCRIBEs over UDP with its cursor and is sent a WAKE when a change
// concerns it; it then fetches the delivery over mutual TLS (changes?since=cursor&wait=0) and
// SUBSCRIBEs again with its new cursor, which acknowledges the WAKE.
//
// A gateway that speaks protocol 2 or 3 is sent the change stream's answer itself (DELIVER,
// encrypted under its push key) when it fits one datagram: no fetch, no TLS handshake per change.
// In protocol 3 the SUBSCRIBE that acknowledges a DELIVER gets no ACK unless more is due. Answers
// are read in batches (change-stream.ts). WAKEs and DELIVERs unacknowledged at once are bounded
// (MAX_WAKING, MAX_DELIVERING); the others wait their turn.
//
// Per gateway the authority keeps one small record (address, key, cursor, last seen): no socket,
// no timer of its own. One timer ticks for the process while anything is due: WAKEs and DELIVERs
// not yet acknowledged are sent again (RESEND_FIRST_MS), and records not refreshed for three
// refresh periods are forgotten. Which gateways a change concerns comes from the change stream
// (this process's commits and other replicas', change-stream.ts), as for the long poll.
//
// Anything not an authentic, fresh SUBSCRIBE of an active gateway is a counted drop and gets no
// answer: the channel never answers an unauthenticated sender, and its answers are no larger than
// what they answer (no amplification).
import { hkdfSync } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import {
  answerKey,
  encodeDatagram,
  MAX_ANSWER_BYTES,
  MAX_SUBSCRIBE_BYTES,
  packAnswer,
  parseDatagram,
  pushKey,
  PUSH_PROTOCOL_VERSION,
  sealAnswer,
  verifyDatagram,
  type PushDatagram,
  type PushProtocol,
} from './push-datagram.js';
import type { GatewayChanges, PushOffer, PushStatus } from './wire.js';

/** A push key is valid this long after its issue (its id); gateways ask for a new one before. */
export const PUSH_KEY_LIFETIME_MS = 24 * 3_600_000;
/** A SUBSCRIBE's sequence (ms) may differ this much from the authority's clock. */
export const PUSH_WINDOW_MS = 60_000;
export const DEFAULT_REFRESH_SECONDS = 25;
/**
 * Resends of an unacknowledged WAKE or DELIVER: after the channel's retransmission timeout (1 s, or
 * more when acknowledgements have been slower: RFC 6298's estimator over the time from a first send
 * to its acknowledgement, resends or not, so losses lengthen it and never shorten it), doubling, at
 * most RESEND_MAX_MS apart. A burst of thousands of DELIVERs is acknowledged over seconds by busy
 * gateways; resending at 1 s regardless only adds to their work.
 */
const RESEND_FIRST_MS = 1000;
const RESEND_MAX_MS = 16_000;
const TICK_MS = 250;
/**
 * WAKEs unacknowledged at once: the rest wait their turn. Woken gateways all connect at once
 * otherwise (a rotation of everything: thousands of TLS handshakes, beyond the listen backlog and
 * into SYN retries of seconds). A slot frees when the gateway's SUBSCRIBE acknowledges it, or at
 * its first resend.
 */
export const MAX_WAKING = 512;
/**
 * WAKEs and DELIVERs unacknowledged at once (DELIVERs cost a gateway no connection, only the work
 * of applying one): without a bound a burst would be resent into gateways still applying it. 1,024
 * (~1.2 MB in flight) is 10,000 DELIVERs a second at 100 ms round trips; with 2,048 a rotation of
 * everything in the benchmark (one process plays the 10,000 gateways) was resent 2,700-3,600 times,
 * with 1,024 about 1,000 times.
 */
export const MAX_DELIVERING = 1024;
/** After an answer too large for a DELIVER, the gateway is only WAKEd for this long (no read in vain). */
const TOO_LARGE_MS = 10 * 60_000;
/** A record's gateway is looked up in the database again after this long (revocations). */
const RECHECK_MS = 5 * 60_000;
/** Gateways checked in one database read at most. */
const CHECK_BATCH = 1000;

/** What the database says about the gateways that SUBSCRIBE (one read for many). */
export interface PushCheck {
  version: number;
  directoryVersion: number;
  gateways: Map<string, { active: boolean; changedVersion: number }>;
}

export interface PushChannelOptions {
  /** The authority's push secret (32 bytes; every replica has the same). */
  secret: Uint8Array;
  /** The wall clock (ms): key ids and the replay window. */
  now: () => number;
  send: (datagram: Buffer, address: string, port: number) => void;
  check: (gateways: string[]) => Promise<PushCheck>;
  /**
   * The change stream's answer for `gateway` after `since` (change-stream.ts `changes`, no wait):
   * sent in a DELIVER when it fits. Without it every change is a WAKE.
   */
  answer?: (gateway: string, since: number) => Promise<GatewayChanges>;
  refreshSeconds: number;
  /** WAKEs in flight at once (default MAX_WAKING). */
  maxWaking?: number;
  /** WAKEs and DELIVERs in flight at once (default MAX_DELIVERING). */
  maxDelivering?: number;
  /** The UDP port gateways send to (told in the offer; set once the socket is bound). */
  port: number;
  log?: Logger;
}

export type PushDropReason =
  'malformed' | 'unexpected-type' | 'expired-key' | 'stale' | 'bad-mac' | 'replay' | 'inactive';

interface Subscription {
  gateway: string;
  address: string;
  port: number;
  keyId: number;
  key: Buffer;
  /** The protocol of its SUBSCRIBEs: answered in the same; DELIVERs from 2 on. */
  protocol: PushProtocol;
  seq: number;
  cursor: number;
  seenAt: number;
  /** The newest version that changed this gateway's delivery, as far as this process knows. */
  due: number;
  /** When the database last confirmed the gateway active (0: not yet, or a change touched it). */
  checkedAt: number;
  checking: boolean;
  /** The version of a WAKE not yet acknowledged (0: none), and whether it is a reset. */
  wakeVersion: number;
  reset: boolean;
  resendMs: number;
  /** When the WAKE or DELIVER was first sent (performance.now()), and its resends since. */
  sentAt: number;
  resends: number;
  /** The tick its next resend falls in (0: none). */
  tick: number;
  /** Holds one of the slots (MAX_WAKING, MAX_DELIVERING). */
  waking: boolean;
  /** An answer is being read for it. */
  reading: boolean;
  /** The DELIVER sent and not yet acknowledged (resent as it is), and the cursor it applies to. */
  deliver?: Buffer;
  deliverSince: number;
  /** Until when its answers are taken to be too large for a DELIVER (the clock's ms). */
  largeUntil: number;
  /**
   * Its last SUBSCRIBE said it acknowledges a DELIVER (protocol 3): it gets no ACK unless more is
   * due (the DELIVER showed the gateway its replica alive; one lost comes again as a resend).
   */
  acknowledging: boolean;
}

export class PushChannel {
  private readonly table = new Map<string, Subscription>();
  private readonly wheel = new Map<number, Set<Subscription>>();
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;
  /** The newest version this process knows of. */
  private known = 0;
  private checkQueue: Subscription[] = [];
  /** Gateways to wake once a slot frees, in order. */
  private readonly queued = new Set<Subscription>();
  private waking = 0;
  /** Smoothed time to acknowledgement and its variation (ms; 0: no sample yet). */
  private srtt = 0;
  private rttvar = 0;
  private checkScheduled = false;
  private closed = false;
  readonly drops: Record<PushDropReason, number> = {
    malformed: 0,
    'unexpected-type': 0,
    'expired-key': 0,
    stale: 0,
    'bad-mac': 0,
    replay: 0,
    inactive: 0,
  };
  private counts = { wakes: 0, resends: 0, acks: 0, delivers: 0, tooLarge: 0 };

  /** The UDP port gateways send to. */
  port: number;

  constructor(private readonly o: PushChannelOptions) {
    this.port = o.port;
  }

  /** The key a gateway SUBSCRIBEs with (POST /v1/gateway/push, after mutual TLS). */
  offer(gateway: string): PushOffer {
    const now = this.o.now();
    const keyId = Math.floor(now / 1000);
    return {
      gateway,
      keyId,
      key: pushKey(this.o.secret, gateway, keyId).toString('base64'),
      expiresAt: keyId * 1000 + PUSH_KEY_LIFETIME_MS,
      port: this.port,
      refreshSeconds: this.o.refreshSeconds,
      now,
      ...(this.o.answer && { protocol: PUSH_PROTOCOL_VERSION }),
    };
  }

  /** One datagram from `address`:`port`. Never throws; never answers what it drops. */
  receive(b: Uint8Array, address: string, port: number): void {
    if (this.closed) return;
    const p = parseDatagram(b);
    if (!p.ok) return this.drop('malformed');
    const d = p.value.datagram;
    if (d.type !== 'subscribe') return this.drop('unexpected-type');
    const now = this.o.now();
    const issued = d.keyId * 1000;
    if (issued > now + PUSH_WINDOW_MS || now - issued >= PUSH_KEY_LIFETIME_MS) return this.drop('expired-key');
    if (Math.abs(d.seq - now) > PUSH_WINDOW_MS) return this.drop('stale');
    let rec = this.table.get(d.gateway);
    const key = rec && rec.keyId === d.keyId ? rec.key : pushKey(this.o.secret, d.gateway, d.keyId);
    if (!verifyDatagram(p.value, key)) return this.drop('bad-mac');
    if (rec && d.seq <= rec.seq) return this.drop('replay');
    // The key its DELIVERs are sealed under, now rather than in a rotation's burst.
    if (p.value.protocol >= 2 && this.o.answer && key !== rec?.key) answerKey(key);
    if (!rec) {
      rec = {
        gateway: d.gateway,
        address,
        port,
        keyId: d.keyId,
        key,
        protocol: p.value.protocol,
        seq: d.seq,
        cursor: d.cursor,
        seenAt: now,
        due: 0,
        checkedAt: 0,
        checking: false,
        wakeVersion: 0,
        reset: false,
        resendMs: 0,
        sentAt: 0,
        resends: 0,
        tick: 0,
        waking: false,
        reading: false,
        deliverSince: 0,
        largeUntil: 0,
        acknowledging: false,
      };
      this.table.set(d.gateway, rec);
    }
    rec.address = address;
    rec.port = port;
    rec.keyId = d.keyId;
    rec.key = key;
    rec.protocol = p.value.protocol;
    rec.seq = d.seq;
    rec.cursor = d.cursor;
    rec.seenAt = now;
    // The SUBSCRIBE after a fetch acknowledges the WAKE.
    // (A reset's only once the cursor is no longer ahead of what this process knows.)
    const acked = d.cursor >= rec.wakeVersion && (!rec.reset || d.cursor <= Math.max(this.known, rec.wakeVersion));
    rec.acknowledging = d.acknowledges === true;
    if (rec.wakeVersion && acked) {
      if (rec.sentAt) this.sampleRtt(Math.min(performance.now() - rec.sentAt, RESEND_MAX_MS));
      rec.wakeVersion = 0;
      rec.reset = false;
      rec.deliver = undefined;
      this.unschedule(rec);
      this.release(rec);
    } else if (rec.deliver && rec.deliverSince !== d.cursor) {
      // It moved (fetched) without reaching the DELIVER's version: one for its new cursor.
      rec.deliver = undefined;
      this.unschedule(rec);
      this.wake(rec, rec.wakeVersion, false);
    }
    if (rec.checkedAt === 0 || d.cursor > this.known || now - rec.checkedAt > RECHECK_MS) this.queueCheck(rec);
    else this.answer(rec);
    this.ensureTimer();
  }

  /** A change committed at `version` concerns these gateways (or everybody): WAKE those subscribed. */
  notify(target: Iterable<string> | 'all', version: number): void {
    if (version > this.known) this.known = version;
    if (target === 'all') {
      for (const rec of this.table.values()) this.changed(rec, version, false);
      return;
    }
    for (const g of target) {
      const rec = this.table.get(g);
      // A change to the gateway itself may be its revocation: the database is asked again.
      if (rec) this.changed(rec, version, true);
    }
  }

  /** Gateways subscribed here now. */
  get size(): number {
    return this.table.size;
  }

  /** The channel's counters, for status and metrics. */
  status(): PushStatus {
    return {
      port: this.port,
      subscriptions: this.table.size,
      pendingWakes: this.pending + this.queued.size,
      drops: { ...this.drops },
      wakes: this.counts.wakes,
      resends: this.counts.resends,
      acks: this.counts.acks,
      delivers: this.counts.delivers,
      tooLarge: this.counts.tooLarge,
    };
  }

  /**
   * Tells every subscribed gateway that this process is stopping (a WAKE flagged `gone`), so that
   * it subscribes again — to another replica, or here once it is back — instead of learning of it
   * at its next refresh. Returns the number told.
   */
  farewell(): number {
    for (const rec of this.table.values())
      this.send(rec, { type: 'wake', keyId: rec.keyId, seq: rec.seq, version: rec.due, reset: false, gone: true });
    return this.table.size;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.table.clear();
    this.wheel.clear();
    this.queued.clear();
    this.pending = 0;
    this.waking = 0;
  }

  // --- internals

  private drop(reason: PushDropReason): void {
    this.drops[reason]++;
  }

  private changed(rec: Subscription, version: number, recheck: boolean): void {
    if (version > rec.due) rec.due = version;
    if (recheck) rec.checkedAt = 0;
    if (rec.cursor < version && version > rec.wakeVersion) this.wake(rec, version, false);
  }

  private answer(rec: Subscription): void {
    const quiet = rec.acknowledging && !rec.reset && rec.cursor >= rec.due;
    rec.acknowledging = false;
    if (quiet) return;
    this.send(rec, { type: 'ack', keyId: rec.keyId, seq: rec.seq, version: rec.due });
    this.counts.acks++;
    if (rec.reset) this.wake(rec, rec.wakeVersion, true);
    else if (rec.cursor < rec.due && rec.due > rec.wakeVersion) this.wake(rec, rec.due, false);
  }

  /**
   * Tells the gateway of `version`: in a DELIVER when it may carry the answer (`answers`), in a WAKE
   * otherwise. A DELIVER carries the answer as of its read: a newer change needs a new read (a
   * DELIVER waiting for its turn is sent as it is meanwhile, then the new one).
   */
  private wake(rec: Subscription, version: number, reset: boolean): void {
    rec.wakeVersion = version;
    rec.reset = reset;
    if (this.answers(rec)) return void this.deliver(rec);
    rec.deliver = undefined;
    this.enqueue(rec);
  }

  /**
   * Whether the gateway's next change goes in a DELIVER (the answer itself) rather than a WAKE: it
   * speaks protocol 2 or later, this process reads answers, it is not resetting (a reset needs a
   * fetch), and its answers have not lately been too large for a datagram. An answer that turns out
   * too large or unreadable still becomes a WAKE (deliver).
   */
  private answers(rec: Subscription): boolean {
    return !rec.reset && rec.protocol >= 2 && this.o.answer !== undefined && this.o.now() >= rec.largeUntil;
  }

  /** Sends its WAKE or DELIVER now if it holds a slot or one is free; otherwise it waits its turn. */
  private enqueue(rec: Subscription): void {
    if (this.queued.has(rec)) return; // its newest WAKE or DELIVER goes when its turn comes
    if (this.admissible(rec)) this.admit(rec);
    else this.queued.add(rec);
  }

  /**
   * Reads the gateway's answer and sends it in a DELIVER; a WAKE instead when it does not fit a
   * datagram or cannot be read (a revoked gateway: its fetch is refused). Either waits for a slot: a
   * rotation of everything is acknowledged at the pace the gateways apply it, not resent into them.
   */
  private async deliver(rec: Subscription): Promise<void> {
    if (rec.reading) return; // the read under way is followed by another if the version moved on
    rec.reading = true;
    const since = rec.cursor;
    let datagram: Buffer | undefined;
    let version = 0;
    try {
      const c = await this.o.answer!(rec.gateway, since);
      version = c.version;
      if (c.changed && !c.reset && c.version > since) {
        const plain = packAnswer(JSON.stringify(c));
        if (plain.length <= MAX_ANSWER_BYTES) {
          const d = { type: 'deliver', keyId: rec.keyId, seq: rec.seq, version, since } as const;
          datagram = encodeDatagram({ ...d, sealed: sealAnswer(plain, rec.key) }, rec.key, rec.protocol);
        } else {
          this.counts.tooLarge++;
          rec.largeUntil = this.o.now() + TOO_LARGE_MS;
        }
      }
    } catch (e) {
      this.o.log?.debug({ err: (e as Error).message, gateway: rec.gateway }, 'push: no answer to deliver');
    } finally {
      rec.reading = false;
    }
    if (this.closed || this.table.get(rec.gateway) !== rec || !rec.wakeVersion) return;
    if (rec.cursor !== since) return this.wake(rec, rec.wakeVersion, rec.reset); // it moved meanwhile
    // Without a datagram (too large, unreadable, nothing new after all) a WAKE: the gateway fetches.
    if (datagram && version > rec.wakeVersion) rec.wakeVersion = version;
    rec.deliver = datagram;
    rec.deliverSince = since;
    this.enqueue(rec);
    // A change after the one read: another answer (the DELIVER covers what it could).
    if (datagram && rec.wakeVersion > version) void this.deliver(rec);
  }

  /** Sends the WAKE or DELIVER now (holding a slot) and schedules its resend. */
  private admit(rec: Subscription): void {
    if (!rec.waking) {
      rec.waking = true;
      this.waking++;
    }
    if (rec.deliver) this.counts.delivers++;
    else this.counts.wakes++;
    this.sendWake(rec);
    this.firstSent(rec);
  }

  /** A WAKE or DELIVER just went out for the first time: its resend is due after the timeout. */
  private firstSent(rec: Subscription): void {
    rec.sentAt = performance.now();
    rec.resends = 0;
    rec.resendMs = this.srtt
      ? Math.min(Math.max(this.srtt + 4 * this.rttvar, RESEND_FIRST_MS), RESEND_MAX_MS)
      : RESEND_FIRST_MS;
    this.schedule(rec, rec.resendMs);
  }

  private sampleRtt(ms: number): void {
    if (!this.srtt) {
      this.srtt = ms;
      this.rttvar = ms / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
      this.srtt = 0.875 * this.srtt + 0.125 * ms;
    }
  }

  /** May its WAKE (up to maxWaking in flight) or DELIVER (up to maxDelivering) go now? */
  private admissible(rec: Subscription): boolean {
    if (rec.waking) return true;
    return this.waking < (rec.deliver ? (this.o.maxDelivering ?? MAX_DELIVERING) : (this.o.maxWaking ?? MAX_WAKING));
  }

  /** Frees its slot (or its place in the queue) and wakes the next in turn. */
  private release(rec: Subscription): void {
    this.queued.delete(rec);
    if (!rec.waking) return;
    rec.waking = false;
    this.waking--;
    // In order: one that may not go yet (a WAKE while 512 are out) holds back those behind it.
    for (const next of this.queued) {
      if (!next.wakeVersion || this.table.get(next.gateway) !== next) {
        this.queued.delete(next);
        continue;
      }
      if (!this.admissible(next)) break;
      this.queued.delete(next);
      this.admit(next);
    }
  }

  private sendWake(rec: Subscription): void {
    if (rec.deliver) return this.sendDatagram(rec, rec.deliver);
    this.send(rec, { type: 'wake', keyId: rec.keyId, seq: rec.seq, version: rec.wakeVersion, reset: rec.reset });
  }

  private send(rec: Subscription, d: PushDatagram): void {
    let b: Buffer;
    try {
      b = encodeDatagram(d, rec.key, rec.protocol);
    } catch (e) {
      this.o.log?.debug({ err: (e as Error).message, gateway: rec.gateway }, 'push datagram not encoded');
      return;
    }
    this.sendDatagram(rec, b);
  }

  private sendDatagram(rec: Subscription, b: Buffer): void {
    try {
      this.o.send(b, rec.address, rec.port);
    } catch (e) {
      this.o.log?.debug({ err: (e as Error).message, gateway: rec.gateway }, 'push datagram not sent');
    }
  }

  private queueCheck(rec: Subscription): void {
    if (rec.checking) return;
    rec.checking = true;
    this.checkQueue.push(rec);
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    // The SUBSCRIBEs of one turn (a wake-up of many gateways) are checked together.
    setImmediate(() => void this.runChecks());
  }

  private async runChecks(): Promise<void> {
    try {
      while (this.checkQueue.length && !this.closed) {
        const batch = this.checkQueue.splice(0, CHECK_BATCH);
        let r: PushCheck;
        try {
          r = await this.o.check(batch.map((s) => s.gateway));
        } catch (e) {
          this.o.log?.warn({ err: (e as Error).message }, 'push: checking subscribing gateways failed');
          for (const rec of batch) rec.checking = false;
          continue;
        }
        if (r.version > this.known) this.known = r.version;
        const now = this.o.now();
        for (const rec of batch) {
          rec.checking = false;
          if (this.table.get(rec.gateway) !== rec) continue;
          const g = r.gateways.get(rec.gateway);
          if (!g?.active) {
            this.forget(rec);
            this.drop('inactive');
            continue;
          }
          rec.checkedAt = now;
          rec.due = Math.max(rec.due, g.changedVersion, r.directoryVersion);
          // A cursor ahead of the authority (a database restored from a backup): the gateway must reset.
          if (rec.cursor > r.version) {
            rec.wakeVersion = r.version;
            rec.reset = true;
          }
          this.answer(rec);
        }
      }
    } finally {
      this.checkScheduled = false;
    }
  }

  private forget(rec: Subscription): void {
    this.unschedule(rec);
    rec.wakeVersion = 0;
    rec.deliver = undefined;
    this.table.delete(rec.gateway);
    this.release(rec);
  }

  private schedule(rec: Subscription, ms: number): void {
    this.unschedule(rec);
    const tick = Math.ceil((performance.now() + ms) / TICK_MS);
    let slot = this.wheel.get(tick);
    if (!slot) this.wheel.set(tick, (slot = new Set()));
    slot.add(rec);
    rec.tick = tick;
    this.pending++;
    this.ensureTimer();
  }

  private unschedule(rec: Subscription): void {
    if (!rec.tick) return;
    const tick = rec.tick;
    rec.tick = 0;
    const slot = this.wheel.get(tick);
    if (!slot?.delete(rec)) return;
    if (slot.size === 0) this.wheel.delete(tick);
    this.pending--;
  }

  private ensureTimer(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Resends what is due, forgets what went quiet; the timer stops when nothing is left. */
  private tick(): void {
    const nowTick = Math.floor(performance.now() / TICK_MS);
    for (const [tick, slot] of this.wheel) {
      if (tick > nowTick) continue;
      this.wheel.delete(tick);
      for (const rec of slot) {
        rec.tick = 0;
        this.pending--;
        if (!rec.wakeVersion || this.table.get(rec.gateway) !== rec) continue;
        this.counts.resends++;
        rec.resends++;
        this.sendWake(rec);
        rec.resendMs = Math.min(rec.resendMs * 2, RESEND_MAX_MS);
        this.schedule(rec, rec.resendMs);
        // It may have been lost (or the gateway is gone): its slot goes to the next in turn, resends
        // continue. A DELIVER keeps it one resend longer: slow acknowledgements of a burst are the
        // gateways' backlog, which more DELIVERs would only lengthen.
        if (!rec.deliver || rec.resends >= 2) this.release(rec);
      }
    }
    const now = this.o.now();
    if (now - this.lastSweep >= 1000) {
      this.lastSweep = now;
      const quiet = now - 3 * this.o.refreshSeconds * 1000 - RESEND_FIRST_MS;
      for (const rec of this.table.values()) if (rec.seenAt < quiet) this.forget(rec);
    }
    if (this.table.size === 0 && this.pending === 0 && this.queued.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/**
 * The TLS session ticket keys of every replica, from the push secret: a woken gateway resumes its
 * session on whichever replica it fetches from, and after a restart (a failover is then no full
 * handshake per gateway either). They change with the secret only; tickets last a day.
 */
export function tlsTicketKeys(secret: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), Buffer.from('kasane tls tickets v1'), 48));
}

/** The channel's UDP socket on `host`:`port` (0: any free port); resolves once bound. */
export async function bindPushSocket(
  host: string,
  port: number,
  receive: (b: Buffer, address: string, port: number) => void,
  log?: Logger,
): Promise<{ socket: Socket; port: number; close(): Promise<void> }> {
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  socket.on('message', (b, rinfo) => {
    if (b.length > MAX_SUBSCRIBE_BYTES) receive(b.subarray(0, 0), rinfo.address, rinfo.port);
    else receive(b, rinfo.address, rinfo.port);
  });
  // ICMP errors of earlier sends and the like: nothing to do but note them.
  socket.on('error', (e) => log?.debug({ err: e.message }, 'push socket error'));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    socket,
    port: socket.address().port,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

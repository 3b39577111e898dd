// Searches this gateway starts for its own terminals (seed 000 §3.3, steps 2–6 and 10–11):
// buffer, source search toward the source terminal, destination search toward the destination
// terminal, then pair, install and flush. Retries with backoff end in a negative entry.
import type { Ip } from '../../base/addr.js';
import type { CoreContext } from '../context.js';
import type { TraceEvent } from '../gateway-api.js';
import { pathKey } from '../key-table.js';
import type { SearchEntry, SearchMessage } from '../packet/search-message.js';
import { txidHex } from '../packet/search-message.js';
import type { TimerOf } from '../timers.js';
import { checkClaims, makeEntry } from './claims.js';
import { decideOwn } from './decide.js';
import { buildSearchPacket, echoIds, type SearchPacket } from './search-packet.js';

interface OriginSearch {
  local: Ip;
  remote: Ip;
  phase: 'source' | 'destination';
  txid: Uint8Array;
  tx: string;
  attempt: number;
  /** Gateways between this one and the source terminal, in path order (found by the source search). */
  sourceEntries: SearchEntry[];
  startedAt: number;
  /**
   * Started to learn a sender's floor (src/core/rx-floors.ts), not for a waiting terminal: it is
   * not cancelled when the path is installed meanwhile, and a failure installs no negative entry
   * unless a terminal has started waiting on the path.
   */
  learnOnly: boolean;
}

export class SearchOriginator {
  private readonly byPath = new Map<string, OriginSearch>();
  private readonly byTx = new Map<string, OriginSearch>();

  constructor(private readonly ctx: CoreContext) {}

  get size(): number {
    return this.byPath.size;
  }

  has(local: Ip, remote: Ip): boolean {
    return this.byPath.has(pathKey(local, remote));
  }

  /** As many searches as `maxSearchesInFlight` allows are running: a new one must wait. */
  full(): boolean {
    return this.byPath.size >= this.ctx.config.limits.maxSearchesInFlight;
  }

  /**
   * Step 3: source search — an echo request to the source terminal, from the destination's address.
   * Skipped for a terminal on one of this gateway's attached LANs: no gateway can stand between it
   * and us, so the search could only confirm what the configuration says (this gateway is its
   * first stage), at the cost of a round trip to the terminal and a hand-over to JavaScript (about
   * a third of a search's time, measured in bench/peers). Terminals behind another router (an
   * inner gateway of a multi-stage VPN) are never in an attached prefix and are searched as before.
   */
  start(local: Ip, remote: Ip, now: number, opts: { learnOnly?: boolean } = {}): void {
    const s: OriginSearch = {
      local,
      remote,
      phase: 'source',
      txid: this.ctx.random(8),
      tx: '',
      attempt: 0,
      sourceEntries: [],
      startedAt: now,
      learnOnly: opts.learnOnly ?? false,
    };
    s.tx = txidHex(s.txid);
    this.byPath.set(pathKey(local, remote), s);
    this.byTx.set(s.tx, s);
    this.ctx.count('search.started');
    if (this.ctx.isAttached(local)) {
      return this.startDestination(s, now, 'search.source-skipped', {
        event: 'source-skipped',
        kind: 'search-request(source)',
        step: 3,
        detail: { txid: s.tx, terminal: local, attached: true },
      });
    }
    const msg = this.message(s, []);
    this.ctx.emit(buildSearchPacket({ src: remote, dst: local, icmpType: 8, ...echoIds(s.txid), msg }), {
      op: 'search-request',
      phase: 'source',
      txid: s.tx,
    });
    this.ctx.trace({
      event: 'search-request',
      kind: 'search-request(source)',
      step: 3,
      detail: { txid: s.tx, to: local },
    });
    this.ctx.timers.set(this.timerKey(s), now + this.ctx.config.timers.sourceSearchTimeout);
  }

  /** Is this reply one of ours? (Replies to our searches are consumed here, never relayed.) */
  owns(msg: SearchMessage): boolean {
    return msg.originator === this.ctx.config.id;
  }

  onReply(p: SearchPacket, from: 'inside' | 'outside', packet: Uint8Array, now: number): void {
    const tx = txidHex(p.msg.txid);
    const s = this.byTx.get(tx);
    if (!s || s.phase !== p.msg.phase) {
      this.ctx.drop('search-late-reply', packet);
      return;
    }
    const expectFrom = s.phase === 'source' ? 'inside' : 'outside';
    if (from !== expectFrom || p.msg.pathSrc !== s.local || p.msg.pathDst !== s.remote) {
      this.ctx.drop('search-inconsistent', packet);
      return;
    }
    const claims = checkClaims(this.ctx.ring, p.msg);
    if (!claims.ok) {
      // A forged reply must not end the search: the genuine one may still come.
      this.ctx.drop('search-forged', packet);
      this.ctx.trace({
        event: 'search-forged',
        kind: `search-reply(${s.phase})`,
        detail: { txid: tx, gateway: claims.gateway, vpnId: claims.vpnId },
      });
      return;
    }
    if (s.phase === 'source') {
      // Step 5: the first-stage check. Entries in the reply are gateways between us and the source terminal.
      s.sourceEntries = p.msg.entries.slice().reverse();
      return this.startDestination(s, now, 'search.consumed', {
        event: 'search-reply-consumed',
        kind: 'search-reply(source)',
        step: 5,
        detail: { txid: tx, firstStage: p.msg.entries.length === 0, proxiedBy: p.msg.proxiedBy || undefined },
      });
    }
    this.complete(s, p.msg, claims.unverifiable, packet, now);
  }

  /**
   * Step 6: destination search — an echo request to the destination terminal, from the source's address. `counter`
   * and `why` record what started it: the end of the source stage (step 3 or 5), or a retry.
   */
  private startDestination(s: OriginSearch, now: number, counter: string, why: TraceEvent): void {
    this.ctx.count(counter);
    this.ctx.trace(why);
    s.phase = 'destination';
    const mine = makeEntry(
      this.ctx.ring,
      now,
      { txid: s.txid, pathSrc: s.local, pathDst: s.remote },
      'src',
      this.ctx.config.address,
      s.local,
      (v, e) => this.ctx.sendingSeq(v, e, now),
    );
    const msg = this.message(s, [...s.sourceEntries, mine]);
    this.ctx.emit(buildSearchPacket({ src: s.local, dst: s.remote, icmpType: 8, ...echoIds(s.txid), msg }), {
      op: 'search-request',
      phase: 'destination',
      txid: s.tx,
    });
    this.ctx.trace({
      event: 'search-request',
      kind: 'search-request(destination)',
      step: 6,
      detail: { txid: s.tx, to: s.remote, attempt: s.attempt, vpns: mine.vpns.map((v) => v.vpnId) },
    });
    const t = this.ctx.config.timers;
    this.ctx.timers.set(this.timerKey(s), now + t.searchTimeout * 2 ** s.attempt);
  }

  /** Steps 10–11: pair, install, flush the buffered packets. */
  private complete(
    s: OriginSearch,
    msg: SearchMessage,
    unverifiable: ReadonlySet<string>,
    packet: Uint8Array,
    now: number,
  ): void {
    const myIndex = s.sourceEntries.length;
    const me = msg.entries[myIndex];
    const prefixOk =
      me?.gateway === this.ctx.config.id &&
      s.sourceEntries.every((e, i) => msg.entries[i]?.gateway === e.gateway && msg.entries[i]?.side === 'src');
    if (!prefixOk) {
      this.ctx.drop('search-tampered', packet);
      return;
    }
    // The claims answer our own transaction: fresh sequence numbers of their senders.
    this.ctx.floors.learn(this.ctx, msg, unverifiable);
    const d = decideOwn(this.ctx, msg.entries, myIndex, unverifiable, s.local, s.remote);
    if (!d.ok) {
      this.ctx.count(`search.refused.${d.reason}`);
      this.ctx.trace({
        event: 'search-refused',
        kind: 'search-reply(destination)',
        detail: { txid: s.tx, reason: d.reason, why: d.detail },
      });
      this.ctx.drop(`search-${d.reason}`, packet);
      this.retry(s, now);
      return;
    }
    this.finish(s);
    const t = this.ctx.config.timers;
    const { decision } = d;
    this.ctx.trace({
      event: 'search-complete',
      kind: 'search-reply(destination)',
      step: 10,
      detail: {
        txid: s.tx,
        action: decision.action,
        vpnId: decision.vpnId,
        peer: decision.peer,
        layers: decision.layers,
        reason: decision.reason,
        proxiedBy: msg.proxiedBy || undefined,
        ms: now - s.startedAt,
      },
    });
    this.ctx.count('search.completed');
    this.ctx.install(
      {
        local: s.local,
        remote: s.remote,
        action: decision.action,
        vpnId: decision.vpnId,
        peer: decision.peer,
        mtuReserve: decision.mtuReserve,
        layers: decision.layers,
        reason: decision.reason,
        txid: s.tx,
        installedAt: now,
        lastUsed: now,
        expiresAt: now + (decision.action === 'discard' ? t.negativeTtl : t.hardLifetime),
      },
      now,
    );
  }

  /** A timer of ours fired. */
  onTimer(timer: TimerOf<'origin'>, now: number): void {
    const s = this.byTx.get(timer.tx);
    if (!s) return;
    if (s.phase === 'source') {
      // The source terminal did not echo (a host firewall): proceed as the gateway that serves it.
      return this.startDestination(s, now, 'search.source-silent', {
        event: 'source-silent',
        kind: 'search-request(source)',
        step: 5,
        detail: { txid: s.tx, terminal: s.local, attached: this.ctx.isAttached(s.local) },
      });
    }
    this.ctx.count('search.timeout');
    this.retry(s, now);
  }

  private retry(s: OriginSearch, now: number): void {
    const t = this.ctx.config.timers;
    if (s.attempt < t.searchRetries) {
      // A retry is a new transaction: relays keep per-transaction state and refuse duplicates.
      this.byTx.delete(s.tx);
      this.ctx.timers.cancel(this.timerKey(s));
      s.attempt++;
      s.txid = this.ctx.random(8);
      s.tx = txidHex(s.txid);
      this.byTx.set(s.tx, s);
      return this.startDestination(s, now, 'search.retry', {
        event: 'search-retry',
        kind: 'search-request(destination)',
        detail: { txid: s.tx, attempt: s.attempt },
      });
    }
    // Negative entry: nothing usable came back. Plain only where policy allows it for an unprotected remote.
    this.finish(s);
    if (s.learnOnly && this.ctx.table.get(s.local, s.remote)?.action !== 'pending') {
      // Nobody waits on the path: leave it as it is (the floor is asked for again by the next ESP).
      this.ctx.count('search.failed');
      this.ctx.trace({
        event: 'search-failed',
        kind: 'search-request(destination)',
        detail: { txid: s.tx, action: 'none', learnOnly: true },
      });
      return;
    }
    const plain = this.ctx.plainAllowed(s.remote) && !this.ctx.ring.isProtected(s.remote);
    this.ctx.count('search.failed');
    this.ctx.trace({
      event: 'search-failed',
      kind: 'search-request(destination)',
      detail: { txid: s.tx, action: plain ? 'plain' : 'discard' },
    });
    this.ctx.install(
      {
        local: s.local,
        remote: s.remote,
        action: plain ? 'plain' : 'discard',
        layers: [],
        reason: 'no-reply',
        txid: s.tx,
        installedAt: now,
        lastUsed: now,
        expiresAt: now + t.negativeTtl,
      },
      now,
    );
  }

  /** Another search (e.g. the peer's, seen in transit) settled this path: stop ours. */
  cancel(local: Ip, remote: Ip): boolean {
    const s = this.byPath.get(pathKey(local, remote));
    if (!s || s.learnOnly) return false;
    this.finish(s);
    return true;
  }

  private finish(s: OriginSearch): void {
    this.byPath.delete(pathKey(s.local, s.remote));
    this.byTx.delete(s.tx);
    this.ctx.timers.cancel(this.timerKey(s));
  }

  private timerKey(s: OriginSearch): TimerOf<'origin'> {
    return { kind: 'origin', tx: s.tx };
  }

  private message(s: OriginSearch, entries: SearchEntry[]): SearchMessage {
    return {
      phase: s.phase,
      proxied: false,
      txid: s.txid,
      pathSrc: s.local,
      pathDst: s.remote,
      originator: this.ctx.config.id,
      proxiedBy: '',
      entries,
    };
  }
}

// Searches passing through this gateway (seed 000 §3.3 steps 7 and 9): append our authenticated
// entry to requests, learn the path from replies, and answer for a silent terminal we serve.
import type { Ip } from '../../base/addr.js';
import type { CoreContext } from '../context.js';
import type { SearchMessage } from '../packet/search-message.js';
import { txidHex } from '../packet/search-message.js';
import { checkClaims, makeEntry } from './claims.js';
import { decideOwn } from './decide.js';
import { buildSearchPacket, kindOf, type SearchPacket } from './search-packet.js';
import type { TimerOf } from '../timers.js';

interface RelayedSearch {
  tx: string;
  phase: 'source' | 'destination';
  /** The terminal this gateway serves on this path, and which end of the path it is. */
  terminal: Ip;
  side: 'src' | 'dst';
  /** Where our entry sits in the chain. */
  myIndex: number;
  /** The request as we forwarded it (for answering in the terminal's place). */
  forwarded: SearchMessage;
  id: number;
  seq: number;
  done: boolean;
}

/** Entry limit of the wire format. */
const MAX_ENTRIES = 32;

export class SearchRelay {
  private readonly inFlight = new Map<string, RelayedSearch>();

  constructor(private readonly ctx: CoreContext) {}

  get size(): number {
    return this.inFlight.size;
  }

  onRequest(p: SearchPacket, from: 'inside' | 'outside', packet: Uint8Array, now: number): void {
    const { msg } = p;
    const kind = kindOf(msg, 8);
    // The request travels between the path's terminals: destination phase from pathSrc to pathDst,
    // source phase from pathDst to pathSrc.
    const [expSrc, expDst] = msg.phase === 'destination' ? [msg.pathSrc, msg.pathDst] : [msg.pathDst, msg.pathSrc];
    if (p.ip.src !== expSrc || p.ip.dst !== expDst) return this.ctx.drop('search-inconsistent', packet);
    if (msg.originator === this.ctx.config.id) return this.ctx.drop('search-loop', packet);
    const key = this.key(msg);
    if (this.inFlight.has(key)) return this.ctx.drop('search-duplicate', packet);
    if (msg.entries.length >= MAX_ENTRIES) return this.ctx.drop('search-too-long', packet);
    const claims = checkClaims(this.ctx.ring, msg);
    if (!claims.ok) {
      this.ctx.trace({
        event: 'search-forged',
        kind,
        detail: { txid: txidHex(msg.txid), gateway: claims.gateway, vpnId: claims.vpnId },
      });
      return this.ctx.drop('search-forged', packet);
    }
    if (this.inFlight.size >= this.ctx.config.limits.maxSearchesInFlight) this.evictOldest();

    // From inside, we serve the sender; from outside, the packet is heading to a terminal behind us.
    const terminal = from === 'inside' ? p.ip.src : p.ip.dst;
    const side = terminal === msg.pathSrc ? 'src' : 'dst';
    const entry = makeEntry(this.ctx.ring, now, msg, side, this.ctx.config.address, terminal, (v, e) =>
      this.ctx.sendingSeq(v, e, now),
    );
    const forwarded: SearchMessage = { ...msg, entries: [...msg.entries, entry] };
    const r: RelayedSearch = {
      tx: txidHex(msg.txid),
      phase: msg.phase,
      terminal,
      side,
      myIndex: msg.entries.length,
      forwarded,
      id: p.id,
      seq: p.seq,
      done: false,
    };
    this.inFlight.set(key, r);
    const t = this.ctx.config.timers;
    this.ctx.timers.set({ kind: 'relay', search: key }, now + t.searchTimeout * 2 ** (t.searchRetries + 1));
    if (from === 'outside' && this.ctx.isAttached(terminal)) {
      // We are the first-stage gateway of the terminal: answer for it if it stays silent.
      this.ctx.timers.set({ kind: 'proxy', search: key }, now + t.proxyAnswerDelay);
    }
    this.ctx.emit(
      buildSearchPacket({
        src: p.ip.src,
        dst: p.ip.dst,
        icmpType: 8,
        id: p.id,
        seq: p.seq,
        msg: forwarded,
        ttl: p.ip.ttl,
        ipId: p.ip.id,
        tos: p.ip.tos,
      }),
      { op: 'search-relay', phase: msg.phase, txid: r.tx, direction: 'request' },
      packet,
    );
    this.ctx.count('search.relayed');
    this.ctx.trace({
      event: 'search-append',
      kind,
      step: msg.phase === 'destination' ? 7 : undefined,
      detail: { txid: r.tx, side, terminal, vpns: entry.vpns.map((v) => v.vpnId) },
    });
  }

  onReply(p: SearchPacket, packet: Uint8Array, now: number): void {
    const key = this.key(p.msg);
    const r = this.inFlight.get(key);
    if (!r) return this.ctx.drop('search-unexpected-reply', packet);
    if (r.done) return this.ctx.drop('search-late-reply', packet);
    this.learn(r, p.msg, packet, now);
  }

  /** Step 9: learn the path from the reply passing through, then relay it unchanged. */
  private learn(r: RelayedSearch, msg: SearchMessage, packet: Uint8Array, now: number): void {
    const kind = kindOf(msg, 0);
    const mine = msg.entries[r.myIndex];
    if (!mine || mine.gateway !== this.ctx.config.id || msg.entries.length < r.forwarded.entries.length) {
      return this.ctx.drop('search-tampered', packet);
    }
    const claims = checkClaims(this.ctx.ring, msg);
    if (!claims.ok) {
      this.ctx.trace({
        event: 'search-forged',
        kind,
        detail: { txid: r.tx, gateway: claims.gateway, vpnId: claims.vpnId },
      });
      return this.ctx.drop('search-forged', packet);
    }
    r.done = true;
    this.ctx.timers.cancel({ kind: 'proxy', search: this.key(msg) });
    if (r.phase === 'destination') {
      const d = decideOwn(this.ctx, msg.entries, r.myIndex, claims.unverifiable, msg.pathSrc, msg.pathDst);
      // On-path gateways install only what they can prove (an encrypt pairing with a verified
      // partner). Negative outcomes are the originator's to record: a forged request must not be
      // able to make us discard a genuine path.
      if (d.ok && d.decision.action === 'encrypt') {
        const local = r.terminal;
        const remote = r.side === 'src' ? msg.pathDst : msg.pathSrc;
        const t = this.ctx.config.timers;
        this.ctx.install(
          {
            local,
            remote,
            action: 'encrypt',
            vpnId: d.decision.vpnId,
            peer: d.decision.peer,
            mtuReserve: d.decision.mtuReserve,
            layers: d.decision.layers,
            reason: 'search-relay',
            txid: r.tx,
            installedAt: now,
            lastUsed: now,
            expiresAt: now + t.hardLifetime,
          },
          now,
        );
        this.ctx.trace({
          event: 'search-learn',
          kind,
          step: 9,
          detail: { txid: r.tx, vpnId: d.decision.vpnId, peer: d.decision.peer },
        });
      } else {
        this.ctx.trace({
          event: 'search-learn',
          kind,
          step: 9,
          detail: { txid: r.tx, installed: false, reason: d.ok ? d.decision.reason : d.reason },
        });
      }
    }
    this.ctx.emit(packet, { op: 'search-relay', phase: r.phase, txid: r.tx, direction: 'reply' }, packet);
  }

  onTimer(timer: TimerOf<'relay' | 'proxy'>, now: number): void {
    if (timer.kind === 'relay') {
      this.inFlight.delete(timer.search);
      return;
    }
    const r = this.inFlight.get(timer.search);
    if (!r || r.done) return;
    // The terminal never echoed: answer in its place, exactly as its echo would have looked.
    const msg: SearchMessage = { ...r.forwarded, proxied: true, proxiedBy: this.ctx.config.id };
    const other = r.terminal === msg.pathSrc ? msg.pathDst : msg.pathSrc;
    const reply = buildSearchPacket({ src: r.terminal, dst: other, icmpType: 0, id: r.id, seq: r.seq, msg });
    this.ctx.count('search.proxy-answered');
    this.ctx.trace({ event: 'proxy-answer', kind: kindOf(msg, 0), detail: { txid: r.tx, terminal: r.terminal } });
    this.learn(r, msg, reply, now);
  }

  private key(msg: SearchMessage): string {
    return `${txidHex(msg.txid)}/${msg.phase}`;
  }

  private evictOldest(): void {
    const first = this.inFlight.keys().next();
    if (first.done) return;
    this.inFlight.delete(first.value);
    this.ctx.timers.cancel({ kind: 'relay', search: first.value });
    this.ctx.timers.cancel({ kind: 'proxy', search: first.value });
    this.ctx.count('search.evicted');
  }
}

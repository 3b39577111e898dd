// The life of an IKE SA and its Child SAs once they exist (strongSwan's ike_sa.c): coming up,
// duplicate SAs with one peer settled, Child SA and IKE SA rekeys, reauthentication before the
// permits end, liveness checks, lifetimes and permit expiry, deletion, and what the gateway's core
// is told when a peer's last Child SA goes. Exchanges it starts go through the exchange layer
// (exchange.ts); the SA table (engine.ts) holds the SAs.
import { ExchangeType, notify, NotifyType, type Payload } from '../message/index.js';
import { parsePermit } from '../../pki/permit.js';
import type { ChildSa, ExchangeTask, IkeSa } from './ike-sa.js';
import type { Exchanges } from './exchange.js';
import { installOf } from './tasks/child.js';
import { buildChildRekey, processChildRekeyResponse } from './tasks/child-rekey.js';
import { buildIkeRekey, processIkeRekeyResponse } from './tasks/ike-rekey.js';
import { deleteChildren, deleteIke } from './tasks/informational.js';
import { endpointText, type ChildSaInstall, type IkeOutput, type IkePeer, type IkeTimers } from './types.js';
import type { RandomSource } from '../../base/random.js';

/** Two SAs for one (peer, VPN) made within this of each other are a simultaneous start, not a reauthentication. */
const COLLISION_WINDOW = 5_000;

/** What the lifecycle needs of the SA table (engine.ts). */
export interface SaTable {
  /** The live SAs with a peer for a VPN. */
  forPeer(peerId: string, vpnId: number): IkeSa[];
  /** A new SA (an IKE rekey's successor) joins the table. */
  add(sa: IkeSa): void;
  /** The SA leaves the table; nothing is sent or reported. */
  forget(sa: IkeSa): void;
  /** Starts a new IKE SA with the peer as initiator (a reauthentication). */
  start(peer: IkePeer, now: number, out: IkeOutput): void;
}

export interface LifecycleOptions {
  timers: IkeTimers;
  random: RandomSource;
  /** Our address toward a peer's address (of its family), and the port ESP in UDP uses (Child SA installs). */
  localAddress: (remote: string) => string;
  natPort: number;
  /** The pairwise peers our authority delivers now. */
  peers: () => IkePeer[];
  exchanges: Exchanges;
  table: SaTable;
}

/** The Child SA an IKE SA sends with: the newest one not rekeyed away. */
export function current(sa: IkeSa): ChildSa | undefined {
  return [...sa.children].reverse().find((c) => c.state !== 'rekeyed');
}

/** When a permit (DER) ends; one that does not parse never limits anything. */
export function permitNotAfter(der: Uint8Array): number {
  const p = parsePermit(der);
  return p.ok ? p.value.notAfter.getTime() : Infinity;
}

export class SaLifecycle {
  constructor(private readonly o: LifecycleOptions) {}

  /** What the gateway installs in its executor for one of our Child SAs. */
  install(sa: IkeSa, child: ChildSa): ChildSaInstall {
    return installOf(sa, child, this.o.localAddress(sa.remote.address), this.o.natPort);
  }

  /** IKE_AUTH succeeded (either role): the SA and its first Child SA are up. */
  established(sa: IkeSa, child: ChildSa, notAfter: number, now: number, out: IkeOutput): void {
    sa.state = 'established';
    sa.establishedAt = now;
    sa.permitNotAfter = notAfter;
    sa.children.push(child);
    sa.rekeyAt = this.ikeRekeyAt(sa, now);
    const peer = sa.peer!;
    out.events.push({
      event: 'ike-up',
      peer: peer.id,
      vpnId: peer.vpnId,
      detail: {
        role: sa.role,
        remote: endpointText(sa.remote),
        nat: sa.nat,
        permitNotAfter: new Date(notAfter).toISOString(),
      },
    });
    out.install.push(this.install(sa, child));
    out.events.push({
      event: 'child-up',
      peer: peer.id,
      vpnId: peer.vpnId,
      detail: { inbound: child.inboundSpi, outbound: child.outboundSpi },
    });
    this.settleDuplicates(sa, out);
  }

  /** The IKE SA's initiator rekeys at 90 % of the lifetime, the responder at 95 %, less a jitter against bursts. */
  private ikeRekeyAt(sa: IkeSa, now: number): number {
    const jitter = (Buffer.from(this.o.random(2)).readUInt16BE(0) / 65536) * 0.02 * this.o.timers.ikeLifetime;
    return now + (sa.role === 'initiator' ? 0.9 : 0.95) * this.o.timers.ikeLifetime - jitter;
  }

  /**
   * Two SAs with one peer for one VPN. Started within COLLISION_WINDOW of each other (both
   * gateways initiated at once): the one holding the lowest of the four nonces goes (RFC 7296
   * §2.8.1's rule, which both sides compute alike), deleted by its initiator. Otherwise the newer
   * one replaced the older (reauthentication), and the older goes.
   */
  private settleDuplicates(sa: IkeSa, out: IkeOutput): void {
    const others = this.o.table
      .forPeer(sa.peer!.id, sa.peer!.vpnId)
      .filter((s) => s !== sa && s.state === 'established');
    for (const other of others) {
      const simultaneous = Math.abs(sa.createdAt - other.createdAt) < COLLISION_WINDOW;
      const minNonce = (s: IkeSa) => (Buffer.compare(s.ni!, s.nr!) <= 0 ? s.ni! : s.nr!);
      const loser = simultaneous ? (Buffer.compare(minNonce(sa), minNonce(other)) < 0 ? sa : other) : other;
      const winner = loser === sa ? other : sa;
      // A reauthentication that gained nothing (the peer's permit was not renewed) is not retried.
      if (!simultaneous && winner.permitNotAfter <= loser.permitNotAfter) winner.reauthStarted = true;
      const c = current(winner);
      if (c) out.install.push(this.install(winner, c)); // send with the survivor
      out.events.push({
        event: 'dropped',
        peer: sa.peer!.id,
        vpnId: sa.peer!.vpnId,
        reason: simultaneous ? 'duplicate IKE SA from a simultaneous start' : 'replaced by a reauthenticated IKE SA',
        detail: { loser: loser.spiI.toString('hex') },
      });
      if (loser.role === 'initiator' || !simultaneous)
        this.deleteSa(loser, simultaneous ? 'duplicate' : 'reauthenticated', out);
    }
  }

  /**
   * The SA's timers: half-open expiry, a delete the peer never answered, permit expiry, reauthentication, rekeys,
   * liveness.
   */
  tick(sa: IkeSa, now: number, out: IkeOutput): void {
    const t = this.o.timers;
    if (sa.role === 'responder' && sa.state === 'init-done' && now >= sa.createdAt + t.halfOpenTimeout) {
      this.o.table.forget(sa);
      out.events.push({ event: 'dropped', reason: 'half-open IKE SA timed out' });
      return;
    }
    if (sa.state === 'deleting' && !sa.inFlight && now >= sa.lastHeardAt + 2 * t.dpdDelay)
      return this.o.table.forget(sa); // the peer never deleted it
    if (sa.state !== 'established') return;
    if (now >= sa.permitNotAfter + t.halfOpenTimeout) return this.deleteSa(sa, 'permit-expired', out);
    if (now >= this.reauthAt(sa) && !sa.reauthStarted) this.reauthenticate(sa, now, out);
    for (const c of [...sa.children]) {
      if (now >= c.expiresAt) this.removeChildren(sa, [c], 'lifetime-expired', out);
      else if (c.state === 'installed' && now >= c.rekeyAt) this.rekeyChild(sa, c, now, out);
    }
    if (now >= sa.rekeyAt && !sa.queue.some((q) => q.task === 'ike-rekey') && sa.inFlight?.task !== 'ike-rekey') {
      sa.rekeyAt = Infinity;
      this.rekeyIke(sa, now, out);
    }
    if (!sa.inFlight && sa.queue.length === 0 && now >= sa.lastHeardAt + t.dpdDelay) {
      this.o.exchanges.queue(
        sa,
        { task: 'liveness', exchange: ExchangeType.INFORMATIONAL, build: () => [], process: () => undefined },
        now,
        out,
      );
    }
  }

  /** When tick() next has work for this SA (its retransmissions are the exchange layer's). */
  deadline(sa: IkeSa): number {
    const t = this.o.timers;
    if (sa.role === 'responder' && sa.state === 'init-done') return sa.createdAt + t.halfOpenTimeout;
    if (sa.state !== 'established') return Infinity;
    let at = Math.min(this.reauthAt(sa), sa.permitNotAfter + t.halfOpenTimeout, sa.rekeyAt);
    if (!sa.inFlight && sa.queue.length === 0) at = Math.min(at, sa.lastHeardAt + t.dpdDelay);
    for (const c of sa.children) at = Math.min(at, c.expiresAt, c.state === 'installed' ? c.rekeyAt : Infinity);
    return at;
  }

  /**
   * Only the SA's initiator reauthenticates, ahead of the permit's end: 10 % of the time the SA
   * had left when it came up (2.4 h at most, 2 s at least). Authorities renew permits at 2/3 of
   * their validity, so the renewed ones are there by then.
   */
  private reauthAt(sa: IkeSa): number {
    if (sa.role !== 'initiator' || sa.reauthStarted || !Number.isFinite(sa.permitNotAfter)) return Infinity;
    return (
      sa.permitNotAfter -
      Math.max(2_000, Math.min(8_640_000, 0.1 * (sa.permitNotAfter - (sa.establishedAt ?? sa.createdAt))))
    );
  }

  /**
   * The permit that authorised this SA ends soon: authenticate anew with the permit our authority
   * delivered since (make before break); settleDuplicates then retires this SA.
   */
  private reauthenticate(sa: IkeSa, now: number, out: IkeOutput): void {
    sa.reauthStarted = true;
    const peer = this.o.peers().find((p) => p.id === sa.peer!.id && p.vpnId === sa.peer!.vpnId);
    // Only worth it when it can last longer: our own permit must have been renewed if it is the
    // one ending (refresh() looks again after each delivery); the peer's we learn by trying.
    const ownEnds = permitNotAfter(sa.peer!.permit) <= sa.permitNotAfter;
    if (peer && (!ownEnds || permitNotAfter(peer.permit) > sa.permitNotAfter)) this.o.table.start(peer, now, out);
  }

  private rekeyChild(sa: IkeSa, old: ChildSa, now: number, out: IkeOutput, group?: number): void {
    const task = createChildSaTask(
      'child-rekey',
      () => buildChildRekey(old, this.o, group),
      (state, inner, t, o) => {
        const r = processChildRekeyResponse(sa, { ...this.o, now: t }, state, inner);
        if (r.ok) {
          sa.children.push(r.child);
          o.install.push(this.install(sa, r.child));
          o.events.push({
            event: 'child-rekeyed',
            peer: sa.peer!.id,
            vpnId: sa.peer!.vpnId,
            detail: { old: old.inboundSpi, inbound: r.child.inboundSpi, outbound: r.child.outboundSpi },
          });
          this.deleteChildSas(sa, [old], 'rekeyed', t, o);
          return;
        }
        if (r.code === 'retry-group') return this.rekeyChild(sa, old, t, o, r.group);
        if (r.code === 'not-found') return this.removeChildren(sa, [old], 'unknown to the peer', o);
        // The peer's own rekey of this SA won, or it refused: try again later if the SA still needs it.
        if (old.state === 'rekeying') old.state = 'installed';
        old.rekeyAt = t + (r.code === 'retry-later' ? 10_000 : 60_000);
        o.events.push({ event: 'dropped', peer: sa.peer!.id, reason: `child rekey: ${r.reason}` });
      },
    );
    this.o.exchanges.queue(sa, task, now, out);
  }

  private rekeyIke(sa: IkeSa, now: number, out: IkeOutput): void {
    const task = createChildSaTask(
      'ike-rekey',
      () => buildIkeRekey(sa, this.o),
      (state, inner, t, o) => {
        const r = processIkeRekeyResponse(sa, { now: t }, state, inner);
        if (!r.ok) {
          sa.rekeyAt = t + (r.code === 'retry-later' ? 10_000 : 60_000);
          o.events.push({ event: 'dropped', peer: sa.peer!.id, reason: `IKE rekey: ${r.reason}` });
          return;
        }
        this.adoptRekeyed(sa, r.sa, t, o);
        // The rekey's initiator deletes the old IKE SA (its Child SAs live on in the new one).
        sa.state = 'deleting';
        this.o.exchanges.queue(
          sa,
          {
            task: 'delete-ike',
            exchange: ExchangeType.INFORMATIONAL,
            build: () => deleteIke(),
            process: () => this.o.table.forget(sa),
          },
          t,
          o,
        );
      },
    );
    this.o.exchanges.queue(sa, task, now, out);
  }

  /** An IKE rekey (either role) made `sa` to replace `old`: it joins the table with its own timers. */
  adoptRekeyed(old: IkeSa, sa: IkeSa, now: number, out: IkeOutput): void {
    sa.rekeyAt = this.ikeRekeyAt(sa, now);
    sa.lastHeardAt = now;
    sa.reauthStarted = old.reauthStarted;
    sa.createdAt = old.createdAt; // for duplicate detection the SA is as old as its first key
    this.o.table.add(sa);
    if (old.state === 'established') old.state = 'deleting';
    out.events.push({
      event: 'ike-rekeyed',
      peer: sa.peer!.id,
      vpnId: sa.peer!.vpnId,
      detail: { spiI: sa.spiI.toString('hex'), spiR: sa.spiR.toString('hex') },
    });
  }

  /** Deletes Child SAs we hold with the peer (INFORMATIONAL), removing them when it answers. */
  private deleteChildSas(sa: IkeSa, children: ChildSa[], reason: string, now: number, out: IkeOutput): void {
    this.o.exchanges.queue(
      sa,
      {
        task: 'delete-child',
        exchange: ExchangeType.INFORMATIONAL,
        build: () => deleteChildren(children),
        process: (_inner, _t, o) => this.removeChildren(sa, children, reason, o),
      },
      now,
      out,
    );
  }

  /** Deletes an IKE SA with its Child SAs: they go now, the peer is told (best effort, no retransmission). */
  deleteSa(sa: IkeSa, reason: string, out: IkeOutput): void {
    if (sa.hasKeys && sa.state === 'established')
      this.o.exchanges.sendOnce(sa, ExchangeType.INFORMATIONAL, deleteIke(), out);
    this.dead(sa, 'ike-down', reason, out);
  }

  /**
   * The initiator refused the responder's IKE_AUTH answer: the responder thinks the SA is up, so it is told (§2.21.2,
   * best effort).
   */
  refuseAuthAnswer(sa: IkeSa, childProblem: boolean, out: IkeOutput): void {
    this.o.exchanges.sendOnce(
      sa,
      ExchangeType.INFORMATIONAL,
      [notify(childProblem ? NotifyType.NO_PROPOSAL_CHOSEN : NotifyType.AUTHENTICATION_FAILED), ...deleteIke()],
      out,
    );
  }

  /** The SA is gone: its Child SAs leave the executor; a peer left without any gets the core told. */
  dead(sa: IkeSa, event: 'failed' | 'auth-failed' | 'ike-down', reason: string, out: IkeOutput, peerId?: string): void {
    const wasUp = sa.state === 'established' || sa.state === 'deleting';
    this.removeChildren(sa, [...sa.children], reason, out);
    this.o.table.forget(sa);
    const peer = peerId ?? sa.peer?.id;
    out.events.push({ event: wasUp ? 'ike-down' : event, peer, vpnId: sa.peer?.vpnId, reason });
    // An attempt that never came up: the core's waiting paths must hear it failed (unless another
    // SA with that peer is up or on its way).
    if (!wasUp && sa.peer && this.o.table.forPeer(sa.peer.id, sa.peer.vpnId).length === 0) {
      out.remove.push({ peer: sa.peer.id, vpnId: sa.peer.vpnId, inboundSpi: 0, outboundSpi: 0, last: true, reason });
    }
  }

  removeChildren(sa: IkeSa, children: ChildSa[], reason: string, out: IkeOutput): void {
    for (const c of children) {
      const i = sa.children.indexOf(c);
      if (i < 0) continue;
      sa.children.splice(i, 1);
      const peer = sa.peer!;
      // Not the last while another SA with the peer has a Child SA or is still being made (two
      // gateways that started at once: the duplicate goes while the other SA is completing).
      const last =
        sa.children.length === 0 &&
        !this.o.table
          .forPeer(peer.id, peer.vpnId)
          .some((s) => s !== sa && (s.children.length > 0 || s.state !== 'established'));
      out.remove.push({
        peer: peer.id,
        vpnId: peer.vpnId,
        inboundSpi: c.inboundSpi,
        outboundSpi: c.outboundSpi,
        last,
        reason,
      });
      out.events.push({
        event: 'child-down',
        peer: peer.id,
        vpnId: peer.vpnId,
        reason,
        detail: { inbound: c.inboundSpi, outbound: c.outboundSpi },
      });
    }
  }
}

/**
 * A CREATE_CHILD_SA request (a rekey) whose answer is processed with what building it kept: its nonce and its
 * Diffie-Hellman key pair.
 */
function createChildSaTask<S>(
  task: string,
  build: () => { inner: Payload[]; state: S },
  process: (state: S, inner: Payload[], now: number, out: IkeOutput) => void,
): ExchangeTask {
  let state: S;
  return {
    task,
    exchange: ExchangeType.CREATE_CHILD_SA,
    build: () => {
      const b = build();
      state = b.state;
      return b.inner;
    },
    process: (inner, now, out) => process(state, inner, now, out),
  };
}

// The replicas of one authority: `kasane authority serve` processes over one PostgreSQL database,
// each accepting administrators, enrollments and gateways (docs/authority.md, "Running several
// replicas"). Two things here keep them one authority:
//
// - The jobs lease. The cluster-wide jobs (scheduled rotations, local permits, the federation's
//   exchanges) run on one replica at a time: the holder of the lease `jobs` in the database. Each
//   replica claims it at every heartbeat; the holder extends it, another takes it only once it has
//   expired (its holder died or lost the database), so the jobs move to a survivor within one
//   lease. The lease is measured with the database's clock, and a holder stops considering itself
//   the holder a margin before the database would (its own clock measures from before the claim).
//   Jobs re-check inside their transaction (fencing) that this replica still holds the lease, and
//   every job's change re-checks that its work is still due there — writers serialise on the
//   version row — so a job never happens twice, even if a paused holder wakes up late.
// - Heartbeats: each replica records its URL, its waiting gateways and the version it has seen, for
//   `kasane authority replicas`.
//
// SQLite serves one process; the same code runs there with one replica that always holds the lease.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { AuthorityContext } from './context.js';
import { ApiError } from './errors.js';
import type { StoreOps } from './storage/types.js';
import type { ReplicaView } from './wire.js';

export const JOBS_LEASE = 'jobs';
export const DEFAULT_LEASE_MS = 10_000;
/** A lease holder gives up this share of the lease early (clock rates differ a little, requests take time). */
const SAFETY = 0.2;
/** Replicas not heard of for this long are forgotten. */
const FORGET_AFTER_MS = 24 * 3_600_000;

/**
 * Thrown inside a job's transaction when this replica no longer holds the jobs lease: the job's work is not committed.
 */
export class LeaseLost extends ApiError {
  constructor(holder: string | undefined) {
    super(409, 'lease-lost', `this replica no longer holds the jobs lease${holder ? ` (${holder} does)` : ''}`);
  }
}

export class Replicas {
  /** This process, as the other replicas and `kasane authority replicas` see it. */
  readonly id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private heldUntil = 0;
  private beats = 0;
  private readonly startedAt: number;
  private readonly onHold: (() => void)[] = [];

  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      /** How long a lease lasts without renewal (ms). */
      leaseMs: number;
      /** Gateways waiting on this replica's change stream. */
      waiting: () => number;
    },
  ) {
    this.startedAt = ctx.now();
  }

  /** Where this replica itself can be reached (its listen address), for the listing; default: the advertised URL. */
  ownUrl: (() => string) | undefined;

  get leaseMs(): number {
    return this.o.leaseMs;
  }

  /** How often `beat()` should run: several times per lease, so that one late beat does not lose it. */
  get heartbeatMs(): number {
    return Math.max(100, Math.floor(this.o.leaseMs / 5));
  }

  /** Does this replica hold the jobs lease now (by its own, conservative clock)? */
  get holdsJobs(): boolean {
    return performance.now() < this.heldUntil;
  }

  /** Called each time this replica becomes the holder of the jobs lease. */
  onJobs(listener: () => void): void {
    this.onHold.push(listener);
  }

  /** One heartbeat: claims or extends the jobs lease and records this replica's state. */
  async beat(): Promise<void> {
    const before = performance.now();
    const lease = await this.ctx.store.write(async (tx) => {
      const lease = await tx.claimLease(JOBS_LEASE, this.id, this.o.leaseMs);
      const now = await tx.clock();
      const state = await tx.state();
      await tx.putReplica({
        id: this.id,
        url: this.ownUrl?.() ?? this.ctx.identity().url,
        host: hostname(),
        pid: process.pid,
        startedAt: this.startedAt,
        seenAt: now,
        waiting: this.o.waiting(),
        version: state.version,
      });
      if (this.beats++ % 100 === 0) await tx.pruneReplicas(now - FORGET_AFTER_MS);
      return lease;
    });
    const held = this.holdsJobs;
    this.heldUntil = lease.holder === this.id ? before + this.o.leaseMs * (1 - SAFETY) : 0;
    if (!held && this.holdsJobs) {
      this.ctx.log?.info(
        { replica: this.id, term: lease.term },
        'this replica runs the cluster-wide jobs (it holds the jobs lease)',
      );
      for (const l of this.onHold) l();
    } else if (held && !this.holdsJobs) {
      this.ctx.log?.warn({ replica: this.id, holder: lease.holder }, 'this replica lost the jobs lease');
    }
  }

  /** Fencing, inside a job's transaction: refuses to commit unless this replica still holds the jobs lease. */
  async assertHoldsJobs(tx: StoreOps): Promise<void> {
    const lease = await tx.getLease(JOBS_LEASE);
    if (!lease || lease.holder !== this.id || lease.expiresAt <= (await tx.clock())) {
      this.heldUntil = 0;
      throw new LeaseLost(lease?.holder);
    }
  }

  /** Every replica that has recently been heard of, with the one that runs the jobs. */
  async list(): Promise<ReplicaView[]> {
    const { rows, lease, now } = await this.ctx.store.read(async (tx) => ({
      rows: await tx.listReplicas(),
      lease: await tx.getLease(JOBS_LEASE),
      now: await tx.clock(),
    }));
    return rows.map((r) => ({
      id: r.id,
      url: r.url,
      host: r.host,
      pid: r.pid,
      startedAt: r.startedAt,
      lastSeen: r.seenAt,
      alive: now - r.seenAt < this.o.leaseMs,
      runsJobs: lease?.holder === r.id && lease.expiresAt > now,
      waitingGateways: r.waiting,
      version: r.version,
      self: r.id === this.id,
    }));
  }

  /** A clean stop: hands the lease back at once and leaves the list. */
  async stop(): Promise<void> {
    this.heldUntil = 0;
    await this.ctx.store
      .write(async (tx) => {
        await tx.releaseLease(JOBS_LEASE, this.id);
        await tx.deleteReplica(this.id);
      })
      .catch((e) =>
        this.ctx.log?.warn({ err: (e as Error).message }, 'could not hand back the jobs lease; it expires on its own'),
      );
  }
}

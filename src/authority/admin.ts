// Administration: the administrators' tokens (created, listed without secrets, revoked — never the
// last one — and checked on every request), the audit log of who changed what, and the authority's
// status at a glance.
import type { ChangeStream } from './change-stream.js';
import type { AuthorityContext } from './context.js';
import { conflict, must, notFound, unauthorized } from './errors.js';
import { newToken, parseToken, secretMatches } from './tokens.js';
import type { AuditFilter } from './storage/types.js';
import { checkName } from './validate.js';
import type { AdminTokenInfo, AuditEntry, StatusView } from './wire.js';

export type AuditQuery = Omit<AuditFilter, 'limit'> & { limit?: number };

export class Administration {
  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: {
      /** When this process started serving (the status shows it). */
      startedAt: number;
      changeStream: ChangeStream;
    },
  ) {}

  async status(): Promise<StatusView> {
    const { state, vpns, gateways, memberships } = await this.ctx.store.read(async (tx) => ({
      state: await tx.state(),
      vpns: await tx.listVpns(),
      gateways: await tx.listGateways(),
      memberships: await tx.listMemberPrefixes({}),
    }));
    const count = { pending: 0, active: 0, revoked: 0 };
    for (const g of gateways) count[g.status]++;
    const identity = this.ctx.identity();
    return {
      authority: state.authority,
      url: identity.url,
      version: state.version,
      store: this.ctx.store.kind,
      schemaVersion: await this.ctx.store.schemaVersion(),
      caFingerprint: identity.caFingerprint,
      vpns: vpns.length,
      memberships: new Set(memberships.map((m) => `${m.vpnId}\u0000${m.gateway}`)).size,
      gateways: count,
      waitingGateways: this.o.changeStream.waiting,
      now: this.ctx.now(),
      startedAt: this.o.startedAt,
    };
  }

  /** Audit entries, oldest first (newest first with order 'desc'), filtered; at most 1000 at a time. */
  async audit(q: AuditQuery): Promise<AuditEntry[]> {
    const rows = await this.ctx.store.read((tx) => tx.listAudit({ ...q, limit: Math.min(q.limit ?? 100, 1000) }));
    return rows.map((r) => ({
      id: r.id,
      version: r.version,
      at: r.at,
      actor: r.actor,
      action: r.action,
      vpn: r.vpn,
      gateway: r.gateway,
      detail: r.detail,
    }));
  }

  /** A new administrator token; its secret is returned once and stored only as a hash. */
  async createToken(actor: string, name: string): Promise<{ token: string; info: AdminTokenInfo }> {
    const n = must(checkName('token', name));
    const t = newToken('admin', this.ctx.random);
    const createdAt = await this.ctx.change(actor, async (c) => {
      await c.tx.insertAdminToken({ id: t.id, name: n, secretHash: t.secretHash, createdAt: c.now, revokedAt: null });
      c.audit('admin-token.create', { scope: 'none', detail: { id: t.id, name: n } });
      return c.now;
    });
    return { token: t.token, info: { id: t.id, name: n, createdAt, revokedAt: null } };
  }

  async listTokens(): Promise<AdminTokenInfo[]> {
    return (await this.ctx.store.read((tx) => tx.listAdminTokens())).map((t) => ({
      id: t.id,
      name: t.name,
      createdAt: t.createdAt,
      revokedAt: t.revokedAt,
    }));
  }

  async revokeToken(actor: string, id: string): Promise<void> {
    await this.ctx.change(actor, async (c) => {
      const tokens = await c.tx.listAdminTokens();
      const t = tokens.find((x) => x.id === id);
      if (!t) throw notFound('unknown-token', `there is no administrator token ${id}`);
      if (t.revokedAt !== null) throw conflict('already-revoked', `administrator token ${id} is already revoked`);
      // Nobody could administer the authority any more (short of its data directory).
      if (tokens.filter((x) => x.revokedAt === null).length === 1)
        throw conflict(
          'last-admin-token',
          'refusing to revoke the last administrator token (create another one first)',
        );
      await c.tx.revokeAdminToken(id, c.now);
      c.audit('admin-token.revoke', { scope: 'none', detail: { id, name: t.name } });
    });
  }

  /** Checks an `Authorization` header; returns the actor name for the audit log. */
  async authenticate(header: string | undefined): Promise<string> {
    if (!header)
      throw unauthorized('unauthorized', 'administrator token required (Authorization: Bearer kasane-admin-v1....)');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('unauthorized', 'the Authorization header must be "Bearer <token>"');
    const t = parseToken('admin', m[1]);
    if (!t)
      throw unauthorized('bad-token', 'the administrator token is malformed (expected kasane-admin-v1.<id>.<secret>)');
    const row = await this.ctx.store.read((tx) => tx.getAdminToken(t.id));
    if (!row || !secretMatches(row.secretHash, t.secret))
      throw unauthorized('bad-token', 'the administrator token is not valid');
    if (row.revokedAt !== null) throw unauthorized('token-revoked', `the administrator token ${row.id} was revoked`);
    return `admin:${row.name}`;
  }
}

// The gateway registry: a gateway is registered (pending) with its outside address, becomes active
// when it enrolls (enrollment.ts), and may be revoked. An active gateway's address is part of
// every delivery of its VPNs' members; a revoked one loses its keys and its VPNs re-key at once.
import { fingerprint } from '../pki/keys.js';
import type { AuthorityContext } from './context.js';
import type { Epochs } from './epochs.js';
import { Unchanged } from './change.js';
import { conflict, must } from './errors.js';
import { activeMemberNames, gatewayOrThrow, vpnIdsOf } from './lookups.js';
import { summarise } from './reports.js';
import type { CertificateRow, GatewayReportRow, GatewayRow } from './storage/types.js';
import { checkAddress, checkName } from './validate.js';
import type { CertificateInfo, GatewayInfo } from './wire.js';

/** Why a gateway is revoked: `compromised` puts key-compromise on the CRL (else cessation of operation). */
export interface Revocation {
  reason?: string;
  compromised?: boolean;
}

export class Gateways {
  constructor(
    private readonly ctx: AuthorityContext,
    private readonly o: { epochs: Epochs },
  ) {}

  async add(actor: string, p: { name: string; address: string }): Promise<GatewayInfo> {
    const name = must(checkName('gateway', p.name));
    const address = must(checkAddress(p.address));
    await this.ctx.change(actor, async (c) => {
      if (await c.tx.getGateway(name))
        throw conflict('gateway-exists', `a gateway named ${JSON.stringify(name)} already exists`);
      await c.tx.insertGateway({
        name,
        address,
        status: 'pending',
        certSerial: null,
        publicKey: null,
        changedVersion: c.version,
        createdAt: c.now,
        enrolledAt: null,
        revokedAt: null,
        revokeReason: null,
      });
      c.audit('gateway.add', { gateway: name, scope: 'none', detail: { address } });
    });
    return this.get(name);
  }

  /** A new outside address: every member of an active gateway's VPNs hears of it. */
  async update(actor: string, name: string, p: { address?: string }): Promise<GatewayInfo> {
    const address = p.address === undefined ? undefined : must(checkAddress(p.address));
    await this.ctx.change(actor, async (c) => {
      const g = await gatewayOrThrow(c.tx, name);
      if (address === undefined || address === g.address) throw new Unchanged(undefined);
      await c.tx.updateGateway(name, { address });
      const vpnIds = await vpnIdsOf(c.tx, name);
      c.touch([name]);
      c.audit('gateway.update', { gateway: name, scope: 'gateway', detail: { address, previous: g.address } });
      if (g.status !== 'active') return;
      for (const id of vpnIds) {
        c.vpnsChanged.add(id);
        c.touch(await activeMemberNames(c.tx, id));
        const v = (await c.tx.getVpnById(id))!;
        c.audit('member.address', { vpn: v, gateway: name, scope: 'vpn', detail: { address } });
      }
    });
    return this.get(name);
  }

  async list(): Promise<GatewayInfo[]> {
    return this.ctx.store.read(async (tx) => {
      const vpns = new Map((await tx.listVpns()).map((v) => [v.id, v.name]));
      const byGateway = new Map<string, Set<string>>();
      for (const m of await tx.listMemberPrefixes({})) {
        const set = byGateway.get(m.gateway) ?? new Set<string>();
        set.add(vpns.get(m.vpnId)!);
        byGateway.set(m.gateway, set);
      }
      const reports = new Map((await tx.listGatewayReports()).map((r) => [r.gateway, r]));
      const out: GatewayInfo[] = [];
      for (const g of await tx.listGateways()) {
        const cert = g.certSerial ? await tx.getCertificate(g.certSerial) : undefined;
        out.push(gatewayInfo(g, cert, [...(byGateway.get(g.name) ?? [])], reports.get(g.name), this.ctx.now()));
      }
      return out;
    });
  }

  async get(name: string): Promise<GatewayInfo> {
    return this.ctx.store.read(async (tx) => {
      const g = await gatewayOrThrow(tx, name);
      const cert = g.certSerial ? await tx.getCertificate(g.certSerial) : undefined;
      const names: string[] = [];
      for (const id of await vpnIdsOf(tx, name)) names.push((await tx.getVpnById(id))!.name);
      return gatewayInfo(g, cert, names, await tx.getGatewayReport(name), this.ctx.now());
    });
  }

  /**
   * Revokes a gateway: its certificate goes on the CRL, it stops authenticating, it loses its
   * SPIs and sealed keys, and every VPN it was in rotates at once. Its memberships stay configured
   * (its prefixes stay in the directory, so nobody falls back to plain toward them); a later
   * re-enrollment brings it back into them.
   */
  async revoke(actor: string, name: string, p: Revocation): Promise<GatewayInfo> {
    await this.ctx.change(actor, async (c) => {
      const g = await gatewayOrThrow(c.tx, name);
      if (g.status === 'revoked') throw conflict('already-revoked', `gateway ${name} is already revoked`);
      const reason = p.compromised ? 'key-compromise' : 'cessation-of-operation';
      if (g.certSerial) {
        await c.tx.revokeCertificate(g.certSerial, c.now, reason);
        c.crlChanged = true;
      }
      if (g.ikeCertSerial) await c.tx.revokeCertificate(g.ikeCertSerial, c.now, reason);
      await c.tx.updateGateway(name, {
        status: 'revoked',
        ikeCertSerial: null,
        revokedAt: c.now,
        revokeReason: p.reason ?? reason,
      });
      c.touch([name]);
      c.audit('gateway.revoke', {
        gateway: name,
        scope: 'gateway',
        detail: { reason: p.reason ?? null, compromised: Boolean(p.compromised), serial: g.certSerial },
      });
      if (g.status !== 'active') return;
      for (const id of await vpnIdsOf(c.tx, name)) {
        const v = (await c.tx.getVpnById(id))!;
        await c.tx.deleteSealedKeys({ vpnId: id, gateway: name });
        await c.tx.deleteSpis({ vpnId: id, gateway: name });
        c.vpnsChanged.add(id);
        if (v.mode === 'group') await this.o.epochs.rotateIn(c, v, 'urgent');
        else c.touch(await activeMemberNames(c.tx, id));
      }
    });
    return this.get(name);
  }
}

function gatewayInfo(
  g: GatewayRow,
  cert: CertificateRow | undefined,
  vpns: string[],
  report: GatewayReportRow | undefined,
  now: number,
): GatewayInfo {
  const certificate: CertificateInfo | null = cert
    ? {
        serial: cert.serial,
        fingerprint: fingerprint(cert.der),
        issuedAt: cert.issuedAt,
        notAfter: cert.notAfter,
        method: cert.method,
        revokedAt: cert.revokedAt,
        revokeReason: cert.revokeReason,
      }
    : null;
  return {
    name: g.name,
    address: g.address,
    status: g.status,
    certificate,
    vpns,
    createdAt: g.createdAt,
    enrolledAt: g.enrolledAt,
    revokedAt: g.revokedAt,
    revokeReason: g.revokeReason,
    lastReport: report ? summarise(report, now) : null,
  };
}

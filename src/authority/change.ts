// One change to the authority's state while its transaction runs: what it wrote is in `tx`; here
// is what must follow from it. `flush()` writes, in the same transaction, the versions of the VPNs
// and gateways whose delivery changed and the audit rows; after the commit, the facade
// (service.ts) wakes those gateways' change streams, refreshes the CRLs if a certificate was
// revoked, and tells the peer authorities.
import type { AuditScope, NewAuditRow, StoreOps, VpnRow } from './storage/types.js';

/**
 * Thrown inside a change when the request turns out to change nothing (a prefix the membership
 * already has, the address the gateway already has): the transaction, and with it the version it
 * took, is rolled back, and the caller gets `result`. So the version advances only with an audit
 * entry (issue 11).
 */
export class Unchanged<T> {
  constructor(readonly result: T) {}
}

export class Change {
  touched = new Set<string>();
  all = false;
  directoryChanged = false;
  readonly directoryAdded: string[] = [];
  readonly directoryRemoved: string[] = [];
  crlChanged = false;
  readonly vpnsChanged = new Set<number>();
  readonly auditRows: NewAuditRow[] = [];

  constructor(
    readonly tx: StoreOps,
    readonly version: number,
    readonly actor: string,
    readonly now: number,
  ) {}

  touch(names: Iterable<string>): void {
    for (const n of names) this.touched.add(n);
  }

  audit(
    action: string,
    a: { vpn?: VpnRow; gateway?: string; scope: AuditScope; detail?: Record<string, unknown> },
  ): void {
    this.auditRows.push({
      version: this.version,
      at: this.now,
      actor: this.actor,
      action,
      vpnId: a.vpn?.id ?? null,
      vpn: a.vpn?.name ?? null,
      gateway: a.gateway ?? null,
      scope: a.scope,
      detail: a.detail ?? {},
    });
  }

  async flush(): Promise<void> {
    if (this.vpnsChanged.size) await this.tx.setVpnsChanged([...this.vpnsChanged], this.version);
    // A directory change concerns every gateway: they compare their cursor with the directory's
    // version at read time, so no per-gateway row is written for it.
    if (this.directoryChanged) {
      await this.tx.setDirectoryVersion(this.version);
      this.all = true;
      // Every gateway hears of it in its events, whatever VPN the change was about.
      if (!this.auditRows.some((r) => r.scope === 'all')) {
        this.audit('directory.change', {
          scope: 'all',
          detail: { added: this.directoryAdded, removed: this.directoryRemoved },
        });
      }
    }
    // Every replica rebuilds its CRLs when this moves (its TLS layer then refuses the certificate too).
    if (this.crlChanged) await this.tx.setCrlVersion(this.version);
    if (this.touched.size) await this.tx.touchGateways([...this.touched], this.version);
    if (this.auditRows.length) await this.tx.insertAudit(this.auditRows);
  }
}

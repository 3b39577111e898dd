// The storage operations in SQL that both SQLite and PostgreSQL run unchanged. Statements use `?`
// placeholders (the PostgreSQL driver numbers them) and alias columns to the row fields.
import type {
  AdminTokenRow,
  AuditFilter,
  AuditRow,
  CertificateRow,
  GatewayReportRow,
  SessionRow,
  DirectoryRow,
  EnrollTokenRow,
  EpochRow,
  GatewayRow,
  MemberPrefixRow,
  NewAuditRow,
  SealedKeyRow,
  SpiRow,
  StateRow,
  StoreOps,
  VpnRow,
  PeerRow,
  ShareRow,
  ForeignMemberRow,
  PermitRow,
  LeaseRow,
  ReplicaRow,
} from './types.js';

export interface SqlExec {
  readonly dialect: 'sqlite' | 'postgres';
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

/** Largest SPI: SPIs are unsigned 32-bit. */
export const MAX_SPI = 0xffffffff;
/** Rows per multi-row INSERT / IN list (SQLite; PostgreSQL takes arrays). */
const CHUNK = 200;

/**
 * PostgreSQL types of the columns that inserts of many rows send as one array each (INSERT ... SELECT FROM unnest):
 * one statement for a whole rotation's rows instead of one per chunk of a few thousand numbered parameters.
 */
const ARRAY_TYPES: Record<string, 'bigint' | 'text' | 'bytea'> = {
  vpn_id: 'bigint',
  epoch: 'bigint',
  gateway: 'text',
  enc: 'bytea',
  ct: 'bytea',
  spi: 'bigint',
  wrapped_key: 'bytea',
  active_from: 'bigint',
  expires_at: 'bigint',
  created_at: 'bigint',
  version: 'bigint',
  at: 'bigint',
  actor: 'text',
  action: 'text',
  vpn: 'text',
  scope: 'text',
  detail: 'text',
  prefix: 'text',
  added_at: 'bigint',
};

function cols(map: Record<string, string>): string {
  return Object.entries(map)
    .map(([field, col]) => `${col} AS "${field}"`)
    .join(', ');
}

const VPN = {
  id: 'id',
  name: 'name',
  mode: 'mode',
  rotationPeriodMs: 'rotation_period_ms',
  nextRotationAt: 'next_rotation_at',
  lastEpoch: 'last_epoch',
  changedVersion: 'changed_version',
  createdAt: 'created_at',
};
const GATEWAY = {
  name: 'name',
  address: 'address',
  status: 'status',
  certSerial: 'cert_serial',
  publicKey: 'public_key',
  changedVersion: 'changed_version',
  createdAt: 'created_at',
  enrolledAt: 'enrolled_at',
  revokedAt: 'revoked_at',
  revokeReason: 'revoke_reason',
  ikeCertSerial: 'ike_cert_serial',
};
const CERT = {
  serial: 'serial',
  gateway: 'gateway',
  der: 'der',
  issuedAt: 'issued_at',
  notAfter: 'not_after',
  method: 'method',
  revokedAt: 'revoked_at',
  revokeReason: 'revoke_reason',
};
const MEMBER = { vpnId: 'vpn_id', gateway: 'gateway', prefix: 'prefix', addedAt: 'added_at' };
const DIRECTORY = { prefix: 'prefix', note: 'note', addedAt: 'added_at' };
const EPOCH = {
  vpnId: 'vpn_id',
  epoch: 'epoch',
  wrappedKey: 'wrapped_key',
  activeFrom: 'active_from',
  expiresAt: 'expires_at',
  createdAt: 'created_at',
};
const SEALED = { vpnId: 'vpn_id', epoch: 'epoch', gateway: 'gateway', enc: 'enc', ct: 'ct' };
const SPI = { spi: 'spi', vpnId: 'vpn_id', gateway: 'gateway', epoch: 'epoch' };
const ENROLL = {
  id: 'id',
  secretHash: 'secret_hash',
  gateway: 'gateway',
  replaceCert: 'replace_cert',
  createdAt: 'created_at',
  expiresAt: 'expires_at',
  usedAt: 'used_at',
  createdBy: 'created_by',
};
const ADMIN = { id: 'id', name: 'name', secretHash: 'secret_hash', createdAt: 'created_at', revokedAt: 'revoked_at' };
const PEER = {
  name: 'name',
  url: 'url',
  rootPem: 'root_pem',
  addedAt: 'added_at',
  lastSyncAt: 'last_sync_at',
  lastError: 'last_error',
};
const SHARE = { vpnId: 'vpn_id', peer: 'peer', addedAt: 'added_at' };
const FOREIGN = {
  vpnId: 'vpn_id',
  peer: 'peer',
  gateway: 'gateway',
  address: 'address',
  prefixes: 'prefixes',
  certDer: 'cert_der',
  updatedAt: 'updated_at',
};
const PERMIT = {
  vpnId: 'vpn_id',
  peer: 'peer',
  holder: 'holder',
  direction: 'direction',
  der: 'der',
  notAfter: 'not_after',
  holderFingerprint: 'holder_fingerprint',
};
const LEASE = { name: 'name', holder: 'holder', expiresAt: 'expires_at', term: 'term' };
const REPLICA = {
  id: 'id',
  url: 'url',
  host: 'host',
  pid: 'pid',
  startedAt: 'started_at',
  seenAt: 'seen_at',
  waiting: 'waiting',
  version: 'version',
};
const SESSION = {
  idHash: 'id_hash',
  tokenId: 'token_id',
  csrf: 'csrf',
  createdAt: 'created_at',
  lastSeenAt: 'last_seen_at',
  expiresAt: 'expires_at',
};
const REPORT = { gateway: 'gateway', receivedAt: 'received_at', report: 'report' };
const AUDIT = {
  id: 'id',
  version: 'version',
  at: 'at',
  actor: 'actor',
  action: 'action',
  vpnId: 'vpn_id',
  vpn: 'vpn',
  gateway: 'gateway',
  scope: 'scope',
  detail: 'detail',
};

function placeholders(n: number): string {
  return new Array(n).fill('?').join(', ');
}

function chunks<T>(list: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

function bytes(b: unknown): Uint8Array {
  return b instanceof Uint8Array ? b : new Uint8Array(b as ArrayBuffer);
}

export class SqlOps implements StoreOps {
  /** The version this transaction took (bumpVersion), if it took one: the store then tells the other replicas. */
  versionTaken: number | undefined;

  constructor(private readonly db: SqlExec) {}

  /**
   * Runs `query` for the distinct `keys` with `isIn`, the condition that follows a column name, and its parameters:
   * on PostgreSQL once, with `= ANY(?)` and the keys as one array; on SQLite once per chunk, with an IN list.
   */
  private async forKeys<R, K>(
    keys: readonly K[],
    query: (isIn: string, params: unknown[]) => Promise<R>,
  ): Promise<R[]> {
    const distinct = [...new Set(keys)];
    if (distinct.length === 0) return [];
    if (this.db.dialect === 'postgres') return [await query(' = ANY(?)', [distinct])];
    const out: R[] = [];
    for (const part of chunks(distinct)) out.push(await query(` IN (${placeholders(part.length)})`, part));
    return out;
  }

  /** forKeys for a query of rows: their concatenation. */
  private async inKeys<T, K>(
    keys: readonly K[],
    query: (isIn: string, params: unknown[]) => Promise<T[]>,
  ): Promise<T[]> {
    return (await this.forKeys(keys, query)).flat();
  }

  private async insert(table: string, map: Record<string, string>, rows: readonly object[]): Promise<void> {
    const fields = Object.keys(map);
    const columns = fields.map((f) => map[f]);
    if (this.db.dialect === 'postgres' && rows.length > 1 && columns.every((c) => ARRAY_TYPES[c])) {
      await this.db.run(
        `INSERT INTO ${table} (${columns.join(', ')}) SELECT * FROM unnest(${columns.map((c) => `?::${ARRAY_TYPES[c]}[]`).join(', ')})`,
        fields.map((f) => rows.map((r) => (r as Record<string, unknown>)[f] ?? null)),
      );
      return;
    }
    for (const part of chunks(rows)) {
      const values = part.map(() => `(${placeholders(fields.length)})`).join(', ');
      const params = part.flatMap((r) => fields.map((f) => (r as Record<string, unknown>)[f] ?? null));
      await this.db.run(`INSERT INTO ${table} (${fields.map((f) => map[f]).join(', ')}) VALUES ${values}`, params);
    }
  }

  private async update(
    table: string,
    map: Record<string, string>,
    key: string,
    keyValue: unknown,
    patch: object,
  ): Promise<void> {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return;
    await this.db.run(`UPDATE ${table} SET ${entries.map(([f]) => `${map[f]} = ?`).join(', ')} WHERE ${key} = ?`, [
      ...entries.map(([, v]) => v),
      keyValue,
    ]);
  }

  async initState(authority: string, now: number): Promise<boolean> {
    const n = await this.db.run(
      'INSERT INTO state (id, authority, version, next_spi, directory_version, created_at) VALUES (1, ?, 1, 256, 1, ?) ON CONFLICT (id) DO NOTHING',
      [authority, now],
    );
    return n === 1;
  }

  async state(): Promise<StateRow> {
    const r = await this.db.get<StateRow>(
      'SELECT authority AS "authority", version AS "version", next_spi AS "nextSpi", directory_version AS "directoryVersion", crl_version AS "crlVersion", created_at AS "createdAt" FROM state WHERE id = 1',
    );
    if (!r) throw new Error('the authority database is not initialised (no state row)');
    return r;
  }

  async bumpVersion(): Promise<number> {
    const r = await this.db.get<{ version: number }>(
      'UPDATE state SET version = version + 1 WHERE id = 1 RETURNING version AS "version"',
    );
    if (!r) throw new Error('the authority database is not initialised (no state row)');
    this.versionTaken = r.version;
    return r.version;
  }

  async allocSpis(count: number): Promise<number> {
    const r = await this.db.get<{ next: number }>(
      'UPDATE state SET next_spi = next_spi + ? WHERE id = 1 RETURNING next_spi AS "next"',
      [count],
    );
    const first = r!.next - count;
    if (r!.next - 1 > MAX_SPI) throw new Error('the SPI space (32 bits) is exhausted');
    return first;
  }

  async setDirectoryVersion(version: number): Promise<void> {
    await this.db.run('UPDATE state SET directory_version = ? WHERE id = 1', [version]);
  }

  async setCrlVersion(version: number): Promise<void> {
    await this.db.run('UPDATE state SET crl_version = ? WHERE id = 1', [version]);
  }

  // --- VPNs

  insertVpn(row: VpnRow): Promise<void> {
    return this.insert('vpns', VPN, [row]);
  }

  async advanceEpochs(ids: readonly number[], now: number): Promise<void> {
    await this.forKeys(ids, (isIn, keys) =>
      this.db.run(
        `UPDATE vpns SET last_epoch = last_epoch + 1, next_rotation_at = CASE WHEN rotation_period_ms > 0 THEN ? + rotation_period_ms ELSE NULL END WHERE id${isIn}`,
        [now, ...keys],
      ),
    );
  }

  async setVpnsChanged(ids: readonly number[], version: number): Promise<void> {
    await this.forKeys(ids, (isIn, keys) =>
      this.db.run(`UPDATE vpns SET changed_version = ? WHERE id${isIn}`, [version, ...keys]),
    );
  }

  async deleteVpn(id: number): Promise<void> {
    await this.db.run('DELETE FROM sealed_keys WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM spis WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM key_epochs WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM member_prefixes WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM permits WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM foreign_members WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM shares WHERE vpn_id = ?', [id]);
    await this.db.run('DELETE FROM vpns WHERE id = ?', [id]);
  }

  getVpnByName(name: string): Promise<VpnRow | undefined> {
    return this.db.get<VpnRow>(`SELECT ${cols(VPN)} FROM vpns WHERE name = ?`, [name]);
  }

  getVpnById(id: number): Promise<VpnRow | undefined> {
    return this.db.get<VpnRow>(`SELECT ${cols(VPN)} FROM vpns WHERE id = ?`, [id]);
  }

  getVpnsByIds(ids: readonly number[]): Promise<VpnRow[]> {
    return this.inKeys(ids, (isIn, keys) => this.db.all<VpnRow>(`SELECT ${cols(VPN)} FROM vpns WHERE id${isIn}`, keys));
  }

  listVpns(): Promise<VpnRow[]> {
    return this.db.all<VpnRow>(`SELECT ${cols(VPN)} FROM vpns ORDER BY id`);
  }

  dueRotations(now: number): Promise<VpnRow[]> {
    return this.db.all<VpnRow>(
      `SELECT ${cols(VPN)} FROM vpns WHERE mode = 'group' AND next_rotation_at IS NOT NULL AND next_rotation_at <= ? ORDER BY id`,
      [now],
    );
  }

  // --- gateways

  insertGateway(row: GatewayRow): Promise<void> {
    return this.insert('gateways', GATEWAY, [row]);
  }

  updateGateway(name: string, patch: Partial<Omit<GatewayRow, 'name'>>): Promise<void> {
    return this.update('gateways', GATEWAY, 'name', name, patch);
  }

  async getGateway(name: string): Promise<GatewayRow | undefined> {
    const r = await this.db.get<GatewayRow>(`SELECT ${cols(GATEWAY)} FROM gateways WHERE name = ?`, [name]);
    if (r && r.publicKey) r.publicKey = bytes(r.publicKey);
    return r;
  }

  async getGateways(names: readonly string[]): Promise<GatewayRow[]> {
    const rows = await this.inKeys(names, (isIn, keys) =>
      this.db.all<GatewayRow>(`SELECT ${cols(GATEWAY)} FROM gateways WHERE name${isIn}`, keys),
    );
    for (const r of rows) if (r.publicKey) r.publicKey = bytes(r.publicKey);
    return rows;
  }

  async listGateways(): Promise<GatewayRow[]> {
    const rows = await this.db.all<GatewayRow>(`SELECT ${cols(GATEWAY)} FROM gateways ORDER BY name`);
    for (const r of rows) if (r.publicKey) r.publicKey = bytes(r.publicKey);
    return rows;
  }

  async touchGateways(names: readonly string[], version: number): Promise<void> {
    await this.forKeys(names, (isIn, keys) =>
      this.db.run(`UPDATE gateways SET changed_version = ? WHERE name${isIn}`, [version, ...keys]),
    );
  }

  gatewaysChangedAfter(version: number): Promise<{ name: string; changedVersion: number }[]> {
    return this.db.all(
      'SELECT name AS "name", changed_version AS "changedVersion" FROM gateways WHERE changed_version > ?',
      [version],
    );
  }

  // --- certificates

  insertCertificate(row: CertificateRow): Promise<void> {
    return this.insert('certificates', CERT, [row]);
  }

  async getCertificate(serial: string): Promise<CertificateRow | undefined> {
    const r = await this.db.get<CertificateRow>(`SELECT ${cols(CERT)} FROM certificates WHERE serial = ?`, [serial]);
    if (r) r.der = bytes(r.der);
    return r;
  }

  async revokeCertificate(serial: string, at: number, reason: string): Promise<void> {
    await this.db.run(
      'UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE serial = ? AND revoked_at IS NULL',
      [at, reason, serial],
    );
  }

  async listRevokedCertificates(notAfterAfter: number): Promise<CertificateRow[]> {
    const rows = await this.db.all<CertificateRow>(
      `SELECT ${cols(CERT)} FROM certificates WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY revoked_at`,
      [notAfterAfter],
    );
    for (const r of rows) r.der = bytes(r.der);
    return rows;
  }

  async listCertificates(gateway: string): Promise<CertificateRow[]> {
    const rows = await this.db.all<CertificateRow>(
      `SELECT ${cols(CERT)} FROM certificates WHERE gateway = ? ORDER BY issued_at`,
      [gateway],
    );
    for (const r of rows) r.der = bytes(r.der);
    return rows;
  }

  // --- memberships and the directory

  listMemberPrefixes(filter: { vpnId?: number; gateway?: string }): Promise<MemberPrefixRow[]> {
    const { where, params } = whereVpnGateway(filter);
    return this.db.all<MemberPrefixRow>(
      `SELECT ${cols(MEMBER)} FROM member_prefixes ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY vpn_id, gateway, prefix`,
      params,
    );
  }

  listMemberPrefixesOf(gateways: readonly string[]): Promise<MemberPrefixRow[]> {
    return this.inKeys(gateways, (isIn, keys) =>
      this.db.all<MemberPrefixRow>(`SELECT ${cols(MEMBER)} FROM member_prefixes WHERE gateway${isIn}`, keys),
    );
  }

  async listVpnMembers(
    vpnId: number,
  ): Promise<(MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>)[]> {
    const rows = await this.db.all<MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>>(
      `SELECT m.vpn_id AS "vpnId", m.gateway AS "gateway", m.prefix AS "prefix", m.added_at AS "addedAt",
              g.status AS "status", g.address AS "address", g.public_key AS "publicKey"
         FROM member_prefixes m JOIN gateways g ON g.name = m.gateway WHERE m.vpn_id = ? ORDER BY m.gateway, m.prefix`,
      [vpnId],
    );
    for (const r of rows) if (r.publicKey) r.publicKey = bytes(r.publicKey);
    return rows;
  }

  async listVpnMembersOf(
    vpnIds: readonly number[],
  ): Promise<(MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>)[]> {
    const rows = await this.inKeys(vpnIds, (isIn, keys) =>
      this.db.all<MemberPrefixRow & Pick<GatewayRow, 'status' | 'address' | 'publicKey'>>(
        `SELECT m.vpn_id AS "vpnId", m.gateway AS "gateway", m.prefix AS "prefix", m.added_at AS "addedAt",
                g.status AS "status", g.address AS "address", g.public_key AS "publicKey"
           FROM member_prefixes m JOIN gateways g ON g.name = m.gateway WHERE m.vpn_id${isIn} ORDER BY m.vpn_id, m.gateway, m.prefix`,
        keys,
      ),
    );
    for (const r of rows) if (r.publicKey) r.publicKey = bytes(r.publicKey);
    return rows;
  }

  insertMemberPrefixes(rows: readonly MemberPrefixRow[]): Promise<void> {
    return this.insert('member_prefixes', MEMBER, rows);
  }

  async deleteMemberPrefixes(vpnId: number, gateway: string, prefixes?: readonly string[]): Promise<void> {
    if (prefixes === undefined) {
      await this.db.run('DELETE FROM member_prefixes WHERE vpn_id = ? AND gateway = ?', [vpnId, gateway]);
      return;
    }
    for (const part of chunks(prefixes)) {
      await this.db.run(
        `DELETE FROM member_prefixes WHERE vpn_id = ? AND gateway = ? AND prefix IN (${placeholders(part.length)})`,
        [vpnId, gateway, ...part],
      );
    }
  }

  async countPrefixUses(prefix: string): Promise<number> {
    const a = await this.db.get<{ n: number }>('SELECT COUNT(*) AS "n" FROM member_prefixes WHERE prefix = ?', [
      prefix,
    ]);
    const b = await this.db.get<{ n: number }>('SELECT COUNT(*) AS "n" FROM directory WHERE prefix = ?', [prefix]);
    return Number(a?.n ?? 0) + Number(b?.n ?? 0);
  }

  async listAllPrefixes(): Promise<string[]> {
    const rows = await this.db.all<{ prefix: string }>(
      'SELECT prefix AS "prefix" FROM member_prefixes UNION SELECT prefix AS "prefix" FROM directory',
    );
    return rows.map((r) => r.prefix);
  }

  listDirectory(): Promise<DirectoryRow[]> {
    return this.db.all<DirectoryRow>(`SELECT ${cols(DIRECTORY)} FROM directory ORDER BY prefix`);
  }

  insertDirectory(row: DirectoryRow): Promise<void> {
    return this.insert('directory', DIRECTORY, [row]);
  }

  async deleteDirectory(prefix: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM directory WHERE prefix = ?', [prefix])) > 0;
  }

  // --- epochs, sealed keys, SPIs

  insertEpoch(row: EpochRow): Promise<void> {
    return this.insert('key_epochs', EPOCH, [row]);
  }

  insertEpochs(rows: readonly EpochRow[]): Promise<void> {
    return this.insert('key_epochs', EPOCH, rows);
  }

  async deleteEndedEpochs(vpnIds: readonly number[], now: number): Promise<void> {
    await this.forKeys(vpnIds, async (isIn, keys) => {
      for (const table of ['sealed_keys', 'spis']) {
        // PostgreSQL: a join on the ended epochs. The correlated subquery SQLite runs well is planned there as a
        // subplan per row, its cost estimate high enough to be JIT-compiled, ~0.1 s for a rotation of 1,000 VPNs.
        await this.db.run(
          this.db.dialect === 'postgres'
            ? `DELETE FROM ${table} t USING key_epochs e WHERE e.vpn_id${isIn} AND e.expires_at <= ? AND t.vpn_id = e.vpn_id AND t.epoch = e.epoch`
            : `DELETE FROM ${table} WHERE vpn_id${isIn} AND epoch IN (SELECT e.epoch FROM key_epochs e WHERE e.vpn_id = ${table}.vpn_id AND e.expires_at <= ?)`,
          [...keys, now],
        );
      }
      await this.db.run(`DELETE FROM key_epochs WHERE vpn_id${isIn} AND expires_at <= ?`, [...keys, now]);
    });
  }

  async capEpochExpiry(vpnIds: readonly number[], end: number): Promise<void> {
    await this.forKeys(vpnIds, (isIn, keys) =>
      this.db.run(`UPDATE key_epochs SET expires_at = ? WHERE vpn_id${isIn} AND expires_at > ?`, [end, ...keys, end]),
    );
  }

  async listEpochs(vpnId: number): Promise<EpochRow[]> {
    const rows = await this.db.all<EpochRow>(`SELECT ${cols(EPOCH)} FROM key_epochs WHERE vpn_id = ? ORDER BY epoch`, [
      vpnId,
    ]);
    for (const r of rows) r.wrappedKey = bytes(r.wrappedKey);
    return rows;
  }

  async listEpochsOf(vpnIds: readonly number[]): Promise<EpochRow[]> {
    const rows = await this.inKeys(vpnIds, (isIn, keys) =>
      this.db.all<EpochRow>(`SELECT ${cols(EPOCH)} FROM key_epochs WHERE vpn_id${isIn} ORDER BY vpn_id, epoch`, keys),
    );
    for (const r of rows) r.wrappedKey = bytes(r.wrappedKey);
    return rows;
  }

  insertSealedKeys(rows: readonly SealedKeyRow[]): Promise<void> {
    return this.insert('sealed_keys', SEALED, rows);
  }

  async listSealedKeys(gateway: string): Promise<SealedKeyRow[]> {
    const rows = await this.db.all<SealedKeyRow>(
      `SELECT ${cols(SEALED)} FROM sealed_keys WHERE gateway = ? ORDER BY vpn_id, epoch`,
      [gateway],
    );
    for (const r of rows) {
      r.enc = bytes(r.enc);
      r.ct = bytes(r.ct);
    }
    return rows;
  }

  async listSealedKeysOf(gateways: readonly string[]): Promise<SealedKeyRow[]> {
    const rows = await this.inKeys(gateways, (isIn, keys) =>
      this.db.all<SealedKeyRow>(`SELECT ${cols(SEALED)} FROM sealed_keys WHERE gateway${isIn}`, keys),
    );
    for (const r of rows) {
      r.enc = bytes(r.enc);
      r.ct = bytes(r.ct);
    }
    return rows;
  }

  async deleteSealedKeys(filter: { vpnId?: number; gateway?: string; epochs?: readonly number[] }): Promise<void> {
    await this.deleteWhere('sealed_keys', filter);
  }

  private async deleteWhere(
    table: string,
    filter: { vpnId?: number; gateway?: string; epochs?: readonly number[] },
  ): Promise<void> {
    const { where, params } = whereVpnGateway(filter);
    if (where.length === 0) throw new Error(`refusing to delete every row of ${table}`);
    if (filter.epochs === undefined) {
      await this.db.run(`DELETE FROM ${table} WHERE ${where.join(' AND ')}`, params);
      return;
    }
    for (const part of chunks(filter.epochs)) {
      await this.db.run(
        `DELETE FROM ${table} WHERE ${where.join(' AND ')} AND epoch IN (${placeholders(part.length)})`,
        [...params, ...part],
      );
    }
  }

  insertSpis(rows: readonly SpiRow[]): Promise<void> {
    return this.insert('spis', SPI, rows);
  }

  listSpis(vpnId: number): Promise<SpiRow[]> {
    return this.db.all<SpiRow>(`SELECT ${cols(SPI)} FROM spis WHERE vpn_id = ? ORDER BY gateway, epoch`, [vpnId]);
  }

  listSpisOf(vpnIds: readonly number[]): Promise<SpiRow[]> {
    return this.inKeys(vpnIds, (isIn, keys) =>
      this.db.all<SpiRow>(`SELECT ${cols(SPI)} FROM spis WHERE vpn_id${isIn} ORDER BY vpn_id, gateway, epoch`, keys),
    );
  }

  async deleteSpis(filter: { vpnId: number; gateway?: string; epochs?: readonly number[] }): Promise<void> {
    await this.deleteWhere('spis', filter);
  }

  // --- tokens

  insertEnrollToken(row: EnrollTokenRow): Promise<void> {
    return this.insert('enroll_tokens', ENROLL, [{ ...row, replaceCert: row.replaceCert ? 1 : 0 }]);
  }

  async getEnrollToken(id: string): Promise<EnrollTokenRow | undefined> {
    const r = await this.db.get<EnrollTokenRow>(`SELECT ${cols(ENROLL)} FROM enroll_tokens WHERE id = ?`, [id]);
    if (r) r.replaceCert = Boolean(Number(r.replaceCert));
    return r;
  }

  async useEnrollToken(id: string, at: number): Promise<boolean> {
    return (await this.db.run('UPDATE enroll_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL', [at, id])) === 1;
  }

  insertAdminToken(row: AdminTokenRow): Promise<void> {
    return this.insert('admin_tokens', ADMIN, [row]);
  }

  getAdminToken(id: string): Promise<AdminTokenRow | undefined> {
    return this.db.get<AdminTokenRow>(`SELECT ${cols(ADMIN)} FROM admin_tokens WHERE id = ?`, [id]);
  }

  listAdminTokens(): Promise<AdminTokenRow[]> {
    return this.db.all<AdminTokenRow>(`SELECT ${cols(ADMIN)} FROM admin_tokens ORDER BY created_at`);
  }

  async revokeAdminToken(id: string, at: number): Promise<boolean> {
    return (
      (await this.db.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [at, id])) === 1
    );
  }

  // --- audit log

  insertAudit(rows: readonly NewAuditRow[]): Promise<void> {
    const fields = { ...AUDIT } as Record<string, string>;
    delete fields.id;
    return this.insert(
      'audit',
      fields,
      rows.map((r) => ({ ...r, detail: JSON.stringify(r.detail) })),
    );
  }

  async listAudit(q: AuditFilter): Promise<AuditRow[]> {
    const where = ['id > ?'];
    const params: unknown[] = [q.afterId ?? 0];
    const add = (sql: string, v: unknown) => {
      where.push(sql);
      params.push(v);
    };
    if (q.beforeId !== undefined) add('id < ?', q.beforeId);
    if (q.vpn !== undefined) add('vpn = ?', q.vpn);
    if (q.gateway !== undefined) add('gateway = ?', q.gateway);
    if (q.actor !== undefined) add('actor = ?', q.actor);
    // A family of actions ('member.'): a range on the text rather than LIKE, whose wildcards the name could hold.
    if (q.action !== undefined && q.action.endsWith('.')) {
      add('action >= ?', q.action);
      add('action < ?', q.action.slice(0, -1) + '/');
    } else if (q.action !== undefined) add('action = ?', q.action);
    if (q.from !== undefined) add('at >= ?', q.from);
    if (q.to !== undefined) add('at <= ?', q.to);
    const order = q.order === 'desc' ? 'DESC' : 'ASC';
    const rows = await this.db.all<AuditRow & { detail: string }>(
      `SELECT ${cols(AUDIT)} FROM audit WHERE ${where.join(' AND ')} ORDER BY id ${order} LIMIT ?`,
      [...params, q.limit],
    );
    return rows.map(parseAudit);
  }

  // --- web console sessions

  insertSession(row: SessionRow): Promise<void> {
    return this.insert('console_sessions', SESSION, [row]);
  }

  async getSession(idHash: string): Promise<SessionRow | undefined> {
    const r = await this.db.get<SessionRow>(`SELECT ${cols(SESSION)} FROM console_sessions WHERE id_hash = ?`, [
      idHash,
    ]);
    return (
      r && { ...r, createdAt: Number(r.createdAt), lastSeenAt: Number(r.lastSeenAt), expiresAt: Number(r.expiresAt) }
    );
  }

  async touchSession(idHash: string, at: number): Promise<void> {
    await this.db.run('UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?', [at, idHash]);
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.db.run('DELETE FROM console_sessions WHERE id_hash = ?', [idHash]);
  }

  deleteExpiredSessions(now: number, idleBefore: number): Promise<number> {
    return this.db.run('DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at < ?', [now, idleBefore]);
  }

  // --- gateway status reports

  async putGatewayReport(row: GatewayReportRow): Promise<void> {
    await this.db.run(
      'INSERT INTO gateway_reports (gateway, received_at, report) VALUES (?, ?, ?) ON CONFLICT (gateway) DO UPDATE SET received_at = excluded.received_at, report = excluded.report',
      [row.gateway, row.receivedAt, row.report],
    );
  }

  async getGatewayReport(gateway: string): Promise<GatewayReportRow | undefined> {
    const r = await this.db.get<GatewayReportRow>(`SELECT ${cols(REPORT)} FROM gateway_reports WHERE gateway = ?`, [
      gateway,
    ]);
    return r && { ...r, receivedAt: Number(r.receivedAt) };
  }

  async listGatewayReports(): Promise<GatewayReportRow[]> {
    return (await this.db.all<GatewayReportRow>(`SELECT ${cols(REPORT)} FROM gateway_reports ORDER BY gateway`)).map(
      (r) => ({ ...r, receivedAt: Number(r.receivedAt) }),
    );
  }

  // --- federation

  async listPeers(): Promise<PeerRow[]> {
    return (await this.db.all<PeerRow>(`SELECT ${cols(PEER)} FROM peers ORDER BY name`)).map(peerRow);
  }

  async getPeer(name: string): Promise<PeerRow | undefined> {
    const r = await this.db.get<PeerRow>(`SELECT ${cols(PEER)} FROM peers WHERE name = ?`, [name]);
    return r && peerRow(r);
  }

  insertPeer(row: PeerRow): Promise<void> {
    return this.insert('peers', PEER, [row]);
  }

  updatePeer(name: string, patch: Partial<Omit<PeerRow, 'name'>>): Promise<void> {
    return this.update('peers', PEER, 'name', name, patch);
  }

  async deletePeer(name: string): Promise<void> {
    await this.db.run('DELETE FROM permits WHERE peer = ?', [name]);
    await this.db.run('DELETE FROM foreign_members WHERE peer = ?', [name]);
    await this.db.run('DELETE FROM shares WHERE peer = ?', [name]);
    await this.db.run('DELETE FROM peers WHERE name = ?', [name]);
  }

  async listShares(filter: { vpnId?: number; peer?: string }): Promise<ShareRow[]> {
    const w = federationWhere(filter);
    return (
      await this.db.all<ShareRow>(`SELECT ${cols(SHARE)} FROM shares${w.sql} ORDER BY vpn_id, peer`, w.params)
    ).map((r) => ({ ...r, vpnId: Number(r.vpnId), addedAt: Number(r.addedAt) }));
  }

  insertShare(row: ShareRow): Promise<void> {
    return this.insert('shares', SHARE, [row]);
  }

  async deleteShare(vpnId: number, peer: string): Promise<void> {
    await this.db.run('DELETE FROM permits WHERE vpn_id = ? AND peer = ?', [vpnId, peer]);
    await this.db.run('DELETE FROM foreign_members WHERE vpn_id = ? AND peer = ?', [vpnId, peer]);
    await this.db.run('DELETE FROM shares WHERE vpn_id = ? AND peer = ?', [vpnId, peer]);
  }

  async listForeignMembers(filter: { vpnId?: number; peer?: string }): Promise<ForeignMemberRow[]> {
    const w = federationWhere(filter);
    const rows = await this.db.all<ForeignMemberRow>(
      `SELECT ${cols(FOREIGN)} FROM foreign_members${w.sql} ORDER BY vpn_id, peer, gateway`,
      w.params,
    );
    return rows.map((r) => ({
      ...r,
      vpnId: Number(r.vpnId),
      updatedAt: Number(r.updatedAt),
      certDer: bytes(r.certDer),
    }));
  }

  async replaceForeignMembers(vpnId: number, peer: string, rows: readonly ForeignMemberRow[]): Promise<void> {
    await this.db.run('DELETE FROM foreign_members WHERE vpn_id = ? AND peer = ?', [vpnId, peer]);
    await this.insert('foreign_members', FOREIGN, rows);
  }

  async listPermits(filter: FederationFilter): Promise<PermitRow[]> {
    const w = federationWhere(filter);
    const rows = await this.db.all<PermitRow>(
      `SELECT ${cols(PERMIT)} FROM permits${w.sql} ORDER BY vpn_id, peer, holder, direction`,
      w.params,
    );
    return rows.map((r) => ({ ...r, vpnId: Number(r.vpnId), notAfter: Number(r.notAfter), der: bytes(r.der) }));
  }

  async putPermit(row: PermitRow): Promise<void> {
    await this.db.run('DELETE FROM permits WHERE vpn_id = ? AND peer = ? AND holder = ? AND direction = ?', [
      row.vpnId,
      row.peer,
      row.holder,
      row.direction,
    ]);
    await this.insert('permits', PERMIT, [row]);
  }

  async deletePermits(filter: FederationFilter): Promise<void> {
    const w = federationWhere(filter);
    await this.db.run(`DELETE FROM permits${w.sql}`, w.params);
  }

  async eventsFor(gateway: string, vpnIds: readonly number[], since: number, limit: number): Promise<AuditRow[]> {
    const vpnClause = vpnIds.length ? ` OR (scope = 'vpn' AND vpn_id IN (${placeholders(vpnIds.length)}))` : '';
    const rows = await this.db.all<AuditRow & { detail: string }>(
      // Ordered by (version, id) so that the version index both filters and orders (ORDER BY id alone scans the table).
      `SELECT ${cols(AUDIT)} FROM audit WHERE version > ? AND (scope = 'all' OR gateway = ?${vpnClause}) AND scope <> 'none' ORDER BY version, id LIMIT ?`,
      [since, gateway, ...vpnIds, limit],
    );
    return rows.map(parseAudit);
  }

  async eventsSince(since: number, limit: number): Promise<AuditRow[]> {
    const rows = await this.db.all<AuditRow & { detail: string }>(
      `SELECT ${cols(AUDIT)} FROM audit WHERE version > ? AND scope <> 'none' ORDER BY version, id LIMIT ?`,
      [since, limit],
    );
    return rows.map(parseAudit);
  }

  // --- replicas: the database's clock, leases, heartbeats

  async clock(): Promise<number> {
    const sql =
      this.db.dialect === 'postgres'
        ? 'SELECT FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS "now"'
        : 'SELECT CAST(ROUND((julianday(\'now\') - 2440587.5) * 86400000) AS INTEGER) AS "now"';
    return Number((await this.db.get<{ now: number }>(sql))!.now);
  }

  async claimLease(name: string, holder: string, ttlMs: number): Promise<LeaseRow> {
    const now = await this.clock();
    // Another holder's lease is taken over only once expired; ours is extended. The term changes with the holder.
    await this.db.run(
      `INSERT INTO job_leases (name, holder, expires_at, term) VALUES (?, ?, ?, 1)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
           term = CASE WHEN job_leases.holder = excluded.holder THEN job_leases.term ELSE job_leases.term + 1 END
         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?`,
      [name, holder, now + ttlMs, now],
    );
    return (await this.getLease(name))!;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.run('UPDATE job_leases SET expires_at = 0 WHERE name = ? AND holder = ?', [name, holder]);
  }

  getLease(name: string): Promise<LeaseRow | undefined> {
    return this.db.get<LeaseRow>(`SELECT ${cols(LEASE)} FROM job_leases WHERE name = ?`, [name]);
  }

  async putReplica(row: ReplicaRow): Promise<void> {
    await this.db.run(
      `INSERT INTO replicas (id, url, host, pid, started_at, seen_at, waiting, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, seen_at = excluded.seen_at, waiting = excluded.waiting, version = excluded.version`,
      [row.id, row.url, row.host, row.pid, row.startedAt, row.seenAt, row.waiting, row.version],
    );
  }

  async deleteReplica(id: string): Promise<void> {
    await this.db.run('DELETE FROM replicas WHERE id = ?', [id]);
  }

  listReplicas(): Promise<ReplicaRow[]> {
    return this.db.all<ReplicaRow>(`SELECT ${cols(REPLICA)} FROM replicas ORDER BY started_at, id`);
  }

  async pruneReplicas(seenBefore: number): Promise<void> {
    await this.db.run('DELETE FROM replicas WHERE seen_at < ?', [seenBefore]);
  }
}

export interface FederationFilter {
  vpnId?: number;
  peer?: string;
  holder?: string;
  direction?: string;
}

function federationWhere(f: FederationFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  for (const [k, col] of [
    ['vpnId', 'vpn_id'],
    ['peer', 'peer'],
    ['holder', 'holder'],
    ['direction', 'direction'],
  ] as const) {
    if (f[k] === undefined) continue;
    where.push(`${col} = ?`);
    params.push(f[k]);
  }
  return { sql: where.length ? ` WHERE ${where.join(' AND ')}` : '', params };
}

function peerRow(r: PeerRow): PeerRow {
  return { ...r, addedAt: Number(r.addedAt), lastSyncAt: r.lastSyncAt === null ? null : Number(r.lastSyncAt) };
}

function parseAudit(r: AuditRow & { detail: unknown }): AuditRow {
  return {
    ...r,
    detail:
      typeof r.detail === 'string'
        ? (JSON.parse(r.detail) as Record<string, unknown>)
        : (r.detail as Record<string, unknown>),
  };
}

/** WHERE terms (joined with AND by the caller) for the optional VPN id and gateway of a filter. */
function whereVpnGateway(filter: { vpnId?: number; gateway?: string }): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.vpnId !== undefined) {
    where.push('vpn_id = ?');
    params.push(filter.vpnId);
  }
  if (filter.gateway !== undefined) {
    where.push('gateway = ?');
    params.push(filter.gateway);
  }
  return { where, params };
}

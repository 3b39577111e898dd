// Versioned schema migrations, applied in order when a store opens. Each migration runs in its
// own transaction and is recorded in schema_migrations; a database newer than this code is refused.
export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  name: string;
  statements: (d: Dialect) => string[];
}

const T = (d: Dialect) => ({
  INT: d === 'sqlite' ? 'INTEGER' : 'BIGINT',
  BLOB: d === 'sqlite' ? 'BLOB' : 'BYTEA',
  SERIAL: d === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY',
});

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'configuration table, PKI, keys, tokens, audit',
    statements: (d) => {
      const { INT, BLOB, SERIAL } = T(d);
      return [
        `CREATE TABLE state (id ${INT} PRIMARY KEY CHECK (id = 1), authority TEXT NOT NULL, version ${INT} NOT NULL,
           next_spi ${INT} NOT NULL, directory_version ${INT} NOT NULL, created_at ${INT} NOT NULL)`,
        `CREATE TABLE vpns (id ${INT} PRIMARY KEY, name TEXT NOT NULL UNIQUE, mode TEXT NOT NULL CHECK (mode IN ('group', 'pairwise')),
           rotation_period_ms ${INT} NOT NULL, next_rotation_at ${INT}, last_epoch ${INT} NOT NULL,
           changed_version ${INT} NOT NULL, created_at ${INT} NOT NULL)`,
        `CREATE TABLE gateways (name TEXT PRIMARY KEY, address TEXT NOT NULL,
           status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')), cert_serial TEXT, public_key ${BLOB},
           changed_version ${INT} NOT NULL, created_at ${INT} NOT NULL, enrolled_at ${INT}, revoked_at ${INT}, revoke_reason TEXT)`,
        `CREATE TABLE certificates (serial TEXT PRIMARY KEY, gateway TEXT NOT NULL REFERENCES gateways(name), der ${BLOB} NOT NULL,
           issued_at ${INT} NOT NULL, not_after ${INT} NOT NULL, method TEXT NOT NULL, revoked_at ${INT}, revoke_reason TEXT)`,
        `CREATE INDEX certificates_gateway ON certificates (gateway)`,
        `CREATE INDEX gateways_changed ON gateways (changed_version)`,
        `CREATE TABLE member_prefixes (vpn_id ${INT} NOT NULL REFERENCES vpns(id), gateway TEXT NOT NULL REFERENCES gateways(name),
           prefix TEXT NOT NULL, added_at ${INT} NOT NULL, PRIMARY KEY (vpn_id, gateway, prefix))`,
        `CREATE INDEX member_prefixes_gateway ON member_prefixes (gateway)`,
        `CREATE INDEX member_prefixes_prefix ON member_prefixes (prefix)`,
        `CREATE TABLE directory (prefix TEXT PRIMARY KEY, note TEXT NOT NULL, added_at ${INT} NOT NULL)`,
        `CREATE TABLE key_epochs (vpn_id ${INT} NOT NULL REFERENCES vpns(id), epoch ${INT} NOT NULL, wrapped_key ${BLOB} NOT NULL,
           active_from ${INT} NOT NULL, expires_at ${INT} NOT NULL, created_at ${INT} NOT NULL, PRIMARY KEY (vpn_id, epoch))`,
        `CREATE TABLE sealed_keys (vpn_id ${INT} NOT NULL, epoch ${INT} NOT NULL, gateway TEXT NOT NULL REFERENCES gateways(name),
           enc ${BLOB} NOT NULL, ct ${BLOB} NOT NULL, PRIMARY KEY (gateway, vpn_id, epoch),
           FOREIGN KEY (vpn_id, epoch) REFERENCES key_epochs (vpn_id, epoch))`,
        `CREATE INDEX sealed_keys_vpn ON sealed_keys (vpn_id, epoch)`,
        `CREATE TABLE spis (spi ${INT} PRIMARY KEY CHECK (spi >= 256 AND spi <= 4294967295), vpn_id ${INT} NOT NULL,
           gateway TEXT NOT NULL REFERENCES gateways(name), epoch ${INT} NOT NULL, UNIQUE (vpn_id, gateway, epoch),
           FOREIGN KEY (vpn_id, epoch) REFERENCES key_epochs (vpn_id, epoch))`,
        `CREATE TABLE enroll_tokens (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, gateway TEXT NOT NULL REFERENCES gateways(name),
           replace_cert ${INT} NOT NULL, created_at ${INT} NOT NULL, expires_at ${INT} NOT NULL, used_at ${INT}, created_by TEXT NOT NULL)`,
        `CREATE TABLE admin_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at ${INT} NOT NULL, revoked_at ${INT})`,
        `CREATE TABLE audit (id ${SERIAL}, version ${INT} NOT NULL, at ${INT} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
           vpn_id ${INT}, vpn TEXT, gateway TEXT, scope TEXT NOT NULL, detail TEXT NOT NULL)`,
        `CREATE INDEX audit_version ON audit (version)`,
        `CREATE INDEX audit_gateway ON audit (gateway, version)`,
      ];
    },
  },
  {
    version: 2,
    name: 'federation: peer authorities, shared pairwise VPNs, their members, permits',
    statements: (d) => {
      const { INT, BLOB } = T(d);
      return [
        `CREATE TABLE peers (name TEXT PRIMARY KEY, url TEXT NOT NULL, root_pem TEXT NOT NULL, added_at ${INT} NOT NULL,
           last_sync_at ${INT}, last_error TEXT)`,
        `CREATE TABLE shares (vpn_id ${INT} NOT NULL REFERENCES vpns(id), peer TEXT NOT NULL REFERENCES peers(name),
           added_at ${INT} NOT NULL, PRIMARY KEY (vpn_id, peer))`,
        `CREATE TABLE foreign_members (vpn_id ${INT} NOT NULL REFERENCES vpns(id), peer TEXT NOT NULL REFERENCES peers(name),
           gateway TEXT NOT NULL, address TEXT NOT NULL, prefixes TEXT NOT NULL, cert_der ${BLOB} NOT NULL, updated_at ${INT} NOT NULL,
           PRIMARY KEY (vpn_id, peer, gateway))`,
        `CREATE TABLE permits (vpn_id ${INT} NOT NULL REFERENCES vpns(id), peer TEXT NOT NULL, holder TEXT NOT NULL,
           direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'local')), der ${BLOB} NOT NULL, not_after ${INT} NOT NULL,
           holder_fingerprint TEXT NOT NULL, PRIMARY KEY (vpn_id, peer, holder, direction))`,
      ];
    },
  },
  {
    version: 3,
    name: 'IKE identity certificates (a key in a PKCS#11 token, seed 001)',
    statements: () => ['ALTER TABLE gateways ADD COLUMN ike_cert_serial TEXT'],
  },
  {
    version: 4,
    name: 'replicas: their heartbeats, the lease of the cluster-wide jobs, the CRL version',
    statements: (d) => {
      const { INT } = T(d);
      return [
        // Bumped by every revocation, so that every replica rebuilds its CRLs (its TLS layer refuses the certificate).
        `ALTER TABLE state ADD COLUMN crl_version ${INT} NOT NULL DEFAULT 0`,
        // One row per lease; `term` grows each time another replica takes it (fencing).
        `CREATE TABLE job_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at ${INT} NOT NULL, term ${INT} NOT NULL)`,
        `CREATE TABLE replicas (id TEXT PRIMARY KEY, url TEXT NOT NULL, host TEXT NOT NULL, pid ${INT} NOT NULL,
           started_at ${INT} NOT NULL, seen_at ${INT} NOT NULL, waiting ${INT} NOT NULL, version ${INT} NOT NULL)`,
      ];
    },
  },
  {
    version: 5,
    name: 'web console sessions; gateway status reports',
    statements: (d) => {
      const { INT } = T(d);
      return [
        `CREATE TABLE console_sessions (id_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL, csrf TEXT NOT NULL, created_at ${INT} NOT NULL,
           last_seen_at ${INT} NOT NULL, expires_at ${INT} NOT NULL)`,
        `CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)`,
        `CREATE TABLE gateway_reports (gateway TEXT PRIMARY KEY, received_at ${INT} NOT NULL, report TEXT NOT NULL)`,
        `CREATE INDEX audit_actor ON audit (actor, id)`,
      ];
    },
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1].version;

export const MIGRATIONS_TABLE = (d: Dialect) =>
  `CREATE TABLE IF NOT EXISTS schema_migrations (version ${T(d).INT} PRIMARY KEY, name TEXT NOT NULL, applied_at ${T(d).INT} NOT NULL)`;

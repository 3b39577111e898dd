// The authority's data directory and its configuration file.
//
//   DATA/                       0700
//     authority.json            configuration (name, listen address, URL, database, timers) 0600
//     authority.db              SQLite database (absent when the database is PostgreSQL)
//     admin.token               the initial administrator token, for the CLI on this host  0600
//     keystore/                 0700, every file 0600
//       root-ca.key             PKCS#8 PEM: the root CA key
//       issuing-ca.key          PKCS#8 PEM: the issuing CA key (signs gateway and server certificates)
//       server.key              PKCS#8 PEM: the TLS server key
//       kek                     base64: the key-encryption key for group keys at rest
//     certs/
//       root-ca.pem             the root CA certificate: what clients trust
//       issuing-ca.pem          the issuing CA certificate
//       server.pem              the TLS server certificate
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

export const CONFIG_FORMAT = 'kasane-authority/1';

export interface RotationConfig {
  /** Default period of scheduled rotation for new VPNs (ms; 0 = only on demand). */
  periodMs: number;
  /** A scheduled or manual rotation's new epoch becomes active this long after it is made (ms). */
  overlapMs: number;
  /** The previous epoch stays valid this long after the new one became active (ms). */
  graceMs: number;
  /** After removing a member or revoking a gateway: the old epoch stays valid this long (ms). */
  urgentGraceMs: number;
}

export interface AuthorityConfig {
  format: typeof CONFIG_FORMAT;
  name: string;
  listen: { host: string; port: number };
  /** The URL gateways and the CLI use to reach this authority (put into bundles). */
  url: string;
  /** postgres://... when the store is PostgreSQL; absent for SQLite in the data directory. */
  database?: string;
  /** Names and addresses in the TLS server certificate. */
  sans: string[];
  rotation: RotationConfig;
  enrollment: {
    /** Default lifetime of an enrollment token (ms). */
    tokenTtlMs: number;
    /** Validity of gateway certificates (days). */
    certificateDays: number;
  };
  /** Federation: permit validity (default 1 h) and how often peers exchange (default 10 s). */
  federation?: { permitValidityMs?: number; syncIntervalMs?: number };
  /** Web console sessions: ended after this long unused (default 30 min), and at the latest (default 12 h). */
  console?: { sessionIdleMs?: number; sessionMaxMs?: number };
}

export const DEFAULT_ROTATION: RotationConfig = {
  periodMs: 24 * 3_600_000,
  overlapMs: 60_000,
  graceMs: 300_000,
  urgentGraceMs: 5_000,
};

export const DEFAULT_PORT = 7443;

export interface DataPaths {
  dir: string;
  config: string;
  sqlite: string;
  adminToken: string;
  keystore: string;
  certs: string;
  rootCert: string;
  issuingCert: string;
  serverCert: string;
  /** The attribute authority's certificate (permits, seed 001); its key is KEY_AA in the keystore. */
  aaCert: string;
}

export function dataPaths(dir: string): DataPaths {
  const certs = join(dir, 'certs');
  return {
    dir,
    config: join(dir, 'authority.json'),
    sqlite: join(dir, 'authority.db'),
    adminToken: join(dir, 'admin.token'),
    keystore: join(dir, 'keystore'),
    certs,
    rootCert: join(certs, 'root-ca.pem'),
    issuingCert: join(certs, 'issuing-ca.pem'),
    serverCert: join(certs, 'server.pem'),
    aaCert: join(certs, 'attribute-authority.pem'),
  };
}

export const KEY_ROOT = 'root-ca.key';
export const KEY_ISSUING = 'issuing-ca.key';
export const KEY_SERVER = 'server.key';
export const KEY_KEK = 'kek';
export const KEY_AA = 'attribute-authority.key';

export function readConfig(dir: string): AuthorityConfig {
  const p = dataPaths(dir).config;
  if (!existsSync(p)) throw new Error(`${dir} is not an authority data directory (no authority.json); run \`kasane authority init\` first`);
  const c = JSON.parse(readFileSync(p, 'utf8')) as AuthorityConfig;
  if (c.format !== CONFIG_FORMAT) throw new Error(`${p}: unknown format ${JSON.stringify(c.format)}`);
  return { ...c, rotation: { ...DEFAULT_ROTATION, ...c.rotation } };
}

export function writeConfig(dir: string, config: AuthorityConfig): void {
  const p = dataPaths(dir).config;
  writeFileSync(p, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  chmodSync(p, 0o600);
}

/** "host:port", "[v6]:port", "host" or ":port". */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`--listen ${JSON.stringify(text)}: expected HOST:PORT`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (port > 65535) throw new Error(`--listen ${JSON.stringify(text)}: port ${port} is out of range`);
  return { host, port };
}

export function urlFor(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

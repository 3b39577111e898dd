// The authority's data directory and its configuration file.
//
//   DATA/                       0700
//     authority.json            configuration (name, listen address, URL, database, timers) 0600
//     authority.db              SQLite database (absent when the database is PostgreSQL)
//     admin.token               the initial administrator token, for the CLI on this host  0600
//     keystore/                 0700, every file 0600
//       root-ca.key             PKCS#8 PEM: the root CA key          } absent when authority.json's
//       issuing-ca.key          PKCS#8 PEM: the issuing CA key       } ca.pkcs11 puts them in a token
//                               (it signs gateway and server certificates)
//       attribute-authority.key PKCS#8 PEM: signs permits (federation)
//       server.key              PKCS#8 PEM: the TLS server key
//       kek                     base64: the key-encryption key for group keys at rest
//       push                    base64: the secret the wake-up channel's keys derive from
//     certs/
//       root-ca.pem             the root CA certificate: what clients trust
//       issuing-ca.pem          the issuing CA certificate
//       server.pem              the TLS server certificate
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { BadFileError, type DocumentLimits } from '../files/document.js';
import { formatIssues, readFields, type FieldReader } from '../files/fields.js';
import { ipToBytes, parseIp, Prefix } from '../base/addr.js';
import { err, ok, type Result } from '../base/result.js';

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
  /** Replicas: how long the jobs lease lasts without renewal (default 10 s; a dead holder's jobs move after it). */
  jobs?: { leaseMs?: number };
  /** The CA keys in a PKCS#11 token instead of the keystore (ca-keys.ts). */
  ca?: { pkcs11: CaPkcs11Config };
  /** Web console sessions: ended after this long unused (default 30 min), and at the latest (default 12 h). */
  console?: { sessionIdleMs?: number; sessionMaxMs?: number };
  /**
   * The TLS key exchange groups the API server accepts, in order (OpenSSL names, ':'-separated);
   * absent: node's default, which puts the post-quantum hybrid X25519MLKEM768 first. Without it a
   * connection holds about 10 KB less (docs/authority.md, "Memory per gateway").
   */
  tls?: { groups?: string };
  /**
   * The wake-up channel (UDP, docs/authority.md): absent = on, on the API's port number and
   * address; false = off (gateways use the long poll).
   */
  push?: false | { port?: number; refreshSeconds?: number };
}

/** A PKCS#11 token that holds the root and issuing CA keys (by label). */
export interface CaPkcs11Config {
  /** Path of the PKCS#11 module on this host. */
  module: string;
  /** Label of the token. */
  token: string;
  /** File holding the user PIN (first line), 0600. */
  pinFile: string;
  rootKey: string;
  issuingKey: string;
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
export const KEY_PUSH = 'push';

/** authority.json is small; anything larger is not one (docs/authority.md). */
export const AUTHORITY_CONFIG_LIMITS: DocumentLimits = {
  kind: 'authority configuration',
  maxYamlBytes: 1024 * 1024,
  maxJsonBytes: 1024 * 1024,
  jsonOnly: true,
};

/**
 * Reads DATA/authority.json. Throws an Error that lists every problem with its line and field
 * (an operator edits this file by hand: a wrong type must not surface later as a crash).
 */
export function readConfig(dir: string): AuthorityConfig {
  const p = dataPaths(dir).config;
  if (!existsSync(p))
    throw new Error(
      `${dir} is not an authority data directory (no authority.json); run \`kasane authority init\` first`,
    );
  const r = parseAuthorityConfig({ path: p }, p);
  if (!r.ok) throw new BadFileError(r.error.message);
  return r.value;
}

/**
 * Reads and checks authority.json (a file, or its text): the configuration, or every problem with its line and field.
 * Never throws.
 */
export function parseAuthorityConfig(source: { path: string } | string, name: string): Result<AuthorityConfig> {
  const read = readFields(
    typeof source === 'string' ? { text: source, file: name } : source,
    AUTHORITY_CONFIG_LIMITS,
    checkConfig,
  );
  if (!read.ok) return err('bad-config', formatIssues(read.error.issues, name));
  return ok({ ...read.value, rotation: { ...DEFAULT_ROTATION, ...read.value.rotation } });
}

const CA_PKCS11_KEYS = ['module', 'token', 'pinFile', 'rootKey', 'issuingKey'];

/** Every field authority.json may have, with its type; the document itself when all are right. */
function checkConfig(r: FieldReader, doc: unknown): AuthorityConfig | undefined {
  const top = r.object(
    doc,
    [],
    [
      'format',
      'name',
      'listen',
      'url',
      'database',
      'sans',
      'rotation',
      'enrollment',
      'federation',
      'jobs',
      'ca',
      'console',
      'tls',
      'push',
    ],
    ['format', 'name', 'listen', 'url', 'sans', 'enrollment'],
  );
  if (!top) return undefined;
  /** The fields of a section, each an integer from `min`, some with a maximum. */
  const integers = (key: string, fields: Record<string, [min: number, max?: number]>, required: string[] = []) => {
    if (top[key] === undefined) return;
    const section = r.object(top[key], [key], Object.keys(fields), required);
    for (const [k, [min, max]] of Object.entries(fields)) {
      if (section?.[k] !== undefined) r.integer(section[k], [key, k], { min, max });
    }
  };
  if (top.format !== undefined && top.format !== CONFIG_FORMAT)
    r.fail(['format'], `unknown format ${JSON.stringify(top.format)} (this kasane reads ${CONFIG_FORMAT})`);
  for (const k of ['name', 'url', 'database']) if (top[k] !== undefined) r.string(top[k], [k]);
  if (top.listen !== undefined) {
    const listen = r.object(top.listen, ['listen'], ['host', 'port'], ['host', 'port']);
    if (listen?.host !== undefined) r.string(listen.host, ['listen', 'host'], { empty: true });
    if (listen?.port !== undefined) r.integer(listen.port, ['listen', 'port'], { min: 0, max: 65535 });
  }
  if (top.sans !== undefined) r.listOf(top.sans, ['sans'], (v, at) => r.string(v, at));
  integers('rotation', { periodMs: [0], overlapMs: [0], graceMs: [0], urgentGraceMs: [0] });
  integers('enrollment', { tokenTtlMs: [1], certificateDays: [1, 3650] }, ['tokenTtlMs', 'certificateDays']);
  integers('federation', { permitValidityMs: [1], syncIntervalMs: [1] });
  integers('jobs', { leaseMs: [1] });
  integers('console', { sessionIdleMs: [1], sessionMaxMs: [1] });
  if (top.ca !== undefined) {
    const ca = r.object(top.ca, ['ca'], ['pkcs11'], ['pkcs11']);
    const p =
      ca?.pkcs11 === undefined ? undefined : r.object(ca.pkcs11, ['ca', 'pkcs11'], CA_PKCS11_KEYS, CA_PKCS11_KEYS);
    for (const k of CA_PKCS11_KEYS) if (p?.[k] !== undefined) r.string(p[k], ['ca', 'pkcs11', k]);
  }
  if (top.tls !== undefined) {
    const t = r.object(top.tls, ['tls'], ['groups']);
    if (t?.groups !== undefined && r.string(t.groups, ['tls', 'groups']) !== undefined) {
      try {
        createSecureContext({ ecdhCurve: t.groups as string });
      } catch {
        r.fail(['tls', 'groups'], `OpenSSL accepts none or not all of the groups ${JSON.stringify(t.groups)}`);
      }
    }
  }
  if (top.push !== undefined && top.push !== false) {
    if (top.push === true || top.push === null || typeof top.push !== 'object')
      r.fail(['push'], 'expected false (off) or an object such as {"port": 7443}');
    else integers('push', { port: [1, 65535], refreshSeconds: [1, 3600] });
  }
  return doc as AuthorityConfig;
}

export function writeConfig(dir: string, config: AuthorityConfig): void {
  const p = dataPaths(dir).config;
  writeFileSync(p, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  chmodSync(p, 0o600);
}

/**
 * A host the authority listens on or names in its certificate: an IP address in its canonical form
 * (RFC 5952 for IPv6, so that a certificate's addresses compare with the configuration's), or a
 * name as given. An IPv4-mapped IPv6 address is refused: it is an IPv4 address written another
 * way, and clients connecting to the IPv4 address would not find it in the certificate.
 */
export function canonicalHost(host: string): string {
  const ip = parseIp(host);
  if (!ip.ok) return host;
  if (Prefix.from('::ffff:0:0/96').contains(ip.value)) {
    const b = ipToBytes(ip.value);
    const v4 = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    throw new Error(`${host} is an IPv4-mapped IPv6 address; give the IPv4 address ${v4}`);
  }
  return ip.value;
}

/** "host:port", "[v6]:port", "[v6]", "host" or ":port"; an IP address is canonicalised. */
export function parseListen(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(t);
  if (!m) {
    const bare = parseIp(t).ok || /^[0-9a-f:.]+:\d+$/i.test(t);
    const hint = bare ? ' (an IPv6 address goes in brackets: [::1]:7443, [::]:7443)' : '';
    throw new Error(`--listen ${JSON.stringify(text)}: expected HOST:PORT${hint}`);
  }
  if (m[1] !== undefined && !isIPv6(m[1])) {
    throw new Error(`--listen ${JSON.stringify(text)}: ${m[1]} in brackets is not an IPv6 address`);
  }
  const host = canonicalHost(m[1] ?? (m[2] || '127.0.0.1'));
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (port > 65535) throw new Error(`--listen ${JSON.stringify(text)}: port ${port} is out of range`);
  return { host, port };
}

/** The URL of a listen address: the unspecified addresses become the loopback of their family. */
export function urlFor(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

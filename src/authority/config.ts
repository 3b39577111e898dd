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
//     certs/
//       root-ca.pem             the root CA certificate: what clients trust
//       issuing-ca.pem          the issuing CA certificate
//       server.pem              the TLS server certificate
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { BadFileError, formatPath, readDocument, type DocumentLimits, type PathKey } from '../files/document.js';
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

/** authority.json is small; anything larger is not one (docs/authority.md). */
export const AUTHORITY_CONFIG_LIMITS: DocumentLimits = { kind: 'authority configuration', maxYamlBytes: 1024 * 1024, maxJsonBytes: 1024 * 1024, jsonOnly: true };

/**
 * Reads DATA/authority.json. Throws an Error that lists every problem with its line and field
 * (an operator edits this file by hand: a wrong type must not surface later as a crash).
 */
export function readConfig(dir: string): AuthorityConfig {
  const p = dataPaths(dir).config;
  if (!existsSync(p)) throw new Error(`${dir} is not an authority data directory (no authority.json); run \`kasane authority init\` first`);
  const r = parseAuthorityConfig({ path: p }, p);
  if (!r.ok) throw new BadFileError(r.error.message);
  return r.value;
}

/** Reads and checks authority.json (a file, or its text): the configuration, or every problem with its line and field. Never throws. */
export function parseAuthorityConfig(source: { path: string } | string, name: string): Result<AuthorityConfig> {
  const read = readDocument(typeof source === 'string' ? { text: source, file: name } : source, AUTHORITY_CONFIG_LIMITS);
  const where = (i: { path: string; line?: number; column?: number; message: string }) => `${name}${i.line !== undefined ? `:${i.line}:${i.column}` : ''}: ${i.path}: ${i.message}`;
  if (!read.ok) return err('bad-config', read.issues.map(where).join('\n'));
  const problems = checkConfig(read.value.value);
  if (problems.length > 0) {
    const places = read.value.locate(problems.map((x) => x.path));
    return err('bad-config', problems.map((x, k) => where({ path: formatPath(x.path), ...places[k], message: x.message })).join('\n'));
  }
  const c = read.value.value as AuthorityConfig;
  return ok({ ...c, rotation: { ...DEFAULT_ROTATION, ...c.rotation } });
}

/** Every field authority.json may have, with its type: the problems, each at its path. */
function checkConfig(doc: unknown): { path: PathKey[]; message: string }[] {
  const out: { path: PathKey[]; message: string }[] = [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const fields = (v: unknown, path: PathKey[], known: Record<string, (v: unknown, path: PathKey[]) => void>, required: string[] = []) => {
    if (!isObject(v)) return void out.push({ path, message: 'expected an object' });
    for (const [k, x] of Object.entries(v)) {
      if (!Object.hasOwn(known, k)) out.push({ path: [...path, k], message: `unknown field "${k}"; expected one of: ${Object.keys(known).join(', ')}` });
      else known[k](x, [...path, k]);
    }
    for (const k of required) if (!(k in v)) out.push({ path, message: `missing field "${k}"` });
  };
  const string = (v: unknown, path: PathKey[]) => {
    if (typeof v !== 'string' || v === '') out.push({ path, message: `expected a non-empty string, got ${JSON.stringify(v)}` });
  };
  const number = (min: number, max = Number.MAX_SAFE_INTEGER) => (v: unknown, path: PathKey[]) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) out.push({ path, message: `expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}` });
  };
  fields(
    doc,
    [],
    {
      format: (v, path) => {
        if (v !== CONFIG_FORMAT) out.push({ path, message: `unknown format ${JSON.stringify(v)} (this kasane reads ${CONFIG_FORMAT})` });
      },
      name: string,
      listen: (v, path) => fields(v, path, { host: (h, hp) => typeof h !== 'string' && out.push({ path: hp, message: 'expected a string' }), port: number(0, 65535) }, ['host', 'port']),
      url: string,
      database: string,
      sans: (v, path) => (Array.isArray(v) ? v.forEach((x, i) => string(x, [...path, i])) : out.push({ path, message: 'expected a list of names' })),
      rotation: (v, path) => fields(v, path, { periodMs: number(0), overlapMs: number(0), graceMs: number(0), urgentGraceMs: number(0) }),
      enrollment: (v, path) => fields(v, path, { tokenTtlMs: number(1), certificateDays: number(1, 3650) }, ['tokenTtlMs', 'certificateDays']),
      federation: (v, path) => fields(v, path, { permitValidityMs: number(1), syncIntervalMs: number(1) }),
      jobs: (v, path) => fields(v, path, { leaseMs: number(1) }),
      ca: (v, path) =>
        fields(v, path, { pkcs11: (p, pp) => fields(p, pp, { module: string, token: string, pinFile: string, rootKey: string, issuingKey: string }, ['module', 'token', 'pinFile', 'rootKey', 'issuingKey']) }, ['pkcs11']),
      console: (v, path) => fields(v, path, { sessionIdleMs: number(1), sessionMaxMs: number(1) }),
    },
    ['format', 'name', 'listen', 'url', 'sans', 'enrollment'],
  );
  return out;
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

// Creating an authority (`kasane authority init`) and running it (`kasane authority serve`),
// with its periodic jobs: the only timers of a running authority besides the federation's
// exchange loop (federation.ts, which also runs a moment after each change) and the change
// stream's short debounce of other replicas' commits (change-stream.ts).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createAuthorityCa, certificateSans, issueServerCertificate, type AuthorityCa } from '../pki/ca.js';
import { createAttributeAuthority } from '../pki/permit.js';
import { exportPkcs8Pem, fingerprint, generateKeyPair, importPrivateKey, joinPem } from '../pki/keys.js';
import { parseIp } from '../base/addr.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';
import { FileKeystore } from '../pki/keystore.js';
import { describeKey, x509 } from '../pki/x509.js';
import {
  canonicalHost,
  CONFIG_FORMAT,
  dataPaths,
  DEFAULT_ROTATION,
  KEY_AA,
  KEY_ISSUING,
  KEY_KEK,
  KEY_PUSH,
  KEY_ROOT,
  KEY_SERVER,
  readConfig,
  urlFor,
  writeConfig,
  type AuthorityConfig,
  type CaPkcs11Config,
  type RotationConfig,
} from './config.js';
import { caKeyLabels, makeTokenCaKeys, openCaKeys, type CaKeys } from './ca-keys.js';
import { unwrapGroupKey } from './group-keys.js';
import { createLogger } from './log.js';
import { DEFAULT_SYNC_INTERVAL_MS } from './federation.js';
import { bindPushSocket, DEFAULT_REFRESH_SECONDS, PushChannel, tlsTicketKeys } from './push.js';
import { buildServer } from './server.js';
import { AuthorityService } from './service.js';
import { PostgresStore } from './storage/postgres.js';
import { SqliteStore } from './storage/sqlite.js';
import type { Store } from './storage/types.js';
import { checkName } from './validate.js';

export interface InitOptions {
  dataDir: string;
  name: string;
  listen?: { host: string; port: number };
  /** Advertised URL; default https://<listen host>:<port>. */
  url?: string;
  /** postgres://... ; absent = SQLite in the data directory. */
  database?: string;
  /** Extra names/addresses for the TLS server certificate. */
  sans?: string[];
  rotation?: Partial<RotationConfig>;
  /** Write the initial administrator token to DATA/admin.token (default true). */
  writeAdminToken?: boolean;
  /**
   * Make the root and issuing CA keys in this PKCS#11 token instead of the keystore (labels: the CAs' names by
   * default).
   */
  caPkcs11?: Omit<CaPkcs11Config, 'rootKey' | 'issuingKey'> & Partial<Pick<CaPkcs11Config, 'rootKey' | 'issuingKey'>>;
  now?: number;
  random?: RandomSource;
}

export interface InitResult {
  config: AuthorityConfig;
  adminToken: string;
  caFingerprint: string;
  /** Where the CA keys are: the keystore, or the token. */
  caKeys: string;
}

export async function openStore(config: AuthorityConfig, dataDir: string): Promise<Store> {
  return config.database ? PostgresStore.open(config.database) : SqliteStore.open(dataPaths(dataDir).sqlite);
}

/** The TLS server certificate's names: loopback, the listen host, the extra ones; IP addresses canonical. */
function defaultSans(host: string, extra: string[]): string[] {
  const out = new Set<string>(['localhost', '127.0.0.1', '::1']);
  const h = canonicalHost(host);
  if (h !== '0.0.0.0' && h !== '::') out.add(h);
  for (const s of extra) out.add(canonicalHost(s));
  return [...out];
}

/** The host of a URL as a certificate names it (no brackets around an IPv6 address). */
function urlHost(url: string): string {
  return canonicalHost(new URL(url).hostname.replace(/^\[|\]$/g, ''));
}

/**
 * Creates an authority in `dataDir`: the configuration, the two-tier CA and the TLS server
 * certificate with their keys in the keystore, the key-encryption key, the database (migrated) and
 * the initial administrator token. Refuses a directory that already holds an authority.
 */
export async function initAuthority(o: InitOptions): Promise<InitResult> {
  const name = checkName('authority', o.name);
  if (!name.ok) throw new Error(name.error.message);
  const paths = dataPaths(o.dataDir);
  if (existsSync(paths.config)) throw new Error(`${o.dataDir} already holds an authority (${paths.config} exists)`);
  const now = o.now ?? Date.now();
  const random = o.random ?? cryptoRandom;
  const listen = o.listen ? { ...o.listen, host: canonicalHost(o.listen.host) } : { host: '127.0.0.1', port: 7443 };
  const sans = defaultSans(listen.host, o.sans ?? []);
  const url = o.url ?? urlFor(listen.host, listen.port);
  if (o.url) {
    const host = urlHost(o.url);
    if (!sans.includes(host)) sans.push(host);
  }
  const config: AuthorityConfig = {
    format: CONFIG_FORMAT,
    name: o.name,
    listen,
    url,
    ...(o.database ? { database: o.database } : {}),
    sans,
    rotation: { ...DEFAULT_ROTATION, ...o.rotation },
    enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
    ...(o.caPkcs11 ? { ca: { pkcs11: { ...caKeyLabels(o.name), ...o.caPkcs11 } } } : {}),
  };

  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(o.dataDir, 0o700);
  mkdirSync(paths.certs, { recursive: true, mode: 0o755 });
  const keystore = new FileKeystore(paths.keystore);
  keystore.ensure();

  // The database first: a PostgreSQL database of another authority must not get a second CA.
  const store = await openStore(config, o.dataDir);
  try {
    const fresh = await store.write(async (tx) => tx.initState(o.name, now));
    if (!fresh) {
      const existing = await store.read((tx) => tx.state());
      throw new Error(
        `the database already holds authority ${JSON.stringify(existing.authority)}; to run another replica of it, copy that authority's data directory instead of running init`,
      );
    }
    const tokenKeys = config.ca ? await makeTokenCaKeys(config.ca.pkcs11) : undefined;
    try {
      return await initWith(o, config, store, keystore, tokenKeys, now, random);
    } catch (e) {
      tokenKeys?.discard();
      throw e;
    } finally {
      tokenKeys?.close();
    }
  } finally {
    await store.close();
  }
}

/** The rest of `init`, once the database is this authority's: the CA, the keys, the first administrator token. */
async function initWith(
  o: InitOptions,
  config: AuthorityConfig,
  store: Store,
  keystore: FileKeystore,
  tokenKeys: { root: CryptoKeyPair; issuing: CryptoKeyPair } | undefined,
  now: number,
  random: RandomSource,
): Promise<InitResult> {
  const paths = dataPaths(o.dataDir);
  const ca = await createAuthorityCa({ authority: o.name, now, random, keys: tokenKeys });
  if (!tokenKeys) {
    keystore.write(KEY_ROOT, await exportPkcs8Pem(ca.root.key));
    keystore.write(KEY_ISSUING, await exportPkcs8Pem(ca.issuing.key));
  }
  keystore.writeSecret(KEY_KEK, random(32));
  keystore.writeSecret(KEY_PUSH, random(32));
  writeFileSync(paths.rootCert, joinPem(ca.root.cert.toString('pem')));
  writeFileSync(paths.issuingCert, joinPem(ca.issuing.cert.toString('pem')));
  await issueServerCert(ca, config, keystore, paths.serverCert, now, random);
  await ensureAttributeAuthority(o.dataDir, ca, now);

  const service = new AuthorityService({
    store,
    ca,
    kek: keystore.readSecret(KEY_KEK),
    url: config.url,
    rotation: config.rotation,
    enrollment: config.enrollment,
    random,
    now: () => now,
  });
  await service.start();
  const { token } = await service.createAdminToken('authority:init', 'initial');
  writeConfig(o.dataDir, config);
  if (o.writeAdminToken !== false) {
    writeFileSync(paths.adminToken, token + '\n', { mode: 0o600 });
    chmodSync(paths.adminToken, 0o600);
  }
  return {
    config,
    adminToken: token,
    caFingerprint: fingerprint(new Uint8Array(ca.root.cert.rawData)),
    caKeys: tokenKeys ? describeKey(ca.issuing.key) : `keystore (${paths.keystore})`,
  };
}

export interface ReplicaOptions {
  /** The data directory of a running authority (on PostgreSQL) to copy. */
  from: string;
  /** The new replica's data directory (must not exist, or be empty). */
  dataDir: string;
  /** Where this replica serves (default: the same as the source's). */
  listen?: { host: string; port: number };
  /** What gateways and bundles use (default: the source's URL, the service's shared name). */
  url?: string;
  /** Extra names/addresses for this replica's TLS certificate (its own host name, say). */
  sans?: string[];
  /** The database as this replica reaches it (default: the source's URL). */
  database?: string;
  /** Copy DATA/admin.token too (default true), for the CLI on the replica's host. */
  copyAdminToken?: boolean;
  /** CA keys in a PKCS#11 token: the PIN file as this replica's host has it (default: the source's path). */
  caPinFile?: string;
  now?: number;
  random?: RandomSource;
}

export interface ReplicaResult {
  config: AuthorityConfig;
  /** Files copied from the source, relative to the data directory. */
  copied: string[];
  /** This replica's own files, made here. */
  made: string[];
}

/**
 * The files a replica copies: the CA, the attribute authority, the key-encryption key and the
 * wake-up channel's secret (never in the database). CA keys in a PKCS#11 token are not files:
 * the replica names the same token.
 */
const REPLICA_FILES = ['certs/root-ca.pem', 'certs/issuing-ca.pem', 'certs/attribute-authority.pem'];
const REPLICA_KEYS = [KEY_ROOT, KEY_ISSUING, KEY_AA, KEY_KEK, KEY_PUSH];

/**
 * Makes the data directory of another replica of the authority in `from` (`kasane authority
 * replica`): the same configuration (name, database, timers; this replica's listen address, URL
 * and names), the same CA certificates and keys, attribute authority and key-encryption key
 * (copied file to file, mode 0600: they are never put into the database; CA keys in a PKCS#11
 * token stay there, and this host must reach the token), and a TLS server key and certificate of
 * its own, issued by the issuing CA for its names. Replicas need PostgreSQL; the database must
 * already hold this authority, and the key-encryption key must open its keys.
 */
export async function createReplica(o: ReplicaOptions): Promise<ReplicaResult> {
  const source = readConfig(o.from);
  if (!source.database) {
    throw new Error(
      `${o.from} keeps its state in SQLite (authority.db), which serves one process: replicas need PostgreSQL. ` +
        'Create the authority with --database postgres://… to run several replicas.',
    );
  }
  if (existsSync(o.dataDir) && readdirSync(o.dataDir).length > 0)
    throw new Error(`${o.dataDir} exists and is not empty`);
  const created = !existsSync(o.dataDir);
  try {
    return await makeReplica(o, source);
  } catch (e) {
    // Half a replica (keys copied, no configuration) must not stay behind.
    if (created) rmSync(o.dataDir, { recursive: true, force: true });
    else for (const f of readdirSync(o.dataDir)) rmSync(join(o.dataDir, f), { recursive: true, force: true });
    throw e;
  }
}

async function makeReplica(o: ReplicaOptions, source: AuthorityConfig): Promise<ReplicaResult> {
  const now = o.now ?? Date.now();
  const random = o.random ?? cryptoRandom;
  const from = dataPaths(o.from);
  const to = dataPaths(o.dataDir);
  const listen = o.listen ? { ...o.listen, host: canonicalHost(o.listen.host) } : source.listen;
  const sans = [...new Set([...defaultSans(listen.host, [...source.sans, ...(o.sans ?? [])])])];
  const url = o.url ?? source.url;
  const host = urlHost(url);
  if (!sans.includes(host)) sans.push(host);
  const config: AuthorityConfig = { ...source, listen, url, sans, database: o.database ?? source.database };
  if (config.ca && o.caPinFile) config.ca = { pkcs11: { ...config.ca.pkcs11, pinFile: o.caPinFile } };

  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(o.dataDir, 0o700);
  mkdirSync(to.certs, { recursive: true, mode: 0o755 });
  const keystore = new FileKeystore(to.keystore);
  keystore.ensure();
  const copied: string[] = [];
  for (const f of REPLICA_FILES) {
    if (!existsSync(join(o.from, f))) continue;
    writeFileSync(join(o.dataDir, f), readFileSync(join(o.from, f)));
    copied.push(f);
  }
  const sourceKeys = new FileKeystore(from.keystore);
  for (const k of REPLICA_KEYS) {
    if (!sourceKeys.has(k)) continue;
    keystore.write(k, sourceKeys.read(k));
    copied.push(`keystore/${k}`);
  }
  if (o.copyAdminToken !== false && existsSync(from.adminToken)) {
    writeFileSync(to.adminToken, readFileSync(from.adminToken), { mode: 0o600 });
    chmodSync(to.adminToken, 0o600);
    copied.push('admin.token');
  }
  // This replica's TLS certificate, signed here with the CA keys (from the token when they are in one).
  const ca = await loadCa(o.dataDir, config);
  try {
    await issueServerCert(ca, config, keystore, to.serverCert, now, random);
  } finally {
    ca.keys.close();
  }

  // The database must be this authority's, and the key-encryption key the one its keys are under.
  const store = await openStore(config, o.dataDir);
  try {
    const { state, epoch } = await store.read(async (tx) => {
      const vpn = (await tx.listVpns()).find((v) => v.mode === 'group');
      return { state: await tx.state(), epoch: vpn ? (await tx.listEpochs(vpn.id))[0] : undefined };
    });
    if (state.authority !== config.name)
      throw new Error(
        `the database belongs to authority ${JSON.stringify(state.authority)}, not ${JSON.stringify(config.name)}`,
      );
    if (epoch) {
      try {
        unwrapGroupKey(keystore.readSecret(KEY_KEK), epoch.vpnId, epoch.epoch, epoch.wrappedKey);
      } catch {
        throw new Error(
          `the key-encryption key copied from ${o.from} does not open this database's group keys: is it the same authority?`,
        );
      }
    }
  } finally {
    await store.close();
  }
  writeConfig(o.dataDir, config);
  return { config, copied, made: ['authority.json', 'keystore/server.key', 'certs/server.pem'] };
}

async function issueServerCert(
  ca: AuthorityCa,
  config: AuthorityConfig,
  keystore: FileKeystore,
  certPath: string,
  now: number,
  random: RandomSource,
): Promise<void> {
  const keys = await generateKeyPair();
  const cert = await issueServerCertificate({
    issuing: ca.issuing,
    authority: config.name,
    publicKey: keys.publicKey,
    sans: config.sans,
    now,
    random,
  });
  keystore.write(KEY_SERVER, await exportPkcs8Pem(keys.privateKey));
  writeFileSync(certPath, joinPem(cert.toString('pem')));
}

/**
 * The attribute authority that signs permits (seed 001): made under the root at init, or on the
 * first start of a data directory made before it existed; renewed when it nears its end.
 */
export async function ensureAttributeAuthority(
  dataDir: string,
  ca: AuthorityCa,
  now: number,
): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const paths = dataPaths(dataDir);
  const keystore = new FileKeystore(paths.keystore);
  if (existsSync(paths.aaCert) && keystore.has(KEY_AA)) {
    const cert = new x509.X509Certificate(readFileSync(paths.aaCert, 'utf8'));
    if (cert.notAfter.getTime() - now > 30 * 86_400_000)
      return { cert, key: await importPrivateKey(keystore.read(KEY_AA), 'sign') };
  }
  const aa = await createAttributeAuthority({ root: ca.root, now });
  keystore.write(KEY_AA, await exportPkcs8Pem(aa.key));
  writeFileSync(paths.aaCert, joinPem(aa.cert.toString('pem')));
  return aa;
}

/** The CA of a data directory: its certificates and its keys (keystore or token; `close()` when done). */
export async function loadCa(
  dataDir: string,
  config: AuthorityConfig = readConfig(dataDir),
): Promise<AuthorityCa & { keys: CaKeys }> {
  const paths = dataPaths(dataDir);
  const certs = {
    root: new x509.X509Certificate(readFileSync(paths.rootCert, 'utf8')),
    issuing: new x509.X509Certificate(readFileSync(paths.issuingCert, 'utf8')),
  };
  const keys = await openCaKeys(dataDir, config, certs);
  return { root: { cert: certs.root, key: keys.root }, issuing: { cert: certs.issuing, key: keys.issuing }, keys };
}

export interface ServeOptions {
  dataDir: string;
  /** Overrides the configured listen address. */
  listen?: { host: string; port: number };
  /** Overrides the configured database. */
  database?: string;
  logLevel?: string;
  log?: Logger;
  /** Scheduled-rotation check interval (ms); 0 disables the scheduler. */
  schedulerIntervalMs?: number;
  /** Overrides the configured rotation timers (tests). */
  rotation?: Partial<RotationConfig>;
  now?: () => number;
  random?: RandomSource;
  /** Overrides the federation timers (tests): permit validity and the exchange interval with peers. */
  federation?: { permitValidityMs?: number; syncIntervalMs?: number };
  /** Overrides the jobs lease between replicas (tests). */
  jobs?: { leaseMs?: number };
  /** Overrides the configured console session lifetimes (tests). */
  sessions?: { idleMs?: number; maxMs?: number };
  /** Test hook: wraps the opened store (e.g. to inject failures). */
  wrapStore?: (store: Store) => Store;
}

/** Connections waiting to be accepted (the kernel caps it at net.core.somaxconn, 4096 by default). */
const LISTEN_BACKLOG = 8192;

export interface RunningAuthority {
  url: string;
  port: number;
  /** The wake-up channel (absent when authority.json turns it off). */
  push?: PushChannel;
  service: AuthorityService;
  app: FastifyInstance;
  store: Store;
  close(): Promise<void>;
}

/** Opens the CA keys and the store, checks the identity, renews the TLS certificate if needed, and serves. */
export async function startAuthority(o: ServeOptions): Promise<RunningAuthority> {
  const config = readConfig(o.dataDir);
  if (o.database) config.database = o.database;
  const ca = await loadCa(o.dataDir, config);
  try {
    const running = await serveWith(o, config, ca);
    return {
      ...running,
      async close() {
        await running.close();
        ca.keys.close();
      },
    };
  } catch (e) {
    ca.keys.close();
    throw e;
  }
}

async function serveWith(o: ServeOptions, config: AuthorityConfig, ca: AuthorityCa): Promise<RunningAuthority> {
  const configured = { ...config.listen, host: canonicalHost(config.listen.host) };
  const listen = o.listen ? { ...o.listen, host: canonicalHost(o.listen.host) } : configured;
  const log = o.log ?? createLogger(o.logLevel);
  const paths = dataPaths(o.dataDir);
  const keystore = new FileKeystore(paths.keystore);
  const random = o.random ?? cryptoRandom;
  const now = o.now ?? Date.now;

  // Renew the server certificate when it is about to expire or no longer names what we serve.
  const server = new x509.X509Certificate(readFileSync(paths.serverCert, 'utf8'));
  const wanted = defaultSans(listen.host, config.sans);
  const have = new Set(
    certificateSans(server).map((n) => {
      const ip = parseIp(n);
      return ip.ok ? ip.value : n;
    }),
  );
  if (server.notAfter.getTime() - now() < 30 * 86_400_000 || wanted.some((w) => !have.has(w))) {
    log.info({ sans: wanted }, 'issuing a new TLS server certificate');
    await issueServerCert(ca, { ...config, sans: wanted }, keystore, paths.serverCert, now(), random);
  }

  // SQLite is one process's database: a second `serve` on it is refused (replicas need PostgreSQL).
  const releaseSqlite = config.database ? () => undefined : lockSqlite(o.dataDir);
  let opened: Store;
  try {
    opened = await openStore(config, o.dataDir);
  } catch (e) {
    releaseSqlite();
    throw e;
  }
  const store = o.wrapStore ? o.wrapStore(opened) : opened;
  let started: { app: FastifyInstance; service: AuthorityService } | undefined;
  let push: ReturnType<typeof pushChannel> | undefined;
  try {
    const state = await store.read((tx) => tx.state());
    if (state.authority !== config.name) {
      throw new Error(
        `the database belongs to authority ${JSON.stringify(state.authority)}, not ${JSON.stringify(config.name)}`,
      );
    }
    const aa = await ensureAttributeAuthority(o.dataDir, ca, now());
    const tls = {
      key: keystore.read(KEY_SERVER),
      cert: joinPem(readFileSync(paths.serverCert, 'utf8'), readFileSync(paths.issuingCert, 'utf8')),
      ca: [readFileSync(paths.rootCert, 'utf8'), readFileSync(paths.issuingCert, 'utf8')],
      groups: config.tls?.groups,
    };
    const federation = { ...config.federation, ...o.federation };
    const service = new AuthorityService({
      store,
      ca,
      attributeAuthority: aa,
      tls: { cert: tls.cert, key: tls.key },
      federation,
      sessions: {
        ...(config.console?.sessionIdleMs !== undefined && { idleMs: config.console.sessionIdleMs }),
        ...(config.console?.sessionMaxMs !== undefined && { maxMs: config.console.sessionMaxMs }),
        ...o.sessions,
      },
      kek: keystore.readSecret(KEY_KEK),
      url: config.url,
      rotation: { ...config.rotation, ...o.rotation },
      enrollment: config.enrollment,
      random,
      now,
      log,
      jobs: { ...config.jobs, ...o.jobs },
    });
    await service.start();
    push = config.push === false ? undefined : pushChannel(service, store, keystore, config, now, random, log);
    const app = await buildServer(
      service,
      { ...tls, ...(push && { ticketKeys: tlsTicketKeys(keystore.readSecret(KEY_PUSH)) }) },
      log,
      push?.channel,
    );
    started = { app, service };
    // When a replica dies its gateways all connect to the others at once: with node's default
    // backlog (511) the kernel drops the connections beyond it, and each waits for its SYN to be
    // sent again (1, 3, 7, 15, 31, 63 s: a failover of 5,000 gateways took a minute).
    await app.listen({ host: listen.host, port: listen.port, backlog: LISTEN_BACKLOG });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    // The wake-up channel: UDP on the API's address, and on its port number unless configured.
    const pushPort = config.push ? config.push.port : undefined;
    if (push) {
      try {
        await push.bind(listen.host, pushPort ?? port);
      } catch (e) {
        throw new Error(
          `cannot open the wake-up channel on UDP ${listen.host} port ${pushPort ?? port}: ${(e as Error).message}` +
            ' (authority.json: "push": {"port": N} chooses another port, "push": false turns it off)',
        );
      }
    }
    // The configured URL, unless we listen somewhere else than configured (e.g. port 0 in tests).
    const sameAsConfigured = listen.host === configured.host && listen.port === configured.port && listen.port !== 0;
    const actualUrl = sameAsConfigured ? config.url : urlFor(listen.host, port);
    service.url = actualUrl;
    // The replicas' listing shows where this one listens (the advertised URL may be the service's shared name).
    const ownUrl =
      listen.host === '0.0.0.0' || listen.host === '::' ? `https://${hostname()}:${port}` : urlFor(listen.host, port);
    service.replicas.ownUrl = () => ownUrl;
    // The first heartbeat: the replica is listed, and takes the jobs lease if nobody holds it.
    await service.replicas.beat();
    const stopJobs = startJobs(authorityJobs(service, o.schedulerIntervalMs ?? 1000), log);
    if (o.schedulerIntervalMs !== 0) service.federation?.start(federation.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS);
    log.info(
      {
        url: actualUrl,
        authority: config.name,
        store: store.kind,
        replica: service.replicas.id,
        runsJobs: service.replicas.holdsJobs,
        caKeys: config.ca ? describeKey(ca.issuing.key) : 'keystore',
        push: push ? `udp ${push.channel.port}` : 'off',
      },
      'authority listening',
    );
    let closed = false;
    return {
      url: actualUrl,
      port,
      service,
      app,
      store,
      push: push?.channel,
      async close() {
        if (closed) return;
        closed = true;
        stopJobs();
        await push?.close();
        await service.stop();
        await app.close();
        await store.close();
        releaseSqlite();
      },
    };
  } catch (e) {
    await push?.close();
    if (started) {
      await started.service.stop().catch(() => undefined);
      await started.app.close().catch(() => undefined);
    }
    await store.close().catch(() => undefined);
    releaseSqlite();
    throw e;
  }
}

/**
 * The wake-up channel of a serving process (push.ts), fed by the change stream's wake-ups; its
 * UDP socket is bound by `bind` once the API listens. A data directory made before the channel
 * existed gets its secret now (replicas made from it afterwards copy it).
 */
function pushChannel(
  service: AuthorityService,
  store: Store,
  keystore: FileKeystore,
  config: AuthorityConfig,
  now: () => number,
  random: RandomSource,
  log: Logger,
): { channel: PushChannel; bind(host: string, port: number): Promise<void>; close(): Promise<void> } {
  if (!keystore.has(KEY_PUSH)) {
    keystore.writeSecret(KEY_PUSH, random(32));
    if (config.database)
      log.warn(
        'made the wake-up channel secret (keystore/push): copy it to the other replicas, or gateways moving between them fall back to the long poll',
      );
  }
  let socket: Awaited<ReturnType<typeof bindPushSocket>> | undefined;
  const channel = new PushChannel({
    secret: keystore.readSecret(KEY_PUSH),
    now,
    send: (b, address, port) => socket?.socket.send(b, port, address),
    check: (names) =>
      store.read(async (tx) => {
        const state = await tx.state();
        const rows = await tx.getGateways(names);
        return {
          version: state.version,
          directoryVersion: state.directoryVersion,
          gateways: new Map(
            rows.map((g) => [g.name, { active: g.status === 'active', changedVersion: g.changedVersion }]),
          ),
        };
      }),
    // Answers read as a fetch's are (batched with other gateways'), sent in DELIVERs when they fit.
    answer: (gateway, since) => service.changeStream.changes(gateway, since, 0),
    refreshSeconds: (config.push && config.push.refreshSeconds) || DEFAULT_REFRESH_SECONDS,
    port: 0,
    log,
  });
  service.changeStream.onWake((target, version) => channel.notify(target, version));
  return {
    channel,
    async bind(host, port) {
      socket = await bindPushSocket(host, port, (b, address, p) => channel.receive(b, address, p), log);
      channel.port = socket.port;
    },
    async close() {
      const told = channel.farewell();
      channel.close();
      // The farewells leave before the socket closes (datagrams queued on a closing socket are lost).
      if (told) await new Promise((r) => setTimeout(r, 50));
      await socket?.close();
      socket = undefined;
    },
  };
}

/** Processes of this host serving a SQLite data directory, by lock file: one at a time. */
const sqliteLocks = new Set<string>();

/**
 * Takes DATA/serve.lock (the serving process's PID) or refuses: another live process serves this
 * SQLite database. A lock left by a killed process (its PID is gone) is taken over.
 */
function lockSqlite(dataDir: string): () => void {
  const file = join(dataDir, 'serve.lock');
  const refuse = (pid: number): never => {
    throw new Error(
      `another authority process (PID ${pid}) is serving ${dataDir}: SQLite is a single-process store. ` +
        'Replicas need PostgreSQL (docs/authority.md, "Running several replicas").',
    );
  };
  if (sqliteLocks.has(file)) refuse(process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      sqliteLocks.add(file);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        sqliteLocks.delete(file);
        rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) refuse(pid);
      rmSync(file, { force: true }); // left behind by a process that is gone
    }
  }
  throw new Error(`cannot take ${file}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A periodic job of a running authority. */
export interface AuthorityJob {
  name: string;
  everyMs: number;
  /** Runs only while this holds (a cluster-wide job: while this replica holds the jobs lease). */
  when?: () => boolean;
  run(): Promise<unknown>;
}

/** How often the CRLs are re-signed: they are valid a week (certificates.ts), so this keeps them fresh. */
const CRL_REFRESH_MS = 12 * 3_600_000;
/** Ended console sessions are deleted this often (they are refused as soon as they end anyway). */
const SESSION_PURGE_MS = 10 * 60_000;

/**
 * The periodic jobs of a running authority, in one place: this replica's heartbeat (which also
 * claims or extends the jobs lease, replicas.ts), the scheduled rotations that are due (checked
 * every `rotationCheckMs`, 0 = never; cluster-wide: only on the holder of the jobs lease, fenced
 * by it), the CRL refresh (every replica re-signs its own) and deleting ended console sessions.
 * The federation's exchanges and permit renewals are the other cluster-wide job (federation.ts,
 * its own loop, same lease).
 */
export function authorityJobs(service: AuthorityService, rotationCheckMs: number): AuthorityJob[] {
  const replicas = service.replicas;
  return [
    { name: 'heartbeat', everyMs: replicas.heartbeatMs, run: () => replicas.beat() },
    ...(rotationCheckMs > 0
      ? [
          {
            name: 'scheduled rotation',
            everyMs: rotationCheckMs,
            when: () => replicas.holdsJobs,
            run: () =>
              service.epochs.runDueRotations({ fence: (tx) => replicas.assertHoldsJobs(tx), replica: replicas.id }),
          },
        ]
      : []),
    { name: 'CRL refresh', everyMs: CRL_REFRESH_MS, run: () => service.certificates.refreshCrls() },
    { name: 'ended console sessions', everyMs: SESSION_PURGE_MS, run: () => service.sessions.purge() },
  ];
}

/** While a job keeps failing (the database is away), one line this often says so, with a count. */
export const FAILING_LOG_MS = 30_000;

/**
 * Runs each job every `everyMs` until the returned function is called. A job does not start again
 * while its previous run is still going (a slow rotation run must not race the next one); a
 * failure is logged and the job runs again at its next time. A job that keeps failing (the
 * heartbeat while the database is down, every few hundred ms) logs its first failure, then one
 * line per `failingLogMs` with the count, and one when it works again. The timers never keep the
 * process alive.
 */
export function startJobs(jobs: readonly AuthorityJob[], log?: Logger, o: { failingLogMs?: number } = {}): () => void {
  const failingLogMs = o.failingLogMs ?? FAILING_LOG_MS;
  const timers = jobs.map((job) => {
    let running = false;
    /** Failures in a row, when the first of them was, failures since the last line, when that was. */
    let failing = { count: 0, since: 0, unlogged: 0, loggedAt: 0 };
    const failed = (e: unknown): void => {
      const now = Date.now();
      if (failing.count++ === 0) {
        failing = { count: 1, since: now, unlogged: 0, loggedAt: now };
        log?.error({ err: e }, `${job.name} failed`);
      } else if (now - failing.loggedAt >= failingLogMs) {
        log?.error(
          { err: e, failures: failing.unlogged + 1, failingForMs: now - failing.since },
          `${job.name} still failing`,
        );
        failing.unlogged = 0;
        failing.loggedAt = now;
      } else failing.unlogged++;
    };
    const worked = (): void => {
      if (failing.count === 0) return;
      log?.info({ failures: failing.count, failedForMs: Date.now() - failing.since }, `${job.name} works again`);
      failing.count = 0;
    };
    const timer = setInterval(() => {
      if (running || (job.when && !job.when())) return;
      running = true;
      job
        .run()
        .then(worked, failed)
        .finally(() => (running = false));
    }, job.everyMs);
    timer.unref();
    return timer;
  });
  return () => {
    for (const t of timers) clearInterval(t);
  };
}

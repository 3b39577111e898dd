// Creating an authority (`kasane authority init`) and running it (`kasane authority serve`),
// with its periodic jobs: the only timers of a running authority besides the federation's
// exchange loop (federation.ts, which also runs a moment after each change) and the change
// stream's short debounce of other replicas' commits (change-stream.ts).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createAuthorityCa, certificateSans, issueServerCertificate, type AuthorityCa } from '../pki/ca.js';
import { createAttributeAuthority } from '../pki/permit.js';
import { exportPkcs8Pem, fingerprint, generateKeyPair, importPrivateKey, joinPem } from '../pki/keys.js';
import { cryptoRandom, type RandomSource } from '../base/random.js';
import { FileKeystore } from '../pki/keystore.js';
import { x509 } from '../pki/x509.js';
import {
  CONFIG_FORMAT,
  dataPaths,
  DEFAULT_ROTATION,
  KEY_AA,
  KEY_ISSUING,
  KEY_KEK,
  KEY_ROOT,
  KEY_SERVER,
  readConfig,
  urlFor,
  writeConfig,
  type AuthorityConfig,
  type RotationConfig,
} from './config.js';
import { createLogger } from './log.js';
import { DEFAULT_SYNC_INTERVAL_MS } from './federation.js';
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
  now?: number;
  random?: RandomSource;
}

export interface InitResult {
  config: AuthorityConfig;
  adminToken: string;
  caFingerprint: string;
}

export async function openStore(config: AuthorityConfig, dataDir: string): Promise<Store> {
  return config.database ? PostgresStore.open(config.database) : SqliteStore.open(dataPaths(dataDir).sqlite);
}

function defaultSans(host: string, extra: string[]): string[] {
  const out = new Set<string>(['localhost', '127.0.0.1', '::1']);
  if (host !== '0.0.0.0' && host !== '::') out.add(host);
  for (const s of extra) out.add(s);
  return [...out];
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
  const listen = o.listen ?? { host: '127.0.0.1', port: 7443 };
  const sans = defaultSans(listen.host, o.sans ?? []);
  const url = o.url ?? urlFor(listen.host, listen.port);
  if (o.url) {
    const host = new URL(o.url).hostname.replace(/^\[|\]$/g, '');
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
    const ca = await createAuthorityCa({ authority: o.name, now, random });
    keystore.write(KEY_ROOT, await exportPkcs8Pem(ca.root.key));
    keystore.write(KEY_ISSUING, await exportPkcs8Pem(ca.issuing.key));
    keystore.writeSecret(KEY_KEK, random(32));
    writeFileSync(paths.rootCert, joinPem(ca.root.cert.toString('pem')));
    writeFileSync(paths.issuingCert, joinPem(ca.issuing.cert.toString('pem')));
    await issueServerCert(ca, config, keystore, paths.serverCert, now, random);
    await ensureAttributeAuthority(o.dataDir, ca, now);

    const service = new AuthorityService({
      store,
      ca,
      kek: keystore.readSecret(KEY_KEK),
      url,
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
    return { config, adminToken: token, caFingerprint: fingerprint(new Uint8Array(ca.root.cert.rawData)) };
  } finally {
    await store.close();
  }
}

async function issueServerCert(ca: AuthorityCa, config: AuthorityConfig, keystore: FileKeystore, certPath: string, now: number, random: RandomSource): Promise<void> {
  const keys = await generateKeyPair();
  const cert = await issueServerCertificate({ issuing: ca.issuing, authority: config.name, publicKey: keys.publicKey, sans: config.sans, now, random });
  keystore.write(KEY_SERVER, await exportPkcs8Pem(keys.privateKey));
  writeFileSync(certPath, joinPem(cert.toString('pem')));
}

/**
 * The attribute authority that signs permits (seed 001): made under the root at init, or on the
 * first start of a data directory made before it existed; renewed when it nears its end.
 */
export async function ensureAttributeAuthority(dataDir: string, ca: AuthorityCa, now: number): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const paths = dataPaths(dataDir);
  const keystore = new FileKeystore(paths.keystore);
  if (existsSync(paths.aaCert) && keystore.has(KEY_AA)) {
    const cert = new x509.X509Certificate(readFileSync(paths.aaCert, 'utf8'));
    if (cert.notAfter.getTime() - now > 30 * 86_400_000) return { cert, key: await importPrivateKey(keystore.read(KEY_AA), 'sign') };
  }
  const aa = await createAttributeAuthority({ root: ca.root, now });
  keystore.write(KEY_AA, await exportPkcs8Pem(aa.key));
  writeFileSync(paths.aaCert, joinPem(aa.cert.toString('pem')));
  return aa;
}

export async function loadCa(dataDir: string): Promise<AuthorityCa> {
  const paths = dataPaths(dataDir);
  const keystore = new FileKeystore(paths.keystore);
  return {
    root: { cert: new x509.X509Certificate(readFileSync(paths.rootCert, 'utf8')), key: await importPrivateKey(keystore.read(KEY_ROOT), 'sign') },
    issuing: { cert: new x509.X509Certificate(readFileSync(paths.issuingCert, 'utf8')), key: await importPrivateKey(keystore.read(KEY_ISSUING), 'sign') },
  };
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
  /** Test hook: wraps the opened store (e.g. to inject failures). */
  wrapStore?: (store: Store) => Store;
}

export interface RunningAuthority {
  url: string;
  port: number;
  service: AuthorityService;
  app: FastifyInstance;
  store: Store;
  close(): Promise<void>;
}

/** Opens the store, checks the identity, renews the TLS certificate if needed, and serves. */
export async function startAuthority(o: ServeOptions): Promise<RunningAuthority> {
  const config = readConfig(o.dataDir);
  if (o.database) config.database = o.database;
  const listen = o.listen ?? config.listen;
  const log = o.log ?? createLogger(o.logLevel);
  const paths = dataPaths(o.dataDir);
  const keystore = new FileKeystore(paths.keystore);
  const ca = await loadCa(o.dataDir);
  const random = o.random ?? cryptoRandom;
  const now = o.now ?? Date.now;

  // Renew the server certificate when it is about to expire or no longer names what we serve.
  const server = new x509.X509Certificate(readFileSync(paths.serverCert, 'utf8'));
  const wanted = defaultSans(listen.host, config.sans);
  const have = new Set(certificateSans(server));
  if (server.notAfter.getTime() - now() < 30 * 86_400_000 || wanted.some((w) => !have.has(w))) {
    log.info({ sans: wanted }, 'issuing a new TLS server certificate');
    await issueServerCert(ca, { ...config, sans: wanted }, keystore, paths.serverCert, now(), random);
  }

  const opened = await openStore(config, o.dataDir);
  const store = o.wrapStore ? o.wrapStore(opened) : opened;
  try {
    const state = await store.read((tx) => tx.state());
    if (state.authority !== config.name) {
      throw new Error(`the database belongs to authority ${JSON.stringify(state.authority)}, not ${JSON.stringify(config.name)}`);
    }
    const aa = await ensureAttributeAuthority(o.dataDir, ca, now());
    const tls = {
      key: keystore.read(KEY_SERVER),
      cert: joinPem(readFileSync(paths.serverCert, 'utf8'), readFileSync(paths.issuingCert, 'utf8')),
      ca: [readFileSync(paths.rootCert, 'utf8'), readFileSync(paths.issuingCert, 'utf8')],
    };
    const federation = { ...config.federation, ...o.federation };
    const service = new AuthorityService({
      store,
      ca,
      attributeAuthority: aa,
      tls: { cert: tls.cert, key: tls.key },
      federation,
      kek: keystore.readSecret(KEY_KEK),
      url: config.url,
      rotation: { ...config.rotation, ...o.rotation },
      enrollment: config.enrollment,
      random,
      now,
      log,
    });
    await service.start();
    const app = await buildServer(service, tls, log);
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    // The configured URL, unless we listen somewhere else than configured (e.g. port 0 in tests).
    const sameAsConfigured = listen.host === config.listen.host && listen.port === config.listen.port && listen.port !== 0;
    const actualUrl = sameAsConfigured ? config.url : urlFor(listen.host, port);
    service.url = actualUrl;
    let stopJobs = (): void => undefined;
    if (o.schedulerIntervalMs !== 0) {
      stopJobs = startJobs(authorityJobs(service, o.schedulerIntervalMs ?? 1000), log);
      service.federation?.start(federation.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS);
    }
    log.info({ url: actualUrl, authority: config.name, store: store.kind }, 'authority listening');
    let closed = false;
    return {
      url: actualUrl,
      port,
      service,
      app,
      store,
      async close() {
        if (closed) return;
        closed = true;
        stopJobs();
        await service.stop();
        await app.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}

/** A periodic job of a running authority. */
export interface AuthorityJob {
  name: string;
  everyMs: number;
  run(): Promise<unknown>;
}

/** How often the CRLs are re-signed: they are valid a week (certificates.ts), so this keeps them fresh. */
const CRL_REFRESH_MS = 12 * 3_600_000;

/**
 * The periodic jobs of a running authority, in one place: the scheduled rotations that are due
 * (checked every `rotationCheckMs`) and the CRL refresh.
 */
export function authorityJobs(service: AuthorityService, rotationCheckMs: number): AuthorityJob[] {
  return [
    { name: 'scheduled rotation', everyMs: rotationCheckMs, run: () => service.epochs.runDueRotations() },
    { name: 'CRL refresh', everyMs: CRL_REFRESH_MS, run: () => service.certificates.refreshCrls() },
  ];
}

/**
 * Runs each job every `everyMs` until the returned function is called. A job does not start again
 * while its previous run is still going (a slow rotation run must not race the next one); a
 * failure is logged and the job runs again at its next time. The timers never keep the process alive.
 */
export function startJobs(jobs: readonly AuthorityJob[], log?: Logger): () => void {
  const timers = jobs.map((job) => {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      job
        .run()
        .catch((e) => log?.error({ err: e }, `${job.name} failed`))
        .finally(() => (running = false));
    }, job.everyMs);
    timer.unref();
    return timer;
  });
  return () => {
    for (const t of timers) clearInterval(t);
  };
}

// Test fixtures: a real authority (in this process, or as a separate `kasane authority serve`
// process) on 127.0.0.1 with an ephemeral port, real HTTPS and mutual TLS, and enrolled gateways.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorityClient, enroll, gatewayClient, openDelivery, parseBundle } from '../../../src/authority/client.js';
import { writeConfig, type AuthorityConfig, type RotationConfig } from '../../../src/authority/config.js';
import { initAuthority, startAuthority, type RunningAuthority } from '../../../src/authority/lifecycle.js';
import type { Store, StoreOps } from '../../../src/authority/storage/types.js';
import type { GatewayBundle, GatewayChanges } from '../../../src/authority/wire.js';
import type { AuthoritySnapshot } from '../../../src/core/types.js';

export const ROOT = new URL('../../../', import.meta.url).pathname;

export interface TestAuthority {
  dir: string;
  url: string;
  ca: string;
  adminToken: string;
  admin: AuthorityClient;
  running: RunningAuthority;
  /** Admin client with another token / none, for auth tests. */
  clientWith(token?: string): AuthorityClient;
  close(): Promise<void>;
}

export interface StartOptions {
  name?: string;
  database?: string;
  rotation?: Partial<RotationConfig>;
  schedulerIntervalMs?: number;
  wrapStore?: (s: Store) => Store;
  /** Reuse an existing data directory (a second replica). */
  dir?: string;
  federation?: { permitValidityMs?: number; syncIntervalMs?: number };
  now?: () => number;
  /** Where to init and serve (default 127.0.0.1 on an ephemeral port). */
  listen?: { host: string; port: number };
  /** authority.json's wake-up channel section (default: absent, the channel on). */
  push?: AuthorityConfig['push'];
}

export async function startTestAuthority(o: StartOptions = {}): Promise<TestAuthority> {
  let dir = o.dir;
  let adminToken: string;
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'kasane-auth-'));
    const r = await initAuthority({
      dataDir: join(dir, 'a'),
      name: o.name ?? 'test authority',
      database: o.database,
      listen: o.listen ?? { host: '127.0.0.1', port: 0 },
      rotation: o.rotation,
    });
    adminToken = r.adminToken;
    if (o.push !== undefined) writeConfig(join(dir, 'a'), { ...r.config, push: o.push });
  } else {
    adminToken = readFileSync(join(dir, 'a', 'admin.token'), 'utf8').trim();
  }
  const running = await startAuthority({
    dataDir: join(dir, 'a'),
    listen: o.listen ?? { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    schedulerIntervalMs: o.schedulerIntervalMs ?? 0,
    rotation: o.rotation,
    wrapStore: o.wrapStore,
    federation: o.federation,
    now: o.now,
  });
  const ca = readFileSync(join(dir, 'a', 'certs', 'root-ca.pem'), 'utf8');
  const admin = new AuthorityClient({ url: running.url, ca, adminToken });
  const extra: AuthorityClient[] = [];
  const owned = !o.dir;
  return {
    dir,
    url: running.url,
    ca,
    adminToken,
    admin,
    running,
    clientWith(token?: string) {
      const c = new AuthorityClient({ url: running.url, ca, adminToken: token });
      extra.push(c);
      return c;
    },
    async close() {
      admin.close();
      for (const c of extra) c.close();
      await running.close();
      if (owned) rmSync(dir!, { recursive: true, force: true });
    },
  };
}

export interface TestGateway {
  name: string;
  bundle: GatewayBundle;
  key: string;
  client: AuthorityClient;
  snapshot(c: GatewayChanges): Promise<AuthoritySnapshot>;
}

/** A test gateway from its bundle (its client talks to the bundle's URL). */
export function gatewayOf(bundle: GatewayBundle): TestGateway {
  const key = bundle.privateKey!;
  const client = gatewayClient(bundle);
  return {
    name: bundle.gateway.name,
    bundle,
    key,
    client,
    snapshot: (c) => openDelivery(c.delivery, key, { gateway: bundle.gateway.name, authority: bundle.authority.name }),
  };
}

/** Registers a gateway and enrolls it offline (bundle made by the authority). */
export async function bundleGateway(t: TestAuthority, name: string, address: string): Promise<TestGateway> {
  await t.admin.addGateway(name, address);
  const b = parseBundle(JSON.stringify(await t.admin.makeBundle(name)));
  return gatewayOf(b);
}

/** Registers a gateway and enrolls it online (token + CSR made with its own key). */
export async function tokenGateway(t: TestAuthority, name: string, address: string): Promise<TestGateway> {
  await t.admin.addGateway(name, address);
  const tok = await t.admin.createEnrollToken(name);
  const b = await enroll({
    url: tok.authority.url,
    token: tok.token,
    caFingerprint: tok.authority.caFingerprint,
    name,
  });
  return gatewayOf(b);
}

/**
 * Seed 001's set-up between two authorities: each peers with the other (its name, URL and root,
 * as the operators exchange them) and both share a pairwise VPN of the same name and id.
 */
export async function peerAndShare(
  A: TestAuthority,
  B: TestAuthority,
  vpn: { name: string; id: number },
): Promise<void> {
  const [a, b] = (await Promise.all([A.admin.status(), B.admin.status()])).map((s) => s.authority);
  await A.admin.addPeer({ name: b, url: B.url, root: B.ca });
  await B.admin.addPeer({ name: a, url: A.url, root: A.ca });
  for (const t of [A, B]) await t.admin.createVpn({ name: vpn.name, id: vpn.id, mode: 'pairwise' });
  await A.admin.shareVpn(vpn.name, b);
  await B.admin.shareVpn(vpn.name, a);
}

/** Two exchange rounds each way: the members first, then the permits made for them. */
export async function exchangeTwice(A: TestAuthority, B: TestAuthority): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await A.admin.syncFederation();
    await B.admin.syncFederation();
  }
}

/** A store whose write transactions fail when calling `op` while `armed`: to prove atomicity. */
export function failingStore(store: Store, op: keyof StoreOps): { store: Store; arm(on: boolean): void } {
  let armed = false;
  const wrapped: Store = {
    kind: store.kind,
    write: (fn) =>
      store.write((tx) =>
        fn(
          new Proxy(tx, {
            get(target, prop, recv) {
              const v = Reflect.get(target, prop, recv) as unknown;
              if (prop === op && armed && typeof v === 'function') {
                return async () => {
                  throw new Error(`injected failure in ${String(op)}`);
                };
              }
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
            },
          }),
        ),
      ),
    read: (fn) => store.read(fn),
    onRemoteChange: (l) => store.onRemoteChange(l),
    schemaVersion: () => store.schemaVersion(),
    close: () => store.close(),
  };
  return { store: wrapped, arm: (on) => (armed = on) };
}

export { freePort } from '../../support/ports.js';

/**
 * `kasane authority serve` as a separate process (so that it can be killed with SIGKILL), started once it says it is
 * listening. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export async function spawnAuthority(
  dataDir: string,
  port: number,
  o: { logLevel?: string; nodeArgs?: string[]; startTimeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      '--import',
      'tsx',
      join(ROOT, 'test/authority/helpers/kasane.ts'),
      'authority',
      'serve',
      '--data',
      dataDir,
      '--listen',
      `127.0.0.1:${port}`,
      '--log-level',
      o.logLevel ?? 'silent',
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  // Never leave the authority behind, even if this process dies.
  const reap = (): void => void child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let stderr = '';
  // The last few KiB are enough to say why it failed; a long run's warnings would otherwise pile up.
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + (o.startTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`authority exited with ${child.exitCode}: ${stderr}`);
    if (stderr.includes('listening on')) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`authority did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Resolves with the API error of a call that must fail. */
export async function apiError(p: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const x = e as { status?: number; code?: string; message: string };
    if (typeof x.status === 'number') return { status: x.status, code: x.code!, message: x.message };
    throw e;
  }
  throw new Error('the call succeeded but was expected to fail');
}

/**
 * The versions an authority has taken that no audit entry explains (issue 11: the version
 * advances only with an entry, so that `kasane audit` accounts for every change a gateway sees).
 */
export async function unauditedVersions(t: TestAuthority): Promise<number[]> {
  const { version } = await t.admin.status();
  const audited = new Set<number>();
  for (
    let after = 0, page = await t.admin.audit({ limit: 1000 });
    page.length > 0;
    page = await t.admin.audit({ after, limit: 1000 })
  ) {
    for (const e of page) audited.add(e.version);
    after = page.at(-1)!.id;
  }
  const out: number[] = [];
  for (let v = 2; v <= version; v++) if (!audited.has(v)) out.push(v); // 1: the state a new authority starts in
  return out;
}

// An authority's service over a real store with no HTTPS server in front: what the tests of its
// modules (vpns, epochs, gateways, enrollment, ...) drive directly. The store is a SQLite file in a
// temporary directory or a fresh database on this test file's private PostgreSQL server; the
// authority's clock is the test's to move, so expiry and schedules need no sleeping.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { RotationConfig } from '../../../src/authority/config.js';
import { AuthorityService } from '../../../src/authority/service.js';
import { openDelivery } from '../../../src/authority/snapshot.js';
import { PostgresStore } from '../../../src/authority/storage/postgres.js';
import { SqliteStore } from '../../../src/authority/storage/sqlite.js';
import type { Store } from '../../../src/authority/storage/types.js';
import type { GatewayBundle } from '../../../src/authority/wire.js';
import type { AuthoritySnapshot } from '../../../src/core/types.js';
import { createAuthorityCa } from '../../../src/pki/ca.js';
import { createAttributeAuthority } from '../../../src/pki/permit.js';
import { postgresForTests } from './postgres.js';

/** The actor the tests' administrative changes are recorded under. */
export const ADMIN = 'admin:test';

/** Rotation timers the tests reason with: a minute of overlap, five of grace, ten seconds after a removal. */
export const TEST_ROTATION: RotationConfig = {
  periodMs: 0,
  overlapMs: 60_000,
  graceMs: 300_000,
  urgentGraceMs: 10_000,
};

export interface DirectOptions {
  rotation?: Partial<RotationConfig>;
  /** With an attribute authority: the service has its federation (peers and permits). */
  federation?: boolean;
}

export interface DirectGateway {
  name: string;
  bundle: GatewayBundle;
  /** What the gateway's daemon would hand its core: its delivery, opened with its own key. */
  snapshot(): Promise<AuthoritySnapshot>;
}

export interface DirectAuthority {
  service: AuthorityService;
  store: Store;
  /** The authority's clock (ms); tests move it forward. */
  clock: { now: number };
  /** Registers a gateway and enrolls it offline (the authority makes its key). */
  enrolled(name: string, address: string): Promise<DirectGateway>;
  /** Setup: a VPN (group unless told). */
  addVpn(name: string, spec?: VpnSetup): Promise<void>;
  /** Setup: a registered gateway that has not enrolled (pending). */
  addPendingGateway(name: string, address: string): Promise<void>;
  /** Setup: `gateway` puts `prefixes` into `vpn` (a new membership). */
  addMember(vpn: string, gateway: string, ...prefixes: string[]): Promise<void>;
  /**
   * Another service (a replica) over the same database, CA, key-encryption key and clock; closed
   * with this one. `wrap`: what it sees of its store (to take its notifications away, say).
   */
  replica(wrap?: (s: Store) => Store): Promise<DirectAuthority>;
  close(): Promise<void>;
}

export interface StoreBackend {
  kind: 'sqlite' | 'postgres';
  /** Why this store's tests are skipped here (PostgreSQL missing outside CI), or false. */
  skip: string | false;
  authority(o?: DirectOptions): Promise<DirectAuthority>;
}

/**
 * Both stores, for `describe(..., { skip })` per store; PostgreSQL runs on a server private to the calling test file.
 */
export async function testStores(): Promise<StoreBackend[]> {
  const pg = await postgresForTests();
  after(() => pg.server?.stop());
  return [
    {
      kind: 'sqlite',
      skip: false,
      authority: (o) => {
        const dir = mkdtempSync(join(tmpdir(), 'kasane-direct-'));
        const file = join(dir, 'authority.db');
        return directAuthority(
          async () => SqliteStore.open(file),
          o ?? {},
          () => rmSync(dir, { recursive: true, force: true }),
        );
      },
    },
    {
      kind: 'postgres',
      skip: pg.skip ?? false,
      authority: async (o) => {
        const url = await pg.server!.createDatabase();
        return directAuthority(
          () => PostgresStore.open(url),
          o ?? {},
          () => undefined,
        );
      },
    },
  ];
}

async function directAuthority(
  open: () => Promise<Store>,
  o: DirectOptions,
  cleanup: () => void,
): Promise<DirectAuthority> {
  const clock = { now: Date.now() };
  const name = 'direct authority';
  const store = await open();
  await store.write((tx) => tx.initState(name, clock.now));
  const ca = await createAuthorityCa({ authority: name, now: clock.now });
  const kek = new Uint8Array(randomBytes(32));
  const attributeAuthority = o.federation
    ? await createAttributeAuthority({ root: ca.root, now: clock.now })
    : undefined;
  const rotation = { ...TEST_ROTATION, ...o.rotation };
  const replicas: DirectAuthority[] = [];
  const serviceOver = async (s: Store, primary: boolean): Promise<DirectAuthority> => {
    const service = new AuthorityService({
      store: s,
      ca,
      kek,
      attributeAuthority,
      url: 'https://authority.test:7443',
      rotation,
      enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
      now: () => clock.now,
    });
    await service.start();
    let closed = false;
    const self: DirectAuthority = {
      service,
      store: s,
      clock,
      enrolled: (gateway, address) => enrollOffline(service, gateway, address),
      addVpn: (vpn, spec) => addVpn(service, vpn, spec),
      addPendingGateway: (gateway, address) => addPendingGateway(service, gateway, address),
      addMember: (vpn, gateway, ...prefixes) => addMember(service, vpn, gateway, ...prefixes),
      replica: async (wrap) => {
        const opened = await open();
        const r = await serviceOver(wrap ? wrap(opened) : opened, false);
        replicas.push(r);
        return r;
      },
      close: async () => {
        if (closed) return;
        closed = true;
        if (primary) for (const r of replicas.splice(0)) await r.close();
        await service.stop();
        await s.close();
        if (primary) cleanup();
      },
    };
    return self;
  };
  return serviceOver(store, true);
}

/** Also for tests that hold a service of their own: registers `name` and enrolls it with a bundle. */
export async function enrollOffline(service: AuthorityService, name: string, address: string): Promise<DirectGateway> {
  await service.gateways.add(ADMIN, { name, address });
  const bundle = await service.enrollment.makeBundle(ADMIN, name, {});
  return gatewayWith(service, bundle);
}

/** The gateway that holds `bundle` (its key opens its deliveries). */
export function gatewayWith(service: AuthorityService, bundle: GatewayBundle): DirectGateway {
  return {
    name: bundle.gateway.name,
    bundle,
    snapshot: async () =>
      openDelivery(await service.delivery.of(bundle.gateway.name), bundle.privateKey!, {
        gateway: bundle.gateway.name,
        authority: service.name,
      }),
  };
}

/** The API error a call must fail with: status and code. */
export async function refusal(p: Promise<unknown>): Promise<[number, string]> {
  try {
    await p;
  } catch (e) {
    const x = e as { status?: number; code?: string };
    if (typeof x.status === 'number') return [x.status, x.code!];
    throw e;
  }
  throw new Error('the call succeeded but was expected to be refused');
}

/** The version counter: a refused change must not have taken one. */
export async function version(a: DirectAuthority): Promise<number> {
  return (await a.store.read((tx) => tx.state())).version;
}

/** Runs `body` with a fresh authority on `store`, closed afterwards whatever happens. */
export async function withAuthority(
  store: StoreBackend,
  body: (a: DirectAuthority) => Promise<void>,
  o?: DirectOptions,
): Promise<void> {
  const a = await store.authority(o);
  try {
    await body(a);
  } finally {
    await a.close();
  }
}

/** What a test's VPN differs in from the default: its mode and its rotation period. */
export interface VpnSetup {
  mode?: 'group' | 'pairwise';
  rotationPeriodMs?: number;
}

// The setup steps below are also methods of a DirectAuthority (its own service); these forms are
// for a service the test holds otherwise.

/** Setup: a VPN (group unless told). */
export async function addVpn(service: AuthorityService, name: string, spec: VpnSetup = {}): Promise<void> {
  await service.vpns.create(ADMIN, { name, ...spec });
}

/** Setup: a registered gateway that has not enrolled (pending). */
export async function addPendingGateway(service: AuthorityService, name: string, address: string): Promise<void> {
  await service.gateways.add(ADMIN, { name, address });
}

/** Setup: `gateway` puts `prefixes` into `vpn` (a new membership). */
export async function addMember(
  service: AuthorityService,
  vpn: string,
  gateway: string,
  ...prefixes: string[]
): Promise<void> {
  await service.vpns.updateMembership(ADMIN, vpn, gateway, { add: prefixes, create: true });
}

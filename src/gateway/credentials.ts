// The gateway's data directory: its enrollment credentials (certificate, chain, authority) in
// credentials.json, its private key in the keystore (keystore/gateway.key, 0600, never sent
// anywhere), and the last delivery from the authority (delivery.json — group keys stay sealed to
// the gateway's key at rest) so that it keeps forwarding while the authority is unreachable.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBundle, type GatewayBundle, type GatewayDelivery } from '../authority/client.js';
import { FileKeystore } from '../pki/keystore.js';

export const CREDENTIALS_FILE = 'credentials.json';
export const DELIVERY_FILE = 'delivery.json';
export const KEY_ENTRY = 'gateway.key';

export interface Credentials {
  bundle: GatewayBundle;
  privateKey: string;
}

export function keystoreOf(data: string): FileKeystore {
  return new FileKeystore(join(data, 'keystore'));
}

/** Stores what enrollment produced: the key in the keystore, the rest beside it. */
export function saveCredentials(data: string, bundle: GatewayBundle, privateKey: string): void {
  mkdirSync(data, { recursive: true, mode: 0o700 });
  const ks = keystoreOf(data);
  ks.ensure();
  ks.write(KEY_ENTRY, privateKey);
  // The private key lives only in the keystore, never in the credentials file.
  const rest: Omit<GatewayBundle, 'privateKey'> & { privateKey?: string } = { ...bundle };
  delete rest.privateKey;
  atomicWrite(join(data, CREDENTIALS_FILE), JSON.stringify(rest, null, 2) + '\n');
}

export function loadCredentials(data: string): Credentials {
  const file = join(data, CREDENTIALS_FILE);
  if (!existsSync(file))
    throw new Error(`${file} is missing: enroll the gateway first (kasane gateway enroll --data ${data} ...)`);
  const privateKey = keystoreOf(data).read(KEY_ENTRY);
  const bundle = parseBundle(readFileSync(file, 'utf8'));
  // parseBundle checks the chain; check the key belongs to the certificate too.
  parseBundle(JSON.stringify({ ...bundle, privateKey }));
  return { bundle, privateKey };
}

export function saveDelivery(data: string, delivery: GatewayDelivery): void {
  atomicWrite(join(data, DELIVERY_FILE), JSON.stringify(delivery) + '\n');
}

export function loadDelivery(data: string): unknown | undefined {
  const file = join(data, DELIVERY_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as unknown;
}

function atomicWrite(path: string, content: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

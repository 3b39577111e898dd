// Turning what a gateway receives from its authority into the core's AuthoritySnapshot: the
// delivery is checked field by field (it is wire data), then every sealed group key is opened with
// the gateway's own private key (HPKE, see group-keys.ts). A key that does not open is an error:
// the gateway must not run with part of its keys.
import { parseIp, Prefix } from '../base/addr.js';
import { err, ok, type Result } from '../base/result.js';
import type { AuthoritySnapshot, VpnKeyEpoch, VpnView } from '../core/types.js';
import { importPrivateKey } from '../pki/keys.js';
import { deliveryContext, openGroupKey } from './group-keys.js';
import { checkName } from './validate.js';
import {
  DELIVERY_FORMAT,
  type DeliveredEpoch,
  type DeliveredMember,
  type DeliveredVpn,
  type GatewayDelivery,
} from './wire.js';

const MAX_VPNS = 100_000;
const MAX_MEMBERS = 100_000;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function u32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function time(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function b64(v: unknown, bytes: number): v is string {
  return typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v) && Buffer.from(v, 'base64').length === bytes;
}

function prefixes(v: unknown, where: string): Result<string[]> {
  if (!Array.isArray(v)) return err('bad-delivery', `${where}: prefixes must be an array`);
  for (const p of v) {
    if (typeof p !== 'string') return err('bad-delivery', `${where}: a prefix is not a string`);
    const r = Prefix.parse(p);
    if (!r.ok) return err('bad-delivery', `${where}: ${r.error.message}`);
  }
  return ok(v as string[]);
}

function parseEpoch(v: unknown, where: string): Result<DeliveredEpoch> {
  if (!isObj(v)) return err('bad-delivery', `${where}: not an object`);
  if (!u32(v.epoch) || v.epoch === 0) return err('bad-delivery', `${where}: bad epoch`);
  if (!time(v.activeFrom) || !time(v.expiresAt)) return err('bad-delivery', `${where}: bad activeFrom/expiresAt`);
  if (!b64(v.enc, 65)) return err('bad-delivery', `${where}: enc must be 65 bytes of base64`);
  if (!b64(v.ct, 48)) return err('bad-delivery', `${where}: ct must be 48 bytes of base64`);
  return ok({ epoch: v.epoch, activeFrom: v.activeFrom, expiresAt: v.expiresAt, enc: v.enc, ct: v.ct });
}

const MAX_DER = 16 * 1024;

function der(v: unknown): v is string {
  return typeof v === 'string' && v.length <= (MAX_DER * 4) / 3 + 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(v);
}

/** A member's name: a gateway of this authority, or `gateway@authority` for one under a peer authority. */
function memberName(v: unknown): Result<string> {
  if (typeof v !== 'string') return checkName('gateway', v);
  const at = v.indexOf('@');
  if (at < 0) return checkName('gateway', v);
  const g = checkName('gateway', v.slice(0, at));
  if (!g.ok) return g;
  const a = checkName('authority', v.slice(at + 1));
  return a.ok ? ok(v) : a;
}

function parseMember(v: unknown, where: string): Result<DeliveredMember> {
  if (!isObj(v)) return err('bad-delivery', `${where}: not an object`);
  const name = memberName(v.gateway);
  if (!name.ok) return err('bad-delivery', `${where}: ${name.error.message}`);
  if (v.certificate !== undefined && !der(v.certificate))
    return err('bad-delivery', `${where}: certificate must be base64 DER`);
  if (v.permit !== undefined && (!isObj(v.permit) || !der(v.permit.der) || !time(v.permit.notAfter)))
    return err('bad-delivery', `${where}: permit must be { der: base64, notAfter: ms }`);
  if (typeof v.address !== 'string' || !parseIp(v.address).ok) return err('bad-delivery', `${where}: bad address`);
  const p = prefixes(v.prefixes, where);
  if (!p.ok) return p;
  if (!Array.isArray(v.spis)) return err('bad-delivery', `${where}: spis must be an array`);
  const spis: { epoch: number; spi: number }[] = [];
  for (const s of v.spis) {
    if (!isObj(s) || !u32(s.epoch) || !u32(s.spi) || s.spi < 256) return err('bad-delivery', `${where}: bad SPI entry`);
    spis.push({ epoch: s.epoch, spi: s.spi });
  }
  const m: DeliveredMember = { gateway: name.value, address: v.address, prefixes: p.value, spis };
  if (typeof v.certificate === 'string') m.certificate = v.certificate;
  if (isObj(v.permit)) m.permit = { der: v.permit.der as string, notAfter: v.permit.notAfter as number };
  return ok(m);
}

function parseVpn(v: unknown, where: string): Result<DeliveredVpn> {
  if (!isObj(v)) return err('bad-delivery', `${where}: not an object`);
  if (!u32(v.id) || v.id === 0) return err('bad-delivery', `${where}: bad VPN id`);
  const name = checkName('VPN', v.name);
  if (!name.ok) return err('bad-delivery', `${where}: ${name.error.message}`);
  if (v.mode !== 'group' && v.mode !== 'pairwise') return err('bad-delivery', `${where}: bad mode`);
  if (!Array.isArray(v.epochs) || !Array.isArray(v.members) || v.members.length > MAX_MEMBERS)
    return err('bad-delivery', `${where}: epochs and members must be arrays`);
  const epochs: DeliveredEpoch[] = [];
  for (const [i, e] of v.epochs.entries()) {
    const r = parseEpoch(e, `${where}.epochs[${i}]`);
    if (!r.ok) return r;
    epochs.push(r.value);
  }
  const members: DeliveredMember[] = [];
  for (const [i, m] of v.members.entries()) {
    const r = parseMember(m, `${where}.members[${i}]`);
    if (!r.ok) return r;
    members.push(r.value);
  }
  return ok({ id: v.id, name: name.value, mode: v.mode, epochs, members });
}

/** Checks that untrusted JSON is a well-formed delivery. Never throws. */
export function parseDelivery(v: unknown): Result<GatewayDelivery> {
  if (!isObj(v)) return err('bad-delivery', 'delivery: not an object');
  if (v.format !== DELIVERY_FORMAT) return err('bad-delivery', `delivery: unknown format ${JSON.stringify(v.format)}`);
  const authority = checkName('authority', v.authority);
  if (!authority.ok) return err('bad-delivery', `delivery: ${authority.error.message}`);
  const gateway = checkName('gateway', v.gateway);
  if (!gateway.ok) return err('bad-delivery', `delivery: ${gateway.error.message}`);
  if (!time(v.version) || !time(v.issuedAt)) return err('bad-delivery', 'delivery: bad version or issuedAt');
  const pp = prefixes(v.protectedPrefixes, 'delivery.protectedPrefixes');
  if (!pp.ok) return pp;
  if (!Array.isArray(v.vpns) || v.vpns.length > MAX_VPNS) return err('bad-delivery', 'delivery: vpns must be an array');
  const vpns: DeliveredVpn[] = [];
  for (const [i, x] of v.vpns.entries()) {
    const r = parseVpn(x, `delivery.vpns[${i}]`);
    if (!r.ok) return r;
    vpns.push(r.value);
  }
  if (v.attributeAuthority !== undefined && !der(v.attributeAuthority))
    return err('bad-delivery', 'delivery: attributeAuthority must be base64 DER');
  const d: GatewayDelivery = {
    format: DELIVERY_FORMAT,
    authority: authority.value,
    gateway: gateway.value,
    version: v.version,
    issuedAt: v.issuedAt,
    protectedPrefixes: pp.value,
    vpns,
  };
  if (typeof v.attributeAuthority === 'string') d.attributeAuthority = v.attributeAuthority;
  return ok(d);
}

export interface OpenOptions {
  /** This gateway's name: the delivery must be addressed to it. */
  gateway: string;
  /** The authority's name, when known (from the bundle): the delivery must come from it. */
  authority?: string;
  /**
   * Keys opened from earlier deliveries, by everything that went into opening them (a follower of
   * the change stream passes the same map each time): a key delivered again is not opened again.
   * Left holding only the keys of this delivery.
   */
  opened?: Map<string, Uint8Array>;
}

/**
 * Opens a delivery with the gateway's private key (PKCS#8 PEM, or an ECDH P-256 CryptoKey) and
 * returns the core's AuthoritySnapshot. Throws on a malformed delivery, one addressed to another
 * gateway or authority, or a key that does not open.
 */
export async function openDelivery(
  delivery: unknown,
  privateKey: string | CryptoKey,
  expect: OpenOptions,
): Promise<AuthoritySnapshot> {
  const parsed = parseDelivery(delivery);
  if (!parsed.ok) throw new Error(parsed.error.message);
  const d = parsed.value;
  if (d.gateway !== expect.gateway)
    throw new Error(`the delivery is for gateway ${JSON.stringify(d.gateway)}, not ${JSON.stringify(expect.gateway)}`);
  if (expect.authority !== undefined && d.authority !== expect.authority)
    throw new Error(
      `the delivery comes from authority ${JSON.stringify(d.authority)}, not ${JSON.stringify(expect.authority)}`,
    );
  const key = typeof privateKey === 'string' ? await importPrivateKey(privateKey, 'ecdh') : privateKey;
  const vpns: VpnView[] = [];
  const opened = new Map<string, Uint8Array>();
  for (const v of d.vpns) {
    const epochs: VpnKeyEpoch[] = [];
    for (const e of v.epochs) {
      const id = `${d.authority}\u0000${d.gateway}\u0000${v.id}\u0000${e.epoch}\u0000${e.enc}\u0000${e.ct}`;
      let k = expect.opened?.get(id);
      if (!k) {
        const ctx = deliveryContext(d.authority, d.gateway, v.id, e.epoch);
        try {
          k = await openGroupKey({ enc: Buffer.from(e.enc, 'base64'), ct: Buffer.from(e.ct, 'base64') }, key, ctx);
        } catch {
          throw new Error(`the key of VPN ${v.name} epoch ${e.epoch} does not open with this gateway's private key`);
        }
      }
      opened.set(id, k);
      epochs.push({ epoch: e.epoch, key: k, activeFrom: e.activeFrom, expiresAt: e.expiresAt });
    }
    vpns.push({
      id: v.id,
      name: v.name,
      mode: v.mode,
      epochs: epochs.sort((a, b) => a.epoch - b.epoch),
      members: v.members.map((m) => ({
        gateway: m.gateway,
        address: parseIp(m.address).ok ? (parseIp(m.address) as { value: string }).value : m.address,
        prefixes: m.prefixes.map((p) => Prefix.from(p)),
        spis: m.spis,
        ...(m.certificate ? { certificate: new Uint8Array(Buffer.from(m.certificate, 'base64')) } : {}),
        ...(m.permit
          ? { permit: new Uint8Array(Buffer.from(m.permit.der, 'base64')), permitNotAfter: m.permit.notAfter }
          : {}),
      })),
    });
  }
  if (expect.opened) {
    expect.opened.clear();
    for (const [id, k] of opened) expect.opened.set(id, k);
  }
  const snapshot: AuthoritySnapshot = {
    version: d.version,
    protectedPrefixes: d.protectedPrefixes.map((p) => Prefix.from(p)),
    vpns,
  };
  if (d.attributeAuthority) snapshot.attributeAuthority = new Uint8Array(Buffer.from(d.attributeAuthority, 'base64'));
  return snapshot;
}

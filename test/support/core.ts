// Shared by the tests that drive a GatewayCore directly: authority snapshots from a few lines,
// ESP as a peer gateway would send it, and the emitted and dropped parts of the core's actions.
import { Prefix } from '../../src/base/addr.js';
import type { CoreAction } from '../../src/core/gateway-api.js';
import type { AuthoritySnapshot, VpnView } from '../../src/core/types.js';
import { buildIpv4, PROTO_ESP, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { deriveSenderKey } from '../../src/crypto/kdf.js';
import { espSeal } from '../../src/crypto/esp.js';

const NEVER = Number.MAX_SAFE_INTEGER;

/**
 * A gateway's membership: the prefix it puts in the VPN, and its SPI (its address is 192.0.2.<low byte of the SPI>).
 */
export interface Site {
  gw: string;
  prefix: string;
  spi: number;
}

/** A VPN with one key epoch (group) or none (pairwise), active from 0, never expiring. */
export function vpnView(id: number, mode: 'group' | 'pairwise', sites: Site[], key: Uint8Array): VpnView {
  return {
    id,
    name: `V${id}`,
    mode,
    epochs: mode === 'group' ? [{ epoch: 1, key, activeFrom: 0, expiresAt: NEVER }] : [],
    members: sites.map((m) => ({
      gateway: m.gw,
      address: `192.0.2.${m.spi & 0xff}`,
      prefixes: [Prefix.from(m.prefix)],
      spis: mode === 'group' ? [{ epoch: 1, spi: m.spi }] : [],
    })),
  };
}

/** A snapshot with these VPNs; every member prefix is in the directory of protected prefixes. */
export function snapshotOf(vpns: VpnView[]): AuthoritySnapshot {
  const prefixes = new Map<string, Prefix>();
  for (const v of vpns) for (const m of v.members) for (const p of m.prefixes) prefixes.set(p.toString(), p);
  return { version: 1, protectedPrefixes: [...prefixes.values()], vpns };
}

/** ESP (group VPN, epoch 1) from `sender` for the path src -> dst, carrying an echo request. */
export function espFrom(
  key: Uint8Array,
  sender: string,
  spi: number,
  vpnId: number,
  src: string,
  dst: string,
  seq: bigint,
): Uint8Array {
  const sk = deriveSenderKey(key, vpnId, 1, sender);
  const inner = buildIcmpEcho({ type: 8, id: 9, seq: Number(seq & 0xffffn), data: new Uint8Array(24) });
  return buildIpv4({
    src,
    dst,
    protocol: PROTO_ESP,
    payload: espSeal({ spi, key: sk.key, salt: sk.salt }, seq, PROTO_ICMP, inner),
  });
}

export const emitted = (a: CoreAction[]) =>
  a.filter((x): x is Extract<CoreAction, { type: 'emit' }> => x.type === 'emit');
export const dropped = (a: CoreAction[]) =>
  a.filter((x): x is Extract<CoreAction, { type: 'drop' }> => x.type === 'drop').map((d) => d.reason);

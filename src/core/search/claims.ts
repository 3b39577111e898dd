// Authenticated search entries: a gateway proves it holds the key of each VPN it claims, without
// revealing it, bound to the transaction and the terminal pair (so an entry cannot be replayed into
// another search or another path), and to the sequence number it sends next under that VPN and
// epoch (a restarted receiver's floor, docs/protocol.md §3.2).
// Proof = HMAC-SHA256(search key of VPN/epoch, input)[0..16).
import { ipFamily, ipToBytes, type Ip } from '../../base/addr.js';
import type { KeyRing } from '../key-ring.js';
import type { SearchEntry, SearchMessage, SearchVpnClaim } from '../packet/search-message.js';
import { searchProof, verifySearchProof } from '../../crypto/search-proof.js';
import type { GatewayId, VpnId } from '../types.js';

const LABEL = new TextEncoder().encode('kasane search v2');
const encoder = new TextEncoder();

function putAddr(buf: Uint8Array, off: number, ip: Ip): number {
  const b = ipToBytes(ip);
  buf[off] = ipFamily(ip);
  buf.set(b, off + 1);
  return off + 1 + b.length;
}

/** The canonical bytes a claim's proof covers (hot: every claim made and verified). */
export function proofInput(
  txid: Uint8Array,
  pathSrc: Ip,
  pathDst: Ip,
  side: 'src' | 'dst',
  gateway: GatewayId,
  address: Ip,
  vpnId: VpnId,
  epoch: number,
  seq: bigint,
): Uint8Array {
  const gw = encoder.encode(gateway);
  const buf = new Uint8Array(LABEL.length + txid.length + 3 * 17 + 2 + gw.length + 16);
  buf.set(LABEL, 0);
  buf.set(txid, LABEL.length);
  let off = LABEL.length + txid.length;
  off = putAddr(buf, off, pathSrc);
  off = putAddr(buf, off, pathDst);
  buf[off++] = side === 'src' ? 1 : 2;
  buf[off++] = gw.length;
  buf.set(gw, off);
  off = putAddr(buf, off + gw.length, address);
  const view = new DataView(buf.buffer, buf.byteOffset);
  view.setUint32(off, vpnId);
  view.setUint32(off + 4, epoch);
  view.setBigUint64(off + 8, seq);
  return buf.subarray(0, off + 16);
}

/** A pairwise VPN's claim carries no proof (no shared key exists): epoch 0 and a zero proof. */
export const PAIRWISE_CLAIM_PROOF = new Uint8Array(16);

/**
 * This gateway's entry for a search: the VPNs in which it puts `terminal`. A group VPN's claim
 * carries `sendingSeq(vpnId, epoch)`, the next sequence number this gateway sends under that key,
 * and a proof made with the VPN's search key. A pairwise VPN's claim is only a hint (seed 001:
 * the gateways then authenticate each other with IKE, signatures and permits), so a forged one
 * can at most start an IKE exchange with the gateway the authority delivered for that name, at
 * the address the authority delivered: never with whoever forged the claim.
 */
export function makeEntry(
  ring: KeyRing,
  now: number,
  msg: Pick<SearchMessage, 'txid' | 'pathSrc' | 'pathDst'>,
  side: 'src' | 'dst',
  address: Ip,
  terminal: Ip,
  sendingSeq: (vpnId: VpnId, epoch: number) => bigint,
): SearchEntry {
  const vpns: SearchVpnClaim[] = [];
  for (const vpnId of ring.coveringVpns(terminal)) {
    if (ring.vpn(vpnId)?.mode === 'pairwise') {
      vpns.push({ vpnId, epoch: 0, seq: 0n, proof: PAIRWISE_CLAIM_PROOF });
      continue;
    }
    const epoch = ring.currentEpoch(vpnId, now);
    if (epoch === undefined) continue;
    const key = ring.searchKey(vpnId, epoch)!;
    const seq = sendingSeq(vpnId, epoch);
    const input = proofInput(msg.txid, msg.pathSrc, msg.pathDst, side, ring.self, address, vpnId, epoch, seq);
    vpns.push({ vpnId, epoch, seq, proof: searchProof(key, input) });
  }
  return { side, gateway: ring.self, address, vpns };
}

export type ClaimCheck =
  | { ok: true; unverifiable: Set<string> }
  | { ok: false; entry: number; gateway: GatewayId; vpnId: VpnId; reason: 'bad-proof' };

/**
 * Verifies every claim this gateway can verify (VPNs and epochs it holds). One bad proof makes the
 * whole message forged. Claims for a held VPN at an epoch not held are reported as unverifiable
 * ("entryIndex/vpnId"): they must not be trusted for this gateway's own pairing.
 */
export function checkClaims(ring: KeyRing, msg: SearchMessage): ClaimCheck {
  const unverifiable = new Set<string>();
  for (let i = 0; i < msg.entries.length; i++) {
    const e = msg.entries[i];
    for (const c of e.vpns) {
      const v = ring.vpn(c.vpnId);
      if (!v || v.mode !== 'group') continue;
      const key = ring.searchKey(c.vpnId, c.epoch);
      if (!key) {
        unverifiable.add(`${i}/${c.vpnId}`);
        continue;
      }
      const input = proofInput(
        msg.txid,
        msg.pathSrc,
        msg.pathDst,
        e.side,
        e.gateway,
        e.address,
        c.vpnId,
        c.epoch,
        c.seq,
      );
      if (!verifySearchProof(key, input, c.proof))
        return { ok: false, entry: i, gateway: e.gateway, vpnId: c.vpnId, reason: 'bad-proof' };
    }
  }
  return { ok: true, unverifiable };
}

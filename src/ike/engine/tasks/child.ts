// What every exchange that makes an ESP Child SA shares (IKE_AUTH, CREATE_CHILD_SA): our
// proposals, choosing among the peer's, traffic selectors, and the keys (RFC 7296 §2.17).
import { ipToBytes, type Prefix } from '../../../base/addr.js';
import {
  ProtocolId,
  TransformType,
  TsType,
  isAddressRange,
  proposalFromString,
  selectorFromPrefix,
  transformKeyLength,
  type KePayload,
  type NoncePayload,
  type Payload,
  type Proposal,
  type SaPayload,
  type TrafficSelector,
} from '../../message/index.js';
import { deriveChildSaKeys } from '../../crypto/keys.js';
import { aeadById, dhGroupById, type AeadAlgorithm, type DhGroup } from '../../crypto/transforms.js';
import type { ChildSa, IkeSa } from '../ike-sa.js';
import type { ChildSaInstall, Endpoint, IkeTimers } from '../types.js';
import type { RandomSource } from '../../../base/random.js';

/** ESP suites kasane offers and accepts, best first (strongSwan's names). With PFS, each with ECP-256 then X25519. */
export const ESP_PROPOSALS = ['aes256gcm16', 'aes128gcm16'];
export const ESP_PFS_GROUPS = ['ecp256', 'x25519'];

/** A fresh inbound SPI: 32 bits, above the range RFC 4303 reserves. */
export function newSpi(random: RandomSource): number {
  for (;;) {
    const spi = Buffer.from(random(4)).readUInt32BE(0);
    if (spi > 255) return spi;
  }
}

export function spiBytes(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi);
  return b;
}

/** Our ESP proposals with our inbound SPI; `pfs` adds the DH groups (CREATE_CHILD_SA rekeys). */
export function espProposals(spi: number, pfs = false): Proposal[] {
  const names = pfs ? ESP_PROPOSALS.flatMap((e) => ESP_PFS_GROUPS.map((g) => `${e}-${g}`)) : ESP_PROPOSALS;
  return names.map((p, i) => {
    const r = proposalFromString(p, ProtocolId.ESP, i + 1, spiBytes(spi));
    if (!r.ok) throw new Error(`bad built-in proposal ${p}`);
    return r.value;
  });
}

export interface EspChoice {
  /** The proposal reduced to the chosen transforms (what a responder answers with, with its own SPI). */
  proposal: Proposal;
  encr: AeadAlgorithm;
  dh?: DhGroup;
}

/** The first proposal whose transforms we implement; with `pfs`, it must carry a DH group we implement. */
export function chooseEsp(proposals: Proposal[], pfs = false): EspChoice | undefined {
  for (const p of proposals) {
    if (p.protocolId !== ProtocolId.ESP || p.spi.length !== 4) continue;
    const encrT = p.transforms.find((t) => t.type === TransformType.ENCR && aeadById(t.id, transformKeyLength(t)));
    if (!encrT) continue;
    const esn = p.transforms.filter((t) => t.type === TransformType.ESN);
    if (esn.length > 0 && !esn.some((t) => t.id === 0)) continue; // we do not do extended sequence numbers
    const dhT = p.transforms.find((t) => t.type === TransformType.DH && dhGroupById(t.id));
    if (pfs && !dhT) continue;
    const transforms = [
      encrT,
      ...(pfs && dhT ? [dhT] : []),
      ...(esn.length > 0 ? [{ type: TransformType.ESN, id: 0, attributes: [] }] : []),
    ];
    return {
      proposal: { ...p, transforms },
      encr: aeadById(encrT.id, transformKeyLength(encrT))!,
      dh: pfs && dhT ? dhGroupById(dhT.id) : undefined,
    };
  }
  return undefined;
}

/** Whether a responder's single answer is one of the proposals we offered. */
export function answerIsOffered(answer: EspChoice, pfs: boolean): boolean {
  return espProposals(0, pfs).some((o) => {
    const mine = chooseEsp([{ ...o, spi: Buffer.alloc(4) }], pfs);
    return mine && mine.encr === answer.encr && mine.dh === answer.dh;
  });
}

export function selectors(prefixes: Prefix[]): TrafficSelector[] {
  return prefixes.map((p) => selectorFromPrefix(p));
}

/** An address range as numbers, with its family (IPv4 and IPv6 ranges never merge). */
interface Span {
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

const toBig = (ip: string): bigint => BigInt(`0x${Buffer.from(ipToBytes(ip)).toString('hex')}`);

/**
 * The addresses a set of selectors carries ALL traffic of (any protocol, every port), merged into
 * disjoint spans: selectors of IPv4 and IPv6 ranges (RFC 7296 §3.13.1, TS_IPV4_ADDR_RANGE and
 * TS_IPV6_ADDR_RANGE), prefixes or not. A selector limited to a protocol or ports carries only part
 * of its range's traffic and counts for nothing here (a kasane Child SA carries whole prefixes).
 */
function allTraffic(sel: readonly TrafficSelector[]): Span[] {
  const spans: Span[] = [];
  for (const t of sel) {
    if (!isAddressRange(t) || t.ipProtocol !== 0 || t.startPort !== 0 || t.endPort !== 0xffff) continue;
    const family = t.tsType === TsType.TS_IPV4_ADDR_RANGE ? 4 : 6;
    const start = toBig(t.startAddr);
    const end = toBig(t.endAddr);
    if (start <= end) spans.push({ family, start, end });
  }
  spans.sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: Span[] = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && last.family === s.family && s.start <= last.end + 1n) {
      if (s.end > last.end) last.end = s.end;
    } else merged.push({ ...s });
  }
  return merged;
}

/** Whether the selectors carry all traffic of every one of these prefixes (a superset may be narrowed to them). */
export function coversPrefixes(got: readonly TrafficSelector[], want: Prefix[]): boolean {
  const have = allTraffic(got);
  return allTraffic(selectors(want)).every((w) =>
    have.some((h) => h.family === w.family && h.start <= w.start && w.end <= h.end),
  );
}

/**
 * Selectors that carry exactly these prefixes' traffic, nothing more or less, however they are cut
 * (one range for two adjacent prefixes, a prefix split in two): what an initiator accepts as the
 * answer, and what a rekey must keep. Opaque or protocol/port-limited selectors never qualify.
 */
export function sameSelectors(got: readonly TrafficSelector[], want: Prefix[]): boolean {
  if (got.some((t) => !isAddressRange(t) || t.ipProtocol !== 0 || t.startPort !== 0 || t.endPort !== 0xffff))
    return false;
  const a = allTraffic(got);
  const b = allTraffic(selectors(want));
  return (
    a.length === b.length && a.every((x, i) => x.family === b[i].family && x.start === b[i].start && x.end === b[i].end)
  );
}

/** Keys and lifetimes of a new Child SA. `weInitiated`: we were the initiator of the exchange that made it. */
export function makeChild(
  sa: IkeSa,
  o: {
    encr: AeadAlgorithm;
    inboundSpi: number;
    outboundSpi: number;
    weInitiated: boolean;
    ni: Buffer;
    nr: Buffer;
    sharedSecret?: Buffer;
    now: number;
    timers: IkeTimers;
    random: RandomSource;
  },
): ChildSa {
  const k = deriveChildSaKeys(
    sa.suite!.prf,
    sa.keys!.skD,
    { encr: o.encr },
    { ni: o.ni, nr: o.nr, sharedSecret: o.sharedSecret },
  );
  const peer = sa.peer!;
  // The IKE SA's initiator rekeys first; a small jitter keeps many SAs from rekeying in one burst.
  const share = sa.role === 'initiator' ? 0.9 : 0.95;
  const jitter = (Buffer.from(o.random(2)).readUInt16BE(0) / 65536) * 0.02 * o.timers.childLifetime;
  return {
    inboundSpi: o.inboundSpi,
    outboundSpi: o.outboundSpi,
    inboundKey: o.weInitiated ? k.responderToInitiator : k.initiatorToResponder,
    outboundKey: o.weInitiated ? k.initiatorToResponder : k.responderToInitiator,
    encr: o.encr,
    localPrefixes: peer.localPrefixes,
    remotePrefixes: peer.remotePrefixes,
    createdAt: o.now,
    rekeyAt: o.now + share * o.timers.childLifetime - jitter,
    expiresAt: o.now + o.timers.childLifetime,
    state: 'installed',
  };
}

/** What the gateway installs in its executor for a Child SA. */
export function installOf(sa: IkeSa, c: ChildSa, localAddress: string, natPort: number): ChildSaInstall {
  return {
    peer: sa.peer!.id,
    vpnId: sa.peer!.vpnId,
    inbound: { spi: c.inboundSpi, key: c.inboundKey },
    outbound: { spi: c.outboundSpi, key: c.outboundKey },
    local: { address: localAddress, port: natPort } satisfies Endpoint,
    remote: { ...sa.remote },
    localPrefixes: c.localPrefixes,
    remotePrefixes: c.remotePrefixes,
  };
}

/**
 * The SA (one proposal), Nonce and KE of a CREATE_CHILD_SA answer, a Child SA's rekey or the IKE SA's, once the caller
 * has read the notifies it expects: any other error notify, or a missing part, fails the exchange.
 */
export function createChildAnswer(
  inner: Payload[],
): { ok: true; sa: SaPayload; nonce: NoncePayload; ke: KePayload } | { ok: false; code: 'failed'; reason: string } {
  const error = inner.find((p) => p.kind === 'N' && p.notifyType < 16384);
  if (error?.kind === 'N') return { ok: false, code: 'failed', reason: `refused with notify ${error.notifyType}` };
  const sa = inner.find((p) => p.kind === 'SA');
  const nonce = inner.find((p) => p.kind === 'Nonce');
  const ke = inner.find((p) => p.kind === 'KE');
  if (sa?.kind !== 'SA' || sa.proposals.length !== 1 || nonce?.kind !== 'Nonce' || ke?.kind !== 'KE')
    return { ok: false, code: 'failed', reason: 'answer without one SA, a Nonce and a KE' };
  return { ok: true, sa, nonce, ke };
}

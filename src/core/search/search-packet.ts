// Key-search messages travel as ICMP echo requests/replies between the terminals' addresses (the
// original header is preserved, so they follow the same routed path as the data they prepare).
import type { Ip } from '../../base/addr.js';
import { buildIpv4, parseIpv4, PROTO_ICMP, type Ipv4Header } from '../packet/ipv4.js';
import { buildIcmpEcho, isIcmpEcho, parseIcmp } from '../packet/icmp.js';
import { decodeSearchMessage, encodeSearchMessage, isSearchPayload, type SearchMessage } from '../packet/search-message.js';
import { err, ok, type Result } from '../../base/result.js';

export interface SearchPacket {
  ip: Ipv4Header;
  /** 8 = echo request, 0 = echo reply. */
  icmpType: 0 | 8;
  id: number;
  seq: number;
  msg: SearchMessage;
}

export function parseSearchPacket(packet: Uint8Array): Result<SearchPacket> {
  const ip = parseIpv4(packet);
  if (!ip.ok) return ip;
  if (ip.value.header.protocol !== PROTO_ICMP) return err('not-search', 'not ICMP');
  const icmp = parseIcmp(ip.value.payload);
  if (!icmp.ok) return icmp;
  const m = icmp.value;
  if (!isIcmpEcho(m)) return err('not-search', 'not an ICMP echo');
  const echo = m;
  if (!isSearchPayload(echo.data)) return err('not-search', 'no key-search payload');
  const msg = decodeSearchMessage(echo.data);
  if (!msg.ok) return msg;
  return ok({ ip: ip.value.header, icmpType: echo.type, id: echo.id, seq: echo.seq, msg: msg.value });
}

export function buildSearchPacket(opts: {
  src: Ip;
  dst: Ip;
  icmpType: 0 | 8;
  id: number;
  seq: number;
  msg: SearchMessage;
  ttl?: number;
  ipId?: number;
  tos?: number;
}): Uint8Array {
  const icmp = buildIcmpEcho({ type: opts.icmpType, id: opts.id, seq: opts.seq, data: encodeSearchMessage(opts.msg) });
  return buildIpv4({ src: opts.src, dst: opts.dst, protocol: PROTO_ICMP, payload: icmp, ttl: opts.ttl ?? 64, id: opts.ipId ?? 0, tos: opts.tos ?? 0 });
}

/** ICMP echo identifier and sequence number for a transaction (its first four bytes). */
export function echoIds(txid: Uint8Array): { id: number; seq: number } {
  return { id: (txid[0] << 8) | txid[1], seq: (txid[2] << 8) | txid[3] };
}

export function kindOf(msg: SearchMessage, icmpType: 0 | 8): string {
  return `search-${icmpType === 8 ? 'request' : 'reply'}(${msg.phase})`;
}

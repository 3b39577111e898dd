// The reference executor, in TypeScript: the semantics of docs/executor.md, one packet at a time.
// The simulator uses it; the native executor (native/) must produce byte-identical results on the
// shared vectors (test/vectors/executor.json). It favours clarity over speed.
import { ipFamily, ipToBytes, parseIp, type Ip } from '../base/addr.js';
import {
  CARRIED_OVERHEAD_MAX,
  GROUP_UDP_HEADER,
  GROUP_REPLAY_WINDOW,
  GROUP_UDP_PORT,
  MAX_FRAGMENTS,
  TUNNEL_SEQ_MAX,
  TUNNEL_SOFT_SEQ_DEFAULT,
  UDP_ESP_TUNNEL_OVERHEAD_MAX,
  UDP_ESP_TUNNEL6_OVERHEAD_MAX,
  type AddressRange,
  type PathRule,
  type PathStats,
  type RxSa,
  type Side,
  type TunnelExecutor,
  type TunnelRxSa,
  type TunnelRxStats,
  type TunnelSa,
  type TunnelSaStats,
  type TunnelTxSa,
  type TunnelTxStats,
  type TxSa,
  type Verdict,
  TUNNEL_REPLAY_WINDOW_MAX,
} from './executor.js';
import { pathKey } from './key-table.js';
import {
  parseIpv4,
  PROTO_ESP,
  PROTO_ICMP,
  PROTO_UDP,
  rewriteIpv4,
  setHeaderChecksum,
  type Ipv4Header,
} from './packet/ipv4.js';
import { fragmentIpv4 } from './packet/fragment.js';
import { groupEspOf } from './packet/group-esp.js';
import { isSearchPayload } from './packet/search-message.js';
import { clampTcpMss } from './packet/tcp.js';
import {
  IPV6_HEADER,
  isNeverIntercepted,
  NH_ICMPV6,
  NH_IPV4,
  NH_IPV6,
  parseIpv6,
  rewriteIpv6,
  type ExtensionWalk,
} from './packet/ipv6.js';
import { setUdpChecksum } from './packet/udp.js';
import { ESP_OVERHEAD_MAX, espOpen, espOverhead, espPeek, espSeal } from '../crypto/esp.js';
import { ReplayWindow } from '../crypto/replay-window.js';
import {
  TUNNEL_ESP_MIN,
  tunnelEspHeader,
  tunnelEspLength,
  tunnelEspOpen,
  tunnelEspSealInto,
} from '../crypto/tunnel-esp.js';
import { rd16, wr16 } from '../base/bytes.js';
import type { Spi, VpnId } from './types.js';

interface InstalledRule extends PathRule {
  stats: PathStats;
}

interface InstalledRx extends RxSa {
  window: ReplayWindow;
}

/** What both halves of an installed tunnel SA count; a reinstall keeps it. */
interface TunnelSaCounters {
  packets: number;
  bytes: number;
  lastUsed: number;
}

interface InstalledTunnelTx extends TunnelTxSa, TunnelSaCounters {
  seq: number;
  soft: number;
}

interface InstalledTunnelRx extends TunnelRxSa, TunnelSaCounters {
  window: ReplayWindow;
  local: Range[];
  remote: Range[];
  replayDrops: number;
  authFailures: number;
  selectorDrops: number;
  lastSource?: { addr: Ip; port: number };
}

export class TsExecutor implements TunnelExecutor {
  private readonly rules = new Map<string, InstalledRule>();
  private readonly tx = new Map<VpnId, TxSa>();
  private readonly rx = new Map<Spi, InstalledRx>();
  private readonly ttx = new Map<Spi, InstalledTunnelTx>();
  private readonly trx = new Map<Spi, InstalledTunnelRx>();
  private readonly count = new Map<string, number>();

  installPath(rule: PathRule): void {
    const key = pathKey(rule.local, rule.remote);
    // Reinstalling keeps the counters: aging reads last-used across refreshes.
    const stats = this.rules.get(key)?.stats ?? { packets: 0, bytes: 0, lastUsed: 0 };
    this.rules.set(key, { ...rule, stats });
  }

  removePath(local: Ip, remote: Ip): void {
    this.rules.delete(pathKey(local, remote));
  }

  installTxSa(sa: TxSa): void {
    this.tx.set(sa.vpnId, { ...sa });
  }

  removeTxSa(vpnId: VpnId): void {
    this.tx.delete(vpnId);
  }

  installRxSa(sa: RxSa): void {
    const old = this.rx.get(sa.spi);
    const window = old?.window ?? new ReplayWindow(GROUP_REPLAY_WINDOW);
    if (sa.floor !== undefined) window.raiseFloor(sa.floor);
    this.rx.set(sa.spi, { ...sa, window });
  }

  removeRxSa(spi: Spi): void {
    this.rx.delete(spi);
  }

  installTunnelTx(sa: TunnelTxSa): void {
    checkTunnelSa(sa);
    const next = sa.nextSeq ?? 1;
    if (!Number.isInteger(next) || next < 1 || next > TUNNEL_SEQ_MAX)
      throw new RangeError(`tunnel SA: nextSeq must be in 1..2^32-1, got ${next}`);
    const soft = sa.softSeqLimit ?? TUNNEL_SOFT_SEQ_DEFAULT;
    if (!Number.isInteger(soft) || soft < 1 || soft > TUNNEL_SEQ_MAX + 1)
      throw new RangeError(`tunnel SA: softSeqLimit must be in 1..2^32, got ${soft}`);
    const old = this.ttx.get(sa.spi);
    // A reinstall (e.g. a NAT moved the peer's port) must never reuse a sequence number: the IV is the sequence number.
    this.ttx.set(sa.spi, {
      ...installedTunnelSa(sa, old),
      seq: Math.max(next, old?.seq ?? 0),
      soft,
    });
  }

  removeTunnelTx(spi: Spi): void {
    this.ttx.delete(spi);
  }

  installTunnelRx(sa: TunnelRxSa): void {
    checkTunnelSa(sa);
    const size = sa.replayWindow ?? 1024;
    if (!Number.isInteger(size) || size > TUNNEL_REPLAY_WINDOW_MAX)
      throw new RangeError(
        `tunnel SA: replayWindow must be a multiple of 32 in 64..${TUNNEL_REPLAY_WINDOW_MAX}, got ${size}`,
      );
    const old = this.trx.get(sa.spi);
    this.trx.set(sa.spi, {
      ...installedTunnelSa(sa, old),
      // A reinstall keeps the window (and its size): a refresh must not reopen old sequence numbers.
      window: old?.window ?? new ReplayWindow(size),
      local: ranges(sa.localSelectors),
      remote: ranges(sa.remoteSelectors),
      replayDrops: old?.replayDrops ?? 0,
      authFailures: old?.authFailures ?? 0,
      selectorDrops: old?.selectorDrops ?? 0,
      lastSource: old?.lastSource,
    });
  }

  removeTunnelRx(spi: Spi): void {
    this.trx.delete(spi);
  }

  tunnelTxStats(spi: Spi): TunnelTxStats | undefined {
    const s = this.ttx.get(spi);
    if (!s) return undefined;
    return {
      ...tunnelSaStats(s),
      nextSeq: s.seq,
      rekeyNeeded: s.seq >= s.soft,
      exhausted: s.seq > TUNNEL_SEQ_MAX,
    };
  }

  tunnelRxStats(spi: Spi): TunnelRxStats | undefined {
    const s = this.trx.get(spi);
    if (!s) return undefined;
    const out: TunnelRxStats = {
      ...tunnelSaStats(s),
      highestSeq: Number(s.window.highest),
      replayDrops: s.replayDrops,
      authFailures: s.authFailures,
      selectorDrops: s.selectorDrops,
    };
    if (s.lastSource) out.lastSource = { ...s.lastSource };
    return out;
  }

  processUdp(src: Ip, srcPort: number, payload: Uint8Array, now: number): Verdict {
    const v = this.decideUdp(src, srcPort, payload, now);
    this.tally(v, payload.length);
    return v;
  }

  pathStats(local: Ip, remote: Ip): PathStats | undefined {
    const s = this.rules.get(pathKey(local, remote))?.stats;
    return s ? { ...s } : undefined;
  }

  txNextSeq(vpnId: VpnId): bigint | undefined {
    return this.tx.get(vpnId)?.nextSeq;
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.count);
  }

  process(from: Side, packet: Uint8Array, now: number, recheck = false): Verdict {
    const v = this.decide(from, packet, now);
    this.tally(v, packet.length, recheck);
    return v;
  }

  private tally(v: Verdict, arrived: number, recheck = false): void {
    if (v.kind === 'drop') this.bump(`drop.${v.reason}`);
    else if (v.kind === 'punt') {
      if (!recheck) this.bump(`punt.${v.reason}`);
    } else {
      this.bump(`${v.note.op}.packets`);
      this.bump(`${v.note.op}.bytes`, arrived);
    }
  }

  private decide(from: Side, packet: Uint8Array, now: number): Verdict {
    if (packet.length > 0 && packet[0] >> 4 === 6) return this.decide6(from, packet, now);
    const parsed = parseIpv4(packet);
    if (!parsed.ok) return { kind: 'drop', reason: 'malformed' };
    const { header, payload } = parsed.value;
    if (
      header.protocol === PROTO_ICMP &&
      payload.length >= 8 &&
      (payload[0] === 8 || payload[0] === 0) &&
      isSearchPayload(payload.subarray(8))
    ) {
      return { kind: 'punt', reason: 'search' };
    }
    const inside = from === 'inside';
    const rule = this.lookup(inside, header.src, header.dst, packet, now);
    if (!isRule(rule)) return rule;
    if (rule.tunnel) {
      // Tunnel traffic from the peer arrives on the tunnel port (processUdp), never as a forwarded packet.
      if (!inside) return { kind: 'drop', reason: 'unsolicited-plain' };
      return this.tunnelOut(
        rule,
        rule.tunnel.spi,
        packet,
        header.totalLength,
        header.protocol,
        header.df,
        header.mf || header.fragmentOffset > 0,
        now,
      );
    }

    if (inside) {
      const sa = this.tx.get(rule.vpnId!);
      if (!sa) return { kind: 'drop', reason: 'no-sa' };
      const fragment = header.mf || header.fragmentOffset > 0;
      // Protocol 4 (IP in IP) from a terminal too: in the transport form its next header would read
      // as the carried form's.
      if (!header.df || fragment || header.protocol === NEXT_HEADER_IPV4)
        return this.sealCarried(rule, sa, packet, header, fragment, now);
      const udp = udpHeaderLength(sa);
      const grown = packet.length + udp + espOverhead(payload.length);
      // Over 65535 bytes no IPv4 packet can carry it.
      if (grown > 0xffff || (rule.mtu !== undefined && grown > rule.mtu)) return { kind: 'punt', reason: 'too-big' };
      let body = payload;
      if (rule.mtu !== undefined && header.protocol === 6) {
        // Clamp on a copy: the caller's buffer is not ours to modify.
        const copy = packet.slice();
        if (clampTcpMss(copy, rule.mtu - ESP_OVERHEAD_MAX - udp - 40))
          body = copy.subarray(header.headerLength, header.totalLength);
      }
      const seq = sa.nextSeq++;
      const esp = espSeal(sa, seq, header.protocol, body);
      const out = rewriteIpv4(
        packet,
        udp ? { protocol: PROTO_UDP, payload: udpEncapsulated(esp) } : { protocol: PROTO_ESP, payload: esp },
      );
      return this.used(rule, packet, now, {
        kind: 'forward',
        bytes: out,
        note: { op: 'encrypt', vpnId: sa.vpnId, spi: sa.spi, seq },
      });
    }

    if (header.protocol !== PROTO_ESP && header.protocol !== PROTO_UDP)
      return { kind: 'drop', reason: 'unsolicited-plain' };
    // Our ESP always leaves with DF (carried form below): a fragment of ESP cannot be opened.
    if (header.mf || header.fragmentOffset > 0) return { kind: 'drop', reason: 'fragment' };
    const opened = this.openGroupEsp(rule, header.protocol, payload);
    if (!('sa' in opened)) return opened;
    const { sa, nextHeader, plain, seq } = opened;
    let out: Uint8Array;
    if (nextHeader === NEXT_HEADER_IPV4) {
      // Carried form: the whole inner packet, for this path only; it goes on with the TOS and TTL
      // the outer header arrived with (as the header of the transport form does).
      const carried = openCarried(plain, header.src, header.dst, packet[1], header.ttl);
      if (!carried) return { kind: 'drop', reason: 'malformed' };
      out = carried;
    } else out = rewriteIpv4(packet, { protocol: nextHeader, payload: plain });
    this.clampArriving(rule, out, this.groupReplyOverhead(rule));
    return this.used(rule, packet, now, {
      kind: 'forward',
      bytes: out,
      note: { op: 'decrypt', vpnId: sa.vpnId, spi: sa.spi, seq, sender: sa.sender },
    });
  }

  /**
   * A TCP SYN (or SYN-ACK) arriving decrypted announces at most the MSS this gateway can encrypt back
   * on the same path, `overhead` bytes more: the clamp works in both directions, as iptables'
   * --clamp-mss-to-pmtu does. The terminal behind us cannot learn our path otherwise: an IPv6
   * terminal ignores a Packet Too Big below 1280, which a WAN of 1280 needs. `out` is our own copy.
   */
  private clampArriving(rule: InstalledRule, out: Uint8Array, overhead: number): void {
    if (rule.mtu !== undefined) clampTcpMss(out, rule.mtu - overhead - (out[0] >> 4 === 6 ? IPV6_HEADER : 20) - 20);
  }

  /** What encrypting a reply on a group path adds: the transport form under this VPN's sending SA. */
  private groupReplyOverhead(rule: InstalledRule): number {
    const sa = this.tx.get(rule.vpnId!);
    return ESP_OVERHEAD_MAX + (sa ? udpHeaderLength(sa) : GROUP_UDP_HEADER);
  }

  /** The rule of a path, or the verdict when the path has no rule to encrypt or decrypt with. */
  private lookup(inside: boolean, src: Ip, dst: Ip, packet: Uint8Array, now: number): InstalledRule | Verdict {
    const rule = this.rules.get(inside ? pathKey(src, dst) : pathKey(dst, src));
    if (!rule) return { kind: 'punt', reason: 'miss' };
    if (rule.action === 'pending') return { kind: 'punt', reason: 'pending' };
    if (rule.action === 'discard') return this.used(rule, packet, now, { kind: 'drop', reason: 'discard' });
    if (rule.action === 'plain')
      return this.used(rule, packet, now, { kind: 'forward', bytes: packet, note: { op: 'plain' } });
    return rule;
  }

  /**
   * Group ESP from outside for an encrypting path (either IP version): the SA by SPI, checked
   * against the path, the replay window, then opened; the sequence number is spent.
   */
  private openGroupEsp(
    rule: InstalledRule,
    protocol: number,
    payload: Uint8Array,
  ): Verdict | { sa: InstalledRx; nextHeader: number; plain: Uint8Array; seq: bigint } {
    // ESP in UDP: to port 4500, with a UDP length that covers exactly the IP payload. The UDP
    // checksum is not checked (RFC 3948 §3.1): the ICV covers what matters.
    if (protocol === PROTO_UDP && (payload.length < GROUP_UDP_HEADER || rd16(payload, 2) !== GROUP_UDP_PORT))
      return { kind: 'drop', reason: 'unsolicited-plain' };
    const esp = groupEspOf(protocol, payload);
    if (!esp) return { kind: 'drop', reason: 'malformed' };
    const peek = espPeek(esp);
    if (!peek.ok) return { kind: 'drop', reason: 'malformed' };
    const sa = this.rx.get(peek.value.spi);
    if (!sa) return { kind: 'punt', reason: 'unknown-spi' };
    if (sa.vpnId !== rule.vpnId) return { kind: 'drop', reason: 'vpn-mismatch' };
    if (sa.sender !== rule.peer) return { kind: 'drop', reason: 'peer-mismatch' };
    if (sa.window.check(peek.value.seq) !== 'ok') return { kind: 'drop', reason: 'replay' };
    const opened = espOpen(sa, esp);
    if (!opened.ok) return { kind: 'drop', reason: 'auth-failed' };
    sa.window.accept(opened.value.seq);
    return { sa, nextHeader: opened.value.nextHeader, plain: opened.value.payload, seq: opened.value.seq };
  }

  /**
   * IPv6 (docs/executor.md, "IPv6"): what the link needs passes untouched; key search over
   * ICMPv6 is punted; group mode keeps the fixed header (transport form) or carries the whole
   * packet (next header 41 or 4); nothing is fragmented: too big is punted for Packet Too Big.
   */
  private decide6(from: Side, packet: Uint8Array, now: number): Verdict {
    const parsed = parseIpv6(packet);
    if (!parsed.ok) return { kind: 'drop', reason: 'bad-ipv6' };
    const { header, payload, walk } = parsed.value;
    if (isNeverIntercepted(packet, walk)) return { kind: 'forward', bytes: packet, note: { op: 'pass' } };
    if (isSearchIcmpv6(packet, walk)) return { kind: 'punt', reason: 'search' };
    const inside = from === 'inside';
    const rule = this.lookup(inside, header.src, header.dst, packet, now);
    if (!isRule(rule)) return rule;
    const total = IPV6_HEADER + header.payloadLength;
    if (rule.tunnel) {
      if (!inside) return { kind: 'drop', reason: 'unsolicited-plain' };
      return this.tunnelOut(rule, rule.tunnel.spi, packet, total, walk.upperProto, true, walk.fragment !== 'none', now);
    }

    if (inside) {
      const sa = this.tx.get(rule.vpnId!);
      if (!sa) return { kind: 'drop', reason: 'no-sa' };
      const udp = udpHeaderLength(sa);
      // Transport form: everything after the fixed header is encrypted, extension headers included.
      // Carried form (next header 41 or 4): the whole packet (ESP next header 41). Both keep the
      // fixed header in front (docs/executor.md, "IPv6").
      const carried = header.nextHeader === NH_IPV6 || header.nextHeader === NH_IPV4;
      let body = carried ? packet.subarray(0, total) : payload;
      const grown = udp + body.length + espOverhead(body.length);
      if (grown > 0xffff || (rule.mtu !== undefined && IPV6_HEADER + grown > rule.mtu)) {
        return { kind: 'punt', reason: 'too-big' };
      }
      if (!carried && rule.mtu !== undefined && walk.upperProto === 6) {
        const copy = packet.slice(0, total);
        if (clampTcpMss(copy, rule.mtu - ESP_OVERHEAD_MAX - udp - IPV6_HEADER - 20)) body = copy.subarray(IPV6_HEADER);
      }
      const seq = sa.nextSeq++;
      const esp = espSeal(sa, seq, carried ? NH_IPV6 : header.nextHeader, body);
      const out = rewriteIpv6(
        packet,
        udp ? { nextHeader: PROTO_UDP, payload: udpEncapsulated(esp) } : { nextHeader: PROTO_ESP, payload: esp },
      );
      // RFC 8200 §8.1: no zero UDP checksum over IPv6.
      if (udp) setUdpChecksum(out, IPV6_HEADER);
      return this.used(rule, packet, now, {
        kind: 'forward',
        bytes: out,
        note: { op: 'encrypt', vpnId: sa.vpnId, spi: sa.spi, seq },
      });
    }

    // Our ESP has no extension headers and is never fragmented.
    if (walk.fragment !== 'none') return { kind: 'drop', reason: 'fragment' };
    if (header.nextHeader !== PROTO_ESP && header.nextHeader !== PROTO_UDP)
      return { kind: 'drop', reason: 'unsolicited-plain' };
    const opened = this.openGroupEsp(rule, header.nextHeader, payload);
    if (!('sa' in opened)) return opened;
    const { sa, nextHeader, plain, seq } = opened;
    let out: Uint8Array | undefined;
    if (nextHeader === NH_IPV6) out = openCarried6(plain, packet);
    else if (nextHeader !== NH_IPV4 && plain.length <= 0xffff)
      out = rewriteIpv6(packet, { nextHeader, payload: plain });
    // What an authenticated member sends is still parsed before it goes on: never a malformed chain.
    if (!out || !parseIpv6(out).ok) return { kind: 'drop', reason: 'malformed' };
    this.clampArriving(rule, out, this.groupReplyOverhead(rule));
    return this.used(rule, packet, now, {
      kind: 'forward',
      bytes: out,
      note: { op: 'decrypt', vpnId: sa.vpnId, spi: sa.spi, seq, sender: sa.sender },
    });
  }

  /**
   * The carried form, for a packet without DF or a fragment: the whole inner packet (header
   * included, next header 4) under ESP, behind a 20-byte outer header with the terminals'
   * addresses and DF set. A packet larger than the path is fragmented first (RFC 791), each
   * fragment carried in its own ESP packet: nothing this gateway sends is ever fragmented on the
   * way, and the receiving terminal reassembles.
   */
  private sealCarried(
    rule: InstalledRule,
    sa: TxSa,
    packet: Uint8Array,
    header: Ipv4Header,
    fragment: boolean,
    now: number,
  ): Verdict {
    let inner = packet.subarray(0, header.totalLength);
    const limit = Math.min(rule.mtu ?? 0xffff, 0xffff);
    const udp = udpHeaderLength(sa);
    const overhead = CARRIED_OVERHEAD_MAX - GROUP_UDP_HEADER + udp;
    if (rule.mtu !== undefined && header.protocol === 6 && !fragment) {
      const copy = inner.slice();
      if (clampTcpMss(copy, rule.mtu - overhead - 40)) inner = copy;
    }
    let pieces = [inner];
    if (20 + udp + inner.length + espOverhead(inner.length) > limit) {
      // A fragment that says DF cannot be split further.
      const maxData = Math.floor((limit - overhead - header.headerLength) / 8) * 8;
      if (header.df || maxData < 8 || Math.ceil((header.totalLength - header.headerLength) / maxData) > MAX_FRAGMENTS)
        return { kind: 'punt', reason: 'too-big' };
      pieces = fragmentIpv4(inner, maxData);
    }
    const out: Uint8Array[] = [];
    const first = sa.nextSeq;
    for (const piece of pieces)
      out.push(carriedPacket(piece, espSeal(sa, sa.nextSeq++, NEXT_HEADER_IPV4, piece), udp > 0));
    if (pieces.length > 1) this.bump('encrypt.fragments', pieces.length);
    const v: Verdict = {
      kind: 'forward',
      bytes: out[0],
      note: { op: 'encrypt', vpnId: sa.vpnId, spi: sa.spi, seq: first },
    };
    if (out.length > 1) v.more = out.slice(1);
    return this.used(rule, packet, now, v);
  }

  /** Outbound tunnel mode: the whole inner packet (fragments included) becomes outer IPv4 + UDP + ESP. */
  private tunnelOut(
    rule: InstalledRule,
    spi: Spi,
    packet: Uint8Array,
    total: number,
    protocol: number,
    df: boolean,
    fragment: boolean,
    now: number,
  ): Verdict {
    const sa = this.ttx.get(spi);
    if (!sa) return { kind: 'drop', reason: 'no-sa' };
    if (sa.seq > TUNNEL_SEQ_MAX) return { kind: 'drop', reason: 'tunnel-seq-exhausted' };
    const outerV6 = ipFamily(sa.localAddr) === 6;
    const outerHeaders = outerV6 ? IPV6_HEADER + 8 : 28;
    const outerLength = outerHeaders + tunnelEspLength(total);
    const maxOuter = outerV6 ? IPV6_HEADER + 0xffff : 0xffff;
    if (outerLength > maxOuter || (rule.mtu !== undefined && outerLength > rule.mtu && df))
      return { kind: 'punt', reason: 'too-big' };
    let inner = packet.subarray(0, total);
    if (rule.mtu !== undefined && protocol === 6 && !fragment) {
      const copy = inner.slice();
      const overhead = outerV6 ? UDP_ESP_TUNNEL6_OVERHEAD_MAX : UDP_ESP_TUNNEL_OVERHEAD_MAX;
      if (clampTcpMss(copy, rule.mtu - overhead - (inner[0] >> 4 === 6 ? IPV6_HEADER : 20) - 20)) inner = copy;
    }
    const seq = sa.seq++;
    sa.packets++;
    sa.bytes += total;
    sa.lastUsed = now;
    const out = tunnelSeal(sa, seq, inner, df);
    return this.used(rule, packet, now, {
      kind: 'forward',
      bytes: out,
      note: { op: 'tunnel-encrypt', vpnId: sa.vpnId, peer: sa.peer, spi: sa.spi, seq },
    });
  }

  private decideUdp(src: Ip, srcPort: number, d: Uint8Array, now: number): Verdict {
    if (d.length === 1 && d[0] === 0xff) return { kind: 'drop', reason: 'tunnel-keepalive' };
    if (d.length < 4) return { kind: 'drop', reason: 'malformed' };
    const { spi, seq } = tunnelEspHeader(d);
    if (spi === 0) return { kind: 'punt', reason: 'ike' };
    if (d.length < TUNNEL_ESP_MIN || (d.length - 32) % 4 !== 0 || seq === 0)
      return { kind: 'drop', reason: 'malformed' };
    const sa = this.trx.get(spi);
    if (!sa) return { kind: 'punt', reason: 'unknown-spi' };
    if (sa.window.check(BigInt(seq)) !== 'ok') {
      sa.replayDrops++;
      return { kind: 'drop', reason: 'replay' };
    }
    const opened = tunnelEspOpen(sa, d);
    if (!opened) {
      sa.authFailures++;
      return { kind: 'drop', reason: 'auth-failed' };
    }
    // Authenticated: the sequence number is spent whatever the content turns out to be.
    sa.window.accept(BigInt(seq));
    sa.lastSource = { addr: src, port: srcPort };
    if (opened.nextHeader === 59) return { kind: 'drop', reason: 'tunnel-dummy' };
    const header = innerOf(opened.nextHeader, opened.payload);
    if (!header) return { kind: 'drop', reason: 'malformed' };
    if (!inRanges(sa.remote, header.src) || !inRanges(sa.local, header.dst)) {
      sa.selectorDrops++;
      return { kind: 'drop', reason: 'selector' };
    }
    // Only what the inner header covers goes on: anything after it is TFC padding (RFC 4303 §2.7).
    const inner = opened.payload.slice(0, header.length);
    const rule = this.rules.get(pathKey(header.dst, header.src));
    if (rule) {
      if (rule.action === 'discard') return this.used(rule, inner, now, { kind: 'drop', reason: 'discard' });
      if (rule.action === 'encrypt' && rule.vpnId !== sa.vpnId) return { kind: 'drop', reason: 'vpn-mismatch' };
      if (rule.action === 'encrypt' && rule.peer !== sa.peer) return { kind: 'drop', reason: 'peer-mismatch' };
      // The tunnel back to the peer, of the family this datagram came in.
      if (rule.action === 'encrypt')
        this.clampArriving(
          rule,
          inner,
          ipFamily(src) === 6 ? UDP_ESP_TUNNEL6_OVERHEAD_MAX : UDP_ESP_TUNNEL_OVERHEAD_MAX,
        );
    }
    sa.packets++;
    sa.bytes += inner.length;
    sa.lastUsed = now;
    const v: Verdict = {
      kind: 'forward',
      bytes: inner,
      note: { op: 'tunnel-decrypt', vpnId: sa.vpnId, peer: sa.peer, spi, seq },
    };
    return rule ? this.used(rule, inner, now, v) : v;
  }

  private used(rule: InstalledRule, packet: Uint8Array, now: number, v: Verdict): Verdict {
    rule.stats.packets++;
    rule.stats.bytes += packet.length;
    rule.stats.lastUsed = now;
    return v;
  }

  private bump(name: string, n = 1): void {
    this.count.set(name, (this.count.get(name) ?? 0) + n);
  }
}

// ---- the carried form of group ESP (docs/executor.md) -------------------------------------------

/** Next header 4: the ESP payload is a whole IPv4 packet. */
const NEXT_HEADER_IPV4 = 4;

/**
 * Outer header of the carried form: version 4, no options, TOS, id and TTL of the inner packet, DF,
 * UDP (then the UDP header) or ESP.
 */
function carriedPacket(inner: Uint8Array, esp: Uint8Array, udp: boolean): Uint8Array {
  const body = udp ? udpEncapsulated(esp) : esp;
  const out = new Uint8Array(20 + body.length);
  out[0] = 0x45;
  out[1] = inner[1];
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out[4] = inner[4];
  out[5] = inner[5];
  out[6] = 0x40;
  out[8] = inner[8];
  out[9] = udp ? PROTO_UDP : PROTO_ESP;
  out.set(inner.subarray(12, 20), 12);
  setHeaderChecksum(out, 20);
  out.set(body, 20);
  return out;
}

/** 8 with the UDP encapsulation (the default), 0 for raw ESP. */
function udpHeaderLength(sa: TxSa): number {
  return sa.encapsulation === 'esp' ? 0 : GROUP_UDP_HEADER;
}

/** UDP 4500 -> 4500 around an ESP packet, checksum 0 (RFC 3948 §3.1; the ICV protects the content). */
function udpEncapsulated(esp: Uint8Array): Uint8Array {
  const out = new Uint8Array(GROUP_UDP_HEADER + esp.length);
  out[0] = GROUP_UDP_PORT >> 8;
  out[1] = GROUP_UDP_PORT & 0xff;
  out[2] = GROUP_UDP_PORT >> 8;
  out[3] = GROUP_UDP_PORT & 0xff;
  out[4] = out.length >> 8;
  out[5] = out.length & 0xff;
  out.set(esp, GROUP_UDP_HEADER);
  return out;
}

/**
 * The inner packet of the carried form, checked: valid IPv4 of exactly the decrypted length, for
 * the same terminals as the outer header (a member may not smuggle packets for another path). It
 * takes the outer TOS and TTL. Undefined when it does not check.
 */
function openCarried(payload: Uint8Array, src: string, dst: string, tos: number, ttl: number): Uint8Array | undefined {
  const ip = parseIpv4(payload);
  if (
    !ip.ok ||
    ip.value.header.totalLength !== payload.length ||
    ip.value.header.src !== src ||
    ip.value.header.dst !== dst
  )
    return undefined;
  const out = payload.slice();
  out[1] = tos;
  out[8] = ttl;
  setHeaderChecksum(out);
  return out;
}

/** ICMPv6 echo request/reply carrying the key-search payload (docs/protocol.md §2.1). */
function isSearchIcmpv6(packet: Uint8Array, walk: ExtensionWalk): boolean {
  const at = walk.upperOffset;
  if (walk.upperProto !== NH_ICMPV6 || at === undefined || walk.fragment !== 'none' || at + 8 > packet.length)
    return false;
  return (
    (packet[at] === 128 || packet[at] === 129) &&
    isSearchPayload(packet.subarray(at + 8, IPV6_HEADER + rd16(packet, 4)))
  );
}

/**
 * The inner packet of the IPv6 carried form, checked: valid IPv6 whose payload length is exactly
 * the decrypted length less 40, the same addresses as the outer header. It goes on with the outer
 * traffic class and hop limit. Undefined when it does not check.
 */
function openCarried6(plain: Uint8Array, outer: Uint8Array): Uint8Array | undefined {
  if (plain.length < IPV6_HEADER || plain[0] >> 4 !== 6 || rd16(plain, 4) !== plain.length - IPV6_HEADER)
    return undefined;
  for (let i = 8; i < 40; i++) if (plain[i] !== outer[i]) return undefined;
  const out = plain.slice();
  out[0] = (out[0] & 0xf0) | (outer[0] & 0x0f);
  out[1] = (outer[1] & 0xf0) | (out[1] & 0x0f);
  out[7] = outer[7];
  return out;
}

function isRule(r: InstalledRule | Verdict): r is InstalledRule {
  return 'local' in r;
}

// ---- tunnel-mode ESP in UDP (RFC 4303 tunnel mode, RFC 3948; the ESP codec is src/crypto/tunnel-esp.ts)
//
//   outer IPv4 (20): DSCP of the inner packet, id = seq & 0xffff, DF copied from an inner IPv4
//                    packet (always set for inner IPv6), TTL 64, protocol 17, localAddr -> remoteAddr
//   or outer IPv6 (40): DSCP of the inner packet, flow label 0, next header 17, hop limit 64
//   UDP (8):         localPort -> remotePort, checksum 0 over IPv4 (RFC 3948 §3.1), computed over IPv6
//   ESP:             tunnel ESP with next header 4 (inner IPv4) or 41 (inner IPv6)

const U32 = 0x100000000;

function checkTunnelSa(sa: TunnelSa): void {
  if (!Number.isInteger(sa.spi) || sa.spi < 1 || sa.spi >= U32)
    throw new RangeError(`tunnel SA: SPI must be in 1..2^32-1, got ${sa.spi}`);
  if (!Number.isInteger(sa.vpnId) || sa.vpnId < 1 || sa.vpnId >= U32)
    throw new RangeError(`tunnel SA: VPN id must be in 1..2^32-1, got ${sa.vpnId}`);
  const peerBytes = typeof sa.peer === 'string' ? Buffer.byteLength(sa.peer) : 0;
  if (peerBytes < 1 || peerBytes > 63) throw new RangeError('tunnel SA: peer must be 1..63 bytes of UTF-8');
  if (!(sa.key instanceof Uint8Array) || (sa.key.length !== 16 && sa.key.length !== 32))
    throw new RangeError('tunnel SA: key must be 16 or 32 bytes');
  if (!(sa.salt instanceof Uint8Array) || sa.salt.length !== 4) throw new RangeError('tunnel SA: salt must be 4 bytes');
  for (const a of [sa.localAddr, sa.remoteAddr])
    if (typeof a !== 'string' || !parseIp(a).ok) throw new RangeError(`tunnel SA: ${a} is not an IP address`);
  if (ipFamily(sa.localAddr) !== ipFamily(sa.remoteAddr))
    throw new RangeError(`tunnel SA: ${sa.localAddr} and ${sa.remoteAddr} are of different families`);
  for (const p of [sa.localPort, sa.remotePort])
    if (!Number.isInteger(p) || p < 1 || p > 0xffff) throw new RangeError(`tunnel SA: bad port ${p}`);
}

/** A tunnel SA as installed: its own copy of the key, and the counters of the SA it replaces (or zeros). */
function installedTunnelSa<T extends TunnelSa>(sa: T, old: TunnelSaCounters | undefined): T & TunnelSaCounters {
  return {
    ...sa,
    key: sa.key.slice(),
    salt: sa.salt.slice(),
    packets: old?.packets ?? 0,
    bytes: old?.bytes ?? 0,
    lastUsed: old?.lastUsed ?? 0,
  };
}

/** What the statistics of both halves of a tunnel SA begin with. */
function tunnelSaStats(s: TunnelSa & TunnelSaCounters): TunnelSaStats {
  return { spi: s.spi, vpnId: s.vpnId, peer: s.peer, packets: s.packets, bytes: s.bytes, lastUsed: s.lastUsed };
}

/** A traffic selector as numbers: the family, then the first and last address. */
type Range = [family: number, start: bigint, end: bigint];

function addrValue(ip: Ip): bigint {
  let v = 0n;
  for (const b of ipToBytes(ip)) v = (v << 8n) | BigInt(b);
  return v;
}

function ranges(rs: AddressRange[]): Range[] {
  return rs.map((r) => {
    const family = ipFamily(r.start);
    if (family !== ipFamily(r.end)) throw new RangeError(`traffic selector ${r.start}-${r.end} mixes address families`);
    const a = addrValue(r.start);
    const b = addrValue(r.end);
    if (a > b) throw new RangeError(`traffic selector ${r.start}-${r.end} is empty`);
    return [family, a, b];
  });
}

function inRanges(rs: Range[], ip: Ip): boolean {
  const family = ipFamily(ip);
  const v = addrValue(ip);
  return rs.some(([f, a, b]) => f === family && v >= a && v <= b);
}

/** The inner packet's addresses and length (next header 4: IPv4, 41: IPv6), or undefined if malformed. */
function innerOf(nextHeader: number, payload: Uint8Array): { src: Ip; dst: Ip; length: number } | undefined {
  if (nextHeader === NH_IPV4) {
    const ip = parseIpv4(payload);
    return ip.ok
      ? { src: ip.value.header.src, dst: ip.value.header.dst, length: ip.value.header.totalLength }
      : undefined;
  }
  if (nextHeader === NH_IPV6) {
    const ip = parseIpv6(payload);
    return ip.ok
      ? { src: ip.value.header.src, dst: ip.value.header.dst, length: IPV6_HEADER + ip.value.header.payloadLength }
      : undefined;
  }
  return undefined;
}

/**
 * Outer IPv4 (or IPv6, after the SA's addresses) + UDP + tunnel ESP around a whole inner packet
 * (next header 4 or 41). The outer header takes the inner DSCP with ECN Not-ECT (RFC 6040
 * compatibility mode: the decapsulator ignores the outer ECN). Over IPv6 the UDP checksum is
 * computed (RFC 8200 §8.1).
 */
function tunnelSeal(sa: TunnelTxSa, seq: number, inner: Uint8Array, df: boolean): Uint8Array {
  const innerV6 = inner[0] >> 4 === 6;
  const dscp = (innerV6 ? ((inner[0] << 4) | (inner[1] >> 4)) & 0xff : inner[1]) & 0xfc;
  const espLength = tunnelEspLength(inner.length);
  const outerV6 = ipFamily(sa.localAddr) === 6;
  const udpAt = outerV6 ? IPV6_HEADER : 20;
  const out = new Uint8Array(udpAt + 8 + espLength);
  if (outerV6) {
    out[0] = 0x60 | (dscp >> 4);
    out[1] = (dscp & 0x0f) << 4;
    wr16(out, 4, 8 + espLength);
    out[6] = PROTO_UDP;
    out[7] = 64;
    out.set(ipToBytes(sa.localAddr), 8);
    out.set(ipToBytes(sa.remoteAddr), 24);
  } else {
    out[0] = 0x45;
    out[1] = dscp;
    wr16(out, 2, out.length);
    wr16(out, 4, seq & 0xffff);
    // IPv6 inside is never fragmented on the way (RFC 8200 §5): DF.
    out[6] = df || innerV6 ? 0x40 : 0;
    out[8] = 64;
    out[9] = PROTO_UDP;
    out.set(ipToBytes(sa.localAddr), 12);
    out.set(ipToBytes(sa.remoteAddr), 16);
    setHeaderChecksum(out, 20);
  }
  wr16(out, udpAt, sa.localPort);
  wr16(out, udpAt + 2, sa.remotePort);
  wr16(out, udpAt + 4, 8 + espLength);
  tunnelEspSealInto(sa, seq, innerV6 ? NH_IPV6 : NH_IPV4, inner, out.subarray(udpAt + 8));
  if (outerV6) setUdpChecksum(out, udpAt);
  return out;
}

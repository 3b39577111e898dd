// The reference executor, in TypeScript: the semantics of docs/executor.md, one packet at a time.
// The simulator uses it; the native executor (native/) must produce byte-identical results on the
// shared vectors (test/vectors/executor.json). It favours clarity over speed.
import type { Ip } from './addr.js';
import type { Executor, PathRule, PathStats, RxSa, Side, TxSa, Verdict } from './executor.js';
import { pathKey } from './key-table.js';
import { parseIpv4, PROTO_ESP, PROTO_ICMP, rewriteIpv4 } from './packet/ipv4.js';
import { isSearchPayload } from './packet/search-message.js';
import { clampTcpMss } from './packet/tcp.js';
import { ESP_OVERHEAD_MAX, espOpen, espOverhead, espPeek, espSeal } from '../crypto/esp.js';
import { ReplayWindow } from '../crypto/replay-window.js';
import type { Spi, VpnId } from './types.js';

interface InstalledRule extends PathRule {
  stats: PathStats;
}

interface InstalledRx extends RxSa {
  window: ReplayWindow;
}

export class TsExecutor implements Executor {
  private readonly rules = new Map<string, InstalledRule>();
  private readonly tx = new Map<VpnId, TxSa>();
  private readonly rx = new Map<Spi, InstalledRx>();
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
    this.rx.set(sa.spi, { ...sa, window: old?.window ?? new ReplayWindow(1024) });
  }

  removeRxSa(spi: Spi): void {
    this.rx.delete(spi);
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

  process(from: Side, packet: Uint8Array, now: number): Verdict {
    const v = this.decide(from, packet, now);
    if (v.kind === 'drop') this.bump(`drop.${v.reason}`);
    else if (v.kind === 'punt') this.bump(`punt.${v.reason}`);
    else {
      this.bump(`${v.note.op}.packets`);
      this.bump(`${v.note.op}.bytes`, packet.length);
    }
    return v;
  }

  private decide(from: Side, packet: Uint8Array, now: number): Verdict {
    const parsed = parseIpv4(packet);
    if (!parsed.ok) return { kind: 'drop', reason: 'malformed' };
    const { header, payload } = parsed.value;
    if (header.protocol === PROTO_ICMP && payload.length >= 8 && (payload[0] === 8 || payload[0] === 0) && isSearchPayload(payload.subarray(8))) {
      return { kind: 'punt', reason: 'search' };
    }
    const inside = from === 'inside';
    const rule = this.rules.get(inside ? pathKey(header.src, header.dst) : pathKey(header.dst, header.src));
    if (!rule) return { kind: 'punt', reason: 'miss' };
    if (rule.action === 'pending') return { kind: 'punt', reason: 'pending' };
    if (rule.action === 'discard') return this.used(rule, packet, now, { kind: 'drop', reason: 'discard' });
    if (rule.action === 'plain') return this.used(rule, packet, now, { kind: 'forward', bytes: packet, note: { op: 'plain' } });

    if (inside) {
      if (header.mf || header.fragmentOffset > 0) return { kind: 'drop', reason: 'fragment' };
      const sa = this.tx.get(rule.vpnId!);
      if (!sa) return { kind: 'drop', reason: 'no-sa' };
      const grown = packet.length + espOverhead(payload.length);
      // Over 65535 bytes no IPv4 packet can carry it, DF or not.
      if (grown > 0xffff || (rule.mtu !== undefined && grown > rule.mtu && header.df)) return { kind: 'punt', reason: 'too-big' };
      let body = payload;
      if (rule.mtu !== undefined && header.protocol === 6) {
        // Clamp on a copy: the caller's buffer is not ours to modify.
        const copy = packet.slice();
        if (clampTcpMss(copy, rule.mtu - ESP_OVERHEAD_MAX - 40)) body = copy.subarray(header.headerLength, header.totalLength);
      }
      const seq = sa.nextSeq++;
      const esp = espSeal(sa, seq, header.protocol, body);
      const out = rewriteIpv4(packet, { protocol: PROTO_ESP, payload: esp });
      return this.used(rule, packet, now, { kind: 'forward', bytes: out, note: { op: 'encrypt', vpnId: sa.vpnId, spi: sa.spi, seq } });
    }

    if (header.protocol !== PROTO_ESP) return { kind: 'drop', reason: 'unsolicited-plain' };
    const peek = espPeek(payload);
    if (!peek.ok) return { kind: 'drop', reason: 'malformed' };
    const sa = this.rx.get(peek.value.spi);
    if (!sa) return { kind: 'punt', reason: 'unknown-spi' };
    if (sa.vpnId !== rule.vpnId) return { kind: 'drop', reason: 'vpn-mismatch' };
    if (sa.sender !== rule.peer) return { kind: 'drop', reason: 'peer-mismatch' };
    if (sa.window.check(peek.value.seq) !== 'ok') return { kind: 'drop', reason: 'replay' };
    const opened = espOpen(sa, payload);
    if (!opened.ok) return { kind: 'drop', reason: 'auth-failed' };
    sa.window.accept(opened.value.seq);
    const out = rewriteIpv4(packet, { protocol: opened.value.nextHeader, payload: opened.value.payload });
    return this.used(rule, packet, now, {
      kind: 'forward',
      bytes: out,
      note: { op: 'decrypt', vpnId: sa.vpnId, spi: sa.spi, seq: opened.value.seq, sender: sa.sender },
    });
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

// Output of a run: readable tables for people, one JSON document for programs. Both are
// deterministic: times are rounded to the microsecond (virtual-clock sums of fractional latencies
// would otherwise print float noise), bigints print as numbers (or strings beyond 2^53), bytes as hex.
import type { PathView } from '../core/gateway-api.js';
import type { SimResult } from './simulation.js';
import { SYN_MSS, type PathOutcome } from './traffic.js';

export interface ReportOptions {
  /** Include the trace (default true). */
  trace?: boolean;
}

/** The result as one JSON document (with a trailing newline). */
export function renderJson(result: SimResult, options: ReportOptions = {}): string {
  const doc = {
    name: result.name,
    seed: result.seed,
    vpns: result.vpns,
    until: result.until,
    paths: result.paths,
    trace: options.trace === false ? [] : result.trace,
    keyTables: result.keyTables,
    stats: result.stats,
    links: result.links,
    drops: result.drops,
    maxWanLayers: result.maxWanLayers,
    layerMismatches: result.layerMismatches,
    eventsRun: result.eventsRun,
  };
  return JSON.stringify(doc, jsonValue, 2) + '\n';
}

/** JSON.stringify replacer: stable numbers, bigints, bytes. */
export function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === 'number') return Number.isInteger(value) ? value : roundMicro(value);
  if (typeof value === 'bigint')
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

function roundMicro(ms: number): number {
  return Math.round(ms * 1e6) / 1e6;
}

function ms(value: number): string {
  return String(roundMicro(value));
}

/** Lays out rows under a header, columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][], indent = '  '): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    indent +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function detailText(detail: Record<string, unknown> | undefined): string {
  if (detail === undefined) return '';
  return Object.entries(detail)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      const shown = jsonValue(k, v);
      return `${k}=${typeof shown === 'string' ? shown : JSON.stringify(shown, jsonValue)}`;
    })
    .join(' ');
}

/** The result as text: paths tried, the trace in order, key tables, links, drops and counters. */
export function renderText(result: SimResult, options: ReportOptions = {}): string {
  const out: string[] = [];
  out.push(`${result.name}: seed ${result.seed}, ran to ${ms(result.until)} ms (${result.eventsRun} events)`);

  out.push('', 'Paths tried');
  if (result.paths.length === 0) out.push('  (no traffic in the file)');
  else {
    // Runs with IPv6 name the addresses too: a dual-stack pair may be tried over either family.
    const withAddresses = result.paths.some((p) => p.src.includes(':') || p.dst.includes(':'));
    const end = (name: string, address: string) => (withAddresses ? `${name} ${address}` : name);
    out.push(
      table(
        ['FROM', 'TO', 'KIND', 'DELIVERED', 'REPLIED', 'VPN LAYERS (outermost first)', 'FIRST PACKET', 'NOTE'],
        result.paths.map((p) => [
          end(p.from, p.src),
          end(p.to, p.dst),
          p.kind,
          `${p.delivered ? 'yes' : 'no'} ${p.deliveredCount}/${p.sent}`,
          p.kind === 'tcp-syn' ? '-' : `${p.replied ? 'yes' : 'no'} ${p.repliedCount}/${p.sent}`,
          p.delivered ? (p.vpnLayers.length > 0 ? p.vpnLayers.join(' > ') : 'plain') : '-',
          p.firstPacketDelay === null ? 'not delivered' : `${ms(p.firstPacketDelay)} ms`,
          pathNote(p),
        ]),
      ),
    );
  }

  if (options.trace !== false) {
    out.push('', `Trace (${result.trace.length} events)`);
    if (result.trace.length === 0) out.push('  (empty)');
    else {
      out.push(
        table(
          ['TIME (ms)', 'NODE', 'STEP', 'EVENT', 'KIND', 'DETAIL'],
          result.trace.map((t) => [
            ms(t.time),
            t.node,
            t.step === undefined ? '' : String(t.step),
            t.event,
            t.kind,
            detailText(t.detail),
          ]),
        ),
      );
    }
  }

  out.push('', `Key tables at ${ms(result.until)} ms`);
  const gateways = Object.keys(result.keyTables);
  const vpnNames = new Map(result.vpns.map((v) => [v.id, v.name]));
  if (gateways.length === 0) out.push('  (no gateways)');
  for (const g of gateways) {
    const entries = result.keyTables[g];
    out.push(
      `  ${g}${entries.length === 0 ? ': (empty)' : ` (${entries.length} ${entries.length === 1 ? 'entry' : 'entries'})`}`,
    );
    if (entries.length > 0) out.push(keyTable(entries, vpnNames));
  }

  out.push('', 'Links');
  out.push(
    table(
      ['LINK', 'SEGMENT', 'PACKETS', 'BYTES', 'MAX LAYERS', 'DROPS'],
      result.links.map((l) => [
        l.link,
        l.wan ? 'wan' : 'lan',
        String(l.packets),
        String(l.bytes),
        String(l.maxLayers),
        Object.entries(l.drops)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      ]),
    ),
  );
  out.push(`  deepest nesting on the WAN: ${result.maxWanLayers} layer${result.maxWanLayers === 1 ? '' : 's'}`);

  const drops = Object.entries(result.drops);
  out.push('', 'Drops at nodes');
  out.push(drops.length === 0 ? '  (none)' : drops.map(([k, v]) => `  ${k}: ${v}`).join('\n'));
  if (result.layerMismatches > 0) out.push(`  layer bookkeeping mismatches: ${result.layerMismatches}`);

  out.push('', 'Gateway counters');
  for (const [g, stats] of Object.entries(result.stats)) {
    const entries = Object.entries(stats);
    out.push(`  ${g}: ${entries.length === 0 ? '(none)' : entries.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  return out.join('\n') + '\n';
}

function pathNote(p: PathOutcome): string {
  if (p.kind !== 'tcp-syn') return '';
  const mss = p.packets.find((x) => x.mss !== undefined)?.mss;
  return mss === undefined ? '' : `MSS ${SYN_MSS} sent, ${mss} arrived`;
}

function keyTable(entries: PathView[], vpnNames: Map<number, string>): string {
  const vpn = (id: number) => vpnNames.get(id) ?? String(id);
  return table(
    ['LOCAL', 'REMOTE', 'ACTION', 'VPN', 'PEER', 'LAYERS', 'PACKETS', 'BYTES', 'LAST USED', 'EXPIRES', 'REASON'],
    entries.map((e) => [
      e.local,
      e.remote,
      e.action,
      e.vpnName ?? (e.vpnId === undefined ? '-' : vpn(e.vpnId)),
      e.peer ?? '-',
      e.layers === undefined || e.layers.length === 0
        ? '-'
        : e.layers.map((l) => `${vpn(l.vpnId)}(${l.gateways.join('~')})`).join(' > '),
      String(e.packets),
      String(e.bytes),
      ms(e.lastUsed),
      e.expiresAt >= Number.MAX_SAFE_INTEGER ? 'never' : ms(e.expiresAt),
      e.reason ?? '',
    ]),
    '    ',
  );
}

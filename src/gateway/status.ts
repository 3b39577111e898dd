// The gateway's local status socket: newline-delimited JSON requests over a unix socket that only
// root (or the socket's group) can open. `kasane gateway status` is its client.
import { createConnection, createServer, type Server } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { PathView } from '../core/gateway-api.js';
import type { IkeSaView } from '../ike/engine/engine.js';

export interface GatewayStatus {
  gateway: string;
  address: string;
  authorityVersion: number;
  /** The authority replica the change stream follows now (URL, and address when its name has several). */
  authority?: string;
  vpns: { id: number; name: string; mode: string; epoch?: number }[];
  startedAt: number;
  now: number;
  paths: PathView[];
  /** IKE SAs with pairwise-VPN peers and their Child SAs. */
  ike?: IkeSaView[];
  /** What IKE peers that have not authenticated make the engine hold now (docs/ike.md, "Under attack"). */
  ikeLoad?: { halfOpen: number; fragmentBytes: number; refusedKept: number };
  stats: Record<string, number>;
}

export type StatusRequest = { op: 'status' };

/** Serves `status()` on a unix socket (0660); removes a stale socket file first. */
export async function serveStatus(path: string, status: () => GatewayStatus): Promise<Server> {
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > 4096) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let reply: unknown;
      try {
        const req = JSON.parse(buf.slice(0, nl)) as StatusRequest;
        reply =
          req?.op === 'status'
            ? { ok: true, status: status() }
            : {
                ok: false,
                error: 'unknown-op',
                message: `unknown request ${JSON.stringify(req?.op)}; try {"op":"status"}`,
              };
      } catch {
        reply = { ok: false, error: 'bad-request', message: 'requests are one JSON object per line' };
      }
      sock.end(JSON.stringify(reply, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o660);
  return server;
}

export async function queryStatus(path: string, timeoutMs = 3000): Promise<GatewayStatus> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from the gateway's status socket ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ op: 'status' }) + '\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
            ? `the gateway is not running (no status socket at ${path})`
            : `status socket ${path}: ${e.message}`,
        ),
      );
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(buf) as { ok: boolean; status?: GatewayStatus; message?: string };
        if (r.ok && r.status) resolve(r.status);
        else reject(new Error(r.message ?? 'bad answer'));
      } catch {
        reject(new Error(`unreadable answer from ${path}`));
      }
    });
  });
}

/** The key table and search statistics as tables for people. */
export function renderStatus(s: GatewayStatus): string {
  const age = (t: number) => (t ? `${Math.max(0, Math.round((s.now - t) / 1000))}s` : '-');
  const rows = s.paths
    .slice()
    .sort((a, b) => (a.local + a.remote).localeCompare(b.local + b.remote))
    .map((p) => [
      p.local,
      p.remote,
      p.action,
      p.vpnName ?? (p.vpnId !== undefined ? String(p.vpnId) : '-'),
      p.peer ?? '-',
      (p.layers ?? []).map((l) => `${l.vpnId}(${l.gateways.join('~')})`).join(' > ') || '-',
      p.mtu !== undefined ? String(p.mtu) : '-',
      age(p.installedAt),
      age(p.lastUsed),
      String(p.packets),
      String(p.bytes),
      p.reason ?? '',
    ]);
  const table = (header: string[], body: string[][]) => {
    const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
    return [header, ...body]
      .map(
        (r) =>
          '  ' +
          r
            .map((c, i) => c.padEnd(w[i]))
            .join('  ')
            .trimEnd(),
      )
      .join('\n');
  };
  const st = s.stats;
  const searchKeys = Object.keys(st)
    .filter((k) => k.startsWith('search.'))
    .sort();
  const pmtuKeys = Object.keys(st)
    .filter((k) => k.startsWith('pmtu.') || k === 'executor.encrypt.fragments')
    .sort();
  const dropKeys = Object.keys(st)
    .filter((k) => k.startsWith('drop.') || k.startsWith('executor.drop.'))
    .sort();
  return [
    `gateway ${s.gateway} (${s.address}), authority version ${s.authorityVersion}${s.authority ? ` from ${s.authority}` : ''}, up ${age(s.startedAt)}`,
    `VPNs: ${s.vpns.map((v) => `${v.name} (id ${v.id}, ${v.mode}${v.epoch !== undefined ? `, epoch ${v.epoch}` : ''})`).join(', ') || 'none'}`,
    '',
    `Key table (${s.paths.length} paths)`,
    table(
      [
        'LOCAL',
        'REMOTE',
        'ACTION',
        'VPN',
        'PEER',
        'LAYERS (outermost first)',
        'MTU',
        'AGE',
        'IDLE',
        'PACKETS',
        'BYTES',
        'REASON',
      ],
      rows,
    ),
    ...(s.ikeLoad
      ? [
          '',
          `IKE strangers: ${s.ikeLoad.halfOpen} half-open SAs, ${s.ikeLoad.fragmentBytes} bytes of fragments, ${s.ikeLoad.refusedKept} refusals kept for retransmissions`,
        ]
      : []),
    ...(s.ike && s.ike.length > 0
      ? [
          '',
          `IKE SAs (${s.ike.length})`,
          table(
            ['PEER', 'VPN', 'ROLE', 'STATE', 'REMOTE', 'SPIs (I/R)', 'AGE', 'CHILD SAs (in/out, age, rekey in)'],
            s.ike.map((i) => [
              i.peer ?? '-',
              i.vpnId !== undefined ? String(i.vpnId) : '-',
              i.role,
              i.state,
              i.nat?.local || i.nat?.remote
                ? `${i.remote} (NAT: ${[i.nat.local && 'us', i.nat.remote && 'peer'].filter(Boolean).join(', ')})`
                : i.remote,
              `${i.spiI}/${i.spiR}`,
              `${Math.round(i.ageMs / 1000)}s`,
              i.children
                .map(
                  (c) =>
                    `${c.inboundSpi.toString(16)}/${c.outboundSpi.toString(16)} ${Math.round(c.ageMs / 1000)}s ${Math.round(c.rekeyInMs / 1000)}s${c.state === 'installed' ? '' : ` ${c.state}`}`,
                )
                .join('; ') || '-',
            ]),
          ),
        ]
      : []),
    '',
    'Search',
    table(
      ['COUNTER', 'VALUE'],
      searchKeys.map((k) => [k, String(st[k])]),
    ),
    '',
    'Path MTU',
    table(
      ['COUNTER', 'VALUE'],
      pmtuKeys.map((k) => [k, String(st[k])]),
    ),
    '',
    'Drops',
    table(
      ['COUNTER', 'VALUE'],
      dropKeys.map((k) => [k, String(st[k])]),
    ),
  ].join('\n');
}

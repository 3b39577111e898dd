// `kasane gateway ...` (administrator side): register gateways, enroll them (offline bundle or
// one-time token for online enrollment), revoke them. (`gateway enroll` / `gateway run`, the
// gateway's own side, belong to the gateway daemon.)
import { writeFileSync, chmodSync, existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { GatewayInfo, GatewayStatusView, ReportSummary } from '../../authority/wire.js';
import { renderStatus } from '../../gateway/status.js';
import { statusOfReport } from '../../gateway/status-report.js';
import {
  out,
  durationArg,
  intArg,
  printFields,
  printJson,
  printTable,
  time,
  printAnswer,
  withClient,
  withConnection,
  type ConnectionOptions,
} from './authority-common.js';

function printGateway(g: GatewayInfo): void {
  printFields([
    ['name', g.name],
    ['address', g.address],
    ['status', g.status],
    ['VPNs', g.vpns.length ? g.vpns.join(', ') : '-'],
    ['certificate serial', g.certificate?.serial],
    ['fingerprint', g.certificate?.fingerprint],
    [
      'enrolled',
      g.enrolledAt
        ? `${time(g.enrolledAt)} (${g.certificate?.method === 'csr' ? 'online, CSR' : 'offline bundle'})`
        : '-',
    ],
    ['certificate expires', time(g.certificate?.notAfter)],
    ['revoked', g.revokedAt ? `${time(g.revokedAt)} (${g.revokeReason})` : '-'],
    ['created', time(g.createdAt)],
    [
      'last report',
      g.lastReport ? `${time(g.lastReport.receivedAt)} (${g.lastReport.online ? 'online' : 'offline'})` : 'none yet',
    ],
  ]);
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

/** Online or not and when last heard of: what the LAST REPORT column says. */
function contact(r: ReportSummary | null): string {
  return r ? `${r.online ? 'online' : 'OFFLINE'} ${ago(r.receivedAt)}` : '-';
}

/** The last report in full: the key table, IKE SAs, search and drop counters. */
function printReport(g: GatewayInfo, v: GatewayStatusView): void {
  out(`\nStatus reported ${time(v.receivedAt)} (${ago(v.receivedAt)}, ${v.online ? 'online' : 'OFFLINE'}):\n`);
  out(renderStatus(statusOfReport(g.name, g.address, v.receivedAt, v.report)) + '\n');
  if (v.report.pathsTotal > v.report.paths.length)
    out(
      `  (${v.report.pathsTotal} paths in the key table; the ${v.report.paths.length} used most recently are reported)\n`,
    );
  if (v.report.ike.length) {
    out('\nIKE SAs\n');
    printTable(
      ['PEER', 'VPN', 'ROLE', 'STATE', 'REMOTE', 'AGE', 'CHILD SAs'],
      v.report.ike.map((i) => [
        i.peer ?? '-',
        i.vpnId ?? '-',
        i.role,
        i.state,
        i.remote,
        `${Math.round(i.ageMs / 1000)}s`,
        i.childSas,
      ]),
    );
  }
}

export function registerGateway(program: Command): void {
  const gw = program.command('gateway').description('gateways: registration, enrollment (bundle or token), revocation');

  withConnection(gw.command('add <name>').description('register a gateway (it is pending until it enrolls)'))
    .requiredOption(
      '--address <ip>',
      "the gateway's outside (WAN) address, IPv4 or IPv6 (192.0.2.1, 2001:db8::1; no brackets)",
    )
    .action(async (name: string, o: ConnectionOptions & { address: string }) =>
      printAnswer(o, (c) => c.addGateway(name, o.address), printGateway),
    );

  withConnection(
    gw
      .command('list')
      .description('list gateways, with what their last status report says (online, paths, searches, drops)'),
  ).action(async (o: ConnectionOptions) =>
    withClient(o, async (c) => {
      const list = await c.listGateways();
      if (o.json) return printJson(list);
      printTable(
        [
          'NAME',
          'STATUS',
          'ADDRESS',
          'VPNS',
          'LAST REPORT',
          'PATHS',
          'ENCRYPTING',
          'SEARCHES',
          'DROPS',
          'CERT EXPIRES',
          'ENROLLED',
        ],
        list.map((g) => {
          const r = g.lastReport;
          return [
            g.name,
            g.status,
            g.address,
            g.vpns.join(',') || '-',
            contact(r),
            r?.paths ?? '-',
            r?.encrypting ?? '-',
            r?.searches ?? '-',
            r?.drops ?? '-',
            time(g.certificate?.notAfter),
            g.certificate ? (g.certificate.method === 'csr' ? 'online' : 'bundle') : '-',
          ];
        }),
      );
    }),
  );

  withConnection(
    gw
      .command('show <name>')
      .description('show a gateway and its last status report: key table, IKE SAs, search and drop counters'),
  )
    .option('--certificate', 'print its certificate and chain (PEM) instead')
    .action(async (name: string, o: ConnectionOptions & { certificate?: boolean }) =>
      withClient(o, async (c) => {
        if (o.certificate) {
          const r = await c.gatewayCertificate(name);
          if (o.json) return printJson(r);
          out(r.certificate + r.chain.join(''));
          return;
        }
        const g = await c.getGateway(name);
        const report = g.lastReport ? await c.gatewayStatus(name).catch(() => undefined) : undefined;
        if (o.json) return printJson({ ...g, report: report ?? null });
        printGateway(g);
        if (report) printReport(g, report);
      }),
    );

  withConnection(gw.command('update <name>').description("change a gateway's outside address"))
    .requiredOption('--address <ip>', 'the new outside address, IPv4 or IPv6 (the family may change)')
    .action(async (name: string, o: ConnectionOptions & { address: string }) =>
      printAnswer(o, (c) => c.updateGateway(name, { address: o.address }), printGateway),
    );

  withConnection(
    gw
      .command('revoke <name>')
      .description('revoke a gateway: its certificate is refused, and its VPNs get new keys at once'),
  )
    .option('--reason <text>', 'why (recorded in the audit log)')
    .option('--compromised', 'its key is compromised (CRL reason keyCompromise)')
    .action(async (name: string, o: ConnectionOptions & { reason?: string; compromised?: boolean }) =>
      printAnswer(o, (c) => c.revokeGateway(name, { reason: o.reason, compromised: o.compromised }), printGateway),
    );

  withConnection(
    gw.command('token <name>').description('make a one-time enrollment token for online enrollment (shown once)'),
  )
    .option('--ttl <duration>', 'token lifetime, e.g. 30m, 2h (default 1h, at most 30d)', durationArg)
    .option('--replace', 're-enroll an already enrolled gateway with a new key')
    .action(async (name: string, o: ConnectionOptions & { ttl?: number; replace?: boolean }) =>
      withClient(o, async (c) => {
        const t = await c.createEnrollToken(name, {
          ttlSeconds: o.ttl === undefined ? undefined : Math.max(1, Math.round(o.ttl / 1000)),
          replace: o.replace,
        });
        if (o.json) return printJson(t);
        printFields([
          ['gateway', t.gateway],
          ['token', t.token],
          ['expires', time(t.expiresAt)],
          ['authority URL', t.authority.url],
          ['CA fingerprint', t.authority.caFingerprint],
        ]);
        out('\nGive the token, the URL and the CA fingerprint to the gateway; the token works once.\n');
      }),
    );

  withConnection(
    gw
      .command('bundle <name>')
      .description('offline enrollment: make the key pair and certificate here and write a bundle file'),
  )
    .requiredOption('-o, --output <file>', 'bundle file to write (mode 0600; it holds the private key)')
    .option('--replace', 're-issue for an already enrolled gateway (its old certificate is superseded)')
    .option('--validity-days <n>', 'certificate validity in days (1..3650)', intArg(1, 3650))
    .option('--force', 'overwrite the output file')
    .action(
      async (
        name: string,
        o: ConnectionOptions & { output: string; replace?: boolean; validityDays?: number; force?: boolean },
        cmd: Command,
      ) => {
        if (existsSync(o.output) && !o.force) cmd.error(`error: ${o.output} exists (use --force to overwrite)`);
        await withClient(o, async (c) => {
          const b = await c.makeBundle(name, { replace: o.replace, validityDays: o.validityDays });
          writeFileSync(o.output, JSON.stringify(b, null, 2) + '\n', { mode: 0o600 });
          chmodSync(o.output, 0o600);
          if (o.json) return printJson({ gateway: b.gateway.name, file: o.output, authority: b.authority });
          out(
            `wrote the bundle of gateway ${b.gateway.name} to ${o.output} (keep it secret: it holds the private key)\n`,
          );
        });
      },
    );
}

// `kasane authority ...`: create and run an authority, its status, audit log and admin tokens.
// Also `kasane audit` (same as `kasane authority audit`).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { dataPaths, parseListen, readConfig } from '../../authority/config.js';
import type { AuditEntry } from '../../authority/wire.js';
import {
  out,
  durationArg,
  intArg,
  timeArg,
  printFields,
  printJson,
  printTable,
  time,
  printAnswer,
  withClient,
  withConnection,
  type ConnectionOptions,
} from './authority-common.js';

function listenArg(text: string): { host: string; port: number } {
  return parseListen(text);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function registerAuthority(program: Command): void {
  const authority = program
    .command('authority')
    .description('the authority: VPN definitions, gateway enrollment, key distribution (seed 000 MMS)')
    .addHelpText(
      'after',
      '\nStart with `kasane authority init --data DIR --name NAME`, then `kasane authority serve --data DIR`.\n' +
        'Administrator commands (vpn, gateway, member, directory, audit) reach it with --url/--token/--ca,\n' +
        'the KASANE_AUTHORITY_URL / KASANE_ADMIN_TOKEN / KASANE_AUTHORITY_CA variables, or --data DIR on its host.',
    );

  authority
    .command('init')
    .description('create an authority: its two-tier CA, keystore, database and first administrator token')
    .requiredOption('--data <dir>', 'data directory to create (keys, certificates, configuration, SQLite database)')
    .requiredOption('--name <name>', "the authority's name (1..63 bytes of UTF-8)")
    .option(
      '--database <url>',
      'use PostgreSQL (postgres://user@host:port/db, IPv6 hosts in brackets: [fd00::5]:5432) instead of SQLite in the data directory',
    )
    .option(
      '--listen <host:port>',
      'address to serve on (default 127.0.0.1:7443); IPv6 in brackets: [::1]:7443, or [::]:7443 for every address of both families',
      listenArg,
    )
    .option(
      '--url <url>',
      'URL gateways use to reach the authority (default https://<listen>; IPv6 in brackets: https://[2001:db8::1]:7443)',
    )
    .option(
      '--san <name>',
      'extra DNS name or IPv4/IPv6 address for the TLS certificate (repeatable)',
      collect,
      [] as string[],
    )
    .option(
      '--rotation-period <duration>',
      'default scheduled key rotation period for new VPNs, e.g. 24h (0 = only on demand)',
      durationArg,
    )
    .option('--overlap <duration>', 'a new key epoch is delivered this long before it becomes active', durationArg)
    .option('--grace <duration>', 'the previous epoch stays valid this long after the new one is active', durationArg)
    .option('--no-token-file', 'do not write the administrator token to DATA/admin.token (print it only)')
    .option(
      '--ca-pkcs11-module <path>',
      'make the root and issuing CA keys in a PKCS#11 token, through this module (e.g. /usr/lib/softhsm/libsofthsm2.so)',
    )
    .option('--ca-pkcs11-token <label>', 'with --ca-pkcs11-module: the label of the token')
    .option('--ca-pkcs11-pin-file <file>', "with --ca-pkcs11-module: a file holding the token's user PIN (first line)")
    .option('--json', 'print JSON')
    .action(
      async (o: {
        data: string;
        name: string;
        database?: string;
        listen?: { host: string; port: number };
        url?: string;
        san: string[];
        rotationPeriod?: number;
        overlap?: number;
        grace?: number;
        tokenFile: boolean;
        caPkcs11Module?: string;
        caPkcs11Token?: string;
        caPkcs11PinFile?: string;
        json?: boolean;
      }) => {
        const { initAuthority } = await import('../../authority/lifecycle.js');
        const token = [o.caPkcs11Module, o.caPkcs11Token, o.caPkcs11PinFile];
        if (token.some((x) => x !== undefined) && !token.every((x) => x !== undefined)) {
          throw new Error(
            'CA keys in a PKCS#11 token need all three of --ca-pkcs11-module, --ca-pkcs11-token and --ca-pkcs11-pin-file',
          );
        }
        const r = await initAuthority({
          dataDir: o.data,
          name: o.name,
          database: o.database,
          listen: o.listen ?? { host: '127.0.0.1', port: 7443 },
          url: o.url,
          sans: o.san,
          rotation: {
            ...(o.rotationPeriod !== undefined ? { periodMs: o.rotationPeriod } : {}),
            ...(o.overlap !== undefined ? { overlapMs: o.overlap } : {}),
            ...(o.grace !== undefined ? { graceMs: o.grace } : {}),
          },
          writeAdminToken: o.tokenFile,
          ...(o.caPkcs11Module
            ? { caPkcs11: { module: o.caPkcs11Module, token: o.caPkcs11Token!, pinFile: o.caPkcs11PinFile! } }
            : {}),
        });
        const paths = dataPaths(o.data);
        if (o.json) {
          printJson({
            authority: r.config.name,
            url: r.config.url,
            dataDir: o.data,
            store: r.config.database ? 'postgres' : 'sqlite',
            caFingerprint: r.caFingerprint,
            caKeys: r.caKeys,
            adminToken: r.adminToken,
            adminTokenFile: o.tokenFile ? paths.adminToken : null,
            caCertificate: paths.rootCert,
          });
          return;
        }
        printFields([
          ['authority', r.config.name],
          ['url', r.config.url],
          ['data directory', o.data],
          ['store', r.config.database ? 'postgres' : `sqlite (${paths.sqlite})`],
          ['CA certificate', paths.rootCert],
          ['CA fingerprint', r.caFingerprint],
          ['CA keys', r.caKeys],
          ['admin token', r.adminToken],
          ['admin token file', o.tokenFile ? paths.adminToken : '(not written)'],
        ]);
        out(
          `\nStart it with: kasane authority serve --data ${o.data}\nThe admin token is shown only now; keep it secret.\n`,
        );
      },
    );

  authority
    .command('serve')
    .description('run the authority (HTTPS API, key rotation) until SIGINT or SIGTERM')
    .requiredOption('--data <dir>', 'the data directory made by `authority init`')
    .option(
      '--listen <host:port>',
      'serve on this address instead of the configured one (IPv6 in brackets: [::]:7443)',
      listenArg,
    )
    .option('--database <url>', 'use this PostgreSQL database instead of the configured store')
    .option('--log-level <level>', 'pino level: fatal, error, warn, info, debug, trace, silent', 'info')
    .action(
      async (o: { data: string; listen?: { host: string; port: number }; database?: string; logLevel: string }) => {
        const { startAuthority } = await import('../../authority/lifecycle.js');
        const running = await startAuthority({
          dataDir: o.data,
          listen: o.listen,
          database: o.database,
          logLevel: o.logLevel,
        });
        process.stderr.write(`kasane authority ${running.service.name} listening on ${running.url}\n`);
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await running.close();
      },
    );

  authority
    .command('replica')
    .description("make the data directory of another replica of a PostgreSQL authority, from the first one's")
    .requiredOption(
      '--from <dir>',
      'the data directory of the authority to replicate (made by `authority init --database postgres://…`)',
    )
    .requiredOption('--data <dir>', "the new replica's data directory (must not exist, or be empty)")
    .option(
      '--listen <host:port>',
      'where this replica serves (default: the same as the source; IPv6 in brackets: [fd00::2]:7443)',
      listenArg,
    )
    .option('--url <url>', "URL put into bundles (default: the source's, the service's shared name)")
    .option(
      '--san <name>',
      "extra DNS name or IPv4/IPv6 address for this replica's TLS certificate, e.g. its own host name (repeatable)",
      collect,
      [] as string[],
    )
    .option(
      '--database <url>',
      "the database as this replica reaches it (default: the source's; several hosts: host1,host2 or [v6]:port,[v6]:port with target_session_attrs=read-write)",
    )
    .option('--no-token-file', 'do not copy DATA/admin.token')
    .option(
      '--ca-pkcs11-pin-file <file>',
      "CA keys in a PKCS#11 token: the PIN file's path on this replica's host (default: the source's)",
    )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nCopies authority.json, the CA certificates and keys, the attribute authority and the key-encryption key\n' +
        '(file to file, mode 0600; keys are never put into the database; CA keys in a PKCS#11 token stay there and\n' +
        "this host must reach that token), and makes a TLS server key and certificate of the replica's own. Checks\n" +
        'that the database holds this authority and that the key-encryption key opens its keys. To place a replica on\n' +
        'another host, make it into a private directory and copy that over SSH (see docs/authority.md, "Running several\n' +
        'replicas"), then run `kasane authority serve --data DIR` there.',
    )
    .action(
      async (o: {
        from: string;
        data: string;
        listen?: { host: string; port: number };
        url?: string;
        san: string[];
        database?: string;
        tokenFile: boolean;
        caPkcs11PinFile?: string;
        json?: boolean;
      }) => {
        const { createReplica } = await import('../../authority/lifecycle.js');
        const r = await createReplica({
          from: o.from,
          dataDir: o.data,
          listen: o.listen,
          url: o.url,
          sans: o.san,
          database: o.database,
          copyAdminToken: o.tokenFile,
          caPinFile: o.caPkcs11PinFile,
        });
        if (o.json)
          return printJson({
            dataDir: o.data,
            authority: r.config.name,
            listen: r.config.listen,
            url: r.config.url,
            sans: r.config.sans,
            copied: r.copied,
            made: r.made,
          });
        printFields([
          ['authority', r.config.name],
          ['data directory', o.data],
          ['listen', `${r.config.listen.host}:${r.config.listen.port}`],
          ['url', r.config.url],
          ['TLS names', r.config.sans.join(', ')],
          ['copied', r.copied.join(', ')],
          ['made', r.made.join(', ')],
          [
            'CA keys',
            r.config.ca
              ? `PKCS#11 token "${r.config.ca.pkcs11.token}" (${r.config.ca.pkcs11.module})`
              : 'keystore (copied)',
          ],
        ]);
        out(
          `\nStart it with: kasane authority serve --data ${o.data}\nThe keystore holds ${r.config.ca ? 'the key-encryption key' : 'the CA keys and the key-encryption key'}: keep the directory as safe as the first one's.\n`,
        );
      },
    );

  withConnection(
    authority
      .command('replicas')
      .description(
        'list the authority processes over this database (replicas): URL, last heartbeat, which runs the jobs',
      ),
  ).action(async (o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.replicas(),
      (list) => {
        printTable(
          ['REPLICA', 'URL', 'STARTED', 'LAST SEEN', 'STATE', 'JOBS', 'GATEWAYS', 'VERSION'],
          list.map((r) => [
            r.id + (r.self ? ' (answered)' : ''),
            r.url,
            time(r.startedAt),
            time(r.lastSeen),
            r.alive ? 'running' : 'gone',
            r.runsJobs ? 'yes' : '',
            r.waitingGateways,
            r.version,
          ]),
        );
      },
    ),
  );

  withConnection(
    authority.command('status').description('show the authority: version, store, counts of VPNs and gateways'),
  ).action(async (o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.status(),
      (s) => {
        printFields([
          ['authority', s.authority],
          ['url', s.url],
          ['version', s.version],
          ['store', `${s.store} (schema ${s.schemaVersion})`],
          ['CA fingerprint', s.caFingerprint],
          ['VPNs', s.vpns],
          ['memberships', s.memberships],
          ['gateways', `${s.gateways.active} active, ${s.gateways.pending} pending, ${s.gateways.revoked} revoked`],
          ['waiting gateways', s.waitingGateways],
          [
            'wake-up channel',
            s.push
              ? `udp ${s.push.port}: ${s.push.subscriptions} subscribed, ${s.push.pendingWakes} WAKEs pending, ` +
                `${Object.values(s.push.drops).reduce((a, b) => a + b, 0)} datagrams dropped`
              : 'off',
          ],
          ['started', time(s.startedAt)],
        ]);
      },
    ),
  );

  addAuditCommand(authority.command('audit'));

  withConnection(
    authority.command('ca').description("print the authority's root CA certificate (PEM) or its fingerprint"),
  )
    .option('--fingerprint', 'print the SHA-256 fingerprint only')
    .action(async (o: ConnectionOptions & { fingerprint?: boolean }) => {
      const local = o.data ?? process.env.KASANE_AUTHORITY_DATA;
      const { certificateFingerprint } = await import('../../authority/client.js');
      if (local && !o.url && !process.env.KASANE_AUTHORITY_URL) {
        readConfig(local);
        const pem = readFileSync(dataPaths(local).rootCert, 'utf8');
        if (o.json) return printJson({ certificate: pem, fingerprint: certificateFingerprint(pem) });
        out(o.fingerprint ? certificateFingerprint(pem) + '\n' : pem);
        return;
      }
      await printAnswer(
        o,
        (c) => c.ca(),
        (v) => out(o.fingerprint ? v.fingerprint + '\n' : v.rootCertificate),
      );
    });

  // Federation (seed 001): peer authorities, over mutual TLS once the roots are exchanged.
  const peer = authority
    .command('peer')
    .description('peer authorities: pairwise VPNs with members under both (see docs/authority.md, Federation)');
  withConnection(
    peer
      .command('add <name>')
      .description(
        "peer with another authority: its name (as it calls itself), its URL, and its root certificate (from 'kasane authority ca' there, exchanged out of band)",
      ),
  )
    .requiredOption(
      '--peer-url <url>',
      'the peer authority URL, e.g. https://authority-b.example:7443 or https://[2001:db8::b]:7443 (its TLS certificate must name that host)',
    )
    .requiredOption('--root <file>', "the peer's root CA certificate (PEM file)")
    .action(async (name: string, o: ConnectionOptions & { peerUrl: string; root: string }) =>
      printAnswer(
        o,
        (c) => c.addPeer({ name, url: o.peerUrl, root: readFileSync(o.root, 'utf8') }),
        () => out(`peer ${name} added; exchanges start now and then every few seconds\n`),
      ),
    );
  withConnection(
    peer.command('list').description('list peer authorities, the VPNs shared with them, their members and permits'),
  ).action(async (o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.federation(),
      (v) => {
        printTable(
          ['PEER', 'URL', 'ROOT (SHA-256)', 'LAST EXCHANGE', 'LAST ERROR'],
          v.peers.map((p) => [
            p.name,
            p.url,
            p.rootFingerprint.slice(0, 23) + '…',
            time(p.lastSyncAt),
            p.lastError ?? '',
          ]),
        );
        if (v.shares.length) {
          out('\nshared pairwise VPNs:\n');
          printTable(
            ['VPN', 'ID', 'PEER', 'THEIR MEMBERS', 'PERMITS IN', 'PERMITS OUT'],
            v.shares.map((x) => [
              x.vpn,
              x.vpnId,
              x.peer,
              x.foreignMembers.map((m) => `${m.gateway} ${m.address} ${m.prefixes.join(',')}`).join('; ') || '-',
              x.permitsIn,
              x.permitsOut,
            ]),
          );
        }
      },
    ),
  );
  withConnection(
    peer
      .command('remove <name>')
      .description('end the peering: shared VPNs lose the peer’s members, permits are withdrawn'),
  ).action(async (name: string, o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.removePeer(name),
      () => out(`peer ${name} removed\n`),
    ),
  );
  withConnection(peer.command('sync').description('exchange with every peer now (normally every few seconds)')).action(
    async (o: ConnectionOptions) =>
      printAnswer(
        o,
        (c) => c.syncFederation(),
        (v) => {
          for (const p of v.peers)
            out(`${p.name}: ${p.lastError ? `failed: ${p.lastError}` : `exchanged ${time(p.lastSyncAt)}`}\n`);
        },
      ),
  );

  const tokens = authority.command('token').description('administrator tokens');
  withConnection(tokens.command('create <name>').description('make a new administrator token (shown once)')).action(
    async (name: string, o: ConnectionOptions) =>
      printAnswer(
        o,
        (c) => c.createAdminToken(name),
        (r) => {
          printFields([
            ['id', r.info.id],
            ['name', r.info.name],
            ['token', r.token],
          ]);
        },
      ),
  );
  withConnection(tokens.command('list').description('list administrator tokens (never their secrets)')).action(
    async (o: ConnectionOptions) =>
      printAnswer(
        o,
        (c) => c.listAdminTokens(),
        (list) => {
          printTable(
            ['ID', 'NAME', 'CREATED', 'REVOKED'],
            list.map((t) => [t.id, t.name, time(t.createdAt), time(t.revokedAt)]),
          );
        },
      ),
  );
  withConnection(tokens.command('revoke <id>').description('revoke an administrator token')).action(
    async (id: string, o: ConnectionOptions) =>
      printAnswer(
        o,
        (c) => c.revokeAdminToken(id),
        () => out(`revoked administrator token ${id}\n`),
      ),
  );
}

function addAuditCommand(cmd: Command): void {
  withConnection(cmd.description('show the audit log: who changed what, when'))
    .option('--after <id>', 'only entries after this id', intArg(0, Number.MAX_SAFE_INTEGER))
    .option('--limit <n>', 'at most this many entries (1..1000)', intArg(1, 1000), 100)
    .option('--vpn <name>', 'only entries about this VPN')
    .option('--gateway <name>', 'only entries about this gateway')
    .option('--actor <who>', 'only changes by this actor (admin:NAME, federation, peer:NAME, ...)')
    .option('--action <what>', 'only this action (member.add), or a family of actions ending in a dot (member.)')
    .option('--since <when>', 'only entries at or after this time (ISO 8601, or a duration ago: 2h)', timeArg)
    .option('--until <when>', 'only entries at or before this time (ISO 8601, or a duration ago)', timeArg)
    .option('--newest', 'newest first')
    .action(
      async (
        o: ConnectionOptions & {
          after?: number;
          limit: number;
          vpn?: string;
          gateway?: string;
          actor?: string;
          action?: string;
          since?: number;
          until?: number;
          newest?: boolean;
        },
      ) =>
        withClient(o, async (c) => {
          const list: AuditEntry[] = await c.audit({
            after: o.after,
            limit: o.limit,
            vpn: o.vpn,
            gateway: o.gateway,
            actor: o.actor,
            action: o.action,
            from: o.since,
            to: o.until,
            order: o.newest ? 'desc' : undefined,
          });
          if (o.json) return printJson(list);
          printTable(
            ['ID', 'VERSION', 'TIME', 'ACTOR', 'ACTION', 'VPN', 'GATEWAY', 'DETAIL'],
            list.map((e) => [
              e.id,
              e.version,
              time(e.at),
              e.actor,
              e.action,
              e.vpn,
              e.gateway,
              JSON.stringify(e.detail),
            ]),
          );
        }),
    );
}

/** `kasane audit`, the same as `kasane authority audit`. */
export function registerAudit(program: Command): void {
  addAuditCommand(program.command('audit'));
}

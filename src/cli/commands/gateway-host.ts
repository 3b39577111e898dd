// Commands run ON a gateway host: enroll it, run it, look at it. (Administrative gateway commands,
// which talk to the authority, are in gateway.ts.)
import { BadFileError } from '../../files/document.js';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { enroll, parseBundle } from '../../authority/client.js';
import { exportPkcs8Pem, generateKeyPair } from '../../pki/keys.js';
import { loadGatewayConfig, type GatewayRunConfig } from '../../gateway/config.js';
import { saveCredentials } from '../../gateway/credentials.js';
import { GatewayDaemon, teardownGateway } from '../../gateway/daemon.js';
import { queryStatus, renderStatus } from '../../gateway/status.js';
import { join } from 'node:path';

export function registerGatewayHost(program: Command): void {
  const gw = program.commands.find((c) => c.name() === 'gateway') ?? program.command('gateway');

  gw.command('enroll')
    .description(
      'enroll this gateway: online with a one-time token (the key is made here and never leaves), or offline from a bundle file',
    )
    .requiredOption('--data <dir>', 'the gateway data directory (credentials and keystore are written here)')
    .option('--bundle <file>', 'offline enrollment: the bundle file made by `kasane gateway bundle`')
    .option('--url <url>', 'online enrollment: the authority URL, https://host:port')
    .option('--token <token>', 'online enrollment: the one-time token from `kasane gateway token`')
    .option('--ca-fingerprint <sha256>', "online enrollment: the authority root CA's SHA-256 fingerprint (pins it)")
    .option('--ca <file>', 'online enrollment: the authority root CA certificate (PEM) instead of the fingerprint')
    .addHelpText(
      'after',
      '\nExamples:\n  kasane gateway enroll --data /var/lib/kasane/g1 --bundle g1.bundle.json\n  kasane gateway enroll --data /var/lib/kasane/g1 --url https://authority:8443 --token TOKEN --ca-fingerprint AB:CD:...',
    )
    .option(
      '--name <gateway>',
      'online enrollment: the gateway name to request (refused unless the token is for it; default: the token decides)',
    )
    .action(
      async (o: {
        data: string;
        bundle?: string;
        url?: string;
        token?: string;
        caFingerprint?: string;
        ca?: string;
        name?: string;
      }) => {
        if (o.bundle) {
          const b = parseBundle(readFileSync(o.bundle, 'utf8'));
          if (!b.privateKey) throw new Error('this bundle has no private key: it is not an offline enrollment bundle');
          saveCredentials(o.data, b, b.privateKey);
          process.stdout.write(
            `enrolled ${b.gateway.name} with authority ${b.authority.name} (offline bundle); credentials in ${o.data}\n`,
          );
          return;
        }
        if (!o.url || !o.token || (!o.caFingerprint && !o.ca))
          throw new Error(
            'online enrollment needs --url, --token and --ca-fingerprint (or --ca); offline needs --bundle',
          );
        const keys = await generateKeyPair();
        const b = await enroll({
          url: o.url,
          token: o.token,
          caFingerprint: o.caFingerprint,
          ca: o.ca ? readFileSync(o.ca, 'utf8') : undefined,
          keys,
          name: o.name,
        });
        saveCredentials(o.data, b, await exportPkcs8Pem(keys.privateKey));
        process.stdout.write(
          `enrolled ${b.gateway.name} with authority ${b.authority.name}; key kept in ${join(o.data, 'keystore')}\n`,
        );
      },
    );

  gw.command('run')
    .description('run the gateway: TUN datapath, key search, keys from the authority (needs root)')
    .requiredOption('--config <file>', 'gateway configuration (YAML; see docs/gateway.md)')
    .addHelpText(
      'after',
      '\nFails closed: when the gateway stops (SIGTERM, SIGINT) or dies, its policy routing and nftables forwarding\n' +
        "guard stay, so its terminals' traffic is refused, never forwarded in the clear, until it runs again.\n" +
        'A restart takes over what the previous run left. `kasane gateway teardown` unprotects on purpose.\n' +
        'Exits 1 if a TUN device is deleted or fails under it (run it under a supervisor that restarts it).',
    )
    .action(async (o: { config: string }) => {
      const d = await GatewayDaemon.start(configFile(o.config));
      const failure = await new Promise<Error | undefined>((resolve) => {
        const stop = (e?: Error) => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          d.stop().then(
            () => resolve(e),
            () => resolve(e),
          );
        };
        const onSignal = () => stop();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        void d.failed.then(stop);
      });
      // A gateway that can no longer forward (its TUN device deleted under it) exits 1 for its
      // supervisor to start it again; its forwarding guard refuses traffic meanwhile.
      if (failure) throw new Error(`the gateway stopped: ${failure.message}`);
    });

  gw.command('teardown')
    .description(
      'unprotect on purpose: remove the policy routing and forwarding guard a stopped gateway leaves in place (needs root)',
    )
    .requiredOption('--config <file>', 'the configuration the gateway ran with (interfaces, TUN names, routingTable)')
    .addHelpText(
      'after',
      "\nA stopped or dead gateway keeps refusing its terminals' forwarded traffic (fail closed). teardown removes\n" +
        'the ip rules at preferences routingTable and routingTable+1 and the routes of those tables (IPv4 and IPv6),\n' +
        'and the nftables table inet kasane_<routingTable>: forwarded traffic between the inside and outside\n' +
        'interfaces then follows the main tables IN THE CLEAR. Refused while the gateway runs. `kasane gateway run` protects again.\n\n' +
        'Example:\n  kasane gateway teardown --config /etc/kasane/g1.yaml',
    )
    .action(async (o: { config: string }) => {
      process.stdout.write(await teardownGateway(configFile(o.config)));
    });

  gw.command('status')
    .description("show the running gateway's key table (paths, action, VPN, age, packets, bytes) and search statistics")
    .option('--socket <path>', 'status socket of the gateway')
    .option('--data <dir>', 'the gateway data directory (the socket is <dir>/status.sock)')
    .option('--json', 'print the status as JSON')
    .action(async (o: { socket?: string; data?: string; json?: boolean }) => {
      const path = o.socket ?? (o.data ? join(o.data, 'status.sock') : undefined);
      if (!path) throw new Error('give --socket or --data');
      const s = await queryStatus(path);
      process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s) + '\n');
    });
}

/** The gateway's configuration, or exit status 2 with its problems (a file kasane cannot use). */
function configFile(path: string): GatewayRunConfig {
  const cfg = loadGatewayConfig(path);
  if (!cfg.ok) throw new BadFileError(cfg.error.message);
  return cfg.value;
}

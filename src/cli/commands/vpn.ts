// `kasane vpn ...`: define VPNs (name, VPN id, mode) and rotate their group keys.
import type { Command } from 'commander';
import { formatDuration } from '../../authority/validate.js';
import type { VpnDetail } from '../../authority/wire.js';
import {
  out,
  choiceOption,
  durationArg,
  printFields,
  printJson,
  printTable,
  time,
  vpnIdArg,
  printAnswer,
  withClient,
  withConnection,
  type ConnectionOptions,
} from './authority-common.js';

function printVpn(v: VpnDetail): void {
  printFields([
    ['name', v.name],
    ['VPN id', v.id],
    ['mode', v.mode],
    [
      'rotation period',
      v.mode === 'group' ? (v.rotationPeriodMs ? formatDuration(v.rotationPeriodMs) : 'on demand only') : '-',
    ],
    ['next rotation', time(v.nextRotationAt)],
    ['current epoch', v.currentEpoch],
    ['members', v.members],
  ]);
  if (v.epochs.length) {
    out('\nepochs:\n');
    printTable(
      ['EPOCH', 'ACTIVE FROM', 'EXPIRES', 'CREATED'],
      v.epochs.map((e) => [e.epoch, time(e.activeFrom), time(e.expiresAt), time(e.createdAt)]),
    );
  }
  if (v.memberList.length) {
    out('\nmembers:\n');
    printTable(
      ['GATEWAY', 'STATUS', 'ADDRESS', 'PREFIXES'],
      v.memberList.map((m) => [m.gateway, m.gatewayStatus, m.address, m.prefixes.join(' ')]),
    );
  }
}

export function registerVpn(program: Command): void {
  const vpn = program.command('vpn').description('VPNs: name, VPN id (1:1 with its group key), mode, key rotation');

  withConnection(
    vpn.command('create <name>').description('define a VPN (group mode: the authority makes its first key at once)'),
  )
    .option('--id <vpn-id>', 'VPN id, 1..4294967295 (default: the next free one)', vpnIdArg)
    .addOption(
      choiceOption('--mode <mode>', 'group (one authority-made key per VPN) or pairwise (IKE per path)', [
        'group',
        'pairwise',
      ]).default('group'),
    )
    .option(
      '--rotation-period <duration>',
      "scheduled key rotation, e.g. 12h (0 = on demand only; default: the authority's setting)",
      durationArg,
    )
    .action(
      async (
        name: string,
        o: ConnectionOptions & { id?: number; mode: 'group' | 'pairwise'; rotationPeriod?: number },
      ) =>
        printAnswer(
          o,
          (c) => c.createVpn({ name, id: o.id, mode: o.mode, rotationPeriodMs: o.rotationPeriod }),
          printVpn,
        ),
    );

  withConnection(vpn.command('list').description('list VPNs')).action(async (o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.listVpns(),
      (list) => {
        printTable(
          ['NAME', 'ID', 'MODE', 'EPOCH', 'MEMBERS', 'ROTATION', 'NEXT ROTATION'],
          list.map((v) => [
            v.name,
            v.id,
            v.mode,
            v.currentEpoch,
            v.members,
            v.mode === 'group' ? (v.rotationPeriodMs ? formatDuration(v.rotationPeriodMs) : 'manual') : '-',
            time(v.nextRotationAt),
          ]),
        );
      },
    ),
  );

  withConnection(vpn.command('show <name>').description('show a VPN: its epochs and members')).action(
    async (name: string, o: ConnectionOptions) => printAnswer(o, (c) => c.getVpn(name), printVpn),
  );

  withConnection(
    vpn
      .command('share <name>')
      .description(
        'share a pairwise VPN with a peer authority (it must share one of the same name and VPN id): members under both connect with IKE and permits',
      ),
  )
    .requiredOption('--peer <authority>', 'the peer authority (kasane authority peer add)')
    .action(async (name: string, o: ConnectionOptions & { peer: string }) =>
      printAnswer(
        o,
        (c) => c.shareVpn(name, o.peer),
        () => out(`VPN ${name} shared with ${o.peer}\n`),
      ),
    );
  withConnection(
    vpn
      .command('unshare <name>')
      .description('stop sharing a pairwise VPN with a peer authority: its members leave, permits are withdrawn'),
  )
    .requiredOption('--peer <authority>', 'the peer authority')
    .action(async (name: string, o: ConnectionOptions & { peer: string }) =>
      printAnswer(
        o,
        (c) => c.unshareVpn(name, o.peer),
        () => out(`VPN ${name} no longer shared with ${o.peer}\n`),
      ),
    );

  withConnection(
    vpn.command('delete <name>').description('delete a VPN (refused while it has members, unless --force)'),
  )
    .option('--force', 'also remove its memberships')
    .action(async (name: string, o: ConnectionOptions & { force?: boolean }) =>
      printAnswer(
        o,
        (c) => c.deleteVpn(name, Boolean(o.force)),
        () => out(`deleted VPN ${name}\n`),
      ),
    );

  withConnection(
    vpn
      .command('rotate [name]')
      .description('make a new key epoch: delivered at once, active after the overlap (with --now: active at once)')
      .addHelpText(
        'after',
        '\nWith --all, every group VPN is rotated, in changes of about 1,000 sealed keys: the members of each\n' +
          'hear of it as it commits; if one fails, the error says how many VPNs were rotated (repeating is safe).',
      ),
  )
    .option('--all', 'rotate every group VPN')
    .option(
      '--now',
      'activate the new epoch at once and end the old one after the short grace (as when a member is removed)',
    )
    .action(async (name: string | undefined, o: ConnectionOptions & { all?: boolean; now?: boolean }, cmd: Command) => {
      if (!name && !o.all) cmd.error('error: give a VPN name or --all');
      if (name && o.all) cmd.error('error: give either a VPN name or --all, not both');
      await withClient(o, async (c) => {
        const rotated = name ? [await c.rotateVpn(name, Boolean(o.now))] : (await c.rotateAll(Boolean(o.now))).rotated;
        if (o.json) return printJson(rotated);
        printTable(
          ['VPN', 'NEW EPOCH', 'ACTIVE FROM'],
          rotated.map((r) => [r.vpn, r.epoch, time(r.activeFrom)]),
        );
      });
    });
}

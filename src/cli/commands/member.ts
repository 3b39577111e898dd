// `kasane member ...`: which gateway puts which terminal prefixes into which VPN (seed 000 Fig. 2(3)).
import type { Command } from 'commander';
import type { MemberInfo } from '../../authority/wire.js';
import {
  out,
  printAnswer,
  printJson,
  printTable,
  withClient,
  withConnection,
  type ConnectionOptions,
} from './authority-common.js';

function table(list: MemberInfo[]): void {
  printTable(
    ['VPN', 'GATEWAY', 'STATUS', 'ADDRESS', 'PREFIXES'],
    list.map((m) => [m.vpn, m.gateway, m.gatewayStatus, m.address, m.prefixes.join(' ')]),
  );
}

export function registerMember(program: Command): void {
  const member = program
    .command('member')
    .description('memberships: a gateway puts terminal prefixes into a VPN')
    .addHelpText(
      'after',
      '\nPrefixes are IPv4 or IPv6 (10.1.0.0/16, 2001:db8:1::/48), mixed freely: a dual-stack LAN is one\n' +
        'membership with a prefix of each family. IPv6 is shown canonical (2001:DB8:0001::/48 is 2001:db8:1::/48);\n' +
        'IPv4-mapped (::ffff:0:0/96), link-local (fe80::/10) and multicast (ff00::/8) prefixes are refused.\n' +
        '\nOverlap rule (both families alike): within one VPN, two different gateways may not claim overlapping\n' +
        "prefixes, and one membership's prefixes must be disjoint. Across VPNs overlaps are fine: the same gateway\n" +
        'in several VPNs (multi-homing) or an inner and an outer gateway (nested VPNs).',
    );

  withConnection(
    member
      .command('add <vpn> <gateway> <prefix...>')
      .description('put IPv4 or IPv6 prefixes behind a gateway into a VPN (creates the membership or extends it)'),
  ).action(async (vpn: string, gateway: string, prefixes: string[], o: ConnectionOptions) =>
    printAnswer(
      o,
      (c) => c.addMember(vpn, gateway, prefixes),
      (m) => table([m]),
    ),
  );

  withConnection(
    member
      .command('remove <vpn> <gateway> [prefix...]')
      .description(
        'remove prefixes from a membership, or the whole membership when no prefix is given (the VPN is re-keyed at once)',
      ),
  ).action(async (vpn: string, gateway: string, prefixes: string[], o: ConnectionOptions) =>
    withClient(o, async (c) => {
      if (prefixes.length) {
        const r = await c.updateMember(vpn, gateway, { remove: prefixes });
        if (o.json) return printJson(r);
        if (r.member) table([r.member]);
        else out(`${gateway} is no longer a member of ${vpn} (its last prefix was removed)\n`);
        return;
      }
      const r = await c.removeMember(vpn, gateway);
      if (o.json) return printJson(r);
      out(`${gateway} is no longer a member of ${vpn}\n`);
    }),
  );

  withConnection(member.command('list [vpn]').description('list the memberships of a VPN, or of every VPN')).action(
    async (vpn: string | undefined, o: ConnectionOptions) =>
      withClient(o, async (c) => {
        const names = vpn ? [vpn] : (await c.listVpns()).map((v) => v.name);
        const list: MemberInfo[] = [];
        for (const n of names) list.push(...(await c.listMembers(n)));
        if (o.json) return printJson(list);
        table(list);
      }),
  );
}

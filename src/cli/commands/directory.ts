// `kasane directory ...`: the directory of protected prefixes. Every membership prefix is in it
// automatically; entries added here protect prefixes that are in no VPN yet (gateways never relay
// toward them in the clear).
import type { Command } from 'commander';
import { printAnswer, printTable, withConnection, type ConnectionOptions } from './authority-common.js';
import type { DirectoryView } from '../../authority/wire.js';

function show(d: DirectoryView): void {
  printTable(
    ['PREFIX', 'SOURCE', 'NOTE'],
    d.protectedPrefixes.map((p) => {
      const e = d.entries.find((x) => x.prefix === p);
      return [p, e ? 'entry' : 'membership', e?.note || '-'];
    }),
  );
}

export function registerDirectory(program: Command): void {
  const dir = program.command('directory').description('the directory of protected prefixes that gateways receive');
  withConnection(dir.command('list').description('show what gateways receive as protected prefixes')).action(
    async (o: ConnectionOptions) => printAnswer(o, (c) => c.directory(), show),
  );
  withConnection(
    dir
      .command('add <prefix>')
      .description('protect an IPv4 or IPv6 prefix that is in no VPN (10.9.0.0/16, 2001:db8:9::/48)'),
  )
    .option('--note <text>', 'why')
    .action(async (prefix: string, o: ConnectionOptions & { note?: string }) =>
      printAnswer(o, (c) => c.addDirectory(prefix, o.note), show),
    );
  withConnection(dir.command('remove <prefix>').description('remove a directory entry')).action(
    async (prefix: string, o: ConnectionOptions) => printAnswer(o, (c) => c.removeDirectory(prefix), show),
  );
}

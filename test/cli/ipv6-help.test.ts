// The administrator commands' --help says that IPv6 is taken wherever IPv4 is: listen addresses,
// URLs, certificate names, outside addresses, prefixes, database hosts (issue 14).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerAuthority } from '../../src/cli/commands/authority.js';
import { registerDirectory } from '../../src/cli/commands/directory.js';
import { registerGateway } from '../../src/cli/commands/gateway.js';
import { registerMember } from '../../src/cli/commands/member.js';
import { registerVpn } from '../../src/cli/commands/vpn.js';

/** The --help text of `kasane <path...>`, as commander prints it (with the text added after). */
function help(...path: string[]): string {
  const out: string[] = [];
  const program = new Command().configureOutput({
    writeOut: (s) => void out.push(s),
    writeErr: (s) => void out.push(s),
  });
  for (const register of [registerAuthority, registerDirectory, registerGateway, registerMember, registerVpn])
    register(program);
  let cmd = program;
  for (const name of path) {
    const next = cmd.commands.find((c) => c.name() === name);
    assert.ok(next, `kasane ${path.join(' ')}`);
    cmd = next;
  }
  cmd.outputHelp();
  return out.join('');
}

test('--help shows how to write IPv6 wherever an address, prefix or URL is taken', () => {
  const cases: [string[], RegExp[]][] = [
    [
      ['authority', 'init'],
      [
        /--listen.*\[::1\]:7443.*\[::\]:7443/s,
        /--url.*https:\/\/\[2001:db8::1\]:7443/s,
        /--san.*IPv4\/IPv6/s,
        /--database.*\[fd00::5\]:5432/s,
      ],
    ],
    [['authority', 'serve'], [/--listen.*\[::\]:7443/s]],
    [
      ['authority', 'replica'],
      [/--listen.*\[fd00::2\]:7443/s, /--san.*IPv4\/IPv6/s, /--database.*\[v6\]:port/s],
    ],
    [
      ['authority', 'peer', 'add'],
      [/--peer-url.*https:\/\/\[2001:db8::b\]:7443/s, /--url.*https:\/\/\[::1\]:7443/s],
    ],
    [['vpn', 'list'], [/--url.*https:\/\/\[::1\]:7443/s]],
    [['gateway', 'add'], [/--address.*IPv4 or IPv6.*2001:db8::1/s]],
    [['gateway', 'update'], [/--address.*IPv4 or IPv6/s]],
    [['member'], [/IPv4 or IPv6 \(10\.1\.0\.0\/16, 2001:db8:1::\/48\)/, /dual-stack/, /both families alike/]],
    [['member', 'add'], [/IPv4 or IPv6 prefixes/]],
    [['directory', 'add'], [/IPv4 or IPv6 prefix.*2001:db8:9::\/48/s]],
  ];
  for (const [path, expected] of cases) {
    const text = help(...path);
    for (const re of expected) assert.match(text, re, `kasane ${path.join(' ')} --help:\n${text}`);
  }
});

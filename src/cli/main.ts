// kasane command line. Each area registers its commands from its own module in ./commands.
import { Command, CommanderError } from 'commander';
import { BadFileError } from '../files/document.js';
import { registerSimulate } from './commands/simulate.js';
import { registerDemo } from './commands/demo.js';
import { registerAudit, registerAuthority } from './commands/authority.js';
import { registerDirectory } from './commands/directory.js';
import { registerGateway } from './commands/gateway.js';
import { registerGatewayHost } from './commands/gateway-host.js';
import { registerMember } from './commands/member.js';
import { registerVpn } from './commands/vpn.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('kasane')
    .description(
      'kasane: a multi-homing VPN. Terminals and LANs belong to several VPNs at once, or to nested VPNs;\n' +
        'gateways in front of them find each other on demand by key search and encrypt, relay or drop each packet.',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerDemo(program);
  registerSimulate(program);
  registerAuthority(program);
  registerVpn(program);
  registerGateway(program);
  registerGatewayHost(program);
  registerMember(program);
  registerDirectory(program);
  registerAudit(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`kasane: ${e instanceof Error ? e.message : String(e)}\n`);
    // A configuration file that cannot be used: 2, as for a bad topology (docs/simulator.md).
    return e instanceof BadFileError ? e.exitCode : 1;
  }
}

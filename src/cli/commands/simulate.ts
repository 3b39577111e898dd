// Placeholder registration, replaced by the simulator's command.
import type { Command } from 'commander';

export function registerSimulate(program: Command): void {
  program.command('simulate <file>').description('run a topology file through the in-process simulator').option('--json', 'print one JSON document');
}

// `kasane simulate FILE`: runs a topology file through the in-process simulator and prints, for
// every terminal pair tried, whether it was delivered and through which VPN layers, the message
// trace, and every gateway's key table at the end. Bad files exit with code 2 and say which field
// is wrong.
import { InvalidArgumentError, type Command } from 'commander';
import { loadTopology, renderJson, renderText, runTopology } from '../../sim/run.js';

export interface SimulateOptions {
  json?: boolean;
  seed?: number;
  until?: number;
  trace?: boolean;
}

export interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const EXIT_OK = 0;
export const EXIT_BAD_TOPOLOGY = 2;

/** The command's work, with its output injected: returns the exit code. */
export function simulate(file: string, options: SimulateOptions, out: Output): number {
  const loaded = loadTopology({ path: file });
  if (!loaded.ok) {
    out.stderr(`kasane simulate: ${file} is not a valid topology:\n${indent(loaded.error.message)}\n`);
    return EXIT_BAD_TOPOLOGY;
  }
  const result = runTopology(loaded.value, {
    seed: options.seed,
    until: options.until,
    trace: options.trace !== false,
  });
  const report = { trace: options.trace !== false };
  out.stdout(options.json ? renderJson(result, report) : renderText(result, report));
  return EXIT_OK;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function nonNegativeInteger(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return Number(value);
  };
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('must be a non-negative number of milliseconds');
  return n;
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate <file>')
    .description('run a topology file (YAML or JSON) through the in-process simulator; see docs/simulator.md')
    .option('--json', 'print one JSON document (paths, trace, keyTables, stats, links, drops)')
    .option('--seed <n>', "seed for keys, ids and losses (overrides the file's seed)", nonNegativeInteger('--seed'))
    .option(
      '--until <ms>',
      "virtual time to stop at, in ms (default: the file's until, or last traffic + settle)",
      nonNegativeNumber,
    )
    .option('--trace', 'include the message trace (default)')
    .option('--no-trace', 'leave the message trace out')
    .action((file: string, opts: SimulateOptions) => {
      const code = simulate(file, opts, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
      if (code !== EXIT_OK) process.exitCode = code;
    });
}

// Shared by the administrator commands (authority, vpn, gateway, member, directory, audit): how to
// reach the authority, how to print tables or JSON, and how errors are reported.
//
// Connection, first match wins:
//   --url / KASANE_AUTHORITY_URL / the data directory's authority.json
//     (several replicas: a comma-separated list, tried in order when one cannot be reached)
//   --token / --token-file / KASANE_ADMIN_TOKEN / DATA/admin.token
//   --ca (PEM file) / KASANE_AUTHORITY_CA (PEM file) / DATA/certs/root-ca.pem
// where DATA is --data / KASANE_AUTHORITY_DATA (on the authority's own host).
import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { AuthorityClient } from '../../authority/client.js';
import { dataPaths, readConfig } from '../../authority/config.js';
import { checkVpnId, parseDuration } from '../../authority/validate.js';

export interface ConnectionOptions {
  url?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  data?: string;
  json?: boolean;
}

/** Adds the connection options and --json to an administrator command. */
export function withConnection(cmd: Command): Command {
  return cmd
    .option(
      '--url <url>',
      'authority URL (IPv6 in brackets: https://[::1]:7443), or several replicas comma-separated (env KASANE_AUTHORITY_URL)',
    )
    .option('--token <token>', 'administrator token (env KASANE_ADMIN_TOKEN)')
    .option('--token-file <file>', 'read the administrator token from a file')
    .option('--ca <file>', "PEM file of the authority's root CA (env KASANE_AUTHORITY_CA)")
    .option('--data <dir>', "the authority's data directory, when run on its host (env KASANE_AUTHORITY_DATA)")
    .option('--json', 'print JSON instead of tables');
}

function fail(message: string): never {
  throw new Error(message);
}

/** Builds an administrator client from flags, environment and data directory. */
export async function adminClient(o: ConnectionOptions): Promise<AuthorityClient> {
  // Loaded on use: the PKI and HTTP stack is not needed by other commands.
  const { AuthorityClient } = await import('../../authority/client.js');
  const env = process.env;
  const data = o.data ?? env.KASANE_AUTHORITY_DATA;
  const paths = data ? dataPaths(data) : undefined;
  let url = o.url ?? env.KASANE_AUTHORITY_URL;
  if (!url && data) url = readConfig(data).url;
  if (!url) fail('no authority URL: pass --url, set KASANE_AUTHORITY_URL, or --data DIR on the authority host');
  let token = o.token ?? (o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : undefined) ?? env.KASANE_ADMIN_TOKEN;
  if (!token && paths && existsSync(paths.adminToken)) token = readFileSync(paths.adminToken, 'utf8').trim();
  if (!token)
    fail(
      'no administrator token: pass --token/--token-file, set KASANE_ADMIN_TOKEN, or --data DIR on the authority host',
    );
  const caFile = o.ca ?? env.KASANE_AUTHORITY_CA ?? (paths && existsSync(paths.rootCert) ? paths.rootCert : undefined);
  if (!caFile)
    fail("no CA to trust: pass --ca FILE (the authority's root-ca.pem), set KASANE_AUTHORITY_CA, or --data DIR");
  if (!existsSync(caFile)) fail(`CA file ${caFile} does not exist`);
  const [first, ...more] = url
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  return new AuthorityClient({ url: first, urls: more, adminToken: token, ca: readFileSync(caFile, 'utf8') });
}

/** Runs an administrator action with a client; reports API errors precisely (JSON with --json). */
export async function withClient(o: ConnectionOptions, fn: (c: AuthorityClient) => Promise<void>): Promise<void> {
  const { AuthorityApiError, AuthorityUnreachableError } = await import('../../authority/client.js');
  const c = await adminClient(o);
  try {
    await fn(c);
  } catch (e) {
    if (e instanceof AuthorityApiError) {
      if (o.json) {
        out(JSON.stringify({ error: e.code, message: e.message, status: e.status }) + '\n');
        process.exitCode = 1;
        return;
      }
      throw new Error(`${e.message} (${e.code}, HTTP ${e.status})`);
    }
    if (e instanceof AuthorityUnreachableError && o.json) {
      out(JSON.stringify({ error: 'unreachable', message: e.message, maybeApplied: e.maybeApplied }) + '\n');
      process.exitCode = 1;
      return;
    }
    throw e;
  } finally {
    c.close();
  }
}

/** One API call whose answer is printed: as JSON with --json, else by `show`. */
export function printAnswer<T>(
  o: ConnectionOptions,
  ask: (c: AuthorityClient) => Promise<T>,
  show: (answer: T) => void,
): Promise<void> {
  return withClient(o, async (c) => {
    const answer = await ask(c);
    if (o.json) return printJson(answer);
    show(answer);
  });
}

/** Where command output goes (stdout; tests redirect it). */
export const cliOutput = {
  write(text: string): void {
    process.stdout.write(text);
  },
};

export function out(text: string): void {
  cliOutput.write(text);
}

export function printJson(v: unknown): void {
  out(JSON.stringify(v, null, 2) + '\n');
}

/** Prints rows as aligned columns under a header. */
export function printTable(headers: string[], rows: (string | number | null | undefined)[][]): void {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const width = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => [...r[i]].length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(width[i] - [...c].length)))
      .join('  ')
      .trimEnd();
  out([line(headers), ...cells.map(line)].join('\n') + '\n');
}

/** Key: value lines for one object. */
export function printFields(fields: [string, string | number | null | undefined][]): void {
  const w = Math.max(...fields.map(([k]) => k.length));
  out(fields.map(([k, v]) => `${k.padEnd(w)}  ${v === null || v === undefined ? '-' : v}`).join('\n') + '\n');
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms >= Number.MAX_SAFE_INTEGER) return 'never';
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// --- argument parsers (commander reports their message as an invalid argument)

export function durationArg(text: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new InvalidArgumentError(r.error.message);
  return r.value;
}

/** A point in time: ISO 8601 (2026-12-06T14:00:00Z), or a duration meaning that long ago (2h). */
export function timeArg(text: string): number {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(text)) return Date.now() - durationArg(text);
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new InvalidArgumentError(`${JSON.stringify(text)} is neither an ISO 8601 time nor a duration (e.g. 2h)`);
  return t;
}

export function vpnIdArg(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('VPN id must be a decimal integer from 1 to 4294967295');
  const r = checkVpnId(Number(text));
  if (!r.ok) throw new InvalidArgumentError(r.error.message);
  return r.value;
}

export function intArg(min: number, max: number): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return Number(text);
  };
}

export function choiceOption(flags: string, description: string, choices: string[]): Option {
  return new Option(flags, description).choices(choices);
}

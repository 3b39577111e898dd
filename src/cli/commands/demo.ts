// `kasane demo`: the live demo of seed 000 Figure 2 on this machine, in network namespaces, with a
// real authority (embedded SQLite) and three real gateways. `--check` is the operators' self-test.
import type { Command } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFigure2, demoPrerequisites, type Figure2 } from '../../demo/figure2.js';
import type { GatewayStatus } from '../../gateway/status.js';

type T = 'A' | 'B' | 'C';
const PAIRS: [T, T, boolean][] = [
  ['B', 'A', true],
  ['B', 'C', true],
  ['A', 'B', true],
  ['C', 'B', true],
  ['A', 'C', false],
  ['C', 'A', false],
];

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'build seed 000 Figure 2 in network namespaces on this machine (authority on SQLite, gateways G1-G3,\n' +
        'terminals A, B, C), run traffic and print the key tables as the key search fills them; Ctrl-C tears it all down',
    )
    .option('--check', 'self-test: try every terminal pair, print the reachability matrix against the expected one, tear down; exit 1 on any difference')
    .option('--interval <seconds>', 'live mode: seconds between rounds of traffic', '3')
    .addHelpText(
      'after',
      '\nNeeds root, `ip` (iproute2) with network namespaces and veth links, `ping` (iputils-ping) and\n' +
        '/dev/net/tun; it checks them first and names what is missing. Nothing is added to the host\'s own\n' +
        'network namespace, and everything it made is removed when it ends, also after a failure.',
    )
    .action(async (o: { check?: boolean; interval: string }) => {
      const missing = demoPrerequisites();
      if (missing.length) throw new Error(`the demo cannot run on this host:\n  ${missing.join('\n  ')}`);
      const dir = mkdtempSync(join(tmpdir(), 'kasane-demo-'));
      const say = (line: string) => process.stdout.write(line + '\n');
      let f: Figure2 | undefined;
      let stopping = false;
      const cleanup = async () => {
        if (stopping) return;
        stopping = true;
        say('tearing down: gateways, authority, namespaces');
        await f?.teardown();
        rmSync(dir, { recursive: true, force: true });
      };
      const onSignal = () => {
        void cleanup().then(() => process.exit(130));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        f = await buildFigure2({ dir, log: (l) => say(`* ${l}`) });
        if (o.check) {
          process.exitCode = check(f, say) ? 0 : 1;
          return;
        }
        say('\nlive: pinging B->A, B->C, A->C in turn; the key tables follow. Ctrl-C to stop.');
        for (let round = 0; !stopping; round++) {
          const [from, to, expected] = PAIRS[[0, 1, 4][round % 3]];
          const okNow = f.ping(from, to, { count: 1 });
          say(`\n[${new Date().toISOString().slice(11, 19)}] ping ${from} -> ${to}: ${okNow ? 'reply' : 'no reply'}${okNow === expected ? '' : '  (UNEXPECTED)'}`);
          for (const n of [1, 2, 3] as const) say(keyTable(f, n));
          await new Promise((r) => setTimeout(r, Number(o.interval) * 1000));
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await cleanup();
      }
    });
}

function check(f: Figure2, say: (l: string) => void): boolean {
  say('\nreachability (ping from row to column), expected in brackets:');
  const got = new Map<string, boolean>();
  for (const [from, to] of PAIRS) got.set(from + to, f.ping(from, to));
  const cell = (from: T, to: T) => {
    if (from === to) return '   -   ';
    const exp = PAIRS.find((p) => p[0] === from && p[1] === to)![2];
    const g = got.get(from + to)!;
    return `${g ? 'yes' : 'no '} [${exp ? 'yes' : 'no '}]${g === exp ? '' : '!'}`.padEnd(11);
  };
  say('        A          B          C');
  for (const from of ['A', 'B', 'C'] as const) say(`  ${from}   ${(['A', 'B', 'C'] as const).map((to) => cell(from, to)).join(' ')}`);
  for (const n of [1, 2, 3] as const) say(keyTable(f, n));
  const bad = PAIRS.filter(([from, to, exp]) => got.get(from + to) !== exp);
  say(bad.length === 0 ? '\ncheck passed: every pair as expected' : `\ncheck FAILED: ${bad.map(([a, b]) => `${a}->${b}`).join(', ')} not as expected`);
  return bad.length === 0;
}

function keyTable(f: Figure2, n: 1 | 2 | 3): string {
  try {
    const s = JSON.parse(f.kasane(f.ns[`G${n}`], 'gateway', 'status', '--data', f.gatewayData(n), '--json')) as GatewayStatus;
    const rows = s.paths.map((p) => `    ${p.local} -> ${p.remote}  ${p.action}${p.vpnName ? ` ${p.vpnName} with ${p.peer}` : ''}  packets ${p.packets}  (${p.reason})`);
    return `  G${n} key table:\n${rows.length ? rows.join('\n') : '    (empty)'}`;
  } catch (e) {
    return `  G${n}: ${(e as Error).message.split('\n')[0]}`;
  }
}

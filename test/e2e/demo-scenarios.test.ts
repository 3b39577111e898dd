// `kasane demo SCENARIO --check`, the operators' self-test of each scenario of the papers, exactly
// as an operator runs it (the CLI in a process of its own): figure2 (the default), multistage and
// federation; and all three over IPv6 (`--ipv6`: the same matrix; federation on an IPv6 WAN). Each must pass,
// print its verdicts and its console URL on 127.0.0.1, and leave no namespace behind.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { netnsTest } from '../support/netns-gate.js';
import { CLI } from './sites.js';

function run(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(CLI[0], [...CLI.slice(1), 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGINT'), 240_000);
    p.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

const SCENARIOS: { args: string[]; name: string; verdicts: RegExp[] }[] = [
  {
    args: ['--check'],
    name: 'figure2',
    verdicts: [/B\s+yes \[yes\]\s+-\s+yes \[yes\]/, /A\s+-\s+yes \[yes\]\s+no  \[no \]/],
  },
  {
    args: ['multistage', '--check'],
    name: 'multistage',
    verdicts: [
      /Gi2 found both layers in its one search \(company outside dept\)\s+yes \[yes\]/,
      /Go2 encrypts to A in company, paired with Go1/,
    ],
  },
  {
    args: ['--ipv6', '--check'],
    name: 'figure2 over IPv6',
    verdicts: [
      /ping -6 from row to column/,
      /B\s+yes \[yes\]\s+-\s+yes \[yes\]/,
      /A\s+-\s+yes \[yes\]\s+no  \[no \]/,
      /fd00:1::10 -> fd00:2::10\s+encrypt VPN1 with G2/,
    ],
  },
  {
    args: ['multistage', '--ipv6', '--check'],
    name: 'multistage over IPv6',
    verdicts: [
      /Gi2 found both layers in its one search \(company outside dept\)\s+yes \[yes\]/,
      /fd00:2:1::10 -> fd00:1:1::10\s+encrypt dept with Gi1/,
    ],
  },
  {
    args: ['federation', '--check'],
    name: 'federation',
    verdicts: [
      /GA has an IKE SA with GB@authority-b \(signatures, permits\)\s+yes \[yes\]/,
      /ping A -> B replies after the withdrawal\s+no  \[no \]/,
    ],
  },
  {
    args: ['federation', '--ipv6', '--check'],
    name: 'federation over IPv6',
    verdicts: [
      /an IPv6 WAN: GA fd00:200:1::2, GB fd00:200:2::2/,
      /GA encrypts to B in P7, paired with GB\s+yes \[yes\]/,
      /ping -6 A -> B replies after the withdrawal\s+no  \[no \]/,
    ],
  },
];

for (const s of SCENARIOS) {
  netnsTest(
    `kasane demo ${s.args.join(' ')}: the self-test passes, shows the console URL, leaves no namespace`,
    { timeout: 300_000 },
    async () => {
      const r = await run(s.args);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, new RegExp(`check passed: ${s.name} behaves as the paper says`));
      for (const v of s.verdicts) assert.match(r.out, v);
      assert.match(r.out, /console of \S+: https:\/\/127\.0\.0\.1:\d+\//);
      assert.match(r.out, /console of \S+ answers at https:\/\/127\.0\.0\.1:\d+\/\s+yes \[yes\]/);
      assert.doesNotMatch(r.out, /DIFFERENT/);
      const prefix = /namespaces (kn[0-9a-f]+)-\* and links up/.exec(r.out)?.[1];
      assert.ok(prefix, `the demo names its namespaces: ${r.out}`);
      const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l.startsWith(`${prefix}-`));
      assert.deepEqual(left, [], 'no namespace of the demo is left behind');
    },
  );
}

// `kasane demo`'s scenarios, one per figure of the papers, each on real Linux networking with real
// authorities and gateway daemons: how it is built, what a round of live traffic shows, and the
// self-test (`--check`) that compares what happens with what the paper says must happen.
//
//   figure2     seed 000 Figure 2: multi-homing (B in VPN1 and VPN2; A and C never meet)
//   multistage  seed 000 Figure 1(2): nested VPNs, two ESP layers set up by one key search
//   federation  seed 001: two authorities, a pairwise VPN across them, IKE with permits
import type { GatewayStatus } from '../gateway/status.js';
import type { Testbed } from '../testbed/netns.js';
import type { Sites } from '../testbed/sites.js';
import { waitFor } from '../testbed/sites.js';
import {
  exchanged,
  buildFederation,
  FEDERATION_GATEWAYS6,
  FEDERATION_TERMINALS,
  FEDERATION_TERMINALS6,
  SHARED_VPN,
} from './federation.js';
import { buildFigure2, type Figure2 } from './figure2.js';
import { buildMultistage, MULTISTAGE_TERMINALS, MULTISTAGE_TERMINALS6 } from './multistage.js';

export type Say = (line: string) => void;

export interface DemoAuthority {
  name: string;
  /** Its namespace and where it listens there. */
  ns: string;
  host: string;
  port: number;
  data: string;
}

export interface RunningDemo {
  tb: Testbed;
  authorities: DemoAuthority[];
  /** One round of live traffic and the key tables it leaves. */
  live(round: number, say: Say): Promise<void>;
  /** The self-test: true when everything is as the paper says. */
  check(say: Say): Promise<boolean>;
  teardown(): Promise<void>;
}

export interface BuildOptions {
  dir: string;
  /** How to run the kasane CLI (default: the compiled one). */
  cli?: string[];
  log: Say;
  /** The terminals talk over IPv6 (every link dual stack). */
  ipv6?: boolean;
}

export interface Scenario {
  name: string;
  title: string;
  /** Whether it runs with `--ipv6`. */
  ipv6: boolean;
  build(o: BuildOptions): Promise<RunningDemo>;
}

/** Gateways report their status every 5 s in a demo, so that the console follows closely. */
const GATEWAY_CONFIG = 'statusReport: { interval: 5000 }\n';

const stamp = () => new Date().toISOString().slice(11, 19);

/** A gateway's key table as lines for people. */
export function keyTableLines(name: string, s: GatewayStatus | Error): string {
  if (s instanceof Error) return `  ${name}: ${s.message.split('\n')[0]}`;
  const rows = s.paths.map((p) => {
    const layers =
      p.layers && p.layers.length > 1
        ? `  layers ${p.layers.map((l) => `${l.vpnId}(${l.gateways.join('~')})`).join(' > ')}`
        : '';
    return `    ${p.local} -> ${p.remote}  ${p.action}${p.vpnName ? ` ${p.vpnName} with ${p.peer}` : ''}  packets ${p.packets}  (${p.reason})${layers}`;
  });
  const ike = (s.ike ?? []).map((i) => `    IKE SA with ${i.peer}: ${i.state}, ${i.children.length} Child SA(s)`);
  return `  ${name} key table:\n${rows.length ? rows.join('\n') : '    (empty)'}${ike.length ? `\n${ike.join('\n')}` : ''}`;
}

function statusOf(get: () => GatewayStatus): GatewayStatus | Error {
  try {
    return get();
  } catch (e) {
    return e as Error;
  }
}

/** One line of the self-test: what happened against what must happen. */
function verdict(say: Say, what: string, got: boolean, expected: boolean): boolean {
  say(
    `  ${what.padEnd(64)} ${got ? 'yes' : 'no '} [${expected ? 'yes' : 'no '}]${got === expected ? '' : '  DIFFERENT'}`,
  );
  return got === expected;
}

/** Says every check's line (all of them, a failure does not stop the list); true if each came out as expected. */
function verdicts(say: Say, checks: [what: string, got: boolean, expected: boolean][]): boolean {
  return checks.map(([what, got, expected]) => verdict(say, what, got, expected)).every(Boolean);
}

// --- seed 000 Figure 2 ------------------------------------------------------------------------

type T = 'A' | 'B' | 'C';
/** Figure 2's reachability: from, to, whether it must pass (over IPv4 and IPv6 alike). */
export const FIGURE2_PAIRS: [T, T, boolean][] = [
  ['B', 'A', true],
  ['B', 'C', true],
  ['A', 'B', true],
  ['C', 'B', true],
  ['A', 'C', false],
  ['C', 'A', false],
];

function figure2Tables(f: Figure2): string[] {
  return ([1, 2, 3] as const).map((n) =>
    keyTableLines(
      `G${n}`,
      statusOf(() => f.status(n)),
    ),
  );
}

const figure2: Scenario = {
  name: 'figure2',
  title:
    'seed 000 Figure 2: terminals A, B, C behind G1, G2, G3; B in VPN1 (with A) and VPN2 (with C); A and C never meet',
  ipv6: true,
  async build(o) {
    const f = await buildFigure2({ dir: o.dir, cli: o.cli, log: o.log, gatewayConfig: GATEWAY_CONFIG, ipv6: o.ipv6 });
    const family = o.ipv6 ? 6 : 4;
    const terminals = o.ipv6 ? f.terminals6 : f.terminals;
    if (o.ipv6) o.log(`the terminals talk over IPv6: A ${terminals.A}, B ${terminals.B}, C ${terminals.C} (ping -6)`);
    return {
      tb: f.tb,
      authorities: [{ name: 'figure2', ns: f.ns.AUTH, host: '10.200.9.2', port: 7443, data: f.authorityData }],
      async live(round, say) {
        const [from, to, expected] = FIGURE2_PAIRS[[0, 1, 4][round % 3]];
        const ok = f.ping(from, to, { count: 1, family });
        say(
          `\n[${stamp()}] ping${o.ipv6 ? ' -6' : ''} ${from} -> ${to} (${terminals[to]}): ${ok ? 'reply' : 'no reply'}${ok === expected ? '' : '  (UNEXPECTED)'}`,
        );
        for (const l of figure2Tables(f)) say(l);
      },
      async check(say) {
        say(`\nreachability (ping${o.ipv6 ? ' -6' : ''} from row to column), expected in brackets:`);
        const got = new Map<string, boolean>();
        for (const [from, to] of FIGURE2_PAIRS) got.set(from + to, f.ping(from, to, { family }));
        const cell = (from: T, to: T) => {
          if (from === to) return '   -   ';
          const exp = FIGURE2_PAIRS.find((p) => p[0] === from && p[1] === to)![2];
          const g = got.get(from + to)!;
          return `${g ? 'yes' : 'no '} [${exp ? 'yes' : 'no '}]${g === exp ? '' : '!'}`.padEnd(11);
        };
        say('        A          B          C');
        for (const from of ['A', 'B', 'C'] as const)
          say(`  ${from}   ${(['A', 'B', 'C'] as const).map((to) => cell(from, to)).join(' ')}`);
        for (const l of figure2Tables(f)) say(l);
        const bad = FIGURE2_PAIRS.filter(([from, to, exp]) => got.get(from + to) !== exp);
        if (bad.length) say(`  not as expected: ${bad.map(([a, b]) => `${a}->${b}`).join(', ')}`);
        return bad.length === 0;
      },
      teardown: () => f.teardown(),
    };
  },
};

// --- seed 000 Figure 1(2): multi-stage ---------------------------------------------------------

function sitesTables(s: Sites, gateways: string[]): string[] {
  return gateways.map((g) =>
    keyTableLines(
      g,
      statusOf(() => s.status(g)),
    ),
  );
}

const multistage: Scenario = {
  name: 'multistage',
  title: 'seed 000 Figure 1(2): A behind Gi1 (VPN dept) behind Go1 (VPN company), B likewise; dept runs inside company',
  ipv6: true,
  async build(o) {
    const s = await buildMultistage({
      dir: o.dir,
      cli: o.cli,
      log: o.log,
      gatewayConfig: GATEWAY_CONFIG,
      ipv6: o.ipv6,
    });
    const terminals = o.ipv6 ? MULTISTAGE_TERMINALS6 : MULTISTAGE_TERMINALS;
    o.log(
      'company = {Go1 + 10.1.0.0/16, Go2 + 10.2.0.0/16}; dept = {Gi1 + 10.1.1.0/24, Gi2 + 10.2.1.0/24}: nested inside company',
    );
    if (o.ipv6)
      o.log(
        'and over IPv6: company = {Go1 + fd00:1::/32, Go2 + fd00:2::/32}; dept = {Gi1 + fd00:1:1::/64, Gi2 + fd00:2:1::/64}; A and B talk over IPv6',
      );
    const gateways = ['Gi2', 'Go2', 'Go1', 'Gi1'];
    return {
      tb: s.tb,
      authorities: [{ name: 'multistage', ns: s.ns.AUTH, host: '10.200.9.2', port: 7443, data: s.authorityData() }],
      async live(round, say) {
        const [from, to] = round % 2 === 0 ? (['B', 'A'] as const) : (['A', 'B'] as const);
        const ok = s.ping(from, terminals[to], ['-c', '1', '-W', '2']) > 0;
        say(
          `\n[${stamp()}] ping ${from} -> ${to} (through dept inside company): ${ok ? 'reply' : 'no reply  (UNEXPECTED)'}`,
        );
        for (const l of sitesTables(s, gateways)) say(l);
      },
      async check(say) {
        say('\nthe first packet from B to A: one key search sets up both layers');
        const first = s.ping('B', terminals.A, ['-c', '3', '-i', '0.2', '-W', '3']) > 0;
        const back = s.ping('A', terminals.B, ['-c', '3', '-i', '0.2', '-W', '3']) > 0;
        const st = Object.fromEntries(gateways.map((g) => [g, statusOf(() => s.status(g))]));
        const path = (g: string, remote: string) => {
          const x = st[g];
          return x instanceof Error ? undefined : x.paths.find((p) => p.remote === remote && p.action === 'encrypt');
        };
        const inner = path('Gi2', terminals.A);
        const outer = path('Go2', terminals.A);
        const ok = verdicts(say, [
          ['B -> A replies', first, true],
          ['A -> B replies', back, true],
          [
            'Gi2 encrypts to A in dept, paired with Gi1 (inner ESP)',
            inner?.vpnName === 'dept' && inner.peer === 'Gi1',
            true,
          ],
          [
            'Go2 encrypts to A in company, paired with Go1 (outer ESP)',
            outer?.vpnName === 'company' && outer.peer === 'Go1',
            true,
          ],
          [
            'Gi2 found both layers in its one search (company outside dept)',
            JSON.stringify(inner?.layers?.map((l) => l.vpnId)) === '[10,20]',
            true,
          ],
          [
            "Gi2 searched; Go2's path came from relaying that search",
            inner?.reason === 'search' && outer?.reason === 'search-relay',
            true,
          ],
        ]);
        for (const l of sitesTables(s, gateways)) say(l);
        return ok;
      },
      teardown: () => s.teardown(),
    };
  },
};

// --- seed 001: two authorities -----------------------------------------------------------------

const federation: Scenario = {
  name: 'federation',
  // With --ipv6: an IPv6 WAN (the gateways' outside addresses IPv6), IKE over IPv6, ping -6.
  ipv6: true,
  title:
    'seed 001: authority-a and authority-b peered; pairwise VPN P7 between A (behind GA) and B (behind GB); IKE with permits',
  async build(o) {
    const s = await buildFederation({
      dir: o.dir,
      cli: o.cli,
      log: o.log,
      gatewayConfig: { GA: GATEWAY_CONFIG, GB: GATEWAY_CONFIG },
      ipv6: o.ipv6,
    });
    const terminals = o.ipv6 ? FEDERATION_TERMINALS6 : FEDERATION_TERMINALS;
    const ping6 = o.ipv6 ? ' -6' : '';
    if (o.ipv6)
      o.log(
        `an IPv6 WAN: GA ${FEDERATION_GATEWAYS6.GA}, GB ${FEDERATION_GATEWAYS6.GB}; A ${terminals.A} and B ${terminals.B} (ping -6)`,
      );
    const ping = (count: number, wait: number) =>
      s.ping('A', terminals.B, ['-c', String(count), '-i', '0.3', '-W', String(wait)]) > 0;
    const tables = () => sitesTables(s, ['GA', 'GB']);
    return {
      tb: s.tb,
      authorities: s.authorities.map((a) => ({
        name: a.name,
        ns: s.ns[a.host],
        host: a.address,
        port: 7443,
        data: s.authorityData(a.name),
      })),
      async live(round, say) {
        const ok = ping(1, 5);
        say(
          `\n[${stamp()}] ping${ping6} A -> B over ${SHARED_VPN} (key search, then IKE between GA and GB): ${ok ? 'reply' : 'no reply  (UNEXPECTED)'}`,
        );
        for (const l of tables()) say(l);
      },
      async check(say) {
        say(
          `\nthe first ping${ping6} from A to B: key search, then IKEv2 between GA and GB with their authorities' permits`,
        );
        let ok = true;
        ok = verdict(say, 'the authorities exchanged members and permits', exchanged(s), true) && ok;
        const permits = JSON.parse(s.adminOf('authority-a', 'authority', 'peer', 'list', '--json')) as {
          permits?: { holder: string; direction: string; notAfter: number }[];
        };
        for (const p of permits.permits ?? [])
          say(
            `    authority-a permit ${p.direction === 'out' ? 'issued to' : p.direction === 'in' ? 'received for' : 'for'} ${p.holder}, until ${new Date(p.notAfter).toISOString()}`,
          );
        const first = ping(1, 8);
        ok = verdict(say, `the first ping${ping6} A -> B replies`, first, true) && ok;
        ok = verdict(say, 'and the next ones', ping(3, 3), true) && ok;
        const ga = statusOf(() => s.status('GA'));
        const gb = statusOf(() => s.status('GB'));
        const ikeUp = (x: GatewayStatus | Error, peer: string) =>
          !(x instanceof Error) &&
          (x.ike ?? []).some((i) => i.peer === peer && i.state === 'established' && i.children.length > 0);
        ok =
          verdict(
            say,
            'GA has an IKE SA with GB@authority-b (signatures, permits)',
            ikeUp(ga, 'GB@authority-b'),
            true,
          ) && ok;
        ok = verdict(say, 'GB has an IKE SA with GA@authority-a', ikeUp(gb, 'GA@authority-a'), true) && ok;
        ok =
          verdict(
            say,
            'GA encrypts to B in P7, paired with GB',
            !(ga instanceof Error) &&
              ga.paths.some((p) => p.remote === terminals.B && p.action === 'encrypt' && p.peer === 'GB'),
            true,
          ) && ok;
        for (const l of tables()) say(l);

        say(`\nauthority-a withdraws ${SHARED_VPN} from authority-b (its permits go with it)`);
        s.adminOf('authority-a', 'vpn', 'unshare', SHARED_VPN, '--peer', 'authority-b');
        const gone = await waitFor(
          () => {
            const a = statusOf(() => s.status('GA'));
            const b = statusOf(() => s.status('GB'));
            return (
              !(a instanceof Error) && !(b instanceof Error) && (a.ike ?? []).length === 0 && (b.ike ?? []).length === 0
            );
          },
          30_000,
          'the IKE SAs to go',
        ).then(
          () => true,
          () => false,
        );
        ok = verdict(say, 'both gateways deleted their IKE SAs', gone, true) && ok;
        ok = verdict(say, `ping${ping6} A -> B replies after the withdrawal`, ping(2, 2), false) && ok;
        for (const l of tables()) say(l);
        return ok;
      },
      teardown: () => s.teardown(),
    };
  },
};

export const SCENARIOS: Record<string, Scenario> = { figure2, multistage, federation };

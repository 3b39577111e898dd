// Test helpers around the simulator: build a topology from YAML text and run it.
import {
  loadTopology,
  Simulation,
  type SimOptions,
  type SimResult,
  type Topology,
  type TraceRecord,
} from '../../src/sim/run.js';

export function topology(yamlText: string): Topology {
  const t = loadTopology({ text: yamlText });
  if (!t.ok)
    throw new Error(
      `bad test topology: ${t.error.message}\n${t.error.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`,
    );
  return t.value;
}

export function simulate(yamlText: string, setup?: (sim: Simulation) => void, options: SimOptions = {}): SimResult {
  const sim = new Simulation(topology(yamlText), options);
  setup?.(sim);
  return sim.run();
}

export function steps(trace: TraceRecord[], from = 0, to = Infinity): { step: number; node: string; event: string }[] {
  return trace
    .filter((r) => r.step !== undefined && r.time >= from && r.time < to)
    .map((r) => ({ step: r.step!, node: r.node, event: r.event }));
}

export function path(result: SimResult, from: string, to: string) {
  const p = result.paths.find((x) => x.from === from && x.to === to);
  if (!p) throw new Error(`no traffic ${from}->${to} in the result`);
  return p;
}

/**
 * Figure 2 of seed 000 with configurable traffic, timers and extras (YAML fragments). `unattached`
 * names gateways whose terminal LAN is not configured as attached (`lans: []`), as if a router
 * stood between: they run the source search.
 */
export function figure2(opts: {
  traffic: string;
  defaults?: string;
  events?: string;
  silent?: string[];
  unattached?: string[];
  until?: number;
  extraNodes?: string;
  extraLinks?: string;
}): string {
  const silent = (n: string) => (opts.silent?.includes(n) ? ', silent: true' : '');
  const lans = (g: string, lan: string) => (opts.unattached?.includes(g) ? '[]' : `[${lan}]`);
  return `
name: figure2-test
seed: 7
${opts.until !== undefined ? `until: ${opts.until}` : ''}
${opts.defaults ?? ''}
vpns:
  - { name: VPN1, id: 1 }
  - { name: VPN2, id: 2 }
nodes:
  - { name: A, terminal: 10.1.0.10${silent('A')} }
  - { name: B, terminal: 10.2.0.10${silent('B')} }
  - { name: C, terminal: 10.3.0.10${silent('C')} }
  - { name: G1, gateway: 192.0.2.1, inside: [A], lans: ${lans('G1', '10.1.0.0/24')}, members: { VPN1: [10.1.0.0/24] } }
  - { name: G2, gateway: 192.0.2.2, inside: [B], lans: ${lans('G2', '10.2.0.0/24')}, members: { VPN1: [10.2.0.0/24], VPN2: [10.2.0.0/24] } }
  - { name: G3, gateway: 192.0.2.3, inside: [C], lans: ${lans('G3', '10.3.0.0/24')}, members: { VPN2: [10.3.0.0/24] } }
  - { name: R, router: true }
${opts.extraNodes ?? ''}
links:
  - [A, G1]
  - [B, G2]
  - [C, G3]
  - [G1, R]
  - [G2, R]
  - [G3, R]
${opts.extraLinks ?? ''}
traffic:
${opts.traffic}
${opts.events ?? ''}
`;
}

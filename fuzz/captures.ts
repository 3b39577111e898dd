// Real captures for the mutations to start from: every packet that crosses a link while the
// simulator runs the examples (key-search messages, ESP, echo, TCP SYNs, ICMP errors), with the
// gateways' cores as they are at the end (keys installed, paths in their tables).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadTopology } from '../src/sim/topology.js';
import { Simulation } from '../src/sim/simulation.js';

export const EXAMPLES = ['figure2', 'multistage', 'robustness'].map((n) =>
  fileURLToPath(new URL(`../examples/${n}.yaml`, import.meta.url)),
);

export interface Crossing {
  to: string;
  from: string;
  bytes: Uint8Array;
}

export interface CapturedRun {
  sim: Simulation;
  crossings: Crossing[];
}

/** Runs one example to its end, recording every packet that crosses a link. */
export function captureExample(file: string): CapturedRun {
  const t = loadTopology({ path: file });
  if (!t.ok) throw new Error(t.error.message);
  const sim = new Simulation(t.value, { trace: false });
  const crossings: Crossing[] = [];
  sim.tap(({ from, to, packet }) => {
    crossings.push({ from, to, bytes: new Uint8Array(packet.bytes) });
  });
  sim.run();
  return { sim, crossings };
}

/** Every example's text, for the file targets. */
export function exampleTexts(): Uint8Array[] {
  return EXAMPLES.map((f) => new Uint8Array(readFileSync(f)));
}

// The simulator's entry points: load a topology file, run it, render the result.
import { Simulation, type SimOptions, type SimResult } from './simulation.js';
import type { Topology } from './topology.js';

export {
  loadTopology,
  parseTopology,
  type Topology,
  type TopologyError,
  type TopologyIssue,
  type TopologySource,
} from './topology.js';
export { Simulation, type LinkReport, type LinkTap, type SimOptions, type SimResult } from './simulation.js';
export type { InFlight, TraceRecord } from './context.js';
export type { PacketOutcome, PathOutcome } from './traffic.js';
export type { CoreFactory, SimCore } from './gateway-node.js';
export { renderJson, renderText, type ReportOptions } from './report.js';

/** Runs a validated topology to its end (`options.until`, the file's `until`, or last activity + settle). */
export function runTopology(topology: Topology, options: SimOptions = {}): SimResult {
  return new Simulation(topology, options).run();
}

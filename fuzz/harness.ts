// The fuzzer's engine: runs one target's parser on many inputs (structure-aware mutations of real
// captures, and random bytes) and reports what it is not allowed to do (docs/fuzzing.md):
//   exception      it threw, where it promised a result (or a counted drop) instead
//   untyped-error  it refused without a stable code and a message, answered 5xx, or reported an
//                  internal error
//   mismatch       two implementations that must agree did not (the two ESP executors), or a
//                  codec that does not read back what it wrote
//   violation      a promise about the outcome broke (a Child SA installed from garbage)
//   slow           one input took more than `slowMs` of CPU (measured again five times, after a
//                  collection each: the least counts, so a GC pause or a busy machine is not a finding)
//   memory         the heap grew by more than `memoryLimitMb` over the run, after garbage collection
import { Rng } from './rng.js';

export type FindingKind = 'exception' | 'untyped-error' | 'mismatch' | 'violation' | 'slow' | 'memory';

/** Thrown by a target's oracle for a finding (any other throw is an escaped exception). */
export class Finding extends Error {
  constructor(
    readonly kind: Exclude<FindingKind, 'exception' | 'slow' | 'memory'>,
    message: string,
  ) {
    super(message);
  }
}

export interface FuzzInstance {
  /** Real captures the mutations start from. */
  seeds: Uint8Array[];
  /**
   * The next input: mostly a structure-aware mutation of a seed, sometimes random bytes (not timed: set-up for the
   * input may happen here).
   */
  next(rng: Rng): Uint8Array | Promise<Uint8Array>;
  /** Runs one input through the parser and checks the oracle; throws Finding for a finding. */
  run(input: Uint8Array): void | Promise<void>;
  close?(): void | Promise<void>;
  /**
   * CPU allowed per input byte on top of `slowMs` (µs), for parsers whose honest cost grows with the
   * input (the YAML parser reads well under 1 MB/s): what is then slow grows faster than the input.
   */
  usPerByte?: number;
  /**
   * This target's own bound instead of the run's `slowMs` (an administrator's rotation seals keys for every member).
   */
  slowMs?: number;
}

export interface FuzzTarget {
  name: string;
  /** What it feeds, to what. */
  description: string;
  setup(): Promise<FuzzInstance>;
}

export interface FuzzFinding {
  target: string;
  kind: FindingKind;
  message: string;
  /** The input, hex. */
  input: string;
}

export interface FuzzReport {
  target: string;
  inputs: number;
  seconds: number;
  findings: FuzzFinding[];
  /** The slowest input's CPU time (ms, confirmed). */
  slowestMs: number;
  /** Heap growth over the run after GC (bytes); undefined without --expose-gc. */
  heapGrowth?: number;
}

export interface FuzzOptions {
  count: number;
  seed: number;
  slowMs?: number;
  memoryLimitMb?: number;
  /** Stop after this many findings (default 20): a target that fails often fails alike. */
  maxFindings?: number;
  onProgress?: (done: number, findings: number) => void;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number | undefined {
  if (!gc) return undefined;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function cpuMs(f: () => void | Promise<void>): Promise<number> | number {
  const c = process.cpuUsage();
  const done = (): number => {
    const d = process.cpuUsage(c);
    return (d.user + d.system) / 1000;
  };
  const r = f();
  return r instanceof Promise ? r.then(done) : done();
}

const describeError = (e: unknown): string =>
  e instanceof Error
    ? `${e.constructor.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 4).join('\n')}`
    : `non-Error thrown: ${String(e)}`;

/** One input through the oracle: undefined, or what is wrong. */
export async function check(
  instance: FuzzInstance,
  input: Uint8Array,
): Promise<{ kind: FindingKind; message: string } | undefined> {
  try {
    await instance.run(input);
    return undefined;
  } catch (e) {
    if (e instanceof Finding) return { kind: e.kind, message: e.message };
    return { kind: 'exception', message: describeError(e) };
  }
}

export async function fuzz(target: FuzzTarget, o: FuzzOptions): Promise<FuzzReport> {
  const slowMs = o.slowMs ?? 10;
  const instance = await target.setup();
  const rng = new Rng(o.seed);
  const findings: FuzzFinding[] = [];
  const seen = new Set<string>();
  const report = (kind: FindingKind, message: string, input: Uint8Array) => {
    // One finding per kind and first line of the message: the same bug found again is not news.
    const key = `${kind}:${message.split('\n')[0].replace(/\d+/g, 'N')}`;
    if (seen.has(key)) return;
    seen.add(key);
    findings.push({ target: target.name, kind, message, input: Buffer.from(input).toString('hex') });
  };
  // Warm up (JIT, caches) before memory and time are measured.
  for (const s of instance.seeds) await check(instance, s);
  const heap0 = heapAfterGc();
  const started = process.hrtime.bigint();
  let slowest = 0;
  let done = 0;
  try {
    for (; done < o.count && findings.length < (o.maxFindings ?? 20); done++) {
      const input = await instance.next(rng);
      const t0 = performance.now();
      const bad = await check(instance, input);
      const ms = performance.now() - t0;
      if (bad) report(bad.kind, bad.message, input);
      const limit = (instance.slowMs ?? slowMs) + (input.length * (instance.usPerByte ?? 0)) / 1000;
      if (ms > limit) {
        // Confirm with CPU time, the least of five after a collection: not the machine, not a GC pause.
        gc?.();
        let least = Infinity;
        for (let i = 0; i < 5 && least > limit; i++)
          least = Math.min(least, await cpuMs(() => check(instance, input).then(() => undefined)));
        if (least > limit)
          report(
            'slow',
            `${least.toFixed(1)} ms of CPU for one input of ${input.length} bytes (at most ${limit.toFixed(1)})`,
            input,
          );
        if (least !== Infinity) slowest = Math.max(slowest, Math.min(least, ms));
      } else slowest = Math.max(slowest, ms);
      if (o.onProgress && done % 10_000 === 0) o.onProgress(done, findings.length);
    }
  } finally {
    await instance.close?.();
  }
  const heap1 = heapAfterGc();
  const heapGrowth = heap0 !== undefined && heap1 !== undefined ? heap1 - heap0 : undefined;
  if (heapGrowth !== undefined && heapGrowth > (o.memoryLimitMb ?? 64) * 1024 * 1024) {
    findings.push({
      target: target.name,
      kind: 'memory',
      message: `the heap grew by ${(heapGrowth / 1048576).toFixed(1)} MiB over ${done} inputs`,
      input: '',
    });
  }
  return {
    target: target.name,
    inputs: done,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    findings,
    slowestMs: slowest,
    heapGrowth,
  };
}

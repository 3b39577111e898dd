// Validating the fields of a file an operator wrote (a topology, a gateway configuration,
// authority.json), once for all three: typed getters that record a problem at the field's path
// and return undefined instead of throwing, so that one run reports every mistake; then
// document.ts's positions turn each path into a line and column.
//
//   const r = new FieldReader();
//   const top = r.object(doc, [], ['port', 'peers']);
//   const port = r.integer(top?.port, ['port'], { min: 1, max: 65535 });
//   ...
//   if (r.failures > 0) -> r.issues: "line 3:9: peers[2].address: not an IP address: ..."
import { ipFamily, parseIp, Prefix, type Ip, type IpFamily } from '../base/addr.js';
import {
  formatPath,
  readDocument,
  type DocumentIssue,
  type DocumentLimits,
  type DocumentSource,
  type PathKey,
} from './document.js';

export type FieldPath = readonly PathKey[];

export interface FieldIssue {
  path: FieldPath;
  message: string;
}

/** Problems reported at most (one more line says that the list stops there). */
export const MAX_FIELD_ISSUES = 50;

/** How a value that is not what a field wants is named in a message: `string "x"`, `a list`, `nothing`. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // JSON.stringify would print NaN and the infinities as null.
  if (typeof value === 'number' && !Number.isFinite(value)) {
    if (Number.isNaN(value)) return 'not-a-number (.nan)';
    return value > 0 ? 'infinity (.inf)' : 'minus infinity (-.inf)';
  }
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Like describe, without the type where the value shows it (`"7443"`, `12.5`). */
function shown(value: unknown): string {
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) return JSON.stringify(value);
  return describe(value);
}

function choices(values: readonly (string | number | boolean)[]): string {
  const s = values.map(String);
  return s.length <= 1 ? (s[0] ?? '') : `${s.slice(0, -1).join(', ')} or ${s[s.length - 1]}`;
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** Strictly greater than this. */
  above?: number;
  integer?: boolean;
}

/**
 * Reads untrusted values field by field. Every getter returns the typed value, or records a
 * problem at `path` and returns undefined; callers go on reading, and check `failures` at the end.
 */
export class FieldReader {
  readonly issues: FieldIssue[] = [];
  /** Every failure, including those beyond the reported maximum. */
  failures = 0;

  fail(path: FieldPath, message: string): undefined {
    this.failures++;
    if (this.issues.length < MAX_FIELD_ISSUES) this.issues.push({ path, message });
    return undefined;
  }

  /** A mapping whose keys are all in `allowed`; each missing `required` key is a problem at `path`. */
  object(
    value: unknown,
    path: FieldPath,
    allowed: readonly string[],
    required: readonly string[] = [],
  ): Record<string, unknown> | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return this.fail(path, `expected a mapping (key: value), got ${describe(value)}`);
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!allowed.includes(key))
        this.fail([...path, key], `unknown field "${key}"; expected one of: ${allowed.join(', ')}`);
    }
    for (const key of required) if (!Object.hasOwn(record, key)) this.fail(path, `missing field "${key}"`);
    return record;
  }

  /** A list, of at least `min` items when given. */
  list(value: unknown, path: FieldPath, min = 0): unknown[] | undefined {
    if (!Array.isArray(value)) return this.fail(path, `expected a list, got ${describe(value)}`);
    if (value.length < min) return this.fail(path, `expected a list of at least ${min}, got ${value.length}`);
    return value;
  }

  /** A list read item by item: the items that read well (a bad item is reported at its index). */
  listOf<T>(
    value: unknown,
    path: FieldPath,
    item: (value: unknown, path: FieldPath) => T | undefined,
    min = 0,
  ): T[] | undefined {
    const list = this.list(value, path, min);
    if (list === undefined) return undefined;
    const out: T[] = [];
    list.forEach((v, i) => {
      const x = item(v, [...path, i]);
      if (x !== undefined) out.push(x);
    });
    return out;
  }

  /**
   * A string, non-empty unless `empty` is set. With `pattern`, one that matches it; `what` names
   * such a string in the message (`"eth 0" is not an interface name`).
   */
  string(
    value: unknown,
    path: FieldPath,
    opts: { empty?: boolean; pattern?: RegExp; what?: string } = {},
  ): string | undefined {
    if (typeof value !== 'string')
      return this.fail(path, `expected a ${opts.empty ? '' : 'non-empty '}string, got ${describe(value)}`);
    if (value === '' && !opts.empty) return this.fail(path, `expected a non-empty string, got ${describe(value)}`);
    if (opts.pattern && !opts.pattern.test(value))
      return this.fail(path, `${JSON.stringify(value)} is not ${opts.what ?? `a string like ${opts.pattern}`}`);
    return value;
  }

  /** A finite number in a range; each bound is its own message ("must be at least 1, got 0"). */
  number(value: unknown, path: FieldPath, range: NumberRange = {}): number | undefined {
    if (typeof value !== 'number' || !Number.isFinite(value))
      return this.fail(path, `expected a number, got ${describe(value)}`);
    if (range.integer && !Number.isInteger(value)) return this.fail(path, `expected an integer, got ${value}`);
    if (range.min !== undefined && value < range.min)
      return this.fail(path, `must be at least ${range.min}, got ${value}`);
    if (range.above !== undefined && value <= range.above)
      return this.fail(path, `must be greater than ${range.above}, got ${value}`);
    if (range.max !== undefined && value > range.max)
      return this.fail(path, `must be at most ${range.max}, got ${value}`);
    return value;
  }

  /**
   * An integer from `min` to `max`, one message for every way to miss ("expected an integer from 1 to 65535, got 0").
   */
  integer(value: unknown, path: FieldPath, range: { min: number; max?: number }): number | undefined {
    const max = range.max ?? Number.MAX_SAFE_INTEGER;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > max) {
      return this.fail(path, `expected an integer from ${range.min} to ${max}, got ${shown(value)}`);
    }
    return value;
  }

  boolean(value: unknown, path: FieldPath): boolean | undefined {
    if (typeof value !== 'boolean') return this.fail(path, `expected true or false, got ${describe(value)}`);
    return value;
  }

  /** One of a fixed set of values. */
  oneOf<const T extends string | number | boolean>(
    value: unknown,
    path: FieldPath,
    values: readonly T[],
  ): T | undefined {
    if (!values.includes(value as T)) return this.fail(path, `expected ${choices(values)}, got ${describe(value)}`);
    return value as T;
  }

  /** An IPv4 or IPv6 address (canonical), or only one family. */
  ip(value: unknown, path: FieldPath, family?: IpFamily): Ip | undefined {
    if (typeof value !== 'string' || value === '')
      return this.fail(path, `expected an IP address, got ${describe(value)}`);
    const ip = parseIp(value);
    if (!ip.ok) return this.fail(path, ip.error.message);
    if (family !== undefined && ipFamily(ip.value) !== family)
      return this.fail(path, `${value} is not an IPv${family} address`);
    return ip.value;
  }

  /** A CIDR prefix (host bits clear) of either family, or only one. */
  prefix(value: unknown, path: FieldPath, family?: IpFamily): Prefix | undefined {
    if (typeof value !== 'string' || value === '')
      return this.fail(path, `expected a CIDR prefix, got ${describe(value)}`);
    const p = Prefix.parse(value);
    if (!p.ok) return this.fail(path, p.error.message);
    if (family !== undefined && p.value.family !== family)
      return this.fail(path, `${value} is not an IPv${family} prefix`);
    return p.value;
  }

  /**
   * A mapping from known names (the keys of `known`) to numbers in `range` (per name: `rangeOf`).
   * A misspelt name is a problem, not a setting silently ignored.
   */
  numbers<K extends string>(
    value: unknown,
    path: FieldPath,
    known: Record<K, unknown>,
    rangeOf: (name: K) => NumberRange,
  ): Partial<Record<K, number>> {
    const out: Partial<Record<K, number>> = {};
    const obj = this.object(value, path, Object.keys(known));
    if (!obj) return out;
    for (const [key, v] of Object.entries(obj)) {
      if (!Object.hasOwn(known, key)) continue;
      const n = this.number(v, [...path, key], rangeOf(key as K));
      if (n !== undefined) out[key as K] = n;
    }
    return out;
  }
}

/** Problems found in a document, each with its field path and, when it came from a text, its line. */
export interface FieldsError {
  issues: DocumentIssue[];
  /** The file's name, when the document came from a file. */
  file?: string;
}

/** Validates an already parsed value (no positions). `read` returns undefined or records problems to refuse it. */
export function checkFields<T>(
  value: unknown,
  read: (r: FieldReader, value: unknown) => T | undefined,
): { ok: true; value: T } | { ok: false; error: FieldsError } {
  const r = new FieldReader();
  const out = read(r, value);
  if (r.failures === 0 && out !== undefined) return { ok: true, value: out };
  return { ok: false, error: { issues: r.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) } };
}

/**
 * Reads a file or text (document.ts: size limits, YAML or JSON) and validates it; problems carry their line and column.
 */
export function readFields<T>(
  source: DocumentSource,
  limits: DocumentLimits,
  read: (r: FieldReader, value: unknown) => T | undefined,
): { ok: true; value: T } | { ok: false; error: FieldsError } {
  const doc = readDocument(source, limits);
  if (!doc.ok) return { ok: false, error: { issues: doc.issues, file: doc.file } };
  const r = new FieldReader();
  const out = read(r, doc.value.value);
  if (r.failures === 0 && out !== undefined) return { ok: true, value: out };
  const places = doc.value.locate(r.issues.map((i) => i.path));
  const issues = r.issues.map((i, k) => ({ path: formatPath(i.path), ...places[k], message: i.message }));
  return { ok: false, error: { issues, file: doc.value.file } };
}

/**
 * One problem a line, ready to print: `FILE:LINE:COLUMN: FIELD: MESSAGE` (`line LINE:COLUMN: ...`
 * for a text without a file name, `FILE: FIELD: ...` where no line is known).
 */
export function formatIssues(issues: readonly DocumentIssue[], file?: string): string {
  const lines = issues.map((i) => {
    const where =
      i.line !== undefined
        ? `${file ?? 'line'}${file ? ':' : ' '}${i.line}:${i.column ?? 1}: `
        : file
          ? `${file}: `
          : '';
    return `${where}${i.path}: ${i.message}`;
  });
  if (issues.length >= MAX_FIELD_ISSUES) lines.push(`(stopped after ${MAX_FIELD_ISSUES} problems)`);
  return lines.join('\n');
}

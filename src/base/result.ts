// A typed result for everything that parses or validates untrusted input: no exceptions on the
// packet path, and every failure carries a stable machine-readable code for counters.

export type Result<T, E = WireError> = { ok: true; value: T } | { ok: false; error: E };

/** A failure to parse or accept wire data. `code` is stable (used as a drop-counter label). */
export interface WireError {
  code: string;
  message: string;
}

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err(code: string, message: string): { ok: false; error: WireError } {
  return { ok: false, error: { code, message } };
}

// What a parser's answer must look like, for the targets to check.
import { Finding } from './harness.js';

/** A Result: ok, or an error with a stable code and a message. */
export function typedResult(r: unknown, what: string): void {
  if (!r || typeof r !== 'object' || typeof (r as { ok?: unknown }).ok !== 'boolean')
    throw new Finding('untyped-error', `${what} returned ${String(r)}, not a Result`);
  if ((r as { ok: boolean }).ok) return;
  const e = (r as { error?: { code?: unknown; message?: unknown } }).error;
  if (!e || typeof e.code !== 'string' || e.code === '' || typeof e.message !== 'string' || e.message === '') {
    throw new Finding('untyped-error', `${what} refused without a code and a message: ${JSON.stringify(e)}`);
  }
}

/**
 * For APIs that refuse by throwing an Error with a message meant for people: a refusal is
 * fine, a runtime error from inside (TypeError, RangeError, ...) escaping is not.
 */
export function refusedCleanly(e: unknown, what: string): void {
  if (!(e instanceof Error) || e.constructor !== Error || e.message === '') {
    throw new Finding(
      'untyped-error',
      `${what} threw ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`,
    );
  }
}

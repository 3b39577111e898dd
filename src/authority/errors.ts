// Errors the authority reports to its callers: an HTTP status, a stable machine-readable code and a
// message for people. The API sends them as {error: code, message}.
import type { Result } from '../base/result.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: string; message: string } {
    return { error: this.code, message: this.message };
  }
}

export const badRequest = (code: string, message: string): ApiError => new ApiError(400, code, message);
export const unauthorized = (code: string, message: string): ApiError => new ApiError(401, code, message);
export const forbidden = (code: string, message: string): ApiError => new ApiError(403, code, message);
export const notFound = (code: string, message: string): ApiError => new ApiError(404, code, message);
export const conflict = (code: string, message: string): ApiError => new ApiError(409, code, message);

/** The value of a validation result, or the ApiError (400 unless told otherwise) that says what was wrong. */
export function must<T>(r: Result<T>, status = 400): T {
  if (!r.ok) throw new ApiError(status, r.error.code, r.error.message);
  return r.value;
}

// Decode errors. Each names the notify a responder would answer with, so the state machine can
// pick INVALID_SYNTAX / UNSUPPORTED_CRITICAL_PAYLOAD / INVALID_MAJOR_VERSION without string tests.
import type { Result, WireError } from '../../base/result.js';
import { NotifyType, payloadTypeName } from './constants.js';
import type { IkeHeader } from './ike-header.js';

export type IkeErrorCode = 'ike-malformed' | 'ike-unsupported-critical' | 'ike-bad-major-version';

export interface IkeDecodeError extends WireError {
  code: IkeErrorCode;
  /** INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD or INVALID_MAJOR_VERSION. */
  notify: number;
  /**
   * Payload type where decoding stopped; 0 for the IKE header. For UNSUPPORTED_CRITICAL_PAYLOAD it is the notify's
   * data.
   */
  payloadType: number;
  /** Byte offset in the decoded buffer (the datagram, or the decrypted inner chain). */
  offset: number;
  /** The header, when it was readable: an error notify answers with its SPIs and message ID. */
  header?: IkeHeader;
}

export type IkeResult<T> = Result<T, IkeDecodeError>;

function where(payloadType: number, offset: number): string {
  return `${payloadType === 0 ? 'header' : payloadTypeName(payloadType)} at offset ${offset}`;
}

export function malformed(payloadType: number, offset: number, why: string): { ok: false; error: IkeDecodeError } {
  return {
    ok: false,
    error: {
      code: 'ike-malformed',
      notify: NotifyType.INVALID_SYNTAX,
      payloadType,
      offset,
      message: `${where(payloadType, offset)}: ${why}`,
    },
  };
}

export function unsupportedCritical(payloadType: number, offset: number): { ok: false; error: IkeDecodeError } {
  return {
    ok: false,
    error: {
      code: 'ike-unsupported-critical',
      notify: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
      payloadType,
      offset,
      message: `${where(payloadType, offset)}: unknown payload type ${payloadType} marked critical`,
    },
  };
}

export function badMajorVersion(major: number, header: IkeHeader): { ok: false; error: IkeDecodeError } {
  return {
    ok: false,
    error: {
      code: 'ike-bad-major-version',
      notify: NotifyType.INVALID_MAJOR_VERSION,
      payloadType: 0,
      offset: 17,
      message: `header at offset 17: major version ${major}, only 2 is supported`,
      header,
    },
  };
}

/** Thrown by encoders on programmer error (a field out of range); wire data never throws. */
export function invalid(what: string): never {
  throw new TypeError(`IKE encode: ${what}`);
}

// Small shared helpers for the encoders: range checks (programmer errors throw) and buffer views.
import { invalid } from './errors.js';

export function u8(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) invalid(`${what} ${n} is not a u8`);
  return n;
}

export function u16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) invalid(`${what} ${n} is not a u16`);
  return n;
}

export function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) invalid(`${what} ${n} is not a u32`);
  return n;
}

export function bytes(b: Uint8Array, what: string, exact?: number): Uint8Array {
  if (!(b instanceof Uint8Array)) invalid(`${what} is not a Buffer`);
  if (exact !== undefined && b.length !== exact) invalid(`${what} must be ${exact} bytes, got ${b.length}`);
  return b;
}

/** A Buffer view of any Uint8Array without copying (for readUInt*). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
}

/** A copy: decoded values never alias the caller's datagram buffer, which may be reused. */
export function copy(buf: Buffer, start: number, end: number): Buffer {
  return Buffer.from(buf.subarray(start, end));
}

export const EMPTY: Buffer = Buffer.alloc(0);

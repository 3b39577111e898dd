// Stateless IKE_SA_INIT cookies (RFC 7296 §2.6). Whether the responder is "under load" and asks
// for cookies is the caller's decision; this file only makes and checks them.
//
//   Cookie = VersionID (4, big-endian) | SHA-256(Ni | IPi as 16 bytes | SPIi | secret)
//
// IPi is always 16 bytes (IPv4 as ::ffff:a.b.c.d) so that, with Ni the only variable-length field,
// no (Ni, IPv6) pair hashes like some (Ni', IPv4) pair: otherwise a cookie fetched from an
// attacker's IPv6 address could be replayed from a spoofed IPv4 one. Secrets rotate; the version
// id names the secret, and the previous secret still verifies so that cookies in flight survive
// one rotation.

import { createHash, timingSafeEqual } from 'node:crypto';
import { ipToBytes, parseIp } from '../../base/addr.js';
import { err, ok, type Result } from '../../base/result.js';
import type { RandomSource } from '../../base/random.js';

export const NOTIFY_COOKIE = 16390;
export const COOKIE_LENGTH = 4 + 32;
const SECRET_MIN = 16;

export interface CookieSecret {
  /** Names this secret inside cookies (u32). */
  readonly version: number;
  readonly secret: Uint8Array;
}

export interface CookieInput {
  /** The initiator's nonce data. */
  readonly ni: Uint8Array;
  /** The initiator's IP address (the request's source address). */
  readonly ipI: string;
  /** The initiator's SPI (8 bytes). */
  readonly spiI: Uint8Array;
}

export function newCookieSecret(version: number, random: RandomSource): CookieSecret {
  return checkSecret({ version, secret: random(32) });
}

function checkSecret(s: CookieSecret): CookieSecret {
  if (!Number.isInteger(s.version) || s.version < 0 || s.version > 0xffffffff)
    throw new RangeError('cookie secret version must be a u32');
  if (s.secret.length < SECRET_MIN) throw new RangeError(`cookie secret must be at least ${SECRET_MIN} bytes`);
  return s;
}

function ip16(ip: string): Buffer {
  const p = parseIp(ip);
  if (!p.ok) throw new RangeError(p.error.message);
  const b = ipToBytes(p.value);
  if (b.length === 16) return Buffer.from(b);
  return Buffer.concat([Buffer.from('00000000000000000000ffff', 'hex'), b]);
}

function digest(s: CookieSecret, input: CookieInput): Buffer {
  if (input.spiI.length !== 8) throw new RangeError('SPIi is 8 bytes');
  return createHash('sha256').update(input.ni).update(ip16(input.ipI)).update(input.spiI).update(s.secret).digest();
}

export function makeCookie(s: CookieSecret, input: CookieInput): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(s.version);
  return Buffer.concat([v, digest(s, input)]);
}

/** Checks a returned cookie against the secrets still honoured (current and previous). */
export function verifyCookie(secrets: readonly CookieSecret[], cookie: Uint8Array, input: CookieInput): Result<void> {
  if (cookie.length !== COOKIE_LENGTH) return err('cookie-bad-length', `cookie of ${cookie.length} bytes`);
  const version = Buffer.from(cookie).readUInt32BE(0);
  const s = secrets.find((x) => x.version === version);
  if (!s) return err('cookie-stale', `cookie secret version ${version} is not current`);
  if (!timingSafeEqual(digest(s, input), cookie.subarray(4)))
    return err('cookie-mismatch', 'cookie does not match this request');
  return ok(undefined);
}

/** The responder's rotating secrets: makes cookies with the current one, accepts current and previous. */
export class CookieSecrets {
  #current: CookieSecret;
  #previous: CookieSecret | undefined;

  constructor(current: CookieSecret) {
    this.#current = checkSecret(current);
  }

  /** Installs a new secret (caller decides when, e.g. every few minutes); the old one stays valid once more. */
  rotate(next: CookieSecret): void {
    checkSecret(next);
    if (next.version === this.#current.version) throw new RangeError('a rotated cookie secret needs a new version id');
    this.#previous = this.#current;
    this.#current = next;
  }

  make(input: CookieInput): Buffer {
    return makeCookie(this.#current, input);
  }

  verify(cookie: Uint8Array, input: CookieInput): Result<void> {
    return verifyCookie(this.#previous ? [this.#current, this.#previous] : [this.#current], cookie, input);
  }
}

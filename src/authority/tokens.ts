// The bearer secrets the authority hands out: administrator tokens and single-use enrollment
// tokens, both `kasane-<kind>-v1.<id>.<secret>`. The id finds the row; only the secret's SHA-256 is
// stored, so a copy of the database lets nobody in, and a presented secret is compared with it in
// constant time.
import { timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../pki/keys.js';
import type { RandomSource } from '../base/random.js';

export type TokenKind = 'admin' | 'enroll';

const FORMAT: Record<TokenKind, RegExp> = {
  admin: /^kasane-admin-v1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/,
  enroll: /^kasane-enroll-v1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/,
};

export interface NewToken {
  id: string;
  /** What is stored: the SHA-256 of the secret (hex). */
  secretHash: string;
  /** What the holder gets, once. */
  token: string;
}

/** A new token: 8 random bytes of id (hex), 32 of secret (base64url). */
export function newToken(kind: TokenKind, random: RandomSource): NewToken {
  const id = Buffer.from(random(8)).toString('hex');
  const secret = Buffer.from(random(32)).toString('base64url');
  return { id, secretHash: sha256Hex(secret), token: `kasane-${kind}-v1.${id}.${secret}` };
}

/** The id and secret of a well-formed token of this kind; undefined for anything else. */
export function parseToken(kind: TokenKind, text: string): { id: string; secret: string } | undefined {
  const m = FORMAT[kind].exec(text);
  return m ? { id: m[1], secret: m[2] } : undefined;
}

/** Does `secret` hash to the stored hash (compared in constant time)? */
export function secretMatches(secretHash: string, secret: string): boolean {
  const x = Buffer.from(secretHash, 'hex');
  const y = Buffer.from(sha256Hex(secret), 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

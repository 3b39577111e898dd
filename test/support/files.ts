// Files an operator (or an attacker) might hand kasane, for the tests of how they are read
// (issue 11): a small valid topology, a valid authority.json, and YAML alias bombs.
import { CONFIG_FORMAT, DEFAULT_ROTATION, type AuthorityConfig } from '../../src/authority/config.js';

/** A valid topology of 6 lines: one terminal behind G1, G2 across the WAN. */
export const SMALL_TOPOLOGY = `vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.1.0.10 }
  - { name: G1, gateway: 192.0.2.1, inside: [A], members: { V: [10.1.0.0/24] } }
  - { name: G2, gateway: 192.0.2.2, members: { V: [10.2.0.0/24] } }
links: [[A, G1], [G1, G2]]
`;

/** authority.json as `kasane authority init` writes it. */
export const AUTHORITY_CONFIG: AuthorityConfig = {
  format: CONFIG_FORMAT,
  name: 'ACME',
  listen: { host: '127.0.0.1', port: 7443 },
  url: 'https://127.0.0.1:7443',
  sans: ['authority.acme.example'],
  rotation: DEFAULT_ROTATION,
  enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
};

/**
 * YAML lines `key: &a0 [x × 10]`, then `x1: &a1 [*a0 × 10]` ... up to `x<levels-1>`: aliases of
 * aliases, so that `x<k>` stands for 10^(k+1) nodes in a few hundred bytes.
 */
export function aliasBomb(levels: number, key = 'description'): string {
  let s = `${key}: &a0 [x, x, x, x, x, x, x, x, x, x]\n`;
  for (let i = 1; i < levels; i++)
    s += `x${i}: &a${i} [${Array(10)
      .fill(`*a${i - 1}`)
      .join(', ')}]\n`;
  return s;
}

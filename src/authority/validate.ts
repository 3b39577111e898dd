// Validation of everything an administrator or a gateway hands the authority, and the overlap rule
// for memberships. Pure functions: they return Results, the service turns them into 4xx errors.
//
// The overlap rule (what makes a membership "ambiguous"):
//   A membership says "gateway G puts the terminals of prefixes P into VPN V". A gateway claims
//   a terminal for V in key search, and receivers accept V's traffic from G only for terminals in
//   G's prefixes. So within ONE VPN every terminal must sit behind at most one gateway:
//   1. two DIFFERENT gateways must not put overlapping prefixes into the SAME VPN (refused:
//      `ambiguous-prefix`): it would make one terminal a member behind two gateways, or the same
//      VPN appear on two nested layers, which the pairing of key search cannot resolve;
//   2. the prefixes of one membership must not overlap each other (refused: `overlapping-prefixes`;
//      the same prefix given again is accepted and changes nothing).
//   Across DIFFERENT VPNs overlaps are legitimate and accepted: the same gateway putting a prefix
//   into several VPNs is multi-homing (seed 000 Fig. 1(1)/Fig. 2, terminal B in VPN1 and VPN2), and
//   an inner gateway putting 10.1.1.0/24 into a department VPN while an outer gateway puts
//   10.1.0.0/16 into the company VPN is a multi-stage (nested) VPN (seed 000 Fig. 1(2)).
import { ipFromBytes, ipToBytes, parseIp, Prefix, type Ip } from '../base/addr.js';
import { err, ok, type Result } from '../base/result.js';

export const MAX_NAME_BYTES = 63;
export const MAX_PREFIXES_PER_MEMBERSHIP = 1024;

/**
 * Characters a name may not contain, because an operator reading a list would not see them or
 * would see something else: controls (Cc), format characters (Cf: bidi overrides such as U+202E,
 * zero-width spaces U+200B, the byte-order mark U+FEFF, tag characters), line and paragraph
 * separators (Zl, Zp), private-use (Co) and unassigned (Cn) code points. What each category is.
 */
const INVISIBLE: [RegExp, string][] = [
  [/\p{Cc}/u, 'the control character'],
  [/\p{Cf}/u, 'the invisible format character'],
  [/[\p{Zl}\p{Zp}]/u, 'the line or paragraph separator'],
  [/\p{Co}/u, 'the private-use character'],
  [/\p{Cn}/u, 'the unassigned code point'],
];

/**
 * Gateway, VPN and authority names: 1..63 bytes of well-formed UTF-8 that read as what they are:
 * no control, format, separator, private-use or unassigned characters, no white space at either end.
 */
export function checkName(kind: string, name: unknown): Result<string> {
  if (typeof name !== 'string') return err('bad-name', `${kind} name must be a string`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) return err('bad-name', `${kind} name must not be empty`);
  if (bytes > MAX_NAME_BYTES)
    return err(
      'bad-name',
      `${kind} name ${JSON.stringify(name)} is ${bytes} bytes of UTF-8; at most ${MAX_NAME_BYTES} are allowed`,
    );
  if (!isWellFormed(name))
    return err('bad-name', `${kind} name contains an unpaired UTF-16 surrogate (not valid UTF-8)`);
  for (const [re, what] of INVISIBLE) {
    const m = re.exec(name);
    if (m) {
      const cp = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      return err(
        'bad-name',
        `${kind} name ${JSON.stringify(name)} contains ${what} U+${cp}; names may hold only characters that show`,
      );
    }
  }
  if (/^\s|\s$/u.test(name))
    return err('bad-name', `${kind} name ${JSON.stringify(name)} begins or ends with white space`);
  return ok(name);
}

function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

/** VPN ids are unsigned 32-bit and 0 is reserved. */
export function checkVpnId(id: unknown): Result<number> {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0xffffffff) {
    return err('bad-vpn-id', `VPN id must be an integer from 1 to 4294967295, got ${JSON.stringify(id)}`);
  }
  return ok(id);
}

// IPv6 ranges the authority refuses in memberships, the directory and gateway addresses.
// IPv4-mapped addresses (::ffff:a.b.c.d) exist only inside a host's socket API and never in an
// IPv6 packet (RFC 4291 2.5.5.2): a prefix there would protect nothing, an outside address there is
// an IPv4 address written another way, so both are refused with the IPv4 form to write instead.
// Link-local and multicast traffic is never intercepted (docs/protocol.md), so a prefix inside
// either could never be in a VPN; a link-local outside address needs a zone no peer can use.
const V4_MAPPED = Prefix.from('::ffff:0:0/96');
const LINK_LOCAL6 = Prefix.from('fe80::/10');
const MULTICAST6 = Prefix.from('ff00::/8');

function inside(outer: Prefix, p: Prefix): boolean {
  return p.length >= outer.length && outer.overlaps(p);
}

/** The IPv4 form of an IPv4-mapped prefix (length >= 96). */
function unmapped(p: Prefix): string {
  return `${ipFromBytes(p.bytes, 12, 4)}/${p.length - 96}`;
}

/** A gateway's outside address: a unicast IPv4 or IPv6 address, canonicalised. */
export function checkAddress(text: unknown): Result<Ip> {
  if (typeof text !== 'string') return err('bad-address', 'address must be a string');
  const ip = parseIp(text);
  if (!ip.ok) return err('bad-address', `gateway address ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  const v = ip.value;
  if (v === '0.0.0.0' || v === '::') return err('bad-address', `gateway address ${v} is the unspecified address`);
  if (v === '255.255.255.255' || Prefix.from('224.0.0.0/4').contains(v) || MULTICAST6.contains(v)) {
    return err('bad-address', `gateway address ${v} is not a unicast address`);
  }
  if (V4_MAPPED.contains(v)) {
    const v4 = ipFromBytes(ipToBytes(v), 12, 4);
    return err(
      'bad-address',
      `gateway address ${text.trim()} is an IPv4-mapped IPv6 address; give the IPv4 address ${v4}`,
    );
  }
  if (LINK_LOCAL6.contains(v)) {
    const why = 'other gateways cannot reach it; give a global or unique-local address';
    return err('bad-address', `gateway address ${v} is link-local (fe80::/10): ${why}`);
  }
  return ok(v);
}

/**
 * Parses CIDR prefixes (IPv4 or IPv6, canonicalised: "2001:DB8:0::/48" is 2001:db8::/48); the
 * first bad one is reported with the parser's precise message. What names prefixes to remove
 * uses this alone, so that one stored before a rule below existed can still be removed.
 */
export function parsePrefixes(list: readonly unknown[]): Result<Prefix[]> {
  if (list.length > MAX_PREFIXES_PER_MEMBERSHIP)
    return err('too-many-prefixes', `at most ${MAX_PREFIXES_PER_MEMBERSHIP} prefixes per membership`);
  const out: Prefix[] = [];
  for (const item of list) {
    if (typeof item !== 'string') return err('bad-cidr', `prefix must be a string, got ${JSON.stringify(item)}`);
    const p = Prefix.parse(item);
    if (!p.ok) return err('bad-cidr', p.error.message);
    out.push(p.value);
  }
  return ok(out);
}

/**
 * Prefixes to put into a VPN or the directory: parsed, and IPv6 ones inside ::ffff:0:0/96,
 * fe80::/10 or ff00::/8 refused (see above).
 */
export function checkPrefixes(list: readonly unknown[]): Result<Prefix[]> {
  const parsed = parsePrefixes(list);
  if (!parsed.ok) return parsed;
  for (const v of parsed.value) {
    if (inside(V4_MAPPED, v)) {
      const why = `which no IPv6 packet carries; give the IPv4 prefix ${unmapped(v)}`;
      return err('bad-cidr', `${v} is an IPv4-mapped IPv6 prefix (::ffff:0:0/96), ${why}`);
    }
    if (inside(LINK_LOCAL6, v))
      return err('bad-cidr', `${v} is link-local (fe80::/10): such traffic never enters a VPN`);
    if (inside(MULTICAST6, v)) return err('bad-cidr', `${v} is multicast (ff00::/8): such traffic never enters a VPN`);
  }
  return parsed;
}

/**
 * Applies the overlap rule to adding `add` to gateway `gateway`'s membership in VPN `vpn`, whose
 * current memberships are `members` (gateway -> prefixes). Returns the prefixes that are new
 * (duplicates of what the membership already has are dropped), or the first violation.
 */
export function checkMembershipAdd(
  vpn: string,
  members: ReadonlyMap<string, readonly Prefix[]>,
  gateway: string,
  add: readonly Prefix[],
): Result<Prefix[]> {
  for (let i = 0; i < add.length; i++) {
    for (let j = i + 1; j < add.length; j++) {
      if (add[i].overlaps(add[j])) {
        const what = add[i].equals(add[j]) ? `${add[i]} is given twice` : `${add[i]} and ${add[j]} overlap`;
        return err('overlapping-prefixes', `${what}: the prefixes of one membership must be disjoint`);
      }
    }
  }
  const own = members.get(gateway) ?? [];
  const fresh: Prefix[] = [];
  for (const p of add) {
    if (own.some((q) => q.equals(p))) continue;
    const inside = own.find((q) => q.overlaps(p));
    if (inside) {
      return err(
        'overlapping-prefixes',
        `${p} overlaps ${inside}, which ${gateway} already puts into VPN ${vpn}: the prefixes of one membership must be disjoint`,
      );
    }
    for (const [other, prefixes] of members) {
      if (other === gateway) continue;
      const clash = prefixes.find((q) => q.overlaps(p));
      if (clash) {
        return err(
          'ambiguous-prefix',
          `${p} overlaps ${clash}, which gateway ${other} already puts into VPN ${vpn}: a terminal in the overlap would be in that VPN behind two gateways ` +
            `(overlapping prefixes behind different gateways are allowed only in different VPNs, e.g. nested VPNs)`,
        );
      }
    }
    fresh.push(p);
  }
  return ok(fresh);
}

/**
 * The directory of protected prefixes as delivered: the same set of addresses in as few prefixes
 * as possible. Prefixes inside another one are dropped and two halves of a prefix are merged into
 * it (lossless: a lookup only needs to know whether some listed prefix covers a terminal).
 */
export function compactPrefixes(prefixes: readonly Prefix[]): Prefix[] {
  const sorted = [...prefixes].sort((a, b) => a.family - b.family || a.length - b.length);
  const kept: Prefix[] = [];
  const trie = { 4: [] as Prefix[], 6: [] as Prefix[] };
  for (const p of sorted) {
    if (trie[p.family].some((q) => q.overlaps(p))) continue;
    trie[p.family].push(p);
    kept.push(p);
  }
  const set = new Map(kept.map((p) => [p.toString(), p]));
  // Merge sibling pairs bottom-up until nothing merges.
  for (let merged = true; merged;) {
    merged = false;
    for (const p of [...set.values()].sort((a, b) => b.length - a.length)) {
      if (p.length === 0 || !set.has(p.toString())) continue;
      const bit = p.length - 1;
      const sib = Uint8Array.from(p.bytes);
      sib[bit >> 3] ^= 0x80 >> (bit & 7);
      const sibling = Prefix.of(ipFromBytes(sib, 0, p.family), p.length);
      if (!set.has(sibling.toString())) continue;
      set.delete(p.toString());
      set.delete(sibling.toString());
      const parent = Prefix.of(ipFromBytes(p.bytes, 0, p.family), bit);
      set.set(parent.toString(), parent);
      merged = true;
    }
  }
  return [...set.values()].sort((a, b) => a.family - b.family || compareBytes(a.bytes, b.bytes) || a.length - b.length);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Durations on the command line: "500ms", "30s", "10m", "24h", "7d", or "0". */
export function parseDuration(text: string): Result<number> {
  const t = text.trim();
  if (t === '0') return ok(0);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(t);
  if (!m) return err('bad-duration', `not a duration: ${JSON.stringify(text)} (use e.g. 30s, 10m, 24h, 7d)`);
  const v = Math.round(Number(m[1]) * UNITS[m[2]]);
  if (!Number.isSafeInteger(v)) return err('bad-duration', `duration ${text} is too long`);
  return ok(v);
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [u, f] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % f === 0) return `${ms / f}${u}`;
  return `${ms}ms`;
}

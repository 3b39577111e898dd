// Mutations: generic byte-level ones, and structure-aware ones for the formats kasane reads (DER,
// JSON, YAML, IPv4/ICMP) that change one field or one element and keep the rest well-formed, so
// that inputs get past the first length check and reach the code behind it.
import { parseDocument, stringify as yamlStringify } from 'yaml';
import type { Rng } from './rng.js';

/** Inputs never grow past this (the largest datagram, a little more). */
export const MAX_INPUT = 70_000;

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x40, 0x0a, 0x30, 0x31];
const INTERESTING_16 = [
  0x0000, 0x0001, 0x0004, 0x0008, 0x007f, 0x0080, 0x00ff, 0x0100, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x0500, 0x05dc,
  0x4000,
];

function clamp(b: Uint8Array): Uint8Array {
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** One to four byte-level changes: bit flips, interesting values, inserted, deleted, repeated or spliced ranges. */
export function mutateBytes(
  rng: Rng,
  input: Uint8Array,
  seeds: readonly Uint8Array[] = [],
  rounds = 1 + rng.int(4),
): Uint8Array {
  let b: Uint8Array = new Uint8Array(input);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(12)) {
      case 0:
        if (b.length) b[rng.int(b.length)] ^= 1 << rng.int(8);
        break;
      case 1:
        if (b.length) b[rng.int(b.length)] = rng.pick(INTERESTING_8);
        break;
      case 2:
        if (b.length) b[rng.int(b.length)] = rng.u32() & 0xff;
        break;
      case 3: {
        // A 16-bit field: interesting, or a length near the input's own.
        if (b.length < 2) break;
        const o = rng.int(b.length - 1);
        const v = rng.chance(0.5) ? rng.pick(INTERESTING_16) : Math.max(0, b.length - o + rng.int(9) - 4) & 0xffff;
        b[o] = v >> 8;
        b[o + 1] = v & 0xff;
        break;
      }
      case 4: {
        if (b.length < 4) break;
        const o = rng.int(b.length - 3);
        new DataView(b.buffer, b.byteOffset).setUint32(
          o,
          rng.pick([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, b.length, rng.u32()]),
        );
        break;
      }
      case 5:
        b = concat(b.subarray(0, at), rng.bytes(rng.size(64)), b.subarray(at));
        break;
      case 6: {
        const n = rng.size(Math.max(1, b.length - at));
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + n)));
        break;
      }
      case 7: {
        // Repeat a chunk: long runs of the same structure (lists, nesting, many payloads).
        const n = 1 + rng.size(32);
        const chunk = b.subarray(at, Math.min(b.length, at + n));
        const times = 1 + rng.size(512);
        b = concat(
          b.subarray(0, at),
          ...Array.from({ length: Math.min(times, Math.floor(MAX_INPUT / Math.max(1, chunk.length))) }, () => chunk),
          b.subarray(at),
        );
        break;
      }
      case 8:
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      case 9:
        b = concat(b, rng.bytes(rng.size(64)));
        break;
      case 10: {
        // Splice with another seed: a valid prefix of one, the rest of another.
        if (seeds.length === 0) break;
        const s = rng.pick(seeds);
        b = concat(b.subarray(0, at), s.subarray(rng.int(s.length + 1)));
        break;
      }
      default: {
        // Copy a range over another place of the input.
        if (b.length < 2) break;
        const from = rng.int(b.length);
        const n = rng.size(b.length - from);
        b.copyWithin(rng.int(b.length), from, from + n);
      }
    }
    b = clamp(b);
  }
  return b;
}

// --- DER ------------------------------------------------------------------------------------

interface DerNode {
  tag: number;
  children?: DerNode[];
  content?: Uint8Array;
}

function readDer(b: Uint8Array, at: number, end: number, depth: number): { node: DerNode; next: number } | undefined {
  if (at + 2 > end || (b[at] & 0x1f) === 0x1f) return undefined;
  let len = b[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > end) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i];
    start += n;
  }
  if (start + len > end) return undefined;
  const tag = b[at];
  if (tag & 0x20 && depth < 64) {
    const children: DerNode[] = [];
    for (let o = start; o < start + len;) {
      const c = readDer(b, o, start + len, depth + 1);
      if (!c) return { node: { tag, content: b.subarray(start, start + len) }, next: start + len };
      children.push(c.node);
      o = c.next;
    }
    return { node: { tag, children }, next: start + len };
  }
  return { node: { tag, content: b.subarray(start, start + len) }, next: start + len };
}

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  if (n < 0x10000) return [0x82, n >> 8, n & 0xff];
  return [0x83, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function writeDer(n: DerNode): Uint8Array {
  const content = n.children ? concat(...n.children.map(writeDer)) : (n.content ?? new Uint8Array(0));
  return concat(Uint8Array.of(n.tag, ...derLength(content.length)), content);
}

function nodesOf(root: DerNode): { node: DerNode; parent?: DerNode }[] {
  const out: { node: DerNode; parent?: DerNode }[] = [];
  const walk = (n: DerNode, parent?: DerNode) => {
    out.push({ node: n, parent });
    for (const c of n.children ?? []) walk(c, n);
  };
  walk(root);
  return out;
}

/** A DER element the decoders have trouble with (long BOOLEANs, huge INTEGERs, odd strings). */
function nastyDer(rng: Rng): DerNode {
  switch (rng.int(8)) {
    case 0:
      return { tag: 0x01, content: new Uint8Array(1 + rng.size(4096)).fill(0xff) };
    case 1:
      return { tag: 0x02, content: rng.bytes(1 + rng.size(2048)) };
    case 2:
      return { tag: 0x06, content: new Uint8Array(1 + rng.size(1024)).fill(0x81) };
    case 3:
      return { tag: rng.pick([0x0c, 0x13, 0x16, 0x1e, 0x1c, 0x14]), content: rng.bytes(rng.size(512)) };
    case 4:
      return {
        tag: rng.pick([0x17, 0x18]),
        content: new TextEncoder().encode(
          rng.pick([
            '991231235959Z',
            '20991231235959Z',
            '000000000000Z',
            '19700101000000.5Z',
            'X'.repeat(rng.size(100)),
          ]),
        ),
      };
    case 5:
      return {
        tag: 0x30,
        children: Array.from({ length: rng.size(300) }, () => ({ tag: 0x05, content: new Uint8Array(0) })),
      };
    case 6:
      return {
        tag: rng.pick([0x24, 0x23, 0x2c]),
        children: Array.from({ length: 1 + rng.size(50) }, () => ({ tag: 0x04, content: rng.bytes(rng.size(8)) })),
      };
    default:
      return { tag: rng.u32() & 0xff, content: rng.bytes(rng.size(64)) };
  }
}

/** Changes one element of a DER structure (its tag, contents, children, nesting) and re-encodes every length. */
export function mutateDer(rng: Rng, input: Uint8Array, seeds: readonly Uint8Array[] = []): Uint8Array {
  const parsed = readDer(input, 0, input.length, 0);
  if (!parsed || rng.chance(0.15)) return mutateBytes(rng, input, seeds);
  const root = parsed.node;
  const all = nodesOf(root);
  const { node, parent } = rng.pick(all);
  switch (rng.int(9)) {
    case 0:
      node.tag = rng.chance(0.5) ? node.tag ^ (1 << rng.int(8)) : rng.u32() & 0xff;
      break;
    case 1:
      if (node.content) node.content = mutateBytes(rng, node.content, []);
      else node.content = rng.bytes(rng.size(32));
      if (node.content) node.children = undefined;
      break;
    case 2:
      if (parent?.children) parent.children.splice(parent.children.indexOf(node), 0, structuredClone(node));
      break;
    case 3:
      if (parent?.children) parent.children.splice(parent.children.indexOf(node), 1);
      break;
    case 4: {
      const replacement = nastyDer(rng);
      Object.assign(node, { tag: replacement.tag, children: replacement.children, content: replacement.content });
      break;
    }
    case 5: {
      // Wrap in a few more SEQUENCEs (deep nesting).
      let n: DerNode = { tag: node.tag, children: node.children, content: node.content };
      for (let i = rng.size(64); i > 0; i--) n = { tag: 0x30, children: [n] };
      Object.assign(node, n);
      break;
    }
    case 6: {
      // Transplant an element of another seed.
      const other = seeds.length ? readDer(rng.pick(seeds), 0, rng.pick(seeds).length, 0) : undefined;
      if (other) {
        const donor = rng.pick(nodesOf(other.node)).node;
        Object.assign(node, { tag: donor.tag, children: donor.children, content: donor.content });
      }
      break;
    }
    case 7:
      if (parent?.children && parent.children.length > 1) {
        const i = parent.children.indexOf(node);
        const j = rng.int(parent.children.length);
        [parent.children[i], parent.children[j]] = [parent.children[j], parent.children[i]];
      }
      break;
    default: {
      // Encoded right, then one length byte wrong.
      const out = writeDer(root);
      return mutateBytes(rng, out, seeds, 1);
    }
  }
  return clamp(writeDer(root));
}

// --- JSON and YAML --------------------------------------------------------------------------

const STRINGS = [
  '',
  ' ',
  'x',
  '\u0000',
  'a\u0000b',
  '\u202e',
  '\u200b',
  '\ufeff',
  '\u2028',
  '\ud800',
  '../../etc/passwd',
  '%00',
  '0',
  '-1',
  '1e309',
  'NaN',
  'true',
  'null',
  '10.0.0.0/8',
  '10.1.0.1/24',
  '::/0',
  '0.0.0.0/0',
  '255.255.255.255',
  '::ffff:1.2.3.4',
  'fe80::1%eth0',
  '192.0.2.1',
  'é'.repeat(40),
  '東京',
  '🙂',
];

/** A value of a random type, often one that sits at an edge. */
export function nastyValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 6 : 9)) {
    case 0:
      return rng.pick(STRINGS);
    case 1:
      return 'x'.repeat(rng.size(20_000));
    case 2:
      return rng.pick([
        0,
        -0,
        1,
        -1,
        0.5,
        63,
        64,
        255,
        256,
        500,
        501,
        65535,
        65536,
        2 ** 31,
        2 ** 32,
        2 ** 53,
        2 ** 53 + 2,
        1e308,
        -1e308,
        Number.MIN_VALUE,
      ]);
    case 3:
      return rng.pick([true, false, null]);
    case 4:
      return Buffer.from(rng.bytes(rng.size(32))).toString('latin1');
    case 5:
      return rng.int(1000);
    case 6:
      return Array.from({ length: rng.size(20) }, () => nastyValue(rng, depth + 1));
    case 7:
      return Object.fromEntries(
        Array.from({ length: rng.size(6) }, () => [
          rng.pick(['name', 'id', 'x', '__proto__', 'constructor', '', '\u0000']),
          nastyValue(rng, depth + 1),
        ]),
      );
    default: {
      // Deep nesting.
      let v: unknown = 1;
      for (let i = rng.size(300); i > 0; i--) v = rng.chance(0.5) ? [v] : { a: v };
      return v;
    }
  }
}

type Container = Record<string, unknown> | unknown[];

function containersOf(v: unknown): Container[] {
  const out: Container[] = [];
  const stack: unknown[] = [v];
  while (stack.length && out.length < 10_000) {
    const x = stack.pop();
    if (x && typeof x === 'object') {
      out.push(x as Container);
      for (const c of Object.values(x as object)) stack.push(c);
    }
  }
  return out;
}

/** Changes one value of a document: its type, its contents, a key added or removed, an element repeated. */
export function mutateValue(rng: Rng, doc: unknown): unknown {
  const all = containersOf(doc);
  if (all.length === 0) return nastyValue(rng);
  const c = rng.pick(all);
  const keys = Object.keys(c);
  const key = keys.length ? rng.pick(keys) : undefined;
  switch (rng.int(6)) {
    case 0:
      if (key !== undefined) (c as Record<string, unknown>)[key] = nastyValue(rng);
      break;
    case 1:
      if (key !== undefined) {
        if (Array.isArray(c)) c.splice(Number(key), 1);
        else delete (c as Record<string, unknown>)[key];
      }
      break;
    case 2:
      if (Array.isArray(c))
        c.push(
          ...Array.from({ length: rng.size(200) }, () =>
            c.length ? structuredClone(c[rng.int(c.length)]) : nastyValue(rng),
          ),
        );
      else
        (c as Record<string, unknown>)[rng.pick(['extra', 'colour', '__proto__', 'name ', 'NAME'])] = nastyValue(rng);
      break;
    case 3:
      // A value of another type where one was expected.
      if (key !== undefined) {
        const v = (c as Record<string, unknown>)[key];
        (c as Record<string, unknown>)[key] =
          typeof v === 'string'
            ? rng.chance(0.5)
              ? Number(v) || 7
              : [v]
            : typeof v === 'number'
              ? String(v)
              : v && typeof v === 'object'
                ? JSON.stringify(v)
                : { v };
      }
      break;
    case 4:
      if (key !== undefined && typeof (c as Record<string, unknown>)[key] === 'string') {
        const s = (c as Record<string, string>)[key];
        const at = rng.int(s.length + 1);
        (c as Record<string, unknown>)[key] = s.slice(0, at) + rng.pick(STRINGS) + s.slice(at);
      }
      break;
    default:
      if (key !== undefined && typeof (c as Record<string, unknown>)[key] === 'number')
        (c as Record<string, unknown>)[key] =
          ((c as Record<string, number>)[key] as number) + rng.pick([-1, 1, 1e9, -1e9, 0.5]);
  }
  return doc;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A JSON text with one value changed (or, when it is not JSON, its bytes). */
export function mutateJson(rng: Rng, input: Uint8Array, seeds: readonly Uint8Array[] = []): Uint8Array {
  let doc: unknown;
  try {
    doc = JSON.parse(decoder.decode(input));
  } catch {
    return mutateBytes(rng, input, seeds);
  }
  if (rng.chance(0.1)) return mutateBytes(rng, input, seeds);
  for (let i = 1 + rng.int(3); i > 0; i--) doc = mutateValue(rng, doc);
  return clamp(encoder.encode(JSON.stringify(doc) ?? 'null'));
}

const YAML_SNIPPETS = [
  '&a [x, x, x]',
  '*a',
  '!!binary aGVsbG8=',
  '!!set {a, b}',
  '!!timestamp 2001-12-14',
  '.nan',
  '-.inf',
  '~',
  '0x1F',
  '0o17',
  '1e400',
  '|\n  text\n  more',
  '>-\n  folded',
  '"\\u0000"',
  "'it''s'",
  '? complex key\n: value',
  '<<: *a',
  '[',
  '{',
  '%YAML 1.1\n---\n',
  '--- !!map\n',
  '\ufeff',
];

/** A YAML text with one value changed, or YAML's own constructs (anchors, aliases, tags, odd scalars) put in. */
export function mutateYaml(
  rng: Rng,
  input: Uint8Array,
  seeds: readonly Uint8Array[] = [],
  parsed?: unknown,
): Uint8Array {
  const text = decoder.decode(input);
  const r = rng.int(10);
  if (r < 5) {
    try {
      // `parsed`: the input's value when the caller has it already (parsing is most of the cost).
      const doc = parsed === undefined ? parseDocument(text, { uniqueKeys: false }) : undefined;
      if (!doc || doc.errors.length === 0) {
        const value = mutateValue(rng, doc ? doc.toJS({ maxAliasCount: 1000 }) : structuredClone(parsed));
        return clamp(
          encoder.encode(
            rng.chance(0.3)
              ? (JSON.stringify(value) ?? 'null')
              : yamlStringify(value, { aliasDuplicateObjects: rng.chance(0.5) }),
          ),
        );
      }
    } catch {
      // fall through to text changes
    }
  }
  if (r < 8) {
    const lines = text.split('\n');
    const i = rng.int(lines.length);
    const line = lines[i];
    const at = line.indexOf(': ') >= 0 && rng.chance(0.7) ? line.indexOf(': ') + 2 : rng.int(line.length + 1);
    lines[i] = line.slice(0, at) + rng.pick(YAML_SNIPPETS) + (rng.chance(0.5) ? '' : ' ') + line.slice(at);
    if (rng.chance(0.2)) {
      // An alias bomb of a few levels.
      let bomb = 'x0: &b0 [y, y, y, y, y, y, y, y, y, y]\n';
      for (let k = 1; k < 3 + rng.int(7); k++)
        bomb += `x${k}: &b${k} [${Array(10)
          .fill(`*b${k - 1}`)
          .join(', ')}]\n`;
      lines.push(bomb);
    }
    return clamp(encoder.encode(lines.join('\n')));
  }
  return mutateBytes(rng, input, seeds);
}

// --- IPv4 -----------------------------------------------------------------------------------

function ipChecksum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Recomputes the IPv4 header checksum (and the ICMP one), so that a mutated packet gets past them. */
export function fixChecksums(p: Uint8Array): Uint8Array {
  if (p.length < 20 || p[0] >> 4 !== 4) return p;
  const ihl = (p[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > p.length) return p;
  p[10] = p[11] = 0;
  const c = ipChecksum(p, 0, ihl);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  if (p[9] === 1 && p.length >= ihl + 4) {
    p[ihl + 2] = p[ihl + 3] = 0;
    const ic = ipChecksum(p, ihl, p.length - ihl);
    p[ihl + 2] = ic >> 8;
    p[ihl + 3] = ic & 0xff;
  }
  return p;
}

/** Changes one IPv4 (or ICMP) header field, or the payload, of a packet; usually fixes the checksums after. */
export function mutateIpv4(
  rng: Rng,
  input: Uint8Array,
  seeds: readonly Uint8Array[] = [],
  payload?: (rng: Rng, p: Uint8Array) => Uint8Array,
): Uint8Array {
  if (input.length < 20 || input[0] >> 4 !== 4 || rng.chance(0.1)) return mutateBytes(rng, input, seeds);
  let p: Uint8Array = new Uint8Array(input);
  const ihl = Math.max(20, (p[0] & 0x0f) * 4);
  const dv = new DataView(p.buffer, p.byteOffset);
  switch (rng.int(10)) {
    case 0:
      p[0] = (rng.chance(0.8) ? 0x40 : rng.int(16) << 4) | rng.pick([5, 6, 15, 4, 0, rng.int(16)]);
      break;
    case 1:
      dv.setUint16(2, rng.pick([p.length, p.length - 1, p.length + 1, 0, 20, 0xffff, rng.int(0x10000)]));
      break;
    case 2:
      dv.setUint16(6, rng.pick([0x4000, 0x2000, 0x0000, 0x2001, 0x1fff, 0x3fff, rng.int(0x10000)]));
      break;
    case 3:
      p[8] = rng.pick([0, 1, 2, 64, 255]);
      break;
    case 4:
      p[9] = rng.pick([1, 6, 17, 50, 0, 4, 41, rng.u32() & 0xff]);
      break;
    case 5: {
      // Options: a longer header.
      const opts = rng.bytes(4 * (1 + rng.int(10)));
      p = concat(p.subarray(0, 20), opts, p.subarray(ihl));
      p[0] = 0x40 | ((20 + opts.length) / 4);
      new DataView(p.buffer, p.byteOffset).setUint16(2, p.length);
      break;
    }
    case 6:
      if (seeds.length) {
        const s = rng.pick(seeds);
        if (s.length >= 20) p.set(s.subarray(12, 20), 12); // addresses of another capture
      }
      break;
    case 7:
      if (p.length > ihl) {
        const inner =
          payload && rng.chance(0.7) ? payload(rng, p.subarray(ihl)) : mutateBytes(rng, p.subarray(ihl), []);
        p = concat(p.subarray(0, ihl), inner);
        new DataView(p.buffer, p.byteOffset).setUint16(2, Math.min(0xffff, p.length));
      }
      break;
    case 8:
      if (p.length >= ihl + 2) {
        p[ihl] = rng.pick([0, 8, 3, 11, 5, rng.u32() & 0xff]);
        p[ihl + 1] = rng.pick([0, 4, 1, rng.u32() & 0xff]);
      }
      break;
    default:
      p = new Uint8Array(mutateBytes(rng, p, seeds, 1));
  }
  return clamp(rng.chance(0.8) ? fixChecksums(p) : p);
}

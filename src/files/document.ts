// Reading the files operators write — `kasane simulate` topologies, gateway configuration,
// authority.json — so that a bad file is a list of problems with their line and field, never an
// exception, an out-of-memory crash or minutes of CPU (issue 11).
//
//   - Size: a file over its limit is refused before it is read. YAML and JSON have separate
//     limits because the YAML parser needs about 120 times the file's size in memory and reads
//     well under 1 MB/s, while JSON.parse reads tens of MB/s at a fraction of that memory.
//   - JSON (the text starts with "{" or "[") is parsed by JSON.parse; positions are found only
//     for the fields that have problems, by one linear scan of the text (jsonPositions).
//   - YAML aliases are expanded only after counting what they expand to: an alias that stands
//     for more than MAX_ALIAS_NODES nodes, or aliases that together add more than
//     MAX_ALIAS_TOTAL nodes, are refused at the alias's line and field (an "alias bomb").
//   - Anything the parser throws (very deep nesting) becomes a problem too.
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

export type PathKey = string | number;

/** A file an operator wrote that kasane cannot use: the CLI exits with status 2 and the problems. */
export class BadFileError extends Error {
  readonly exitCode = 2;
}

export interface DocumentIssue {
  /** Where in the document, e.g. `nodes[3].inside[0]`, or `(file)` / `(syntax)`. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export interface DocumentLimits {
  /** What the file is, for messages ("topology", "gateway configuration"). */
  kind: string;
  maxYamlBytes: number;
  maxJsonBytes: number;
  /** Only JSON is accepted (authority.json): a syntax error is JSON's, with its position. */
  jsonOnly?: boolean;
}

export interface LoadedDocument {
  value: unknown;
  /** The file's name for messages (its base name), when it came from a file. */
  file?: string;
  /** Line and column (1-based) of the value at each path, or of its nearest ancestor that exists (one pass for all). */
  locate(paths: readonly (readonly PathKey[])[]): ({ line: number; column: number } | undefined)[];
}

/** An alias may stand for at most this many nodes... */
export const MAX_ALIAS_NODES = 10_000;
/** ...and all aliases together may add at most this many. */
export const MAX_ALIAS_TOTAL = 100_000;
/** Issues reported at most. */
const MAX_ISSUES = 50;

export type DocumentSource = { text: string; file?: string } | { path: string };

export function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? key : `.${key}`;
  return out === '' ? '(top level)' : out;
}

const MiB = 1024 * 1024;

function sizeText(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`;
}

/** Reads and parses a document; the error lists every problem found, with line and field. */
export function readDocument(
  source: DocumentSource,
  limits: DocumentLimits,
): { ok: true; value: LoadedDocument } | { ok: false; issues: DocumentIssue[]; file?: string } {
  let text: string;
  let file: string | undefined;
  const max = Math.max(limits.maxYamlBytes, limits.maxJsonBytes);
  if ('path' in source) {
    file = basename(source.path);
    try {
      const size = statSync(source.path).size;
      if (size > max)
        return {
          ok: false,
          file,
          issues: [
            {
              path: '(file)',
              message: `${source.path} is ${sizeText(size)}; ${limits.kind} files are limited to ${sizeText(limits.maxJsonBytes)} of JSON or ${sizeText(limits.maxYamlBytes)} of YAML`,
            },
          ],
        };
      text = readFileSync(source.path, 'utf8');
    } catch (e) {
      const reason =
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : e instanceof Error ? e.message : String(e);
      return { ok: false, file, issues: [{ path: '(file)', message: `cannot read ${source.path}: ${reason}` }] };
    }
  } else {
    text = source.text;
    file = source.file;
  }
  const bytes = Buffer.byteLength(text);
  const json = /^\s*[{[]/.test(text);
  const limit = json ? limits.maxJsonBytes : limits.maxYamlBytes;
  if (bytes > limit) {
    return {
      ok: false,
      file,
      issues: [
        {
          path: '(file)',
          message: `${file ?? 'the text'} is ${sizeText(bytes)} of ${json ? 'JSON' : 'YAML'}; ${limits.kind} files are limited to ${sizeText(limit)} of ${json ? 'JSON' : 'YAML'}${json ? '' : ` (${sizeText(limits.maxJsonBytes)} as JSON)`}`,
        },
      ],
    };
  }
  if (json || limits.jsonOnly) {
    try {
      const value = JSON.parse(text) as unknown;
      return { ok: true, value: { value, file, locate: (paths) => (paths.length ? jsonPositions(text, paths) : []) } };
    } catch (e) {
      if (limits.jsonOnly) {
        const message = e instanceof Error ? e.message : String(e);
        const offset = /position (\d+)/.exec(message)?.[1];
        // Some node versions do not say where: the YAML parser (JSON is YAML) usually can.
        const where = offset !== undefined ? positionIn(text, Number(offset)) : yamlErrorAt(text);
        return {
          ok: false,
          file,
          issues: [
            {
              path: '(syntax)',
              ...where,
              message: `not valid JSON: ${/^[^,\n]*?(?=,|\n| in JSON|$)/.exec(message)![0]}`,
            },
          ],
        };
      }
      // Not JSON after all (YAML flow style starts with "{" too): read it as YAML, which says where.
      if (bytes > limits.maxYamlBytes)
        return {
          ok: false,
          file,
          issues: [
            {
              path: '(syntax)',
              message: `not valid JSON, and too large (${sizeText(bytes)}) to read as YAML (at most ${sizeText(limits.maxYamlBytes)})`,
            },
          ],
        };
    }
  }
  return readYaml(text, file);
}

function readYaml(
  text: string,
  file: string | undefined,
): { ok: true; value: LoadedDocument } | { ok: false; issues: DocumentIssue[]; file?: string } {
  const lines = new LineCounter();
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  } catch (e) {
    return {
      ok: false,
      file,
      issues: [{ path: '(syntax)', message: `cannot be parsed: ${e instanceof Error ? e.message : String(e)}` }],
    };
  }
  if (doc.errors.length > 0) {
    const why = (m: string) => (/call stack/i.test(m) ? `${m} (nested too deeply)` : m);
    return {
      ok: false,
      file,
      issues: doc.errors
        .slice(0, MAX_ISSUES)
        .map((e) => ({ path: '(syntax)', ...at(e.pos[0]), message: why(e.message.split('\n')[0]) })),
    };
  }
  const bombs = aliasBombs(doc);
  if (bombs.length > 0)
    return {
      ok: false,
      file,
      issues: bombs.map((b) => ({
        path: formatPath(b.path),
        ...(b.offset !== undefined ? at(b.offset) : {}),
        message: b.message,
      })),
    };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: -1 }); // counted above
  } catch (e) {
    return {
      ok: false,
      file,
      issues: [{ path: '(syntax)', message: `cannot be read: ${e instanceof Error ? e.message : String(e)}` }],
    };
  }
  return {
    ok: true,
    value: {
      value,
      file,
      locate(paths) {
        return paths.map((path) => {
          for (let depth = path.length; depth >= 1; depth--) {
            const node = doc.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
            if (node?.range) return at(node.range[0]);
          }
          return undefined;
        });
      },
    },
  };
}

interface AliasBomb {
  path: PathKey[];
  offset?: number;
  message: string;
}

/**
 * Counts, without expanding anything, how many nodes each alias stands for (anchors resolved in
 * document order, as YAML does) and reports the aliases past the bounds, and keys that are lists or
 * mappings. Iterative: a deeply nested document cannot overflow the stack here.
 */
function aliasBombs(doc: Document.Parsed): AliasBomb[] {
  const size = new Map<Node, number>(); // expanded size of every node already finished
  const anchors = new Map<string, Node>();
  const out: AliasBomb[] = [];
  const reported = new Set<string>(); // one problem per anchor is enough
  let added = 0;
  type Frame = { node: Node; path: PathKey[]; children: { node: Node; key: PathKey }[]; next: number; total: number };
  const childrenOf = (node: Node, at: PathKey[]): { node: Node; key: PathKey }[] => {
    if (isMap(node)) {
      const c: { node: Node; key: PathKey }[] = [];
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        // A list or a mapping as a key ("? [a, b]: x"): no field of ours is named like that.
        if (pair.key && typeof pair.key === 'object' && !isScalar(pair.key))
          out.push({
            path: at,
            offset: (pair.key as Node).range?.[0],
            message: 'a list or a mapping used as a key; keys are names',
          });
        if (pair.value && typeof pair.value === 'object') c.push({ node: pair.value as Node, key });
      }
      return c;
    }
    if (isSeq(node))
      return node.items.flatMap((n, i) => (n && typeof n === 'object' ? [{ node: n as Node, key: i }] : []));
    return [];
  };
  if (!doc.contents) return out;
  const stack: Frame[] = [{ node: doc.contents, path: [], children: childrenOf(doc.contents, []), next: 0, total: 1 }];
  while (stack.length > 0 && out.length < MAX_ISSUES) {
    const f = stack[stack.length - 1];
    if (f.next < f.children.length) {
      const c = f.children[f.next++];
      const path = [...f.path, c.key];
      if (isAlias(c.node)) {
        const target = anchors.get(c.node.source);
        const n = target ? (size.get(target) ?? MAX_ALIAS_NODES + 1) : 1; // an alias inside its own anchor: endless
        added += n;
        if (reported.has(c.node.source) && (n > MAX_ALIAS_NODES || added > MAX_ALIAS_TOTAL)) {
          f.total += n;
          continue;
        }
        if (n > MAX_ALIAS_NODES || added > MAX_ALIAS_TOTAL) reported.add(c.node.source);
        if (n > MAX_ALIAS_NODES)
          out.push({
            path,
            offset: c.node.range?.[0],
            message: `alias *${c.node.source} stands for ${target && size.has(target) ? n : 'an endless number of'} nodes; an alias may stand for at most ${MAX_ALIAS_NODES} (an alias bomb?)`,
          });
        else if (added > MAX_ALIAS_TOTAL)
          out.push({
            path,
            offset: c.node.range?.[0],
            message: `aliases up to here stand for ${added} nodes; at most ${MAX_ALIAS_TOTAL} in all (an alias bomb?)`,
          });
        f.total += n;
        continue;
      }
      const anchor = (c.node as { anchor?: string }).anchor;
      if (anchor) anchors.set(anchor, c.node);
      stack.push({ node: c.node, path, children: childrenOf(c.node, path), next: 0, total: 1 });
      continue;
    }
    stack.pop();
    size.set(f.node, Math.min(f.total, Number.MAX_SAFE_INTEGER));
    if (stack.length > 0) stack[stack.length - 1].total += f.total;
  }
  return out;
}

/** Where the YAML parser sees the first error in a text, if it sees one. */
function yamlErrorAt(text: string): { line: number; column: number } | Record<string, never> {
  try {
    const lines = new LineCounter();
    const e = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true }).errors[0];
    if (!e) return {};
    const p = lines.linePos(e.pos[0]);
    return { line: p.line, column: p.col };
  } catch {
    return {};
  }
}

/** Line and column (1-based) of an offset in a text. */
function positionIn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let j = text.indexOf('\n'); j >= 0 && j < offset; j = text.indexOf('\n', j + 1)) {
    line++;
    start = j + 1;
  }
  return { line, column: offset - start + 1 };
}

/**
 * Positions (1-based line and column) of the values at `paths` in a JSON text already known to be
 * valid, by one linear scan. For a path that is not there, its nearest ancestor's.
 */
export function jsonPositions(
  text: string,
  paths: readonly (readonly PathKey[])[],
): ({ line: number; column: number } | undefined)[] {
  const wanted = new Map<string, number>(); // path key -> offset found
  const key = (p: readonly PathKey[]) => JSON.stringify(p);
  for (const p of paths) for (let d = 0; d <= p.length; d++) wanted.set(key(p.slice(0, d)), -1);
  // Paths are built only while they lead to a wanted one (a 200,000-deep array costs no copies).
  type Frame = { kind: 'object' | 'array'; path?: PathKey[]; index: number; key?: string };
  const stack: Frame[] = [];
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const readString = (): string => {
    const start = i;
    i++; // opening quote
    while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  /** The path of the value about to start, when it is on the way to a wanted one. */
  const currentPath = (): PathKey[] | undefined => {
    const top = stack[stack.length - 1];
    if (!top) return [];
    if (!top.path) return undefined;
    const p = [...top.path, top.kind === 'array' ? top.index : top.key!];
    return wanted.has(key(p)) ? p : undefined;
  };
  for (;;) {
    ws();
    if (i >= n) break;
    const top = stack[stack.length - 1];
    const ch = text[i];
    if (top?.kind === 'object' && top.key === undefined) {
      if (ch === '}') stack.pop();
      else if (ch !== ',') {
        top.key = top.path ? readString() : (readString(), '');
        ws(); // then the colon
      }
      i++;
      continue;
    }
    if (top?.kind === 'array' && (ch === ',' || ch === ']')) {
      if (ch === ']') stack.pop();
      else top.index++;
      i++;
      continue;
    }
    // A value starts here.
    const path = currentPath();
    if (path) {
      const k = key(path);
      if (wanted.get(k) === -1) wanted.set(k, i);
    }
    if (top?.kind === 'object') top.key = undefined; // the next thing in it is a key again
    if (ch === '{' || ch === '[') {
      i++;
      stack.push({ kind: ch === '{' ? 'object' : 'array', path, index: 0 });
      ws();
      if (ch === '[' && text[i] === ']') {
        stack.pop();
        i++;
      }
      continue;
    }
    if (ch === '"') readString();
    else while (i < n && !',]}'.includes(text[i]) && !/\s/.test(text[i])) i++;
    if (stack.length === 0) break;
  }
  const lineStarts: number[] = [0];
  const needed = [...wanted.values()].filter((o) => o >= 0);
  if (needed.length > 0) for (let j = 0; j < n; j++) if (text.charCodeAt(j) === 10) lineStarts.push(j + 1);
  const position = (offset: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - lineStarts[lo] + 1 };
  };
  return paths.map((p) => {
    for (let d = p.length; d >= 0; d--) {
      const o = wanted.get(key(p.slice(0, d)));
      if (o !== undefined && o >= 0) return position(o);
    }
    return undefined;
  });
}

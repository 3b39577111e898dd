// The code's dependencies point one way (issue 13): every import in src/ goes to a folder on a
// lower line of the README's "Layers" list, no two files import each other through any chain, and
// every folder of src/ has its place in the list. Imports are read from the sources as written
// (static, type-only, re-exports and dynamic import()).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const SRC = join(ROOT, 'src');

/** The README's layers, top first: each line a set of folders that may not import each other. */
function readmeLayers(): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- layers: top first -->\s*```\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README.md has the "Layers" list');
  return m[1]
    .split('\n')
    .map((l) => l.trim().split(/\s+/).filter(Boolean))
    .filter((l) => l.length > 0);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.(ts|mts)$/.test(n) ? [p] : [];
  });
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** The files of src/ a file imports (relative specifiers, resolved as TypeScript's NodeNext does). */
function importsOf(file: string): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const target = normalize(join(dirname(file), m[1])).replace(/\.js$/, '.ts');
    out.push(existsSync(target) && statSync(target).isDirectory() ? join(target, 'index.ts') : target);
  }
  return out;
}

const folderOf = (file: string) => relative(SRC, file).split('/')[0];

function graph(): Map<string, string[]> {
  return new Map(sourceFiles(SRC).map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC + '/'))]));
}

/** Strongly connected components with more than one file (Tarjan): each is an import cycle. */
function cycles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) {
        on.delete(w);
        comp.push(w);
        if (w === v) break;
      }
      if (comp.length > 1) out.push(comp.map((f) => relative(ROOT, f)).sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out;
}

test("every folder of src/ is on exactly one line of the README's layers, and every listed folder exists", () => {
  const layers = readmeLayers();
  const listed = layers.flat();
  assert.equal(new Set(listed).size, listed.length, `a folder listed twice: ${listed.join(' ')}`);
  const folders = readdirSync(SRC)
    .filter((n) => statSync(join(SRC, n)).isDirectory())
    .sort();
  assert.deepEqual([...listed].sort(), folders);
  assert.deepEqual(
    readdirSync(SRC).filter((n) => !statSync(join(SRC, n)).isDirectory()),
    [],
    'no source files outside a folder',
  );
});

/** Imports from a folder to one on its own line or above: "from -> to" per import. */
function climbing(g: Map<string, string[]>, layers: string[][]): string[] {
  const rank = new Map(layers.flatMap((line, i) => line.map((f) => [f, layers.length - i] as const)));
  const out: string[] = [];
  for (const [file, targets] of g) {
    const from = folderOf(file);
    for (const t of targets) {
      const to = folderOf(t);
      if (to !== from && !(rank.get(to)! < rank.get(from)!))
        out.push(`${relative(ROOT, file)} -> ${relative(ROOT, t)}`);
    }
  }
  return out;
}

test('imports only go down the layers: never to a folder on the same line or above', () => {
  assert.deepEqual(climbing(graph(), readmeLayers()), []);
});

test('no import cycles between files (type-only imports included)', () => {
  assert.deepEqual(cycles(graph()), []);
});

test('the checks see what they check: a climbing import and a cycle are found', () => {
  // The reader and the cycle finder on a graph of known shape (a check that finds nothing must
  // be able to find something).
  const a = join(SRC, 'x/a.ts');
  const b = join(SRC, 'x/b.ts');
  const c = join(SRC, 'y/c.ts');
  assert.deepEqual(
    cycles(
      new Map([
        [a, [b]],
        [b, [a, c]],
        [c, []],
      ]),
    ),
    [['src/x/a.ts', 'src/x/b.ts']],
  );
  const layers = [['y'], ['x', 'z']];
  assert.deepEqual(
    climbing(
      new Map([
        [a, [c]],
        [c, []],
      ]),
      layers,
    ),
    ['src/x/a.ts -> src/y/c.ts'],
    'up a line',
  );
  assert.deepEqual(
    climbing(new Map([[a, [join(SRC, 'z/d.ts')]]]), layers),
    ['src/x/a.ts -> src/z/d.ts'],
    'along a line',
  );
  assert.deepEqual(
    climbing(
      new Map([
        [c, [a]],
        [a, [b]],
      ]),
      layers,
    ),
    [],
    'down a line, and within a folder',
  );
  const signature = importsOf(join(SRC, 'ike/crypto/signature.ts'));
  assert.ok(signature.includes(join(SRC, 'pki/ecdsa-signature.ts')), 'a static import is read');
  assert.ok(signature.includes(join(SRC, 'base/result.ts')), 'a type import is read');
});

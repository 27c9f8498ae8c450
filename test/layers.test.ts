// The folder order of src/ (PLAN.md, DESIGN.md "Layers"), read from the
// imports themselves (TypeScript's own pre-processor: static, type-only,
// re-exports and dynamic import()): an import runs downwards only, no two
// folders import each other, and cli, bench and reliability never import one
// another except cli, the binary, dispatching to the other two; and no files
// import one another in a circle.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

const BELOW_FUSE = ['core', 'media', 'ppt', 'fs'];
const LIBRARIES = [...BELOW_FUSE, 'fuse', 'lib'];
/** What each folder may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  media: ['core'],
  ppt: ['core', 'media'],
  fs: ['core', 'media', 'ppt'],
  fuse: ['core', 'fs'], // DESIGN.md: the media layer and page tables only through fs
  lib: ['core'],
  bench: LIBRARIES,
  reliability: LIBRARIES,
  cli: [...LIBRARIES, 'bench', 'reliability'],
};

interface SourceFile { file: string; imports: string[] }

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}

function read(file: string): SourceFile {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return { file: relative(src, file), imports: info.importedFiles.map((f) => f.fileName) };
}

/** The folder under src/ a path (relative to src/) lies in, or undefined outside src/. */
function folderOf(pathFromSrc: string): string | undefined {
  if (pathFromSrc.startsWith('..')) return undefined;
  const [first, ...rest] = pathFromSrc.split(sep);
  return rest.length ? first : undefined;
}

/** Imports that break the order, and folders that import each other. */
function problems(files: SourceFile[]): string[] {
  const out: string[] = [];
  const edges = new Set<string>();
  for (const f of files) {
    const from = folderOf(f.file);
    if (!from) continue;
    if (!(from in ALLOWED)) {
      out.push(`src/${from}/ has no place in the folder order (add it to ALLOWED and to PLAN.md)`);
      continue;
    }
    for (const spec of f.imports) {
      if (!spec.startsWith('.')) continue; // a package or node: builtin
      const to = folderOf(relative(src, resolve(src, dirname(f.file), spec)));
      if (!to || to === from) continue;
      edges.add(`${from}>${to}`);
      if (!ALLOWED[from]?.includes(to)) out.push(`src/${f.file} imports ${spec}: ${from} may not import ${to}`);
    }
  }
  for (const e of edges) {
    const [a, b] = e.split('>');
    if (a! < b! && edges.has(`${b}>${a}`)) out.push(`${a} and ${b} import each other`);
  }
  return out;
}

/** Files of src/ that import one another, directly or round a longer circle (Tarjan's strongly connected components). */
function fileCycles(files: SourceFile[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const f of files) {
    const out = f.imports.filter((s) => s.startsWith('.')).map((s) => relative(src, resolve(src, dirname(f.file), s)).replace(/\.js$/, '.ts'));
    edges.set(f.file, out);
  }
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
      onStack.delete(w);
      scc.push(w);
      if (w === v) break;
    }
    if (scc.length > 1) cycles.push(scc.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

t.test('src/: imports run downwards only, and no two folders import each other', async (t) => {
  const files = sources(src).map(read);
  t.ok(files.length > 100, `${files.length} files read`);
  t.ok(files.some((f) => f.file.startsWith(`fs${sep}`) && f.imports.some((i) => i.includes('core/format'))), 'the reader sees imports (fs reads core/format)');
  t.same(problems(files), [], 'no import against the order');
  t.same(fileCycles(files).map((c) => c.join(' -> ')), [], 'no two files import each other, nor round a longer circle');
});

t.test('the check catches what it is for', async (t) => {
  const p = problems([
    { file: join('media', 'pool.ts'), imports: ['../fs/api.js', './native.js', 'node:fs'] },
    { file: join('fs', 'api.ts'), imports: ['../media/pool.js'] },
    { file: join('lib', 'map.ts'), imports: ['../media/native.js'] },
    { file: join('bench', 'x.ts'), imports: ['../cli/format.js', '../reliability/y.js'] },
    { file: join('newfolder', 'x.ts'), imports: [] },
  ]);
  t.match(p.join('\n'), /media may not import fs/, 'upwards');
  t.match(p.join('\n'), /fs and media import each other/, 'a circle');
  t.match(p.join('\n'), /lib may not import media/, 'lib uses core only');
  t.match(p.join('\n'), /bench may not import cli/, 'bench never imports cli');
  t.match(p.join('\n'), /bench may not import reliability/, 'nor reliability');
  t.match(p.join('\n'), /newfolder\/ has no place/, 'a new folder must be placed');
  const circle = fileCycles([
    { file: join('fs', 'a.ts'), imports: ['./b.js'] },
    { file: join('fs', 'b.ts'), imports: ['./c.js'] },
    { file: join('fs', 'c.ts'), imports: ['./a.js', '../core/x.js'] },
    { file: join('fs', 'd.ts'), imports: ['./a.js'] },
  ]);
  t.same(circle, [[join('fs', 'a.ts'), join('fs', 'b.ts'), join('fs', 'c.ts')]], 'a circle of three files is found, and only it');
});

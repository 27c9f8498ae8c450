#!/usr/bin/env node
// Writes native-shim/include/daxvm_format.h and the per-module headers it
// includes (native-shim/include/format/*.h) from the format modules
// (src/core/format/*.ts, compiled to dist/core/format/*.js: run `npm run build`
// first), so that the C core reads the same byte layouts as TypeScript:
//
//   node scripts/gen-format-header.mjs           write the headers
//   node scripts/gen-format-header.mjs --check   exit 1 when a committed one differs
//
// Every exported Layout and Constants object of every format module is
// emitted (see src/core/format/describe.ts); a new module, such as the shared
// namespace's, needs no change here. test/core-format.test.ts renders the
// headers from the TypeScript sources and fails when a committed file
// differs, and compiles them (their _Static_asserts check the struct offsets).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const HEADER_PATH = join(root, 'native-shim', 'include', 'daxvm_format.h');

const C_TYPE = { u8: 'uint8_t', u16: 'uint16_t', u32: 'uint32_t', u64: 'uint64_t', f64: 'double' };
const ALIGN = { u8: 1, u16: 2, u32: 4, u64: 8, f64: 8, bytes: 1 };

const isLayout = (x) => typeof x === 'object' && x !== null && x.kind === 'daxvm-layout';
const isConstants = (x) => typeof x === 'object' && x !== null && x.kind === 'daxvm-constants';
const comment = (s) => `/* ${String(s).replace(/\*\//g, '* /')} */`;

function cValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  // Large numbers (magics, sizes) in hex, as one reads them in a hex dump.
  const text = v >= 0x10000 ? `0x${v.toString(16)}` : String(v);
  if (v > 0xffffffff) return `${text}ULL`;
  if (v > 0x7fffffff) return `${text}U`;
  return text;
}

function renderConstants(c, define) {
  const out = [comment(`${c.name}: ${c.doc}`)];
  for (const [k, v] of Object.entries(c.values)) out.push(define(`DAXVM_${k}`, cValue(v)));
  return out;
}

function renderLayout(l, define) {
  const N = l.name.toUpperCase();
  const out = [comment(`${l.name} (${l.size} bytes): ${l.doc}`)];
  out.push(define(`DAXVM_${N}_BYTES`, String(l.size)));
  for (const f of l.fields) out.push(`${define(`DAXVM_${N}_${f.name.toUpperCase()}_OFF`, String(f.offset))} ${comment(`${f.type}${f.type === 'bytes' ? `[${f.size}]` : ''}: ${f.doc}`)}`);
  if (l.seal) {
    out.push(`${define(`DAXVM_${N}_CRC_FROM`, String(l.seal.from))} ${comment(`${l.seal.algorithm} of bytes [from, to) in ${l.seal.at}`)}`);
    out.push(define(`DAXVM_${N}_CRC_TO`, String(l.seal.to)));
  }
  // A struct only where every field is naturally aligned: reading it in place is then plain C.
  const maxAlign = Math.max(1, ...l.fields.map((f) => ALIGN[f.type]));
  if (l.size % maxAlign !== 0 || l.fields.some((f) => f.offset % ALIGN[f.type] !== 0)) return out;
  out.push(`struct daxvm_${l.name} {`);
  let at = 0;
  for (const f of l.fields) {
    if (f.offset > at) out.push(`\tuint8_t _pad${at}[${f.offset - at}];`);
    out.push(f.type === 'bytes' ? `\tuint8_t ${f.name}[${f.size}];` : `\t${C_TYPE[f.type]} ${f.name};`);
    at = f.offset + f.size;
  }
  if (l.size > at) out.push(`\tuint8_t _pad${at}[${l.size - at}];`);
  out.push('};');
  out.push(`_Static_assert(sizeof(struct daxvm_${l.name}) == DAXVM_${N}_BYTES, "${l.name}: size");`);
  for (const f of l.fields) {
    out.push(`_Static_assert(offsetof(struct daxvm_${l.name}, ${f.name}) == DAXVM_${N}_${f.name.toUpperCase()}_OFF, "${l.name}.${f.name}");`);
  }
  return out;
}

/**
 * The headers' texts by path under native-shim/include: one per format module
 * that exports a layout or constants (`format/<module>.h`), and the umbrella
 * `daxvm_format.h` that includes them all (what the C core includes).
 * `modules`: [{ file: 'inode.ts', exports: <the module> }], in any order
 * (sorted here); an object exported twice is emitted once, and a macro
 * name defined by two modules is refused.
 */
export function renderHeaders(modules) {
  const seen = new Set();
  const names = new Map();
  const define = (name, value) => {
    if (names.has(name)) throw new Error(`${name} is defined twice (${names.get(name)} and ${value})`);
    names.set(name, value);
    return `#define ${name} ${value}`;
  };
  const out = new Map();
  const parts = [];
  for (const { file, exports } of [...modules].sort((a, b) => a.file.localeCompare(b.file))) {
    const items = Object.values(exports).filter((x) => (isLayout(x) || isConstants(x)) && !seen.has(x));
    if (items.length === 0) continue;
    const base = file.replace(/\.ts$/, '');
    const guard = `DAXVM_FORMAT_${base.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_H`;
    const body = [];
    for (const x of items) {
      seen.add(x);
      body.push('', ...(isLayout(x) ? renderLayout(x, define) : renderConstants(x, define)));
    }
    out.set(`format/${base}.h`, [
      comment(`GENERATED by scripts/gen-format-header.mjs from src/core/format/${file}: do not edit.`),
      comment('Byte layouts of docs/format.md. All integers little-endian; offsets in bytes.'),
      `#ifndef ${guard}`,
      `#define ${guard}`,
      '',
      '#include <stddef.h>',
      '#include <stdint.h>',
      ...body,
      '',
      `#endif /* ${guard} */`,
      '',
    ].join('\n'));
    parts.push(`#include "format/${base}.h"`);
  }
  out.set('daxvm_format.h', [
    comment('GENERATED by scripts/gen-format-header.mjs from the modules of src/core/format: do not edit.'),
    comment('The daxvm byte layouts (docs/format.md): one header per format module, all of them here.'),
    '#ifndef DAXVM_FORMAT_H',
    '#define DAXVM_FORMAT_H',
    '',
    ...parts,
    '',
    '#endif /* DAXVM_FORMAT_H */',
    '',
  ].join('\n'));
  return out;
}

/** The format modules found in `dir` (`.js` or `.ts` files), imported. */
export async function loadFormatModules(dir, ext) {
  const files = readdirSync(dir).filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts')).sort();
  return Promise.all(files.map(async (f) => ({ file: f.replace(/\.js$/, '.ts'), exports: await import(pathToFileURL(join(dir, f)).href) })));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const modules = await loadFormatModules(join(root, 'dist', 'core', 'format'), '.js');
  const headers = renderHeaders(modules);
  const dir = dirname(HEADER_PATH);
  if (process.argv.includes('--check')) {
    const stale = [...headers].filter(([rel, text]) => !existsSync(join(dir, rel)) || readFileSync(join(dir, rel), 'utf8') !== text);
    if (stale.length) {
      console.error(`${stale.map(([rel]) => rel).join(', ')} in ${dir} stale: run npm run build && node scripts/gen-format-header.mjs`);
      process.exit(1);
    }
    console.log(`${dir}: ${headers.size} headers current`);
  } else {
    mkdirSync(join(dir, 'format'), { recursive: true });
    // A module gone leaves no header behind.
    for (const f of readdirSync(join(dir, 'format'))) if (!headers.has(`format/${f}`)) rmSync(join(dir, 'format', f));
    for (const [rel, text] of headers) writeFileSync(join(dir, rel), text);
    console.log(`wrote ${headers.size} headers in ${dir}`);
  }
}

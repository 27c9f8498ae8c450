// The format has one home (src/core/format): the committed C header is the
// one its modules generate, the header compiles (its _Static_asserts hold),
// and docs/format.md's marked tables state the offsets and sizes the modules
// have, no more and no fewer.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLayout, layout, u32, type Layout } from '../src/core/format/describe.js';
import { formatPpt, parsePpt, PPT_CONSTANTS } from '../src/core/format/ppt.js';
import { computeGeometry } from '../src/core/format/pool.js';
import { decodeSuperblock, DEFAULT_KNOBS, encodeSuperblock, SUPERBLOCK } from '../src/core/format/superblock.js';
// @ts-expect-error: a plain .mjs script, no declarations
import { HEADER_PATH, loadFormatModules, renderHeaders } from '../scripts/gen-format-header.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const formatDir = join(root, 'src', 'core', 'format');

type Modules = Array<{ file: string; exports: Record<string, unknown> }>;
const modules = (await loadFormatModules(formatDir, '.ts')) as Modules;
const layouts = new Map<string, Layout>();
for (const m of modules) for (const x of Object.values(m.exports)) if (isLayout(x)) layouts.set(x.name, x);

interface DocTable { file: string; line: number; name: string; size: number; rows: Array<{ offset: number; size: number; line: number }> }

/** Tables marked `<!-- layout: NAME (SIZE bytes) -->` in a Markdown text. */
function markedTables(file: string, text: string): DocTable[] {
  const lines = text.split('\n');
  const out: DocTable[] = [];
  lines.forEach((l, i) => {
    const m = /^<!-- layout: ([a-z0-9_]+) \((\d+) bytes\) -->$/.exec(l.trim());
    if (!m) return;
    const table: DocTable = { file, line: i + 1, name: m[1] ?? '', size: Number(m[2]), rows: [] };
    for (let j = i + 3; j < lines.length && (lines[j] ?? '').startsWith('|'); j++) {
      const cells = (lines[j] ?? '').split('|').map((c) => c.trim());
      table.rows.push({ offset: Number(cells[1]), size: Number(cells[2]), line: j + 1 });
    }
    out.push(table);
  });
  return out;
}

/** What a doc says that the layouts do not (and the fields it leaves out). */
function docProblems(tables: DocTable[], known: Map<string, Layout>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const tb of tables) {
    const l = known.get(tb.name);
    if (!l) {
      problems.push(`${tb.file}:${tb.line}: no layout named ${tb.name}`);
      continue;
    }
    seen.add(tb.name);
    if (tb.size !== l.size) problems.push(`${tb.file}:${tb.line}: ${tb.name} is ${l.size} bytes, the doc says ${tb.size}`);
    if (tb.rows.length === 0) problems.push(`${tb.file}:${tb.line}: ${tb.name}: no rows under the marker`);
    for (const r of tb.rows) {
      const f = l.fields.find((x) => x.offset === r.offset);
      if (!f) problems.push(`${tb.file}:${r.line}: ${tb.name} has no field at offset ${r.offset}`);
      else if (f.size !== r.size) problems.push(`${tb.file}:${r.line}: ${tb.name}.${f.name} is ${f.size} bytes, the doc says ${r.size}`);
    }
    for (const f of l.fields) {
      if (!tb.rows.some((r) => r.offset === f.offset)) problems.push(`${tb.file}:${tb.line}: ${tb.name}.${f.name} (offset ${f.offset}) is not in the table`);
    }
  }
  for (const name of known.keys()) if (!seen.has(name)) problems.push(`layout ${name} has no marked table in docs/`);
  return problems;
}

t.test('the committed C header is the one the format modules generate', async (t) => {
  t.ok(modules.length >= 5, `format modules found (${modules.map((m) => m.file).join(', ')})`);
  const headers = renderHeaders(modules) as Map<string, string>;
  const stale = [...headers].filter(([rel, text]) => !existsSync(join(dirname(HEADER_PATH), rel)) || readFileSync(join(dirname(HEADER_PATH), rel), 'utf8') !== text);
  t.same(stale.map(([rel]) => rel), [], 'native-shim/include/daxvm_format.h and format/*.h are current (else: npm run build && node scripts/gen-format-header.mjs)');
  t.same(readdirSync(join(dirname(HEADER_PATH), 'format')).sort(), [...headers.keys()].filter((k) => k.startsWith('format/')).map((k) => k.slice(7)).sort(), 'no header of a module that is gone');
  const want = [...headers.values()].join('\n');
  for (const l of layouts.values()) t.match(want, `#define DAXVM_${l.name.toUpperCase()}_BYTES ${l.size}\n`, `${l.name} is in the headers`);
  // A layout added to a module reaches the headers with no change to the generator: its own, included by the umbrella.
  const extra = layout('probe_record', 8, 'probe', { a: u32(0, 'a'), b: u32(4, 'b') });
  const more = renderHeaders([...modules, { file: 'zz-probe.ts', exports: { extra } }]) as Map<string, string>;
  t.match(more.get('format/zz-probe.h') ?? '', '#define DAXVM_PROBE_RECORD_B_OFF 4', 'an exported layout of a new module is emitted');
  t.match(more.get('daxvm_format.h') ?? '', '#include "format/zz-probe.h"', 'and included by daxvm_format.h');
  t.throws(() => renderHeaders([...modules, { file: 'zz-dup.ts', exports: { again: { ...SUPERBLOCK } } }]), /defined twice/, 'a name clash is refused');
});

t.test('the header compiles: its _Static_asserts hold', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'daxvm-header-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = join(dir, 'probe.c');
  writeFileSync(c, '#include "daxvm_format.h"\n_Static_assert(DAXVM_SUPERBLOCK_CRC_OFF == 508, "crc");\nint main(void) { return (int)sizeof(struct daxvm_inode) - 256; }\n');
  const r = spawnSync('cc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-fsyntax-only', '-I', dirname(HEADER_PATH), c], { encoding: 'utf8' });
  t.equal(r.status, 0, `cc accepts it ${r.stderr}`);
  // And a wrong assertion against it fails, so the compile above proves something.
  writeFileSync(c, '#include "daxvm_format.h"\n_Static_assert(DAXVM_INODE_SEQ_OFF == 64, "wrong");\n');
  const bad = spawnSync('cc', ['-std=gnu11', '-fsyntax-only', '-I', dirname(HEADER_PATH), c], { encoding: 'utf8' });
  t.not(bad.status, 0, 'a false offset assertion does not compile');
});

t.test('docs: marked tables state exactly the offsets and sizes of the layouts', async (t) => {
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'));
  const tables = docs.flatMap((f) => markedTables(`docs/${f}`, readFileSync(join(root, 'docs', f), 'utf8')));
  t.ok(tables.length >= layouts.size, `${tables.length} marked tables for ${layouts.size} layouts`);
  t.same(docProblems(tables, layouts), [], 'docs and modules agree');
  // The check itself catches a wrong offset, a wrong size, a missing row and a wrong record size.
  const wrong = markedTables('probe.md', [
    '<!-- layout: dir_record (12 bytes) -->', '| offset | size | field |', '|---|---|---|',
    '| 0 | 4 | ino |', '| 4 | 4 | rec_len |', '| 5 | 1 | nothing there |',
  ].join('\n'));
  const problems = docProblems(wrong, new Map([['dir_record', layouts.get('dir_record')!]]));
  t.equal(problems.length, 5, `size, rec_len width, offset 5, name_len and file_type missing: ${problems.join('; ')}`);
});

t.test('the superblock codec writes at the layout offsets', async (t) => {
  const g = computeGeometry(64 * 1024 * 1024);
  const b = encodeSuperblock({
    version: 1, compatFeatures: 0, incompatFeatures: 0, roCompatFeatures: 0, geometry: g, rootIno: 1, state: 0,
    journalSeq: 7, mountCount: 3, uuid: Buffer.alloc(16, 9), createdMs: 1, lastMountMs: 2, lastWriteMs: 3,
    knobs: { ...DEFAULT_KNOBS, zombieMaxPages: 77 },
  });
  const o = SUPERBLOCK.off;
  t.equal(b.toString('latin1', o.magic, o.magic + 8), 'DAXVMPL1');
  t.equal(Number(b.readBigUInt64LE(o.total_blocks)), g.totalBlocks);
  t.equal(Number(b.readBigUInt64LE(o.data_start)), g.dataStart);
  t.equal(b.readUInt32LE(o.zombie_max_pages), 77);
  t.equal(b.readUInt32LE(o.mount_count), 3);
  const d = decodeSuperblock(b);
  t.ok(d.ok && d.sb.knobs.zombieMaxPages === 77 && d.sb.journalSeq === 7, 'decodes back');
  b[o.inode_count] = (b[o.inode_count] ?? 0) ^ 1;
  const bad = decodeSuperblock(b);
  t.ok(!bad.ok && bad.problem === 'bad-checksum', 'a changed byte fails the CRC');
});

t.test('the user.daxvm.ppt text: build, parse, and the C format string say the same', async (t) => {
  const info = { ino: 12, gen: 3, seq: 40, root: 9000, level: 2, nodes: 5, size: 2 ** 40 + 1 };
  const text = formatPpt(info);
  t.equal(text, 'ino=12 gen=3 seq=40 root=9000 level=2 nodes=5 size=1099511627777');
  t.same(parsePpt(text + '\n'), info, 'round trip (a newline tolerated)');
  t.equal(parsePpt('ino=1 gen=2'), undefined, 'a partial text is not one');
  t.equal(parsePpt(text.replace('gen=3 ', '')), undefined, 'a field missing is not one');
  let i = 0;
  const values = Object.values(info);
  t.equal(PPT_CONSTANTS.values.PPT_TEXT_FORMAT.replace(/%llu/g, () => String(values[i++])), text, 'printf format gives the same text');
});

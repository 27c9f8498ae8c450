// daxvm as a dependency, as a user gets it: npm pack, then npm install of the
// tarball into a new project. The install builds with what the package ships
// (compiled JavaScript, native sources; no devDependency, no chart library),
// and from that project a program maps a file on a real mount: ESM, CommonJS,
// and a TypeScript user checked with tsc --strict. One pack, one install.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { ROOT, run, tempDir } from './helpers/mount.js';

/** The environment of a user's shell: not tap's (its NODE_OPTIONS loader would follow npm and every script). */
// JOBS: node-gyp's make runs one compiler per core (a user's choice too; the same build, in about half the time on 2 cores).
const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', JOBS: 'max' };
delete env.NODE_OPTIONS;
/** A command as the user runs it: `env -u`, because tap's spawn hook puts NODE_OPTIONS back into every child's env. */
const user = (cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}) => run('env', ['-u', 'NODE_OPTIONS', cmd, ...args], { env, ...opts });

t.test('npm pack, npm install the tarball in a new project, map a file on a mount from there', async (t) => {
  const dir = tempDir(t, 'daxvm-pkg-');
  const packed = user('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: 120_000 });
  t.equal(packed.status, 0, packed.summary);
  const info = (JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
  const files = new Set(info.files.map((f) => f.path));
  for (const f of ['package.json', 'LICENSE', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/cli/main.js',
    'binding.gyp', 'scripts/install.cjs', 'scripts/system-deps.cjs', 'mount/mount.fuse.daxvm']) {
    t.ok(files.has(f), `the tarball has ${f}`);
  }
  t.notOk([...files].some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), 'no tests, no node_modules');
  const dangling: string[] = [];
  for (const f of files) {
    if (!f.endsWith('.js.map')) continue;
    // The packed file is the built one: read it from the checkout.
    const map = JSON.parse(readFileSync(join(ROOT, f), 'utf8')) as { sources: string[] };
    for (const s of map.sources) if (!files.has(posix.join(posix.dirname(f), s))) dangling.push(`${f} -> ${s}`);
  }
  t.same(dangling, [], 'every source map points at a source in the tarball');

  const proj = join(dir, 'proj');
  mkdirSync(proj);
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true }));
  const inst = user('npm', ['install', '--prefer-offline', join(dir, info.filename)], { cwd: proj, timeout: 600_000 });
  t.equal(inst.status, 0, `npm install ./${info.filename}\n${inst.summary}`);
  const nm = join(proj, 'node_modules');
  t.ok(existsSync(join(nm, 'daxvm', 'build', 'Release', 'daxvm_shim.node')), 'the native code was built at install');
  t.ok(existsSync(join(nm, 'daxvm', 'build', 'Release', 'libdaxvm-preload.so')), 'the preload library was built at install');
  for (const dev of ['typescript', 'tap', 'vega', 'vega-lite']) t.notOk(existsSync(join(nm, dev)), `${dev} is not installed with it`);

  const bin = join(nm, '.bin', 'daxvm');
  const pool = join(dir, 'pool.daxvm');
  const mnt = join(dir, 'mnt');
  t.equal(user(bin, ['mkfs', pool, '--size', '64M']).status, 0, 'its CLI makes a pool');
  const mounted = user(bin, ['mount', pool, mnt], { cwd: proj });
  t.equal(mounted.status, 0, mounted.summary);
  t.teardown(() => { user(bin, ['umount', mnt]); });
  writeFileSync(join(mnt, '.daxvm', 'page_tables_on'), '1\n');
  writeFileSync(join(mnt, 'f'), 'hello from the pool');

  const mapIt = (api: string) => `const m = mmap(process.argv[2], { flags: MAP_DAXVM });\n` +
    `console.log(JSON.stringify({ text: m.buffer.toString(), api: ${JSON.stringify(api)} }));\nm.unmap();\n`;
  writeFileSync(join(proj, 'esm.mjs'), `import { mmap, MAP_DAXVM } from 'daxvm';\n${mapIt('esm')}`);
  writeFileSync(join(proj, 'cjs.cjs'), `const { mmap, MAP_DAXVM } = require('daxvm');\n${mapIt('cjs')}`);
  for (const [file, api] of [['esm.mjs', 'esm'], ['cjs.cjs', 'cjs']] as const) {
    const r = user(process.execPath, [file, join(mnt, 'f')], { cwd: proj });
    t.equal(r.status, 0, r.summary);
    t.same(JSON.parse(r.stdout || '{}'), { text: 'hello from the pool', api }, `${api}: the file's bytes, mapped from the installed package`);
  }

  writeFileSync(join(proj, 'user.ts'), [
    "import { mmap, MAP_DAXVM, type Mapping } from 'daxvm';",
    "const m: Mapping = mmap(process.argv[2] ?? 'f', { prot: 'r', flags: MAP_DAXVM });",
    'const b: Buffer = m.buffer;',
    'console.log(b.length);',
    'm.unmap();',
  ].join('\n') + '\n');
  // A Node user's lib, as in @tsconfig/node20 (no DOM): checking the DOM's declarations took about a third of tsc's time.
  const tsc = user(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--noEmit',
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2023',
    '--typeRoots', join(ROOT, 'node_modules', '@types'), '--types', 'node', 'user.ts'], { cwd: proj, env });
  t.equal(tsc.status, 0, `tsc --strict of a TypeScript user\n${tsc.summary}`);

  const chart = user(bin, ['bench', 'read', '--from', join(nm, 'daxvm', 'docs', 'figures', 'read.json'), '--chart', join(dir, 'c.svg')], { cwd: proj });
  t.equal(chart.status, 1, chart.summary);
  t.match(chart.stderr, /a chart needs vega and vega-lite/, 'a chart without the chart libraries says what to install');
  const run1 = user(bin, ['bench', 'read', '--quick', '--mnt', mnt, '--chart', join(dir, 'c2.svg')], { cwd: proj });
  t.equal(run1.status, 1, run1.summary);
  t.match(run1.stderr, /a chart needs vega and vega-lite/, 'a run with --chart and no chart libraries is refused...');
  t.equal(run1.stdout, '', '...before it measures anything');
  t.equal(user(bin, ['umount', mnt]).status, 0, 'unmounted');
});

// The library as a newcomer meets it: DEBUG=daxvm:lib says which path each
// mmap took and why; `using` unmaps (Symbol.dispose); every mmap failure is
// a DaxvmError with a code; the example run with no argument prints usage.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alignedFile, tablesMount } from './helpers/lib.js';
import { NODE, ROOT, run, tempDir } from './helpers/mount.js';

const LIB = JSON.stringify(join(ROOT, 'dist', 'lib', 'index.js'));

/** A module run in a child process (never a mapping into a mount from the test process itself). */
function node(script: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof run> {
  // NODE (env -u NODE_OPTIONS): deleting it from env alone does nothing, tap's spawn hook puts it back.
  return run(NODE[0]!, [...NODE.slice(1), '--input-type=module', '-e', script], { env: { ...process.env, ...env } });
}

t.test('DEBUG=daxvm:lib, using, DaxvmError', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * 1024 * 1024);
  mkdirSync(join(m.mnt, 'dir'));

  let r = node(`
    import { mmap, MAP_DAXVM } from ${LIB};
    mmap(${JSON.stringify(a.path)}, { flags: MAP_DAXVM }).unmap();
    mmap(${JSON.stringify(a.path)}).unmap();`, { DEBUG: 'daxvm:lib', DEBUG_COLORS: '0' });
  t.equal(r.status, 0, r.summary);
  t.match(r.stderr, /daxvm:lib mmap \S+\/a \[0\+4194304, r\]: attached from the pool \(1 run, tracking none\)/, 'the pool path, said');
  t.match(r.stderr, /daxvm:lib mmap \S+\/a \[0\+4194304, r\]: vanilla \(a plain mmap through the mount\): MAP_DAXVM not set/, 'the vanilla path and why');

  r = node(`
    import { mmap, DaxvmError } from ${LIB};
    const out = [];
    for (const [file, opts] of [[${JSON.stringify(join(m.mnt, 'missing'))}, {}], [${JSON.stringify(join(m.mnt, 'dir'))}, {}],
      [${JSON.stringify(a.path)}, { offset: 3 }], ['/proc/self/status', { length: -1 }]]) {
      try { mmap(file, opts).unmap(); out.push('mapped'); }
      catch (e) { out.push([e instanceof DaxvmError, e.name, e.code, typeof e.path]); }
    }
    console.log(JSON.stringify(out));`);
  t.equal(r.status, 0, r.summary);
  t.same(JSON.parse(r.stdout), [
    [true, 'DaxvmError', 'ENOENT', 'string'],
    [true, 'DaxvmError', 'EISDIR', 'string'],
    [true, 'DaxvmError', 'EINVAL', 'string'],
    [true, 'DaxvmError', 'EINVAL', 'string'],
  ], 'every failure is a DaxvmError with a code and the path');

  // What a JavaScript caller can pass wrong, a mapping used after unmap, and the library's other calls.
  r = node(`
    import { mmap, poolHugePages, MAP_DAXVM, DaxvmError } from ${LIB};
    const file = ${JSON.stringify(a.path)};
    const out = [];
    for (const f of [() => mmap(null), () => mmap(42), () => mmap(file, null), () => mmap(file, { flags: 'MAP_DAXVM' }),
      () => mmap(file, { length: 2 ** 60 }), () => { const m = mmap(file, { flags: MAP_DAXVM }); m.unmap(); m.msync(); },
      () => poolHugePages(${JSON.stringify(join(m.mnt, 'no-such-pool'))})]) {
      try { f(); out.push('no error'); }
      catch (e) { out.push([e instanceof DaxvmError, e.code]); }
    }
    console.log(JSON.stringify(out));`);
  t.equal(r.status, 0, r.summary);
  t.same(JSON.parse(r.stdout), [[true, 'EINVAL'], [true, 'EINVAL'], [true, 'EINVAL'], [true, 'EINVAL'], [true, 'EINVAL'], [true, 'ENOMEM'], [true, 'ENOENT']],
    'wrong types, a used-up mapping and a missing pool: DaxvmErrors too, never a TypeError');

  // `using`, as a TypeScript user writes it (tsc lowers it; Node 20 has Symbol.dispose).
  const dir = tempDir(t);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(join(dir, 'using.ts'), [
    `import { mmap, MAP_DAXVM, type Mapping } from ${LIB};`,
    'let kept: Mapping | undefined;',
    '{',
    `  using m = mmap(${JSON.stringify(a.path)}, { flags: MAP_DAXVM });`,
    '  kept = m;',
    '  console.log(m.buffer.length, m.unmapped);',
    '}',
    'console.log(kept.buffer.length, kept.unmapped);',
  ].join('\n') + '\n');
  const tsc = run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--target', 'es2022',
    '--lib', 'es2022,esnext.disposable', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck',
    '--typeRoots', join(ROOT, 'node_modules', '@types'), '--types', 'node', 'using.ts'], { cwd: dir });
  t.equal(tsc.status, 0, tsc.summary);
  r = run(NODE[0]!, [...NODE.slice(1), join(dir, 'using.js')]);
  t.equal(r.status, 0, r.summary);
  t.equal(r.stdout, `${4 * 1024 * 1024} false\n0 true\n`, 'using: mapped in the block, unmapped at its end');
  await m.stop();
});

t.test('examples/ with no argument print usage', async (t) => {
  const r = run(process.execPath, [join(ROOT, 'examples', 'hello-mmap.mjs')]);
  t.equal(r.status, 2, r.summary);
  t.match(r.stderr, /^usage: node examples\/hello-mmap\.mjs FILE/, 'usage, not a stack');
});

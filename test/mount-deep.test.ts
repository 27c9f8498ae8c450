// A tree deeper than any one path may name (PATH_MAX 4096): 1000 nested
// directories of 4-byte names, made by chdir step by step, with files down
// the chain; find, du, find -execdir, rm -rf through the mount, fsck clean,
// and the kernel's ENAMETOOLONG for the whole path in one syscall.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { errCode, freshMount, fsck, mountPool, run, type Mounted } from './helpers/mount.js';
import { checkDaemon, runBytes, splitNul } from './helpers/hostile.js';

const DEPTH = 1000;
const NAME = 'dddd';
/** A file every this many levels, and one at the bottom. */
const EVERY = 100;

t.test(`a chain of ${DEPTH} directories, ${DEPTH * (NAME.length + 1)} bytes of path`, async (t) => {
  let m: Mounted = await freshMount(t);
  const home = process.cwd();
  // Inside the chain, process.cwd() fails (ERANGE past PATH_MAX): collect, then assert from outside.
  const seen: { level: number; read: string }[] = [];
  let failure = '';
  try {
    process.chdir(m.mnt);
    fs.mkdirSync('deep');
    process.chdir('deep');
    for (let level = 1; level <= DEPTH; level++) {
      fs.mkdirSync(NAME);
      process.chdir(NAME);
      if (level % EVERY === 0) fs.writeFileSync(`at-${level}`, `level ${level}`);
    }
    fs.writeFileSync('leaf', 'the bottom');
    seen.push({ level: DEPTH, read: fs.readFileSync('leaf', 'utf8') });
    seen.push({ level: DEPTH, read: fs.readFileSync(`at-${DEPTH}`, 'utf8') });
    seen.push({ level: DEPTH - EVERY, read: fs.readFileSync(`${'../'.repeat(EVERY)}at-${DEPTH - EVERY}`, 'utf8') });
  } catch (err) {
    failure = String(err);
  } finally {
    process.chdir(home);
  }
  t.equal(failure, '', 'mkdir and chdir down 1000 levels');
  t.same(seen.map((s) => s.read), ['the bottom', `level ${DEPTH}`, `level ${DEPTH - EVERY}`], 'files down the chain written and read back');

  const whole = join(m.mnt, 'deep', ...Array<string>(DEPTH).fill(NAME), 'leaf');
  t.ok(whole.length > 4096);
  t.equal(errCode(() => fs.readFileSync(whole)), 'ENAMETOOLONG', `the whole path in one syscall (${whole.length} bytes): ENAMETOOLONG`);

  const all = runBytes('find', [join(m.mnt, 'deep'), '-print0']);
  t.equal(all.status, 0, all.stderr);
  const paths = splitNul(all.stdout);
  t.equal(paths.length, 1 + DEPTH + DEPTH / EVERY + 1, 'find -print0: every directory and file');
  const longest = join(m.mnt, 'deep', ...Array<string>(DEPTH).fill(NAME), `at-${DEPTH}`);
  t.equal(Math.max(...paths.map((p) => p.length)), longest.length, 'down to the longest path');
  const du = run('du', ['-sk', join(m.mnt, 'deep')]);
  t.equal(du.status, 0, du.summary);
  t.ok(Number(du.stdout.split('\t')[0]) >= DEPTH * 4, `du counts a block per directory: ${du.stdout.trim()}`);
  checkDaemon(t, m, 'after the deep tree');

  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const ck = fsck(m.pool);
  t.equal(ck.status, 0, `daxvm fsck clean\n${ck.summary}`);
  t.match(ck.stdout, new RegExp(`${DEPTH + 2} directories`), 'fsck walked the whole chain');

  m = await mountPool(t, m.pool);
  const cat = run('find', [join(m.mnt, 'deep'), '-name', 'leaf', '-execdir', 'cat', '{}', ';']);
  t.equal(cat.stdout, 'the bottom', `after unmount and mount: find -execdir cat at the bottom\n${cat.summary}`);
  const rm = run('rm', ['-rf', join(m.mnt, 'deep')]);
  t.equal(rm.status, 0, `rm -rf of the whole tree\n${rm.summary}`);
  t.notOk(fs.existsSync(join(m.mnt, 'deep')), 'gone');
  checkDaemon(t, m, 'after rm -rf');
  const st2 = await m.stop();
  t.equal(st2.code, 0);
  const ck2 = fsck(m.pool);
  t.equal(ck2.status, 0, `fsck clean after rm -rf\n${ck2.summary}`);
});

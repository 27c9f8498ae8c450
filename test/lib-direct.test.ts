// MAP_DAXVM with no round trip (issue 10): paths resolved in the daemon's
// shared namespace. Zero FUSE requests once warm; always the mount's current
// state (in this process and in another); the kernel's permission answers;
// faults (a region of another version, a pool made anew, a dead daemon, a
// hash collision, a writer racing the reader) end
// on the mount path or in a clean error, never in another file's bytes.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mmap, MAP_DAXVM } from '../src/lib/index.js';
import { setKnob, stats } from './helpers/control.js';
import { pattern, tablesMount } from './helpers/lib.js';
import { cli, errCode, makePool, mountPool, ROOT, run } from './helpers/mount.js';
import { lineChild } from './helpers/child.js';
import { native } from '../src/lib/native.js';
import { nsHash } from '../src/core/format/namespace.js';
import { parsePpt, PPT_XATTR } from '../src/core/format/ppt.js';

const LIB = JSON.stringify(join(ROOT, 'dist/lib/index.js'));

/** mmap then unmap in this process: the bytes, how it was resolved, or the error's code. */
function mapHere(path: string, prot: 'r' | 'rw' = 'r'): { bytes?: Buffer; resolved?: string; code?: string; reason?: string } {
  try {
    const m = mmap(path, { flags: MAP_DAXVM, prot });
    const bytes = Buffer.from(m.buffer);
    const out = { bytes, resolved: m.resolved, ...(m.resolveReason ? { reason: m.resolveReason } : {}) };
    m.unmap();
    return out;
  } catch (err) {
    return { code: (err as { code?: string }).code ?? String(err) };
  }
}

interface Answer { path: string; prot: string; lib: string; kernel: string; resolved?: string; reason?: string; first?: number }

/** For each path and prot, in another process (as `user` when given): the library's answer and open(2)'s. */
function answersElsewhere(cases: Array<[string, 'r' | 'rw']>, user?: number, groups = ''): Answer[] {
  const list = join(tmpdir(), `cases-${process.pid}.json`);
  fs.writeFileSync(list, JSON.stringify(cases), { mode: 0o644 });
  const script = `
    import fs from 'node:fs';
    import { mmap, MAP_DAXVM } from ${LIB};
    const out = [];
    for (const [path, prot] of JSON.parse(fs.readFileSync(process.argv[1], 'utf8'))) {
      let lib = 'ok', kernel = 'ok', resolved, reason, first;
      try { const m = mmap(path, { flags: MAP_DAXVM, prot }); resolved = m.resolved; reason = m.resolveReason; first = m.buffer[0]; m.unmap(); } catch (e) { lib = e.code; }
      try { const fd = fs.openSync(path, prot === 'rw' ? 'r+' : 'r'); if (fs.fstatSync(fd).isDirectory()) kernel = 'EISDIR'; fs.closeSync(fd); } catch (e) { kernel = e.code; }
      out.push({ path, prot, lib, kernel, resolved, reason, first });
    }
    console.log(JSON.stringify(out));`;
  const args = ['--input-type=module', '-e', script, list];
  const r = user !== undefined
    ? run('setpriv', [`--reuid=${user}`, `--regid=${user}`, groups ? `--groups=${groups}` : '--clear-groups', process.execPath, ...args])
    : run(process.execPath, args);
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr.slice(0, 2000)}`);
  return JSON.parse(r.stdout) as Answer[];
}

t.test('1000 mmap+unmap at depth 4, once warm: no FUSE request, the right bytes', async (t) => {
  const m = await tablesMount(t, '256M');
  const dir = join(m.mnt, 'd1', 'd2', 'd3');
  fs.mkdirSync(dir, { recursive: true });
  const files = Array.from({ length: 10 }, (_, i) => ({ path: join(dir, `f${i}`), data: pattern(16384, i + 1) }));
  for (const f of files) fs.writeFileSync(f.path, f.data);
  for (const f of files) t.ok(mapHere(f.path).bytes?.equals(f.data), 'warm-up: the right bytes');
  const reqs = (): Record<string, number> => (stats(m.mnt) as unknown as { requests: Record<string, number> }).requests;
  const a = reqs();
  const b = reqs();
  const perRead = b.total! - a.total!; // what reading the stats file costs
  let wrong = 0;
  let viaMount = 0;
  for (let i = 0; i < 1000; i++) {
    const f = files[i % files.length]!;
    const map = mmap(f.path, { flags: MAP_DAXVM });
    if (map.resolved !== 'namespace') viaMount++;
    if (map.buffer[i % 16384] !== f.data[i % 16384]) wrong++;
    map.unmap();
  }
  const c = reqs();
  const during: Record<string, number> = {};
  for (const [op, n] of Object.entries(c)) if (n - (b[op] ?? 0) - ((b[op] ?? 0) - (a[op] ?? 0)) !== 0) during[op] = n - (b[op] ?? 0) - ((b[op] ?? 0) - (a[op] ?? 0));
  t.equal(c.total! - b.total! - perRead, 0, `FUSE requests during 1000 mmap+unmap: ${JSON.stringify(during)}`);
  t.equal(viaMount, 0, 'every one resolved in the namespace');
  t.equal(wrong, 0, 'every byte checked was the file\'s');
  // Growth through the mount (write, fallocate): the next mmap has the new size, with no request.
  fs.appendFileSync(files[1]!.path, pattern(8192, 9));
  t.equal(run('fallocate', ['-l', '64K', files[2]!.path]).status, 0, 'fallocate -l 64K');
  const g0 = reqs();
  const g1 = reqs();
  const grown = [mapHere(files[1]!.path), mapHere(files[2]!.path)];
  const g2 = reqs();
  t.same(grown.map((g) => [g.bytes?.length, g.resolved]), [[24576, 'namespace'], [65536, 'namespace']], 'the new sizes, in the namespace');
  t.ok(grown[0]!.bytes?.subarray(16384).equals(pattern(8192, 9)), 'the appended bytes');
  t.equal(g2.total! - g1.total! - (g1.total! - g0.total!), 0, 'no FUSE request for the two mmaps after growth');
  // Paths as the kernel resolves them: relative, '.', '..', repeated slashes in the namespace; after a
  // symbolic link the mount path, where 'link/..' is the link target's parent (not the text's).
  const f0 = files[0]!;
  const cwd = process.cwd();
  process.chdir(join(m.mnt, 'd1', 'd2'));
  try {
    for (const p of ['d3/f0', './d3/./f0', '../d2/d3/f0', `${m.mnt}//d1///d2/d3/f0`, 'd3/../d3/f0']) {
      const got = mapHere(p);
      t.ok(got.bytes?.equals(f0.data) && got.resolved === 'namespace', `${p}: the file, in the namespace (${got.resolved} ${got.code ?? ''})`);
    }
    fs.symlinkSync('d2/d3', join(m.mnt, 'd1', 'jump'));
    fs.mkdirSync(join(m.mnt, 'd1', 'd3'));
    fs.writeFileSync(join(m.mnt, 'd1', 'd3', 'f0'), 'not this one'); // where the text d1/jump/../d3/f0 leads
    const viaLink = mapHere(`${m.mnt}/d1/jump/../d3/f0`); // (path.join would drop jump/.. by the text too)
    t.ok(viaLink.bytes?.equals(f0.data), `link/..: the link target's parent, as open(2) (${viaLink.resolved}: ${viaLink.reason ?? viaLink.code})`);
    t.equal(mapHere('d3/f0/').code, 'ENOTDIR', 'a file with a trailing slash: ENOTDIR');
    // The mount point reached through a symbolic link (absolute, relative) and '..' on the host's side.
    fs.symlinkSync(m.mnt, join(m.dir, 'to-mount'));
    fs.symlinkSync('to-mount/d1', join(m.dir, 'to-d1'));
    fs.mkdirSync(join(m.dir, 'sub'));
    for (const p of [`${m.dir}/to-mount/d1/d2/d3/f0`, `${m.dir}/to-d1/d2/d3/f0`, `${m.dir}/sub/../to-d1/d2/d3/f0`]) {
      const got = mapHere(p);
      t.ok(got.bytes?.equals(f0.data) && got.resolved === 'namespace', `${p.slice(m.dir.length)}: the file, in the namespace (${got.resolved} ${got.reason ?? got.code ?? ''})`);
    }
  } finally {
    process.chdir(cwd);
  }
  await m.stop();
});

t.test('write, rename, unlink, chmod through the mount: the next mmap sees it, here and in another process', async (t) => {
  const m = await tablesMount(t, '256M');
  const a = join(m.mnt, 'a');
  const b = join(m.mnt, 'b');
  fs.writeFileSync(a, pattern(8192, 1));
  t.ok(mapHere(a).bytes?.equals(pattern(8192, 1)));
  fs.writeFileSync(a, pattern(20000, 2)); // new size, new blocks
  let here = mapHere(a);
  t.equal(here.resolved, 'namespace', `resolved in the namespace ${here.reason ?? ''}`);
  t.ok(here.bytes?.equals(pattern(20000, 2)), 'written: the new bytes and size');
  let there = answersElsewhere([[a, 'r']]);
  t.same(there.map((x) => [x.lib, x.first]), [['ok', pattern(20000, 2)[0]]], 'another process too');
  fs.renameSync(a, b);
  t.equal(mapHere(a).code, 'ENOENT', 'renamed away: ENOENT');
  here = mapHere(b);
  t.ok(here.bytes?.equals(pattern(20000, 2)) && here.resolved === 'namespace', `renamed to: found ${here.resolved} ${here.reason ?? ''}`);
  const live = mmap(b, { flags: MAP_DAXVM });
  fs.unlinkSync(b);
  t.equal(mapHere(b).code, 'ENOENT', 'unlinked: ENOENT');
  there = answersElsewhere([[b, 'r'], [a, 'r']]);
  t.same(there.map((x) => x.lib), ['ENOENT', 'ENOENT'], 'in another process too');
  fs.writeFileSync(join(m.mnt, 'refill'), Buffer.alloc(64 * 1024 * 1024, 0xee)); // would reuse b's blocks if it could
  t.ok(Buffer.from(live.buffer).equals(pattern(20000, 2)), 'a live mapping of the unlinked file keeps its bytes');
  live.unmap();
  fs.writeFileSync(a, pattern(4096, 3));
  // Stores through a mapping reach the file's mtime at msync (one request: the stores themselves made none).
  const before = fs.statSync(a).mtimeMs;
  await new Promise((r) => setTimeout(r, 20));
  const w = mmap(a, { flags: MAP_DAXVM, prot: 'rw' });
  w.buffer[0] = 0x5a;
  t.ok(w.msync() >= 1, `msync wrote back (${w.resolved})`);
  w.unmap();
  t.ok(fs.statSync(a).mtimeMs > before, 'msync moved the mtime');
  t.equal(fs.readFileSync(a)[0], 0x5a, 'and the byte is in the file');
  // Stores never msync'ed: unmap moves the mtime. A file renamed and replaced at its path since the
  // mmap: msync moves the mapped file's mtime, not the new file's.
  const w2 = mmap(a, { flags: MAP_DAXVM, prot: 'rw' });
  const before2 = fs.statSync(a).mtimeMs;
  await new Promise((r) => setTimeout(r, 20));
  w2.buffer[1] = 0x5b;
  w2.unmap();
  t.ok(fs.statSync(a).mtimeMs > before2, 'unmap after stores moved the mtime');
  const w3 = mmap(a, { flags: MAP_DAXVM, prot: 'rw' });
  fs.renameSync(a, b);
  fs.writeFileSync(a, 'another file');
  const other = fs.statSync(a).mtimeMs;
  const renamed = fs.statSync(b).mtimeMs;
  await new Promise((r) => setTimeout(r, 20));
  w3.buffer[2] = 0x5c;
  w3.msync();
  t.ok(fs.statSync(b).mtimeMs > renamed, 'msync moved the renamed file\'s mtime');
  w3.unmap();
  t.equal(fs.statSync(a).mtimeMs, other, 'the file now at the path keeps its mtime');
  t.equal(fs.readFileSync(b)[2], 0x5c, 'the store is in the mapped file');
  fs.renameSync(b, a);
  fs.chmodSync(a, 0o600);
  fs.chmodSync(m.mnt, 0o755);
  fs.chmodSync(join(m.mnt, '..'), 0o755);
  there = answersElsewhere([[a, 'r']], 65534);
  t.equal(there[0]!.lib, 'EACCES', 'chmod 600: nobody gets EACCES');
  fs.chmodSync(a, 0o644);
  there = answersElsewhere([[a, 'r']], 65534);
  t.equal(there[0]!.lib, there[0]!.kernel, `chmod 644: as the kernel says (${there[0]!.kernel}), resolved ${there[0]!.resolved}`);
  await m.stop();
});

t.test('permissions: the library answers what open(2) answers, as root and as nobody (allow_other)', async (t) => {
  // A pool of group nogroup (0660): nobody may use the namespace.
  const pool = makePool(t, { size: '256M', args: ['--group', 'nogroup'] });
  fs.chmodSync(pool.dir, 0o711); // nobody reaches the pool file
  const m = await mountPool(t, pool, { opts: ['allow_other'] });
  setKnob(m.mnt, 'page_tables_on', 1);
  fs.chmodSync(m.mnt, 0o755);
  fs.chmodSync(join(m.mnt, '..'), 0o755);
  const nobody = 65534;
  const other = 4242;
  const cases: Array<[string, 'r' | 'rw']> = [];
  const dirModes = [0o755, 0o711, 0o700, 0o750, 0o705, 0o644];
  const fileModes = [0o644, 0o600, 0o640, 0o604, 0o660, 0o606, 0o200, 0o000, 0o444];
  const owners: Array<[number, number]> = [[0, 0], [nobody, nobody], [other, nobody], [other, 100], [nobody, other]];
  for (const dm of dirModes) {
    for (const [du, dg] of owners.slice(0, 3)) {
      const d = join(m.mnt, `d${dm.toString(8)}-${du}-${dg}`);
      fs.mkdirSync(d);
      for (const fm of fileModes) {
        for (const [fu, fg] of owners) {
          const f = join(d, `f${fm.toString(8)}-${fu}-${fg}`);
          fs.writeFileSync(f, 'x'.repeat(100));
          fs.chownSync(f, fu, fg);
          fs.chmodSync(f, fm);
          cases.push([f, 'r'], [f, 'rw']);
        }
      }
      fs.chownSync(d, du, dg);
      fs.chmodSync(d, dm);
      cases.push([d, 'r'], [join(d, 'missing'), 'r'], [join(d, 'f644-0-0', 'x'), 'r']);
    }
  }
  for (const [who, user, groups] of [['root', undefined, ''], ['nobody', nobody, ''], ['nobody in group users', nobody, '100']] as const) {
    answersElsewhere(cases, user, groups); // warm-up: inodes the mount path loads get published
    const got = answersElsewhere(cases, user, groups);
    const differ = got.filter((x) => x.lib !== x.kernel).map((x) => `${x.path.slice(m.mnt.length)} ${x.prot}: library ${x.lib} (${x.resolved ?? ''} ${x.reason ?? ''}), kernel ${x.kernel}`).slice(0, 20);
    const direct = got.filter((x) => x.resolved === 'namespace').length;
    t.same(differ, [], `${who}: ${got.length} cases, library == kernel (${direct} mapped through the namespace)`);
    t.ok(direct > 0, `${who}: the namespace served some (else: ${[...new Set(got.map((x) => x.reason))].join('; ')})`);
  }
  // A host directory above the mount point that nobody may search: the kernel's EACCES, from the library too.
  const open = cases.filter(([p, prot]) => prot === 'r' && /d755-0-0\/f644-0-0$/.test(p));
  fs.chmodSync(join(m.mnt, '..'), 0o700);
  const above = answersElsewhere(open, nobody);
  fs.chmodSync(join(m.mnt, '..'), 0o755);
  t.same(above.map((x) => [x.lib, x.kernel]), [['EACCES', 'EACCES']], 'the mount point\'s parent 0700: EACCES for nobody');
  await m.stop();
});

t.test('faults: a region of another version, a pool made anew, a dead daemon', async (t) => {
  const m = await tablesMount(t, '128M');
  const f = join(m.mnt, 'f');
  fs.writeFileSync(f, pattern(16384, 7));
  t.ok(mapHere(f).bytes?.equals(pattern(16384, 7)));
  const st = fs.statSync(m.pool, { bigint: true });
  const ns = fs.readdirSync('/dev/shm').map((n) => join('/dev/shm', n))
    .find((p) => p.endsWith(`daxvm-${st.dev.toString(16)}-${st.ino.toString(16)}-${st.uid.toString(16)}.ns`));
  t.ok(ns, `the region: ${ns}`);
  // Another version: a new process does not use it (the mount path), and still reads the right bytes.
  const fd = fs.openSync(ns!, 'r+');
  fs.writeSync(fd, Buffer.from([99, 0, 0, 0]), 0, 4, 8);
  let there = answersElsewhere([[f, 'r']]);
  t.match(there[0], { lib: 'ok', resolved: 'mount', first: pattern(16384, 7)[0] }, 'another version: the mount path');
  fs.writeSync(fd, Buffer.from([1, 0, 0, 0]), 0, 4, 8);
  there = answersElsewhere([[f, 'r']]);
  t.match(there[0], { lib: 'ok', resolved: 'namespace' }, 'version 1 again: the namespace');
  // A torn record (its sequence word left odd, as by a writer caught mid-update): the mount path, the right bytes.
  const head = Buffer.alloc(8);
  fs.readSync(fd, head, 0, 8, 88); // inodes_off (src/core/format/namespace.ts)
  const at = Number(head.readBigUInt64LE(0)) + fs.statSync(f).ino * 64;
  const seq = Buffer.alloc(4);
  fs.readSync(fd, seq, 0, 4, at);
  fs.writeSync(fd, Buffer.from([seq[0]! | 1]), 0, 1, at);
  there = answersElsewhere([[f, 'r']]);
  fs.writeSync(fd, seq, 0, 4, at);
  fs.closeSync(fd);
  t.match(there[0], { lib: 'ok', resolved: 'mount', first: pattern(16384, 7)[0], reason: /changing/ }, 'a torn record: the mount path');

  // A pool made anew at the same path, mounted at the same place: this process sees the new one.
  await m.stop();
  t.equal(cli(['mkfs', '--force', '--size', '128M', m.pool]).status, 0);
  const m2 = await mountPool(t, m.pool, { mnt: m.mnt });
  fs.writeFileSync(join(m2.mnt, '.daxvm', 'page_tables_on'), '1');
  fs.writeFileSync(f, pattern(16384, 8));
  mapHere(f); // warm
  const again = mapHere(f);
  t.ok(again.bytes?.equals(pattern(16384, 8)), `the new pool's file (${again.resolved})`);

  // A dead daemon (SIGKILL, still mounted): no bytes, a clean error.
  m2.child.kill('SIGKILL');
  await m2.exited;
  const dead = mapHere(f);
  t.ok(dead.code !== undefined, `dead daemon: an error (${dead.code}), no bytes`);
  t.equal(errCode(() => fs.statSync(f)), 'ENOTCONN', 'the kernel says ENOTCONN too');
  await m2.kill();
});

t.test('a hash collision: two names of one directory with the same hash (so one bucket), each its own file', async (t) => {
  const m = await tablesMount(t, '128M');
  const dir = join(m.mnt, 'c');
  fs.mkdirSync(dir);
  fs.writeFileSync(join(dir, 'probe'), 'x');
  // The namespace hashes (parent inode, name): the mount's inode numbers are the file system's (use_ino).
  t.equal(parsePpt(native.getxattr(join(dir, 'probe'), PPT_XATTR).toString('utf8'))!.ino, fs.statSync(join(dir, 'probe')).ino, 'st_ino is the inode number');
  const parent = fs.statSync(dir).ino;
  const seen = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) { // a birthday search: about 80 000 names for 32 bits
    const name = `n${i.toString(36)}`;
    const h = nsHash(parent, Buffer.from(name));
    const first = seen.get(h);
    if (first !== undefined) pair = [first, name];
    else seen.set(h, name);
  }
  const [a, b] = pair.map((n) => join(dir, n)) as [string, string];
  fs.writeFileSync(b, pattern(16384, 21));
  fs.writeFileSync(a, pattern(8192, 22));
  mapHere(a); // warm-up: published
  for (const [p, want] of [[a, pattern(8192, 22)], [b, pattern(16384, 21)]] as const) {
    const got = mapHere(p);
    t.ok(got.bytes?.equals(want), `${p.slice(dir.length + 1)}: its own bytes (resolved ${got.resolved} ${got.reason ?? ''})`);
    t.equal(got.resolved, 'namespace', 'through the namespace');
  }
  fs.unlinkSync(a);
  t.equal(mapHere(a).code, 'ENOENT', `${pair[0]} unlinked: ENOENT, not ${pair[1]}'s bytes`);
  t.ok(mapHere(b).bytes?.equals(pattern(16384, 21)), `${pair[1]} still its own`);
  fs.renameSync(b, a);
  t.ok(mapHere(a).bytes?.equals(pattern(16384, 21)), 'renamed onto the other name: the same file');
  t.equal(mapHere(b).code, 'ENOENT', 'and the old name is gone');
  await m.stop();
});

t.test('a writer racing the reader: never another file\'s bytes, never a crash', async (t) => {
  const m = await tablesMount(t, '128M');
  const dir = join(m.mnt, 'race');
  fs.mkdirSync(dir);
  const versions = Array.from({ length: 6 }, (_, k) => pattern(16384 + (k % 3) * 4096, 100 + k));
  // The child replaces `cur` by rename (the old file unlinked: its blocks free) and writes other files that take freed blocks.
  const ms = 3000;
  const writer = lineChild(t, `
    const fs = require('fs'), { join } = require('path');
    const [dir, ms] = [process.argv[1], Number(process.argv[2])];
    const pattern = ${pattern.toString()};
    const versions = Array.from({ length: 6 }, (_, k) => pattern(16384 + (k % 3) * 4096, 100 + k));
    fs.writeFileSync(join(dir, 'cur'), versions[0]);
    console.log('ready');
    const end = Date.now() + ms;
    let n = 0;
    while (Date.now() < end) {
      const k = ++n % versions.length;
      fs.writeFileSync(join(dir, 'tmp'), versions[k]);
      fs.renameSync(join(dir, 'tmp'), join(dir, 'cur'));
      fs.writeFileSync(join(dir, 'churn' + (n % 4)), versions[(k + 3) % versions.length]);
    }
    console.log('done ' + n);`, [dir, String(ms)]);
  t.equal(await writer.next(), 'ready');
  const cur = join(dir, 'cur');
  const which = (b: Buffer): number => versions.findIndex((v) => v.length === b.length && v.equals(b));
  let maps = 0, wrong = 0, namespace = 0;
  const errors = new Map<string, number>();
  const held: Array<{ m: ReturnType<typeof mmap>; k: number }> = [];
  const end = Date.now() + ms - 300;
  while (Date.now() < end) {
    try {
      const map = mmap(cur, { flags: MAP_DAXVM });
      maps++;
      if (map.resolved === 'namespace') namespace++;
      const k = which(map.buffer);
      if (k < 0) wrong++;
      held.push({ m: map, k });
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      errors.set(code, (errors.get(code) ?? 0) + 1);
    }
    if (held.length > 8) { // held a while as the writer reused blocks: still the same version's bytes
      const h = held.shift()!;
      if (h.k >= 0 && which(h.m.buffer) !== h.k) wrong++;
      h.m.unmap();
    }
  }
  for (const h of held) h.m.unmap();
  const done = await writer.next();
  t.match(done, /^done \d+$/, `the writer replaced the file ${done.slice(5)} times`);
  t.equal(wrong, 0, `${maps} mappings, each one whole version of the file, unchanged while held`);
  t.same(Object.fromEntries(errors), {}, 'no error: the name always existed');
  t.ok(namespace > 0, `${namespace} resolved in the namespace`);
  await m.stop();
});

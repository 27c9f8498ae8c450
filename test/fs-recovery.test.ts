/**
 * Crash recovery, bad pools and fsck, on the fs layer. A "crash" is a copy
 * of the pool file taken mid-work: exactly what SIGKILL of the daemon
 * leaves (every store, no clean unmount).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import t from 'tap';
import { fsck, openFileSystem, PoolError, ROOT_INO, SUPERBLOCK_VERSION_OFFSET } from '../src/fs/index.js';
import { crc32c as crc32cOf } from '../src/core/format/checksum.js';
import { BLOCK_SIZE, computeGeometry } from '../src/core/format/pool.js';
import { formatFsckReport } from '../src/cli/cmd-fsck.js';
import { crashCopy, openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const sha = (p: string): string => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

t.test('a crash recovers exactly the state of the last fsync (no later commit happened)', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  const model = new Map<string, Buffer>();
  let lastSynced = new Map<string, Buffer>();
  const crashes: Array<{ copy: string; expect: Map<string, Buffer> }> = [];
  for (let i = 0; i < 30; i++) {
    const name = `f${i}`;
    const data = pattern(1000 + i * 7919, i);
    const f = fsys.create(ROOT_INO, name, 0o644, ROOT);
    fsys.write(f.ino, 0, data);
    model.set(name, data);
    if (i % 5 === 4 && model.has(`f${i - 1}`)) {
      fsys.rename(ROOT_INO, `f${i - 1}`, ROOT_INO, `renamed${i}`);
      model.set(`renamed${i}`, model.get(`f${i - 1}`)!);
      model.delete(`f${i - 1}`);
    }
    if (i % 7 === 6 && model.has(`f${i - 6}`)) {
      fsys.unlink(ROOT_INO, `f${i - 6}`);
      model.delete(`f${i - 6}`);
    }
    if (i % 3 === 0) {
      fsys.fsync(f.ino, false);
      lastSynced = new Map(model);
    }
    crashes.push({ copy: crashCopy(t, pool), expect: lastSynced });
  }
  for (const [k, { copy, expect }] of crashes.entries()) {
    const before = fsck(copy);
    t.equal(before.exitCode, 0, `crash ${k}: the committed state is consistent: ${JSON.stringify(before.problems)}`);
    const rec = openFileSystem(copy, { commitIntervalMs: 0 });
    const names = rec.readdir(ROOT_INO).slice(2).map((e) => e.name).sort();
    t.same(names, [...expect.keys()].sort(), `crash ${k}: the names of the last fsync`);
    const bad = [...expect].filter(([name, data]) => !readAll(rec, rec.resolve(`/${name}`)).equals(data));
    t.same(bad.map(([n]) => n), [], `crash ${k}: every file's bytes intact`);
    rec.close();
    t.equal(fsck(copy).exitCode, 0, `crash ${k}: fsck clean after recovery`);
  }
});

t.test('an append + fsync is one barrier: its commit vouches for the bytes; replay drops it when the pool lacks them, fsck agrees', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'log', 0o644, ROOT);
  fsys.fsync(f.ino, false);
  const barriers = (): number => fsys.stats().vouchingCommits! + 2 * fsys.stats().orderedCommits! + fsys.stats().confirmBarriers!;
  const data = pattern(4096, 7);
  fsys.write(f.ino, 0, data);
  const beforeCommit = crashCopy(t, pool);
  fsys.fsync(f.ino, false);
  t.match(fsys.stats(), { vouchingCommits: 1, orderedCommits: 0, confirmBarriers: 0 }, 'the append + fsync: one vouching commit, one barrier');
  const at = fsys.core.inode(f.ino).extents.items[0]!.physical * BLOCK_SIZE;
  const incompat = (p: string): number => fs.readFileSync(p).readUInt32LE(16);
  const crashed = (): string => crashCopy(t, pool);
  // A crash inside the fsync's barrier: the journal reached the media, one vouched byte did not (nor any home write).
  const g = fsys.core.sb.geometry;
  const torn = crashCopy(t, beforeCommit);
  {
    const fd = fs.openSync(torn, 'r+');
    const journal = fs.readFileSync(pool).subarray(g.journalStart * BLOCK_SIZE, (g.journalStart + g.journalBlocks) * BLOCK_SIZE);
    fs.writeSync(fd, journal, 0, journal.length, g.journalStart * BLOCK_SIZE);
    fs.writeSync(fd, Buffer.from([data[100]! ^ 0xff]), 0, 1, at + 100);
    fs.closeSync(fd);
  }
  t.equal(incompat(crashed()), 1, 'a crashed pool carries the vouching-journal flag (an older daxvm refuses it)');
  const check = fsck(torn);
  t.equal(check.exitCode, 0, 'fsck: a last transaction that did not reach the media is no error (as e2fsck)');
  t.equal(check.summary.journalTransactionsDiscarded, 1, 'fsck says it was not replayed');
  t.match(formatFsckReport(torn, check, false), /last transaction is not replayed.*\n.*\n.*: clean\n$/, 'daxvm fsck prints it as a note, then "clean"');
  let rec = openFileSystem(torn, { commitIntervalMs: 0 });
  t.equal(rec.getattr(rec.resolve('/log')).size, 0, 'the torn append is not applied: the file as its last proven commit left it');
  rec.close();
  t.equal(fsck(torn).exitCode, 0, 'fsck clean after recovery');
  rec = openFileSystem(crashed(), { commitIntervalMs: 0 });
  t.ok(readAll(rec, rec.resolve('/log')).equals(data), 'whole: the append is there');
  rec.close();
  // A store over the vouched bytes confirms the commit first (an empty transaction and a barrier), then the bytes may change.
  fsys.write(f.ino, 100, Buffer.from([data[100]! ^ 0xff]));
  t.equal(fsys.stats().confirmBarriers, 1, 'an overwrite of vouched bytes confirms first');
  rec = openFileSystem(crashed(), { commitIntervalMs: 0 });
  t.equal(rec.getattr(rec.resolve('/log')).size, 4096, 'after the confirm the append stays whatever the bytes hold');
  rec.close();
  const before = barriers();
  fsys.write(f.ino, 4096, pattern(4096, 8));
  fsys.fsync(f.ino, false);
  fsys.write(f.ino, 8192, pattern(4096, 9));
  fsys.fsync(f.ino, false);
  t.equal(barriers() - before, 2, 'back-to-back appends + fsync: one barrier each (the next commit proves the last)');
  fsys.close();
  t.equal(incompat(pool), 0, 'a clean unmount clears the flag');
});

t.test('fsync makes exactly what it promises durable: synced files survive, by name', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  const keep = fsys.create(ROOT_INO, 'keep', 0o644, ROOT);
  fsys.write(keep.ino, 0, Buffer.from('durable'));
  fsys.fsync(keep.ino, false);
  const later = fsys.create(ROOT_INO, 'later', 0o644, ROOT);
  fsys.write(later.ino, 0, Buffer.from('maybe'));
  const copy = crashCopy(t, pool);
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  t.equal(readAll(rec, rec.resolve('/keep')).toString(), 'durable');
  t.throws(() => rec.resolve('/later'), 'an operation after the last commit is not there (it was never committed)');
  rec.close();
});

t.test('prewriting (the daemon turns it on): after an fsync the blocks ahead are written on the host; recovery unchanged', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool, { prewrite: true });
  const core = fsys.core;
  const f = fsys.create(ROOT_INO, 'log', 0o644, ROOT);
  const first = pattern(3 * BLOCK_SIZE, 7);
  fsys.write(f.ino, 0, first);
  fsys.fsync(f.ino, false);
  core.prewriter.tick(1e6); // what its timer does after the fsync
  const g = core.sb.geometry;
  const ahead = core.pool.unwrittenRanges(core.alloc.cursors[0] * BLOCK_SIZE, 256 * BLOCK_SIZE);
  if (ahead === undefined) {
    t.comment('this host cannot tell unwritten extents (no FIEMAP): nothing to prewrite');
  } else {
    t.same(ahead, [], 'the next data blocks are written on the host');
    t.same(core.pool.unwrittenRanges((g.journalStart + core.journal.pos) * BLOCK_SIZE, 128 * BLOCK_SIZE), [], 'and the journal ahead');
    t.ok(fsys.stats().blocksPrewritten! > 0, `counted: ${fsys.stats().blocksPrewritten} blocks`);
  }
  const second = pattern(BLOCK_SIZE + 100, 8);
  fsys.write(f.ino, first.length, second); // onto prewritten blocks
  fsys.fsync(f.ino, false);
  const copy = crashCopy(t, pool);
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  t.ok(readAll(rec, rec.resolve('/log')).equals(Buffer.concat([first, second])), 'the fsync\'ed appends, exactly');
  rec.close();
});

t.test('a file unlinked while open is reclaimed after a crash', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'orphan', 0o644, ROOT);
  fsys.open(f.ino);
  fsys.write(f.ino, 0, Buffer.alloc(4 << 20, 1));
  fsys.unlink(ROOT_INO, 'orphan');
  fsys.sync();
  const copy = crashCopy(t, pool);
  const report = fsck(copy);
  t.equal(report.exitCode, 4, 'fsck without --repair reports the orphan');
  t.match(report.problems[0]?.kind, 'orphan');
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  const free = rec.statfs().bfree;
  rec.close();
  t.equal(fsck(copy).exitCode, 0, 'mount reclaimed it');
  t.ok(free > 16000 - 2000, `its blocks are free again (${free})`);
});

t.test('a directory removed while open is an orphan after a crash, reclaimed at mount', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  const d = fsys.mkdir(ROOT_INO, 'gone', 0o755, ROOT);
  fsys.open(d.ino); // a process holds it open (opendir, a cwd, an O_RDONLY fd)
  fsys.rmdir(ROOT_INO, 'gone');
  fsys.sync();
  const copy = crashCopy(t, pool);
  const report = fsck(copy);
  t.equal(report.exitCode, 4, 'fsck without --repair reports it');
  // As for a file: the orphan, and the bitmaps that still count it (what load-kill's onlyOrphans accepts).
  t.same([...new Set(report.problems.map((p) => p.kind))], ['orphan', 'bitmap'], `an orphan, not a directory with no name: ${JSON.stringify(report.problems)}`);
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  rec.close();
  t.equal(fsck(copy).exitCode, 0, 'mount reclaimed it');
});

t.test('bad pools are refused with a clear error and left untouched', async (t) => {
  const pool = tempPool(t, 32);
  const cases: Array<[string, (p: string) => void, string, RegExp]> = [
    ['not ours', (p) => fs.writeFileSync(p, crypto.randomBytes(1 << 20)), 'ENOTPOOL', /not a daxvm pool/],
    ['truncated', (p) => fs.truncateSync(p, 8 << 20), 'ETRUNCATED', /truncated/],
    ['newer format', (p) => patch(p, SUPERBLOCK_VERSION_OFFSET, 99, true), 'EFORMAT', /newer pool format/],
    ['corrupt superblock', (p) => patch(p, 300, 0xdead, false), 'ECORRUPT', /corrupt superblock/],
    ['corrupt bitmap', (p) => patch(p, computeGeometry(32 << 20).blockBitmapStart * BLOCK_SIZE + 100, 0xffff, false), 'ECORRUPT', /block bitmap/],
  ];
  for (const [what, damage, code, message] of cases) {
    const p = `${pool}.${code}`;
    fs.copyFileSync(pool, p);
    t.teardown(() => fs.rmSync(p, { force: true }));
    damage(p);
    const before = sha(p);
    const err = tryOpen(p);
    t.ok(err instanceof PoolError, `${what}: refused`);
    t.equal(err?.code, code, `${what}: ${err?.message}`);
    t.match(err?.message ?? '', message);
    t.match(err?.hint ?? '', /fsck|mkfs|upgrade|restore/, `${what}: the hint says what to do`);
    t.equal(sha(p), before, `${what}: nothing written`);
  }
});

t.test('fsck --repair restores a corrupt superblock and rebuilds a corrupt bitmap', async (t) => {
  const pool = tempPool(t, 32);
  const fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.write(f.ino, 0, pattern(300000, 3));
  fsys.close();
  patch(pool, 300, 0xbeef, false);
  t.equal(fsck(pool).exitCode, 4, 'a corrupt superblock without --repair is left uncorrected (exit 4)');
  t.equal(fsck(pool, { repair: true }).exitCode, 1, 'repaired');
  t.equal(fsck(pool).exitCode, 0, 'clean after repair');
  patch(pool, computeGeometry(32 << 20).blockBitmapStart * BLOCK_SIZE + 700, 0x0f0f, false);
  t.equal(fsck(pool).exitCode, 4);
  t.equal(fsck(pool, { repair: true }).exitCode, 1);
  t.equal(fsck(pool).exitCode, 0);
  const again = openFileSystem(pool, { commitIntervalMs: 0 });
  t.ok(readAll(again, again.resolve('/f')).equals(pattern(300000, 3)), 'data intact after repairs');
  again.close();
});

function tryOpen(p: string): PoolError | null {
  try {
    openFileSystem(p).close();
    return null;
  } catch (err) {
    if (err instanceof PoolError) return err;
    throw err;
  }
}

/** Overwrite a u32; `reseal` recomputes the superblock CRC so only the field is wrong. */
function patch(p: string, offset: number, value: number, reseal: boolean): void {
  const fd = fs.openSync(p, 'r+');
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  fs.writeSync(fd, b, 0, 4, offset);
  if (reseal) {
    const sb = Buffer.alloc(508);
    fs.readSync(fd, sb, 0, 508, 0);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32cOf(sb));
    fs.writeSync(fd, crc, 0, 4, 508);
  }
  fs.closeSync(fd);
}

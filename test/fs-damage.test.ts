/**
 * Damaged pools, one structure at a time, as the image fuzzer
 * (src/reliability, `daxvm test-fuzz`) damages them: the readers answer EIO
 * (never a RangeError or a crash), fsck finds the damage, and fsck --repair
 * leaves a pool that opens and that a second fsck finds clean.
 */
import fs from 'node:fs';
import t from 'tap';
import { FsError, fsck, openFileSystem, ROOT_INO, type FileSystem } from '../src/fs/index.js';
import { crc32c } from '../src/core/format/checksum.js';
import { BLOCK_SIZE, computeGeometry, CRC_OFFSET, INODE_SIZE } from '../src/core/format/pool.js';
import { pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1 << 20;

/** A pool with a small tree, cleanly unmounted. */
interface Built {
  pool: string;
  ino: { d: number; a: number; b: number; sub: number; c: number };
  blocks: Record<string, number[]>;
}

function build(t: Parameters<typeof tempPool>[0]): Built {
  const pool = tempPool(t, 56);
  const fsys = openFileSystem(pool, { commitIntervalMs: 0 });
  const d = fsys.mkdir(ROOT_INO, 'd', 0o755, ROOT).ino;
  const a = fsys.create(d, 'a', 0o644, ROOT).ino;
  fsys.write(a, 0, pattern(20000, 1));
  const b = fsys.create(ROOT_INO, 'b', 0o644, ROOT).ino;
  fsys.write(b, 0, pattern(9000, 2));
  const sub = fsys.mkdir(d, 'sub', 0o755, ROOT).ino;
  const c = fsys.create(sub, 'c', 0o644, ROOT).ino;
  fsys.write(c, 0, pattern(100, 3));
  const ino = { d, a, b, sub, c };
  fsys.setxattr(ino.b, 'user.x', Buffer.from('xattr value'), 0);
  const blocks: Record<string, number[]> = {};
  for (const [name, i] of Object.entries(ino)) {
    const node = fsys.core.inode(i);
    blocks[name] = node.extents.items.flatMap((e) => Array.from({ length: e.count }, (_, k) => e.physical + k));
    if (node.xattrBlock) blocks[`${name}.xattr`] = [node.xattrBlock];
  }
  fsys.close();
  return { pool, ino, blocks };
}

/** Change an inode record in place and reseal its CRC (the damage a checksum cannot see). */
function patchInode(pool: string, ino: number, change: (rec: Buffer) => void): void {
  const g = computeGeometry(fs.statSync(pool).size);
  const at = g.inodeTableStart * BLOCK_SIZE + ino * INODE_SIZE;
  const fd = fs.openSync(pool, 'r+');
  const rec = Buffer.alloc(INODE_SIZE);
  fs.readSync(fd, rec, 0, INODE_SIZE, at);
  change(rec);
  rec.writeUInt32LE(crc32c(rec.subarray(0, INODE_SIZE - 4)), INODE_SIZE - 4);
  fs.writeSync(fd, rec, 0, INODE_SIZE, at);
  fs.closeSync(fd);
}

/** Change a block in place; `reseal` recomputes its CRC tail. */
function patchBlock(pool: string, block: number, change: (b: Buffer) => void, reseal = true): void {
  const fd = fs.openSync(pool, 'r+');
  const b = Buffer.alloc(BLOCK_SIZE);
  fs.readSync(fd, b, 0, BLOCK_SIZE, block * BLOCK_SIZE);
  change(b);
  if (reseal) b.writeUInt32LE(crc32c(b.subarray(0, CRC_OFFSET)), CRC_OFFSET);
  fs.writeSync(fd, b, 0, BLOCK_SIZE, block * BLOCK_SIZE);
  fs.closeSync(fd);
}

/** The error `fn` throws: it must be an FsError (anything else fails the test with its stack). */
function fsErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FsError) return err.code;
    throw err;
  }
  return 'none';
}

function withFs<T>(pool: string, fn: (f: FileSystem) => T): T {
  const f = openFileSystem(pool, { commitIntervalMs: 0 });
  try {
    return fn(f);
  } finally {
    f.close();
  }
}

t.test('an inode whose values are damaged (its CRC still right) is EIO when used, never a RangeError', async (t) => {
  const { pool, ino } = build(t);
  const g = computeGeometry(56 * MiB);
  const damages: Array<[string, (rec: Buffer) => void]> = [
    ['an extent far past the pool (2^64-1)', (r) => r.writeBigUInt64LE(2n ** 64n - 1n, 120)],
    ['an extent just past the pool', (r) => r.writeBigUInt64LE(BigInt(g.totalBlocks - 1), 120)],
    ['an extent on the inode table', (r) => r.writeBigUInt64LE(BigInt(g.inodeTableStart), 120)],
    ['a zero-length extent', (r) => r.writeUInt32LE(0, 116)],
    ['an xattr block in the journal', (r) => r.writeBigUInt64LE(5n, 88)],
    ['a page-table root past the pool', (r) => { r.writeBigUInt64LE(2n ** 62n, 96); r.writeUInt32LE(1, 104); }],
    ['a size of 2^63', (r) => r.writeBigUInt64LE(2n ** 63n, 16)],
    ['an unknown file type', (r) => r.writeUInt32LE(0o070644, 0)],
    ['an inline-symlink flag on a regular file', (r) => r.writeUInt32LE(1, 72)],
  ];
  for (const [what, damage] of damages) {
    const copy = `${pool}.${what.replace(/\W+/g, '-')}`;
    fs.copyFileSync(pool, copy);
    t.teardown(() => fs.rmSync(copy, { force: true }));
    patchInode(copy, ino.b, damage);
    const f = openFileSystem(copy, { commitIntervalMs: 0 });
    t.equal(fsErrorOf(() => f.getattr(ino.b)), 'EIO', `${what}: getattr says EIO`);
    t.equal(fsErrorOf(() => f.read(ino.b, 0, Buffer.alloc(100))), 'EIO', `${what}: read says EIO`);
    t.equal(fsErrorOf(() => f.readdir(ROOT_INO)), 'none', `${what}: the rest of the tree is served`);
    f.close();
    t.throws(() => openFileSystem(copy), { code: 'ENEEDSFSCK' }, `${what}: the damage was recorded: the next mount asks for fsck`);
    t.equal(fsck(copy, { repair: true }).exitCode, 1, `${what}: fsck --repair corrects it`);
    t.equal(fsck(copy).exitCode, 0, `${what}: clean afterwards`);
    t.equal(withFs(copy, (f2) => readAll(f2, f2.resolve('/d/a')).equals(pattern(20000, 1))), true, `${what}: the other files are intact`);
  }
});

t.test('a block count of 2^64-1 is only a wrong count: the file reads, writes and fsck fixes the count', async (t) => {
  const { pool, ino } = build(t);
  patchInode(pool, ino.b, (r) => r.writeBigUInt64LE(2n ** 64n - 1n, 24));
  withFs(pool, (f) => {
    t.ok(readAll(f, ino.b).equals(pattern(9000, 2)), 'reads');
    t.equal(f.write(ino.b, 9000, Buffer.from('more')), 4, 'writes (and saves the inode)');
  });
  t.equal(fsck(pool, { repair: true }).exitCode, 1);
  t.equal(fsck(pool).exitCode, 0);
});

t.test('directory records and attribute names that no name can be: EIO, not a strange entry', async (t) => {
  const { pool, ino, blocks } = build(t);
  const cases: Array<[string, number, (b: Buffer) => void, (f: FileSystem) => unknown]> = [
    ['an entry named ..', blocks.d![0]!, (b) => { b.writeUInt8(2, 6); b.write('..', 8, 'latin1'); }, (f) => f.readdir(ino.d)],
    ['an entry with a / in its name', blocks.d![0]!, (b) => b.write('/', 8, 'latin1'), (f) => f.readdir(ino.d)],
    ['an entry with an empty name', blocks.d![0]!, (b) => b.writeUInt8(0, 6), (f) => f.readdir(ino.d)],
    ['an attribute outside every namespace', blocks['b.xattr']![0]!, (b) => b.write('xxxx', 16 + 4, 'latin1'), (f) => f.listxattr(ino.b)],
  ];
  for (const [what, block, damage, use] of cases) {
    const copy = `${pool}.${what.replace(/\W+/g, '-')}`;
    fs.copyFileSync(pool, copy);
    t.teardown(() => fs.rmSync(copy, { force: true }));
    patchBlock(copy, block, damage);
    const f = openFileSystem(copy, { commitIntervalMs: 0 });
    t.equal(fsErrorOf(() => use(f)), 'EIO', `${what}: EIO`);
    f.close();
  }
});

/** Change a superblock (0: primary, 1: backup) and reseal its CRC. */
function patchSuper(pool: string, which: 0 | 1, change: (b: Buffer) => void): void {
  const fd = fs.openSync(pool, 'r+');
  const b = Buffer.alloc(BLOCK_SIZE);
  fs.readSync(fd, b, 0, BLOCK_SIZE, which * BLOCK_SIZE);
  change(b);
  b.writeUInt32LE(crc32c(b.subarray(0, 508)), 508);
  fs.writeSync(fd, b, 0, BLOCK_SIZE, which * BLOCK_SIZE);
  fs.closeSync(fd);
}

function openError(pool: string): string {
  try {
    openFileSystem(pool).close();
    return 'none';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

t.test('superblock: unknown feature flags refuse the pool; a primary that is bad or disagrees with the backup is repaired from it', async (t) => {
  const { pool } = build(t);
  const total = 56 * MiB / BLOCK_SIZE;
  const copyOf = (what: string): string => {
    const copy = `${pool}.${what}`;
    fs.copyFileSync(pool, copy);
    t.teardown(() => fs.rmSync(copy, { force: true }));
    return copy;
  };
  for (const [what, offset] of [['incompat', 16], ['rocompat', 20]] as const) {
    const p = copyOf(what);
    patchSuper(p, 0, (b) => b.writeUInt32LE(0x40, offset));
    t.equal(openError(p), 'EFORMAT', `${what} feature flag unknown to this version: refused as a newer format`);
    const r = fsck(p, { repair: true });
    t.equal(r.exitCode, 8, `${what}: fsck will not touch it either`);
    t.match(r.error ?? '', /newer pool format/);
  }
  {
    const p = copyOf('both');
    patchSuper(p, 0, (b) => b.fill(0, 0, 8));
    patchSuper(p, 1, (b) => b.writeUInt32LE(7, 200));
    const r = fsck(p, { repair: true });
    t.equal(r.exitCode, 8, 'no magic in the primary and a bad backup: fsck cannot recover it');
    t.match(r.error ?? '', /both superblocks are corrupt/, 'and says why (not "not a daxvm pool")');
  }
  const repaired: Array<[string, 0 | 1, (b: Buffer) => void, string]> = [
    ['a knob value out of range', 0, (b) => b.writeUInt32LE(7, 200), 'ECORRUPT'],
    ['a journal sequence past 2^53', 0, (b) => b.writeBigUInt64LE(2n ** 60n, 144), 'ECORRUPT'],
    ['a pool of 2 blocks (a geometry that checks out otherwise)', 0, (b) => b.writeBigUInt64LE(2n, 32), 'ECORRUPT'],
    ['the magic gone', 0, (b) => b.fill(0, 0, 8), 'ENOTPOOL'],
    ['twice the blocks (a geometry that checks out)', 0, (b) => b.writeBigUInt64LE(BigInt(total * 2), 32), 'ETRUNCATED'],
    ['a backup with half the blocks', 1, (b) => b.writeBigUInt64LE(BigInt(total / 2), 32), 'none'],
  ];
  for (const [what, which, damage, refusal] of repaired) {
    const p = copyOf(what.replace(/\W+/g, '-'));
    patchSuper(p, which, damage);
    t.equal(fsck(p).exitCode, 4, `${what}: fsck reports it`);
    // (A mount that works rewrites the backup at unmount: only the refusals are tried here.)
    if (refusal !== 'none') t.equal(openError(p), refusal, `${what}: open refuses with ${refusal}`);
    t.equal(fsck(p, { repair: true }).exitCode, 1, `${what}: fsck --repair restores from the other superblock`);
    t.equal(fsck(p).exitCode, 0, `${what}: clean afterwards`);
    t.equal(withFs(p, (f) => readAll(f, f.resolve('/b')).equals(pattern(9000, 2))), true, `${what}: the pool opens, files intact`);
  }
});

/** fsck finds it (4), --repair corrects it (1), and then it is clean (0). */
function repairs(t: Parameters<typeof tempPool>[0], pool: string, what: string): void {
  const before = fsck(pool);
  t.equal(before.exitCode, 4, `${what}: fsck reports it`);
  const r = fsck(pool, { repair: true });
  t.equal(r.exitCode, 1, `${what}: fsck --repair corrects it: ${JSON.stringify(r.problems.filter((p) => !p.fixed))}${r.error ?? ''}`);
  const after = fsck(pool);
  t.equal(after.exitCode, 0, `${what}: a second fsck finds it clean: ${JSON.stringify(after.problems)}`);
}

function names(f: FileSystem, path: string): string[] {
  return f.readdir(f.resolve(path)).slice(2).map((e) => e.name).sort();
}

t.test('fsck --repair: what it used to leave behind or give up on', async (t) => {
  const g = computeGeometry(56 * MiB);

  t.test('a directory block with a broken record keeps the records before it; the others go to lost+found', async (t) => {
    const pool = tempPool(t, 56);
    const files = withFs(pool, (f) => {
      const many = f.mkdir(ROOT_INO, 'many', 0o755, ROOT).ino;
      for (let i = 0; i < 10; i++) f.write(f.create(many, `f${i}`, 0o644, ROOT).ino, 0, pattern(50 + i, 100 + i));
      return { block: f.core.inode(many).extents.lookup(0), ino: f.lookup(many, 'f4') };
    });
    // The fifth record (each is 12 bytes: header + "fN" rounded) gets an impossible length.
    patchBlock(pool, files.block, (b) => b.writeUInt16LE(3, 4 * 12 + 4));
    repairs(t, pool, 'a broken record');
    withFs(pool, (f) => {
      t.same(names(f, '/many'), ['f0', 'f1', 'f2', 'f3'], 'the records before the broken one are kept');
      t.equal(names(f, '/lost+found').length, 6, 'the six after it are in lost+found');
      t.ok(readAll(f, f.resolve(`/lost+found/#${files.ino}`)).equals(pattern(54, 104)), 'with their contents');
    });
  });

  t.test('a directory that lost its name comes back whole under lost+found', async (t) => {
    const { pool, ino, blocks } = build(t);
    const rootBlock = withFs(pool, (f) => f.core.inode(ROOT_INO).extents.lookup(0));
    // The entry "d" in the root: its record's inode number becomes 0 (free space).
    patchBlock(pool, rootBlock, (b) => {
      for (let off = 0; off < CRC_OFFSET; off += b.readUInt16LE(off + 4)) if (b.readUInt32LE(off) === ino.d) b.writeUInt32LE(0, off);
    });
    void blocks;
    repairs(t, pool, 'a directory with no name');
    withFs(pool, (f) => {
      t.same(names(f, `/lost+found/#${ino.d}`), ['a', 'sub'], 'the directory and what it holds');
      t.ok(readAll(f, f.resolve(`/lost+found/#${ino.d}/sub/c`)).equals(pattern(100, 3)), 'down to the deepest file');
      t.equal(names(f, '/lost+found').length, 1, 'nothing inside it reconnected a second time');
    });
  });

  t.test('extended attributes whose block is corrupt are found and dropped', async (t) => {
    const { pool, ino, blocks } = build(t);
    patchBlock(pool, blocks['b.xattr']![0]!, (b) => b.writeUInt8(b.readUInt8(100) ^ 1, 100), false);
    repairs(t, pool, 'a corrupt xattr block');
    withFs(pool, (f) => {
      t.same(f.listxattr(ino.b), [], 'the attributes are gone');
      t.ok(readAll(f, ino.b).equals(pattern(9000, 2)), 'the file is whole');
    });
  });

  t.test('a block claimed by two files stays with the first one walked', async (t) => {
    const { pool, ino, blocks } = build(t);
    patchInode(pool, ino.c, (r) => r.writeBigUInt64LE(BigInt(blocks.a![0]!), 120));
    repairs(t, pool, 'a shared block');
    withFs(pool, (f) => {
      t.ok(readAll(f, ino.a).equals(pattern(20000, 1)), 'the first owner is whole');
      t.ok(readAll(f, ino.c).equals(Buffer.alloc(100)), 'the second has a hole there');
    });
  });

  t.test('a root inode that cannot be used is made anew; the tree is found in lost+found', async (t) => {
    const { pool, ino } = build(t);
    patchInode(pool, ROOT_INO, (r) => r.writeUInt32LE(0o070755, 0));
    t.equal(openError(pool), 'ECORRUPT', 'the pool is refused');
    repairs(t, pool, 'an unusable root');
    withFs(pool, (f) => {
      t.same(names(f, '/lost+found'), [`#${ino.b}`, `#${ino.d}`].sort(), 'what the root held');
      t.ok(readAll(f, f.resolve(`/lost+found/#${ino.d}/a`)).equals(pattern(20000, 1)), 'whole');
    });
  });

  t.test('a corrupt inode bitmap is rebuilt from the inode table', async (t) => {
    const { pool, ino } = build(t);
    patchBlock(pool, g.inodeBitmapStart, (b) => b.writeUInt8(b.readUInt8(0) ^ 0x06, 0), false);
    t.equal(openError(pool), 'ECORRUPT', 'the pool is refused');
    repairs(t, pool, 'a corrupt inode bitmap');
    withFs(pool, (f) => {
      t.same(names(f, '/'), ['b', 'd'], 'the tree is all there');
      t.ok(readAll(f, f.resolve('/d/sub/c')).equals(pattern(100, 3)));
      t.equal(f.create(ROOT_INO, 'new', 0o644, ROOT).ino > ino.c, true, 'and no inode in use is handed out again');
    });
  });

  t.test('an entry naming an inode the bitmap marks free, whose record is whole, keeps its file', async (t) => {
    const { pool, ino } = build(t);
    patchBlock(pool, g.inodeBitmapStart, (b) => b.writeUInt8(b.readUInt8(ino.b >> 3) & ~(1 << (ino.b & 7)) & 0xff, ino.b >> 3));
    repairs(t, pool, 'an inode marked free');
    withFs(pool, (f) => t.ok(readAll(f, f.resolve('/b')).equals(pattern(9000, 2)), '/b is still there, whole'));
  });
});

t.test('a mount count at 2^32-1 wraps at the next mount', async (t) => {
  const { pool } = build(t);
  patchSuper(pool, 0, (b) => b.writeUInt32LE(0xffffffff, 152));
  t.equal(openError(pool), 'none', 'the pool mounts');
  const sb = Buffer.alloc(512);
  const fd = fs.openSync(pool, 'r');
  fs.readSync(fd, sb, 0, 512, 0);
  fs.closeSync(fd);
  t.equal(sb.readUInt32LE(152), 0, 'the count wrapped');
  t.equal(fsck(pool).exitCode, 0);
});

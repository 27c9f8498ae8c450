/**
 * A chain of 20 000 directories at the fs layer, far deeper than a JS call
 * stack could recurse: resolve, fsck's walk, fsck --repair reconnecting the
 * whole chain under lost+found when it loses its name, and removal from the
 * bottom up. (Through the mount, test/mount-deep.test.ts.)
 */
import fs from 'node:fs';
import t from 'tap';
import { fsck, openFileSystem, ROOT_INO } from '../src/fs/index.js';
import { crc32c } from '../src/core/format/checksum.js';
import { BLOCK_SIZE, CRC_OFFSET } from '../src/core/format/pool.js';
import { ROOT, tempPool } from './helpers/pool.js';

const DEPTH = 20_000;

t.test(`a chain of ${DEPTH} directories: fsck, repair, removal`, async (t) => {
  const pool = tempPool(t, 512); // 32768 inodes (one per 16 KiB)
  let fsys = openFileSystem(pool, { commitIntervalMs: 0 });
  const top = fsys.mkdir(ROOT_INO, 'top', 0o755, ROOT).ino;
  const chain = [top];
  for (let i = 0; i < DEPTH; i++) chain.push(fsys.mkdir(chain[chain.length - 1]!, 'd', 0o755, ROOT).ino);
  const leaf = fsys.create(chain[DEPTH]!, 'leaf', 0o644, ROOT).ino;
  fsys.write(leaf, 0, Buffer.from('bottom'));
  t.equal(fsys.resolve('/top' + '/d'.repeat(DEPTH) + '/leaf'), leaf, 'resolve walks the whole chain');
  const rootBlock = fsys.core.inode(ROOT_INO).extents.lookup(0);
  fsys.close();

  let r = fsck(pool);
  t.equal(r.exitCode, 0, 'fsck walks it: clean');
  t.equal(r.summary.dirs, DEPTH + 2);

  // The root's entry for "top" becomes free space (CRC resealed): the whole chain loses its name.
  const fd = fs.openSync(pool, 'r+');
  const b = Buffer.alloc(BLOCK_SIZE);
  fs.readSync(fd, b, 0, BLOCK_SIZE, rootBlock * BLOCK_SIZE);
  for (let off = 0; off < CRC_OFFSET; off += b.readUInt16LE(off + 4)) if (b.readUInt32LE(off) === top) b.writeUInt32LE(0, off);
  b.writeUInt32LE(crc32c(b.subarray(0, CRC_OFFSET)), CRC_OFFSET);
  fs.writeSync(fd, b, 0, BLOCK_SIZE, rootBlock * BLOCK_SIZE);
  fs.closeSync(fd);
  r = fsck(pool, { repair: true });
  t.equal(r.exitCode, 1, 'fsck --repair corrects it');
  t.equal(r.problems.filter((p) => p.kind === 'unreachable').length, 1, 'one reconnection: the top of the chain, the rest comes with it');
  r = fsck(pool);
  t.equal(r.exitCode, 0, 'a second fsck finds it clean');

  fsys = openFileSystem(pool, { commitIntervalMs: 0 });
  const found = fsys.resolve(`/lost+found/#${top}` + '/d'.repeat(DEPTH) + '/leaf');
  const buf = Buffer.alloc(6);
  fsys.read(found, 0, buf);
  t.equal(buf.toString(), 'bottom', 'the bottom file, under lost+found');
  fsys.unlink(chain[DEPTH]!, 'leaf');
  for (let i = DEPTH; i >= 1; i--) fsys.rmdir(chain[i - 1]!, 'd');
  t.same(fsys.readdir(top).map((e) => e.name), ['.', '..'], 'removed from the bottom up');
  fsys.close();
  t.equal(fsck(pool).exitCode, 0, 'fsck clean after');
});

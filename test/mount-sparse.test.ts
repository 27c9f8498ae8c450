// Huge sparse offsets through the mount: writes at 1 TiB, 8 TiB and up to
// ext4's largest file with 4 KiB blocks (16 TiB - 4 KiB), EFBIG past it,
// truncate to huge sizes and back, holes and reads past the end, honest
// st_blocks, dd, cp --sparse=always, SEEK_DATA/SEEK_HOLE, fallocate, offsets near 2^63. The
// errno in each case is what ext4 answers (probed on a loop-mounted ext4),
// except where the kernel's FUSE answers first (said where).
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { df, errCode, freshMount, fsck, mountPool, run, sh, type Mounted } from './helpers/mount.js';
import { checkDaemon } from './helpers/hostile.js';

const TiB = 2 ** 40;
/** ext4's s_maxbytes for extent files with 4 KiB blocks; ours too (32-bit logical blocks). */
const MAX = 2 ** 44 - 4096;

function readAt(fd: number, position: number | bigint, length: number): Buffer {
  const b = Buffer.alloc(length);
  return b.subarray(0, fs.readSync(fd, b, 0, length, position));
}

t.test('pwrite, truncate and read at huge offsets', async (t) => {
  const fm = await freshMount(t);
  let m: Mounted = fm;
  const f = join(m.mnt, 'huge');
  let fd = fs.openSync(f, 'w+');
  const writes: Array<[number, string]> = [[TiB, 'one'], [8 * TiB, 'eight'], [MAX - 4096, 'near'], [MAX - 3, 'end']];
  for (const [pos, s] of writes) t.equal(fs.writeSync(fd, Buffer.from(s), 0, s.length, pos), s.length, `pwrite at ${pos}`);
  t.equal(fs.fstatSync(fd).size, MAX, 'the size is the largest a file can have');
  t.equal(errCode(() => fs.writeSync(fd, Buffer.from('x'), 0, 1, MAX)), 'EFBIG', 'a write at that size: EFBIG');
  t.equal(errCode(() => fs.writeSync(fd, Buffer.from('x'), 0, 1, MAX + 1)), 'EFBIG', 'and past it');
  t.equal(fs.writeSync(fd, Buffer.from('abcde'), 0, 5, MAX - 2), 2, 'a write across the limit is short (2 of 5 bytes), as ext4');

  t.same(readAt(fd, TiB - 2, 6), Buffer.from([0, 0, 0x6f, 0x6e, 0x65, 0]), 'bytes around 1 TiB: the hole before reads zeros');
  t.ok(readAt(fd, 4 * TiB, 1 << 20).equals(Buffer.alloc(1 << 20)), '1 MiB in the middle of a hole: zeros');
  t.equal(readAt(fd, MAX - 3, 10).toString(), 'eab', 'the last bytes');
  t.equal(readAt(fd, MAX + 100, 10).length, 0, 'pread past the end: 0 bytes');
  t.equal(readAt(fd, 2n ** 62n, 10).length, 0, 'pread at 2^62: 0 bytes');
  t.equal(errCode(() => readAt(fd, 2n ** 63n - 1n, 10)), 'EINVAL', 'pread at 2^63 - 1: EINVAL (the kernel)');
  const blocks = fs.fstatSync(fd).blocks;
  // 'near' and 'end' share the last block: 3 data blocks.
  t.ok(blocks >= 3 * 8 && blocks <= 128, `st_blocks honest: the 3 data blocks and little more (${blocks} x 512 bytes)`);
  const du = run('du', ['-k', f]);
  t.ok(Number(du.stdout.split('\t')[0]) <= 64, `du: ${du.stdout.trim()}`);

  // truncate to huge sizes and back
  t.equal(errCode(() => fs.ftruncateSync(fd, MAX)), 'no error', 'ftruncate to the largest size');
  t.equal(errCode(() => fs.ftruncateSync(fd, MAX + 1)), 'EFBIG', 'one byte more: EFBIG');
  let r = run('truncate', ['-s', String(2n ** 63n - 1n), f]);
  t.match(r.stderr, /File too large/, 'truncate -s 2^63-1: EFBIG, as ext4 (the size arrives rounded to 2^63)');
  fs.ftruncateSync(fd, 2 * TiB);
  t.equal(fs.fstatSync(fd).size, 2 * TiB, 'truncate down to 2 TiB');
  t.ok(fs.fstatSync(fd).blocks <= 16, 'the blocks past 2 TiB are freed');
  t.equal(readAt(fd, 8 * TiB, 5).length, 0, 'nothing at 8 TiB now');
  fs.ftruncateSync(fd, MAX);
  t.ok(readAt(fd, 8 * TiB, 5).equals(Buffer.alloc(5)), 'up again: the old bytes at 8 TiB do not come back');
  t.equal(readAt(fd, TiB, 3).toString(), 'one', 'the bytes below 2 TiB stay');

  // dd at huge offsets, and near 2^63
  const rnd = join(fm.dir, 'random');
  fs.writeFileSync(rnd, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)));
  r = sh(`dd if=${rnd} of=${f}.dd bs=4096 count=1 seek=$((2**31)) conv=notrunc status=none && dd if=${f}.dd bs=4096 count=1 skip=$((2**31)) status=none | cmp - ${rnd}`);
  t.equal(r.status, 0, `dd seek= to 8 TiB and back\n${r.summary}`);
  t.equal(fs.statSync(`${f}.dd`).size, 8 * TiB + 4096);
  r = run('dd', ['if=/dev/zero', `of=${f}`, 'bs=1', 'count=1', `seek=${2n ** 63n - 2n}`, 'oflag=seek_bytes', 'conv=notrunc']);
  // ext4 refuses the lseek itself (EINVAL, its s_maxbytes); FUSE lets a file seek to 2^63 - 1, and the write gets EFBIG.
  t.match(r.stderr, /File too large/, 'dd at 2^63 - 2: EFBIG');
  r = run('dd', ['if=/dev/zero', `of=${f}`, 'bs=1', 'count=1', `seek=${2n ** 63n - 1n}`, 'oflag=seek_bytes', 'conv=notrunc']);
  t.match(r.stderr, /Invalid argument/, 'dd at 2^63 - 1: EINVAL');
  r = run('fallocate', ['-o', String(8 * TiB), '-l', '64K', `${f}.fa`]);
  t.equal(r.status, 0, `fallocate at 8 TiB\n${r.summary}`);
  t.equal(fs.statSync(`${f}.fa`).size, 8 * TiB + 65536, 'the size reaches past it');
  t.equal(fs.statSync(`${f}.fa`).blocks, 128, 'st_blocks: the 64 KiB only');
  r = run('fallocate', ['-o', String(MAX - 4096), '-l', '8192', `${f}.fa`]);
  t.match(r.stderr, /File too large/, 'fallocate across the largest size: EFBIG, as ext4');
  checkDaemon(t, m, 'after huge offsets');

  fs.closeSync(fd);
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const ck = fsck(m.pool);
  t.equal(ck.status, 0, `fsck clean\n${ck.summary}`);
  m = await mountPool(t, m.pool);
  fd = fs.openSync(join(m.mnt, 'huge'), 'r');
  t.equal(fs.fstatSync(fd).size, MAX, 'the size survives unmount and mount');
  t.equal(readAt(fd, TiB, 3).toString(), 'one', 'and the bytes');
  t.ok(readAt(fd, MAX - 4096, 4096).equals(Buffer.alloc(4096)), 'and the hole the truncate left at the end');
  fs.closeSync(fd);
  const st2 = await m.stop();
  t.equal(st2.code, 0);
});

t.test('cp --sparse=always of a sparse file four times the pool', async (t) => {
  const m = await freshMount(t, { size: '256M' });
  const f = join(m.mnt, 'sparse');
  const GiB = 2 ** 30;
  const fd = fs.openSync(f, 'w');
  for (const pos of [0, GiB / 2, GiB - 4096]) fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, pos);
  fs.closeSync(fd);
  const before = df(m.mnt).used;
  // SEEK_DATA / SEEK_HOLE (LSEEK): the first 2 MiB are one aligned region (see below), then two blocks.
  const seek = run('python3', ['-c', `import os
fd = os.open(${JSON.stringify(f)}, os.O_RDONLY)
out = []
for off, wh in [(0, os.SEEK_HOLE), (2 << 20, os.SEEK_DATA), (${GiB / 2}, os.SEEK_HOLE), (${GiB / 2 + 4096}, os.SEEK_DATA), (${GiB - 4096}, os.SEEK_HOLE), (${GiB - 1}, os.SEEK_DATA)]:
    try: out.append(str(os.lseek(fd, off, wh)))
    except OSError as e: out.append(os.strerror(e.errno))
try: os.lseek(fd, ${GiB}, os.SEEK_DATA)
except OSError as e: out.append(os.strerror(e.errno))
print(' '.join(out))`]);
  t.equal(seek.stdout.trim(), `${2 << 20} ${GiB / 2} ${GiB / 2 + 4096} ${GiB - 4096} ${GiB} ${GiB - 1} No such device or address`,
    `SEEK_HOLE and SEEK_DATA find the holes and the data\n${seek.summary}`);
  const r = run('cp', ['--sparse=always', f, join(m.mnt, 'copy')]);
  t.equal(r.status, 0, r.summary);
  const st = fs.statSync(join(m.mnt, 'copy'));
  t.equal(st.size, GiB, 'the copy has the size');
  // A file that grows past 2 MiB gets its first 2 MiB as one aligned region (for a huge
  // page-table entry, see src/fs/ops-data.ts): that region and the other two data blocks.
  t.ok(st.blocks * 512 <= 2 * 2 ** 20 + 64 * 1024, `and the blocks of the data only (${st.blocks} x 512 bytes)`);
  t.ok(df(m.mnt).used - before < 4096, 'the pool did not fill (df used grew less than 4 MiB)');
  const c = fs.openSync(join(m.mnt, 'copy'), 'r');
  t.ok(readAt(c, GiB / 2 - 4096, 8192).equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 0x5a)])), 'hole then data, where they were');
  fs.closeSync(c);
  checkDaemon(t, m, 'after cp');
  const s = await m.stop();
  t.equal(s.code, 0);
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
});

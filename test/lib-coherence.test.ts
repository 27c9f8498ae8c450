// Coherence between mappings and the mount: bytes stored through a mapping
// are read by cat at once (the daemon reads the same pool pages; FUSE drops
// a file's cached pages at each open), and bytes written through the mount
// are seen in a live mapping at once (the daemon stores into the pool).
import t from 'tap';
import fs from 'node:fs';
import { mmap, MAP_DAXVM } from '../src/lib/index.js';
import { alignedFile, catBytes, fragmentedFile, MiB, PAGE, tablesMount } from './helpers/lib.js';
import { sh } from './helpers/mount.js';

t.test('stores through a mapping: cat sees them at once', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1 * MiB, 64 * 1024);
  for (const file of [a, f]) {
    const before = catBytes(file.path); // the mount's page cache now holds the old bytes
    t.ok(before.equals(file.data));
    const map = mmap(file.path, { prot: 'rw', flags: MAP_DAXVM });
    map.buffer.write('through the mapping', 3 * PAGE + 10);
    const seen = catBytes(file.path);
    t.equal(seen.subarray(3 * PAGE + 10, 3 * PAGE + 29).toString(), 'through the mapping', `${map.mode}: cat sees the store, no msync`);
    // A reader that kept the file open across the store (its cached pages were read before).
    const fd = fs.openSync(file.path, 'r');
    const b1 = Buffer.alloc(32);
    fs.readSync(fd, b1, 0, 32, 5 * PAGE);
    map.buffer.write('second store', 5 * PAGE);
    const b2 = Buffer.alloc(12);
    fs.readSync(fd, b2, 0, 12, 5 * PAGE);
    t.comment(`${map.mode}: a read through a handle opened before the store returns ${JSON.stringify(b2.toString('latin1'))}`);
    fs.closeSync(fd);
    t.equal(catBytes(file.path).subarray(5 * PAGE, 5 * PAGE + 12).toString(), 'second store', 'a new open sees it');
    map.unmap();
  }
  await m.stop();
});

t.test('a writable mapping right after an append + fsync: the commit vouched for those bytes; the library maps from the pool, and its store lasts', async (t) => {
  const m = await tablesMount(t);
  const stats = (): Record<string, number> => JSON.parse(fs.readFileSync(`${m.mnt}/.daxvm/stats`, 'utf8')) as Record<string, number>;
  const path = `${m.mnt}/log`;
  const fd = fs.openSync(path, 'a');
  fs.writeSync(fd, Buffer.alloc(2 * PAGE, 0x61));
  fs.fsyncSync(fd);
  const s0 = stats();
  t.ok(s0.vouchingCommits! >= 1, `the append + fsync vouched (${s0.vouchingCommits} vouching commits, ${s0.orderedCommits} ordered)`);
  // The lease meets the vouched blocks (until a later commit proves them): the library fsyncs, then leases again.
  const map = mmap(path, { prot: 'rw', flags: MAP_DAXVM });
  t.match(map.mode, /^(attached|stitched)$/, `mapped from the pool (${map.mode}${map.fallbackReason ? `: ${map.fallbackReason}` : ''})`);
  const s1 = stats();
  t.ok(s1.confirmBarriers! + s1.commits! > s0.confirmBarriers! + s0.commits!, 'the vouching commit was proven before the lease');
  t.comment(`confirms ${s1.confirmBarriers! - s0.confirmBarriers!}, commits ${s1.commits! - s0.commits!} between the fsync and the mapping`);
  map.buffer.write('stored', PAGE + 7);
  map.msync();
  map.unmap();
  fs.closeSync(fd);
  t.equal(catBytes(path).subarray(PAGE + 7, PAGE + 13).toString(), 'stored');
  await m.stop();
});

t.test('a live writable mapping over a file\'s last block: an append into that block + fsync is ordered, not vouched', async (t) => {
  const m = await tablesMount(t);
  const stats = (): Record<string, number> => JSON.parse(fs.readFileSync(`${m.mnt}/.daxvm/stats`, 'utf8')) as Record<string, number>;
  const path = `${m.mnt}/tail`;
  fs.writeFileSync(path, Buffer.alloc(PAGE + 100, 0x62));
  const map = mmap(path, { prot: 'rw', flags: MAP_DAXVM });
  t.match(map.mode, /^(attached|stitched)$/, `mapped from the pool (${map.mode}${map.fallbackReason ? `: ${map.fallbackReason}` : ''})`);
  const fd = fs.openSync(path, 'a');
  const s0 = stats();
  // The new bytes land in the block the mapping reaches: it could store there after the commit read their CRC.
  fs.writeSync(fd, 'more');
  fs.fsyncSync(fd);
  const s1 = stats();
  t.equal(s1.orderedCommits! - s0.orderedCommits!, 1, 'the commit ordered its data with a barrier of its own');
  t.equal(s1.vouchingCommits! - s0.vouchingCommits!, 0, 'and vouched for nothing');
  map.buffer.write('mapped', 10);
  map.msync();
  map.unmap();
  fs.writeSync(fd, 'again');
  fs.fsyncSync(fd);
  t.equal(stats().vouchingCommits! - s1.vouchingCommits!, 1, 'with the mapping gone, the next append vouches');
  fs.closeSync(fd);
  const bytes = catBytes(path);
  t.equal(bytes.length, PAGE + 109);
  t.equal(bytes.subarray(PAGE + 100).toString(), 'moreagain', 'the appends');
  t.equal(bytes.subarray(10, 16).toString(), 'mapped', 'the store');
  await m.stop();
});

t.test('writes through the mount: a live mapping sees them at once', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1 * MiB, 64 * 1024);
  for (const file of [a, f]) {
    const map = mmap(file.path, { flags: MAP_DAXVM });
    const r = sh(`printf 'from the mount' | dd of='${file.path}' bs=1 seek=${2 * PAGE + 100} conv=notrunc status=none`);
    t.equal(r.status, 0, r.summary);
    t.equal(map.buffer.subarray(2 * PAGE + 100, 2 * PAGE + 114).toString(), 'from the mount', `${map.mode}: seen at once`);
    map.unmap();
  }
  await m.stop();
});

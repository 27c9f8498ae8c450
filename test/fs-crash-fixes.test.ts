/**
 * Regression tests for the crash-consistency bugs the crash-state explorer
 * (src/reliability, `daxvm test-crash`) found in the fs layer. Each test
 * builds the exact situation by hand.
 */
import fs from 'node:fs';
import t from 'tap';
import { fsck, openFileSystem, ROOT_INO } from '../src/fs/index.js';
import { crc32c } from '../src/core/format/checksum.js';
import { Journal, readJournal } from '../src/fs/journal.js';
import { JC_MAGIC, JC_VOUCHES, JOURNAL_COMMIT, JOURNAL_COMMIT_MAGIC, JOURNAL_VOUCH, JV_LENGTH, JV_OFFSET } from '../src/core/format/journal.js';
import { BLOCK_SIZE, computeGeometry, INODE_SIZE } from '../src/core/format/pool.js';
import { Pool } from '../src/media/pool.js';
import { MemoryRecorder } from '../src/media/recorder.js';
import { crashCopy, openPool, pattern, ROOT, tempPool } from './helpers/pool.js';

t.test('file data is durable before the commit block that points at it can be, or the commit vouches for it', async (t) => {
  const pool = tempPool(t, 56);
  const fsys = openPool(t, pool);
  const g = fsys.core.sb.geometry;
  const rec = new MemoryRecorder();
  fsys.core.pool.setRecorder(rec);
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.write(f.ino, 0, pattern(10000, 1));
  fsys.fsync(f.ino, false);
  fsys.write(f.ino, 10000, pattern(5000, 2)); // appends into a new block
  fsys.fsync(f.ino, false);
  const big = fsys.create(ROOT_INO, 'big', 0o644, ROOT);
  fsys.write(big.ino, 0, pattern(1536 * 1024, 3)); // more than a commit vouches for: ordered
  fsys.fsync(big.ino, false);
  fsys.core.pool.setRecorder(null);
  const fileBlocks = new Set<number>();
  for (const ino of [f.ino, big.ino]) {
    for (const e of fsys.core.inode(ino).extents.items) for (let b = 0; b < e.count; b++) fileBlocks.add(e.physical + b);
  }
  const journalStart = g.journalStart * BLOCK_SIZE;
  const journalEnd = (g.journalStart + g.journalBlocks) * BLOCK_SIZE;
  /** File data stored since the last barrier: [offset, end). */
  let inFlight: Array<[number, number]> = [];
  let commits = 0;
  let vouching = 0;
  let violations = 0;
  for (const e of rec.events) {
    if (e.kind === 'persist') {
      if (e.offset === 0 && e.length === fsys.core.pool.size) inFlight = [];
      continue;
    }
    if (fileBlocks.has(Math.floor(e.offset / BLOCK_SIZE))) inFlight.push([e.offset, e.offset + e.bytes.length]);
    const commit = e.offset >= journalStart && e.offset < journalEnd && e.bytes.length === BLOCK_SIZE &&
      e.bytes.readUInt32LE(JC_MAGIC) === JOURNAL_COMMIT_MAGIC;
    if (!commit || inFlight.length === 0) continue;
    commits++;
    const vouches: Array<[number, number]> = [];
    for (let i = 0; i < e.bytes.readUInt32LE(JC_VOUCHES); i++) {
      const at = JOURNAL_COMMIT.size + i * JOURNAL_VOUCH.size;
      const off = Number(e.bytes.readBigUInt64LE(at + JV_OFFSET));
      vouches.push([off, off + e.bytes.readUInt32LE(at + JV_LENGTH)]);
    }
    if (vouches.length) vouching++;
    if (!inFlight.every(([a, b]) => vouches.some(([va, vb]) => va <= a && b <= vb))) violations++;
  }
  t.ok(commits > 0, 'the fsyncs committed transactions with data in flight');
  t.equal(vouching, 2, 'the two appends + fsync vouch for it; the 1.5 MiB write is ordered (a barrier first)');
  t.match(fsys.stats(), { vouchingCommits: 2, orderedCommits: 1 });
  t.equal(violations, 0, 'no commit block while file data stored before it is neither behind a barrier nor vouched for');
});

/** An inode-table image: 16 records, each sealed with its own CRC32C, as the inode table holds them. */
function inodeBlock(nlinks: number[]): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  nlinks.forEach((n, i) => {
    const rec = b.subarray(i * INODE_SIZE, (i + 1) * INODE_SIZE);
    rec.writeUInt32LE(0o100644, 0);
    rec.writeUInt32LE(n, 12);
    rec.writeUInt32LE(crc32c(rec.subarray(0, 252)), 252);
  });
  return b;
}

/** A block with a CRC tail (bitmaps, directories). */
function sealedBlock(fill: number): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE, fill);
  b.writeUInt32LE(crc32c(b.subarray(0, BLOCK_SIZE - 4)), BLOCK_SIZE - 4);
  return b;
}

t.test('a stale image that an older transaction left in the journal never passes for the new one', async (t) => {
  const size = 32 << 20;
  const g = computeGeometry(size);
  const dir = t.testdir();
  const pool = Pool.create(`${dir}/j.pool`, size);
  t.teardown(() => pool.close());
  const target = g.inodeTableStart;
  const dirBlock = g.dataStart + 5;
  const cases: Array<[string, Buffer, Buffer]> = [
    ['an inode-table block (16 records with their own CRC32C)', inodeBlock([1, 1, 2, 1]), inodeBlock([1, 1, 1, 1])],
    ['a block with a CRC tail', sealedBlock(0x11), sealedBlock(0x22)],
  ];
  for (const [what, older, newer] of cases) {
    const j = new Journal(pool, g, 5);
    j.append([[dirBlock, sealedBlock(0x33)], [target, older]]);
    const stale = pool.read((g.journalStart + 2) * BLOCK_SIZE, BLOCK_SIZE);
    j.pos = 0; // a checkpoint: the next transaction starts at the journal's first block again
    j.append([[dirBlock, sealedBlock(0x33)], [target, newer]]);
    t.equal(readJournal(pool, g, 6).transactions, 1, `${what}: the whole new transaction replays`);
    // The new image's store never reached the media: the older one is still there.
    pool.write((g.journalStart + 2) * BLOCK_SIZE, stale);
    const r = readJournal(pool, g, 6);
    t.equal(r.transactions, 0, `${what}: the transaction with the stale image is not replayed`);
    t.notOk(r.images.has(target), `${what}: nothing of it is applied`);
  }
});

t.test('a crash after page_tables_on=0 was persisted, before the tables were dropped, recovers without tables', async (t) => {
  const pool = tempPool(t, 56);
  const fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.write(f.ino, 0, pattern(300000, 3));
  fsys.setKnob('pageTablesOn', 1);
  fsys.sync();
  t.match(fsys.pptInfo(f.ino), /root=[1-9]/, 'the file has a table');
  // setKnob(pageTablesOn, 0) persists the knob first, then drops the tables in later transactions.
  fsys.core.sb.knobs.pageTablesOn = 0;
  fsys.core.writeSuperblock();
  const copy = crashCopy(t, pool);
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  t.match(rec.pptInfo(rec.resolve('/f')), /root=0 /, 'recovery dropped the table');
  rec.close();
  const report = fsck(copy);
  t.equal(report.exitCode, 0, `fsck clean: ${JSON.stringify(report.problems)}`);
  fs.rmSync(copy, { force: true });
});

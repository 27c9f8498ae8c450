/**
 * Regression tests for the crash-consistency bugs the crash-state explorer
 * (src/reliability, `daxvm test-crash`) found in the fs layer. Each test
 * builds the exact situation by hand.
 */
import t from 'tap';
import { ROOT_INO } from '../src/fs/index.js';
import { BLOCK_SIZE } from '../src/fs/layout.js';
import { MemoryRecorder } from '../src/media/recorder.js';
import { openPool, pattern, ROOT, tempPool } from './helpers/pool.js';

t.test('file data is durable before the commit block that points at it can be', async (t) => {
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
  fsys.core.pool.setRecorder(null);
  const fileBlocks = new Set<number>();
  for (const e of fsys.core.inode(f.ino).extents.items) for (let b = 0; b < e.count; b++) fileBlocks.add(e.physical + b);
  const journalStart = g.journalStart * BLOCK_SIZE;
  const journalEnd = (g.journalStart + g.journalBlocks) * BLOCK_SIZE;
  let dataNotDurable = false;
  let commits = 0;
  let violations = 0;
  for (const e of rec.events) {
    if (e.kind === 'persist') {
      if (e.offset === 0 && e.length === fsys.core.pool.size) dataNotDurable = false;
      continue;
    }
    if (fileBlocks.has(Math.floor(e.offset / BLOCK_SIZE))) dataNotDurable = true;
    if (e.offset >= journalStart && e.offset < journalEnd) {
      commits++;
      if (dataNotDurable) violations++;
    }
  }
  t.ok(commits > 0, 'the fsyncs committed transactions');
  t.equal(violations, 0, 'no journal store while file data stored before it is not yet behind a barrier');
});

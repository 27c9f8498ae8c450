// -o no_open: the kernel opens and closes regular files without asking the
// daemon (OPEN answered ENOSYS once, then never sent again; no RELEASE), and
// keeps their pages cached. What a user of that option relies on: a cached
// file's open+read+close costs no request; open(O_TRUNC) still truncates,
// O_APPEND still appends; an unlinked file lives while open and its space
// returns after the last close; the `.daxvm/` files still show fresh content
// and knobs still take values; directories still list. The default mount
// still asks OPEN at each open (its close-to-open coherence with the library;
// until a library mapping is made, a re-read is served from the kernel's
// pages), and no GETATTR before a read that follows a write.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { dfUntil } from './helpers/child.js';
import { cat, ctlDir, echoTo, knob, stats } from './helpers/control.js';
import { df, freshMount, fsck, mountPool, sh } from './helpers/mount.js';

const NO_OPEN = { mount: { opts: ['no_open'] } };

/** The daemon's per-opcode request counters (.daxvm/stats). */
const requests = (mnt: string): Record<string, number> =>
  (stats(mnt) as unknown as { requests: Record<string, number> }).requests;

/** Requests of `op` between two readings of the counters. */
const delta = (a: Record<string, number>, b: Record<string, number>, op: string): number => (b[op] ?? 0) - (a[op] ?? 0);

t.test('no_open: open+read+close of a cached 16 KiB file makes no OPEN, READ or RELEASE', async (t) => {
  const m = await freshMount(t, NO_OPEN);
  const f = join(m.mnt, 'dir', 'f16');
  fs.mkdirSync(join(m.mnt, 'dir'));
  const data = Buffer.alloc(16 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  fs.writeFileSync(f, data);
  t.same(fs.readFileSync(f), data, 'warm-up read: the bytes');
  // What reading .daxvm/stats itself costs (with cat: LOOKUP, GETATTRs, a READ of it), to tell it apart.
  const idle = requests(m.mnt);
  const before = requests(m.mnt);
  const ownCost = delta(idle, before, 'total');
  for (let i = 0; i < 100; i++) {
    const fd = fs.openSync(f, 'r');
    const got = Buffer.alloc(data.length);
    t.equal(fs.readSync(fd, got, 0, got.length, 0), data.length);
    fs.closeSync(fd);
    if (i === 99) t.same(got, data, 'the bytes, at the last open');
  }
  const after = requests(m.mnt);
  t.equal(delta(before, after, 'OPEN'), 0, 'no OPEN for 100 opens');
  t.equal(delta(before, after, 'RELEASE'), 0, 'no RELEASE for 100 closes');
  t.equal(delta(before, after, 'READ'), delta(idle, before, 'READ'), 'no READ but the stats file\'s own');
  t.equal(delta(before, after, 'total'), ownCost, `no request but the stats file's own (${ownCost})`);
});

t.test('the default mount asks OPEN and RELEASE at each open and close (coherence with the library)', async (t) => {
  const m = await freshMount(t);
  const f = join(m.mnt, 'f');
  fs.writeFileSync(f, 'x'.repeat(4096));
  fs.readFileSync(f);
  const own = requests(m.mnt);
  const before = requests(m.mnt);
  for (let i = 0; i < 10; i++) t.equal(fs.readFileSync(f, 'utf8'), 'x'.repeat(4096));
  const after = requests(m.mnt);
  t.ok(delta(before, after, 'OPEN') >= 10, `OPEN per open: ${delta(before, after, 'OPEN')}`);
  t.ok(delta(before, after, 'RELEASE') >= 10, `RELEASE per close: ${delta(before, after, 'RELEASE')}`);
  // No library mapping of this pool yet: nothing stored behind the kernel, so an open keeps its pages.
  t.equal(delta(before, after, 'READ'), delta(own, before, 'READ'), 'a re-read asks no READ (no library mapping yet)');
  // A read after a write asks no GETATTR first (no auto_inval_data: the write went through the kernel's pages).
  const fd = fs.openSync(f, 'r+');
  fs.writeSync(fd, 'y'.repeat(4096), 0);
  const idle = requests(m.mnt);
  const written = requests(m.mnt);
  const got = Buffer.alloc(4096);
  fs.readSync(fd, got, 0, got.length, 0);
  const read = requests(m.mnt);
  fs.closeSync(fd);
  t.equal(got.toString(), 'y'.repeat(4096), 'a read after a write on the same descriptor: the new bytes');
  t.equal(delta(written, read, 'GETATTR'), delta(idle, written, 'GETATTR'), 'and no GETATTR but the stats file\'s own');
});

t.test('no_open: open(O_TRUNC) truncates, O_APPEND appends, a created file reads back', async (t) => {
  const m = await freshMount(t, NO_OPEN);
  const f = join(m.mnt, 'existing');
  fs.writeFileSync(f, 'the original, rather long, content\n');
  fs.readFileSync(f); // cached
  const r = sh(`echo short > '${f}'`);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.readFileSync(f, 'utf8'), 'short\n', 'echo x > existing: only the new bytes');
  t.equal(fs.statSync(f).size, 6, 'size 6');
  fs.appendFileSync(f, 'one\n');
  const fd = fs.openSync(f, 'a');
  fs.writeSync(fd, 'two\n', 0); // O_APPEND: the offset asked does not matter
  fs.closeSync(fd);
  t.equal(fs.readFileSync(f, 'utf8'), 'short\none\ntwo\n', 'appends land at the end');
  const g = join(m.mnt, 'created');
  const wfd = fs.openSync(g, 'wx');
  fs.writeSync(wfd, 'made here');
  fs.closeSync(wfd);
  t.equal(fs.readFileSync(g, 'utf8'), 'made here', 'a created file reads back');
  fs.truncateSync(g, 4);
  t.equal(fs.readFileSync(g, 'utf8'), 'made', 'truncate(2)');
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const c = fsck(m.pool);
  t.equal(c.status, 0, `fsck clean\n${c.summary}`);
  const again = await mountPool(t, m.pool, NO_OPEN.mount);
  t.equal(fs.readFileSync(join(again.mnt, 'existing'), 'utf8'), 'short\none\ntwo\n', 'after a remount');
});

t.test('no_open: an unlinked file reads and writes while open; its space returns after the last close', async (t) => {
  const m = await freshMount(t, NO_OPEN);
  const f = join(m.mnt, 'held');
  const data = Buffer.alloc(8 * 1024 * 1024, 0x5a);
  fs.writeFileSync(f, data);
  const d0 = df(m.mnt);
  const fd = fs.openSync(f, 'r+');
  fs.unlinkSync(f);
  t.equal(fs.fstatSync(fd).nlink, 0, 'fstat: nlink 0');
  t.equal(fs.writeSync(fd, 'hello', 100), 5, 'write through the fd');
  const got = Buffer.alloc(data.length);
  t.equal(fs.readSync(fd, got, 0, got.length, 0), data.length, 'read through the fd');
  data.write('hello', 100);
  t.ok(got.equals(data), 'the bytes, with the write');
  t.ok(df(m.mnt).used >= d0.used - 1024, 'space still held while open');
  fs.closeSync(fd);
  const d1 = await dfUntil(m.mnt, (d) => d0.used - d.used >= 8 * 1024 - 256);
  t.ok(d0.used - d1.used >= 8 * 1024 - 256, `space returned after the close (${d0.used - d1.used} KiB)`);
});

t.test('no_open: .daxvm files show fresh content at each read; knobs take values', async (t) => {
  const m = await freshMount(t, NO_OPEN);
  const a = requests(m.mnt).total!;
  fs.writeFileSync(join(m.mnt, 'some'), 'work');
  const b = requests(m.mnt).total!;
  t.ok(b > a, `a second read of stats shows new counters (${a} -> ${b})`);
  const c = JSON.parse(cat(join(ctlDir(m.mnt), 'stats'))) as { requests: { total: number } };
  t.ok(c.requests.total > b, 'and a third');
  // One process reading it again and again (each open walks the path: a LOOKUP takes a new snapshot).
  const inProcess = (): { requests: { total: number } } =>
    JSON.parse(fs.readFileSync(join(ctlDir(m.mnt), 'stats'), 'utf8')) as { requests: { total: number } };
  let last = inProcess().requests.total;
  for (let i = 0; i < 5; i++) {
    const now = inProcess().requests.total;
    t.ok(now > last, `read ${i + 2} in one process: whole JSON, new counters (${last} -> ${now})`);
    last = now;
  }
  t.equal(knob(m.mnt, 'msync'), '1\n');
  t.equal(echoTo(join(ctlDir(m.mnt), 'msync'), '0').status, 0, 'echo 0 > msync');
  t.equal(knob(m.mnt, 'msync'), '0\n', 'reads 0');
  t.not(echoTo(join(ctlDir(m.mnt), 'msync'), '7').status, 0, 'echo 7 > msync fails');
  t.equal(knob(m.mnt, 'msync'), '0\n', 'still 0');
  t.equal(echoTo(join(ctlDir(m.mnt), 'msync'), '1').status, 0, 'echo 1 > msync');
  t.equal(knob(m.mnt, 'msync'), '1\n', 'reads 1');
  const ls = sh(`ls '${m.mnt}' '${ctlDir(m.mnt)}'`);
  t.equal(ls.status, 0, ls.summary);
  t.match(ls.stdout, /some/, 'directories still list (OPENDIR is kept)');
  t.match(ls.stdout, /zombie_max_pages/);
});

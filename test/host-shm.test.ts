// A full shared-memory file system (issue 12, point 2, for the files the
// daemon shares with the library's processes: the lease table and the
// namespace, in /dev/shm or $DAXVM_SHM_DIR). A store or a read fault into a
// hole of a mapped tmpfs file is SIGBUS when the tmpfs is full; before this
// test the daemon died that way at the fourth mkdir once the tmpfs was full.
// Now the lease table is backed whole at mount, the namespace's records and
// name entries too, its heap as it grows: a full host leaves names out of
// the namespace (those paths resolve through the mount), the daemon lives,
// and a file system too small for them gives a warning and the mount path.
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mmap, MAP_DAXVM } from '../src/lib/index.js';
import { setKnob } from './helpers/control.js';
import { cli, freshMount, fsck, run, sh } from './helpers/mount.js';

const MiB = 1024 * 1024;

// Set before this process maps anything: the library reads it when it first looks for a pool's shared files.
const shmParent = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), 'daxvm-shm-')));
const shm = join(shmParent, 'shm');
fs.mkdirSync(shm);
process.env.DAXVM_SHM_DIR = shm;
t.teardown(() => {
  for (let i = 0; i < 20 && spawnSync('umount', [shm]).status !== 0; i++) spawnSync('sleep', ['0.2']);
  if (spawnSync('mountpoint', ['-q', shm]).status === 0) spawnSync('umount', ['-l', shm]);
  fs.rmSync(shmParent, { recursive: true, force: true });
});

/** The tmpfs at `shm`, `mib` MiB, emptied. */
function shmOf(mib: number): void {
  if (spawnSync('mountpoint', ['-q', shm]).status === 0) spawnSync('umount', ['-l', shm]);
  const r = run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=01777`, 'tmpfs', shm]);
  if (r.status !== 0) throw new Error(r.summary);
}

function stats(mnt: string): Record<string, number> {
  return JSON.parse(fs.readFileSync(join(mnt, '.daxvm', 'stats'), 'utf8')) as Record<string, number>;
}

/** Map `path` twice (the first may publish it) and look at the second. */
function mapped(t: Test, path: string, want: Buffer, resolved: 'namespace' | 'mount'): void {
  mmap(path, { flags: MAP_DAXVM }).unmap();
  const m = mmap(path, { flags: MAP_DAXVM });
  t.equal(m.resolved, resolved, `${path.slice(-30)}: resolved through the ${resolved} (${m.resolveReason ?? ''})`);
  t.ok(Buffer.from(m.buffer).equals(want), 'its bytes');
  m.unmap();
}

t.test('the shared files on a tmpfs that fills up: names left out of the namespace, the daemon lives', async (t) => {
  shmOf(8);
  const m = await freshMount(t, { size: '256M' });
  setKnob(m.mnt, 'page_tables_on', 1);
  const first = join(m.mnt, 'first');
  fs.writeFileSync(first, Buffer.alloc(64 * 1024, 1));
  sh(`dd if=/dev/zero of=${shm}/filler bs=4k status=none || true`);
  t.ok(fs.statfsSync(shm).bavail === 0, 'the tmpfs is full');

  // 4000 names of 200 bytes in one directory (mkdir: one request each): more than the namespace's heap
  // has host pages for. Then a file among them.
  fs.mkdirSync(join(m.mnt, 'd'));
  for (let i = 0; i < 4000; i++) fs.mkdirSync(join(m.mnt, 'd', `${i}-`.padEnd(200, 'n')));
  const last = join(m.mnt, 'd', 'last-'.padEnd(200, 'n'));
  fs.writeFileSync(last, 'the last');
  const s = stats(m.mnt);
  t.ok(s.nsHostFull! > 0, `the heap met the full host (${s.nsHostFull} times), ${s.nsNames} names published`);
  t.equal(m.child.exitCode, null, 'the daemon lives');
  t.equal(m.child.signalCode, null);
  t.equal(fs.readdirSync(join(m.mnt, 'd')).length, 4001, 'every name is there');
  mapped(t, first, Buffer.alloc(64 * 1024, 1), 'namespace');
  t.equal(fs.readFileSync(last, 'utf8'), 'the last', 'a file whose name found no room reads');
  const lm = mmap(last, { flags: MAP_DAXVM });
  t.equal(lm.buffer.toString(), 'the last', `and maps (${lm.resolved}: ${lm.resolveReason ?? ''})`);
  lm.unmap();

  fs.rmSync(join(shm, 'filler'));
  const st = await m.stop();
  t.same([st.code, st.signal], [0, null], 'a clean unmount');
  t.notMatch(m.log(), /SIGBUS/, 'no SIGBUS in the log');
  t.match(m.log(), /exits \(code 0\)/, 'the daemon\'s exit line');
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
});

t.test('a tmpfs too small for the namespace: a warning, paths resolve through the mount', async (t) => {
  shmOf(3); // the lease table (2 MiB) fits, the namespace's records and entries do not
  const m = await freshMount(t, { size: '256M' });
  setKnob(m.mnt, 'page_tables_on', 1);
  t.match(m.log(), /warning: no shared namespace, library mappings resolve through the mount: .*no space for it on the host: [\d.]+ MiB needed, [\d.]+ MiB available/);
  const f = join(m.mnt, 'f');
  fs.writeFileSync(f, Buffer.alloc(4 * MiB, 2));
  mapped(t, f, Buffer.alloc(4 * MiB, 2), 'mount');
  t.equal((await m.stop()).code, 0);
});

t.test('a tmpfs too small for the lease table: a warning, mappings go through the mount', async (t) => {
  shmOf(1);
  const m = await freshMount(t, { size: '64M' });
  t.match(m.log(), /warning: no lease table, library mappings of the pool fall back to the mount: .*no space for it on the host: 2\.0 MiB needed, [\d.]+ MiB available/);
  const f = join(m.mnt, 'f');
  fs.writeFileSync(f, Buffer.alloc(MiB, 3));
  const map = mmap(f, { flags: MAP_DAXVM });
  t.equal(map.mode, 'vanilla', 'a plain mapping of the file through the mount');
  t.ok(Buffer.from(map.buffer).equals(Buffer.alloc(MiB, 3)));
  map.unmap();
  t.equal((await m.stop()).code, 0);
  t.equal(cli(['fsck', m.pool]).status, 0);
});

// A busy mount (issue 12, "busy and lazy unmounts"): `daxvm umount MNT`
// refuses it as umount(8) does ("target is busy", exit 32) and unmounts
// nothing, whether the mount is held by an open file, a cwd inside or a
// library mapping of the pool (a lease: invisible to the kernel);
// `daxvm umount -l` detaches it and the daemon serves what is open, waits
// for the last lease, then commits, marks the pool clean and exits. A
// mapping whose pool's daemon is gone answers msync with ENOTCONN; no mapped
// byte changes under a live lease across any of it.
import t from 'tap';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DaxvmError, mmap, MAP_DAXVM } from '../src/lib/index.js';
import { heldWriter } from './helpers/child.js';
import { setKnob } from './helpers/control.js';
import { alignedFile, MiB, tablesMount } from './helpers/lib.js';
import { cli, freshMount, fsck, isMounted, mountPool, NODE, run, within } from './helpers/mount.js';

t.test('a writer holding a file and a cwd inside: umount refused (32, target is busy); -l detaches, every write kept', async (t) => {
  const m = await freshMount(t, { size: '64M' });
  fs.mkdirSync(join(m.mnt, 'd'));
  const f = join(m.mnt, 'held');
  const h = heldWriter(t, f);
  t.equal(await h.next(), 'open');
  t.equal(await h.send('one'), 'wrote');
  const inside = spawn('sleep', ['600'], { cwd: join(m.mnt, 'd'), stdio: 'ignore' });
  t.teardown(() => { inside.kill('SIGKILL'); });

  let u = cli(['umount', m.mnt]);
  t.equal(u.status, 32, 'refused with umount(8)\'s code\n' + u.summary);
  t.match(u.stderr, /umount: .*: target is busy/, 'and its words');
  t.match(u.stderr, /a file is open or a working directory is inside/, 'saying why');
  t.ok(isMounted(m.mnt), 'nothing unmounted');
  t.equal(await h.send('two'), 'wrote', 'the writer goes on');
  t.equal(await within(m.exited, 300), null, 'the daemon is still there');

  inside.kill('SIGKILL');
  await new Promise((r) => inside.once('exit', r));
  u = cli(['umount', m.mnt]);
  t.equal(u.status, 32, 'the open file alone keeps it busy\n' + u.summary);
  t.equal(await h.send('three'), 'wrote');

  u = cli(['umount', '-l', m.mnt]);
  t.equal(u.status, 0, u.summary);
  t.notOk(isMounted(m.mnt), '-l: the name is gone at once');
  t.match(u.stderr, /detached; its daemon \(pid \d+\) serves the files still open/, 'it says the daemon goes on');
  t.equal(await h.send('four'), 'wrote', 'the open file is still served');
  t.equal(await h.send('close'), 'closed');
  t.same(await within(m.exited, 30_000), { code: 0, signal: null }, 'the last close ends the daemon, exit 0');
  t.match(m.log(), /closed cleanly/);
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
  const again = await mountPool(t, m.pool);
  t.equal(fs.readFileSync(join(again.mnt, 'held'), 'utf8'), 'one\ntwo\nthree\nfour\n', 'every write that returned is there');
  t.equal((await again.stop()).umount.status, 0, 'an idle mount unmounts');
});

t.test('a live library mapping makes umount refuse; -l keeps the pool open until it is unmapped', async (t) => {
  const m = await tablesMount(t, '64M');
  const f = alignedFile(m.mnt, 'f', 4 * MiB, 5);
  const g = alignedFile(m.mnt, 'g', 16384, 15);
  mmap(g.path, { flags: MAP_DAXVM }).unmap(); // g is in the shared namespace from now on
  const map = mmap(f.path, { prot: 'rw', flags: MAP_DAXVM });
  t.equal(map.mode, 'attached');

  let u = cli(['umount', m.mnt]);
  t.equal(u.status, 32, u.summary);
  t.match(u.stderr, /target is busy/);
  t.match(u.stderr, new RegExp(`library mappings of the pool are live \\(pid ${process.pid} \\(`), 'naming the holder');
  t.ok(isMounted(m.mnt), 'nothing unmounted');
  const gm = mmap(g.path, { flags: MAP_DAXVM });
  t.equal(gm.resolved, 'namespace', 'the shared namespace survives the refusal: a new mapping resolves in it');
  t.ok(Buffer.from(gm.buffer).equals(g.data), 'with the file\'s bytes');
  gm.unmap();
  map.buffer.write('after the refusal', 0);
  t.ok(map.msync() >= 1, 'the mapping goes on: msync');
  t.equal(fs.readFileSync(f.path).subarray(0, 17).toString(), 'after the refusal', 'and the mount sees it');

  // A read-only mapping holds only its lease; the writable one also pins its inode (for its mtime), so the
  // kernel keeps the detached mount's connection until it is unmapped, as a kernel mmap keeps its file.
  const held = mmap(g.path, { flags: MAP_DAXVM });
  u = cli(['umount', '-l', m.mnt]);
  t.equal(u.status, 0, u.summary);
  t.notOk(isMounted(m.mnt), 'detached');
  t.match(u.stderr, /serves .*the library mappings of the pool/, 'it says the daemon waits for the mapping');
  t.equal(await within(m.exited, 1000), null, 'the daemon waits for the mappings');
  map.buffer.write('after the detach', 4096);
  t.ok(map.msync() >= 1, 'msync still answers: the daemon still has the pool');
  t.ok(map.buffer.subarray(8192).equals(f.data.subarray(8192)), 'no other mapped byte changed');
  map.unmap();
  for (let i = 0; i < 100 && !/library mappings of the pool are live/.test(m.log()); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(m.log(), /library mappings of the pool are live/, 'the connection gone, the daemon says it waits for the lease');
  t.equal(await within(m.exited, 500), null, 'and waits');
  t.ok(Buffer.from(held.buffer).equals(g.data), 'the read-only mapping still has the file\'s bytes');
  held.unmap();
  t.same(await within(m.exited, 10_000), { code: 0, signal: null }, 'the last lease gone, the daemon exits 0');
  t.match(m.log(), /the last lease is gone/);
  t.match(m.log(), /closed cleanly/);
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
  const again = await mountPool(t, m.pool);
  const back = fs.readFileSync(join(again.mnt, 'f'));
  t.equal(back.subarray(4096, 4096 + 16).toString(), 'after the detach', 'the store made after the detach is in the file');
  t.ok(back.subarray(8192).equals(f.data.subarray(8192)), 'the rest unchanged');
  // This process took its lease table under the first mount, which removed it at its clean exit: a mapping
  // now leases in the new daemon's table, so that daemon sees it (it refuses umount; it would keep the blocks).
  setKnob(again.mnt, 'page_tables_on', 1);
  const late = mmap(g.path.replace(m.mnt, again.mnt), { flags: MAP_DAXVM });
  t.equal(late.mode, 'attached', late.fallbackReason ?? '');
  u = cli(['umount', again.mnt]);
  t.equal(u.status, 32, 'a mapping made under the second mount by a process of the first: the new daemon sees its lease\n' + u.summary);
  late.unmap();
  await again.stop();
});

t.test('a daemon killed under a live mapping: msync answers ENOTCONN; the next mount adopts the lease', async (t) => {
  const m = await tablesMount(t, '64M');
  const f = alignedFile(m.mnt, 'f', 4 * MiB, 6);
  // Made durable first: a crash may lose a file nobody fsynced (as on ext4), and
  // the namespace path maps it with no request, so nothing commits it for us.
  const fd = fs.openSync(f.path, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const map = mmap(f.path, { prot: 'rw', flags: MAP_DAXVM });
  t.equal(map.mode, 'attached');
  const other = mmap(f.path, { prot: 'rw', flags: MAP_DAXVM });
  await m.kill();
  map.buffer.write('while no daemon', 0);
  let err: unknown;
  try {
    map.msync();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof DaxvmError, 'msync throws a DaxvmError');
  t.equal((err as DaxvmError).code, 'ENOTCONN');
  t.equal((err as DaxvmError).syscall, 'msync');
  t.match((err as Error).message, /the pool is no longer mounted .*written back into the pool file/);
  t.throws(() => map.persist(0, 4096), { code: 'ENOTCONN' }, 'persist too');
  t.doesNotThrow(() => other.unmap(), 'unmap never throws: it lets go of the memory and the lease');

  const again = await mountPool(t, m.pool);
  t.ok(map.msync() >= 0, 'served again once the pool is mounted again (the new daemon adopted the lease)');
  t.equal(fs.readFileSync(join(again.mnt, 'f')).subarray(0, 15).toString(), 'while no daemon', 'the store is in the file');
  const fresh = mmap(join(again.mnt, 'f'), { flags: MAP_DAXVM });
  t.equal(fresh.buffer.subarray(0, 15).toString(), 'while no daemon', 'and a new mapping under the new daemon maps it');
  fresh.unmap();
  // Another process truncates the file and fills the pool: the leased blocks stay the mapping's.
  const fill = run(NODE[0]!, [...NODE.slice(1), '-e', `
    const fs = require('node:fs');
    fs.truncateSync(${JSON.stringify(join(again.mnt, 'f'))}, 0);
    const chunk = Buffer.alloc(1 << 20, 0x77);
    try { for (let i = 0; ; i++) fs.writeFileSync(${JSON.stringify(again.mnt)} + '/more' + i, chunk); } catch (e) { console.log(e.code); }`]);
  t.equal(fill.stdout.trim(), 'ENOSPC', fill.summary);
  t.equal(map.buffer.subarray(0, 15).toString(), 'while no daemon');
  t.ok(map.buffer.subarray(4096).equals(f.data.subarray(4096)), 'no mapped byte changed under the live lease');
  map.unmap();
  await again.stop();
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
});

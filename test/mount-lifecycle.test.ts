// The daemon's end of the session (issue 12, the daemon's part): after a
// lazy unmount it keeps serving the files still open, and when the last one
// closes the kernel ends the session (ENODEV): the daemon commits, marks the
// pool clean, says why in its log and exits 0. Every write that returned is
// in the pool after the remount.
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import { heldWriter } from './helpers/child.js';
import { CLI, freshMount, fsck, isMounted, makePool, mountPool, NODE, run, within } from './helpers/mount.js';

t.test('a lazy unmount keeps serving open files; the last close ends the daemon cleanly', async (t) => {
  const m = await freshMount(t);
  const f = join(m.mnt, 'held');
  fs.writeFileSync(f, '');
  const h = heldWriter(t, f);
  t.equal(await h.next(), 'open');
  t.equal(await h.send('one'), 'wrote');
  const u = run('umount', ['-l', m.mnt]);
  t.equal(u.status, 0, u.summary);
  t.notOk(isMounted(m.mnt), 'the name is gone at once');
  t.equal(await h.send('two'), 'wrote', 'the open file is still served');
  t.equal(await within(m.exited, 1500), null, 'the daemon is still there');
  t.equal(await h.send('close'), 'closed');
  const ended = await within(m.exited, 30_000);
  t.same(ended, { code: 0, signal: null }, 'the last close ends it, exit 0');
  t.match(m.log(), /stopping \(the mount is gone \(ENODEV/, 'its log says why');
  t.match(m.log(), /closed cleanly/, 'and that the pool was closed cleanly');
  t.equal(fsck(m.pool).status, 0, 'fsck clean');
  const again = await mountPool(t, m.pool);
  t.equal(fs.readFileSync(join(again.mnt, 'held'), 'utf8'), 'one\ntwo\n', 'every write that returned is there');
  const st = await again.stop();
  t.equal(st.code, 0);
});

t.test('a foreground daemon whose stderr reader is gone (mount -f ... | head -1) still stops on SIGTERM', async (t) => {
  const p = makePool(t, { size: '32M' });
  const mnt = join(p.dir, 'fg');
  const child = spawn(NODE[0]!, [...NODE.slice(1), CLI, 'mount', '-f', p.pool, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (isMounted(mnt)) run('fusermount', ['-uz', mnt]);
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let first = '';
  await new Promise<void>((res) => child.stderr.setEncoding('utf8').on('data', (d: string) => {
    first += d;
    if (first.includes('\n')) res();
  }));
  t.match(first, /mounted on .*fg; Ctrl-C or '.* umount .*fg' unmounts/, 'it says it is mounted');
  child.stderr.destroy(); // as head -1 exits: every later log line is EPIPE
  child.kill('SIGTERM');
  t.equal(await within(exited, 20_000), 0, 'it unmounts and exits 0 (it spun at 100% CPU before, never exiting)');
  t.notOk(isMounted(mnt), 'nothing left mounted');
});

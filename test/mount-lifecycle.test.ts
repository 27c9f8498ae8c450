// The daemon's end of the session (issue 12, the daemon's part): after a
// lazy unmount it keeps serving the files still open, and when the last one
// closes the kernel ends the session (ENODEV): the daemon commits, marks the
// pool clean, says why in its log and exits 0. Every write that returned is
// in the pool after the remount.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { heldWriter } from './helpers/child.js';
import { freshMount, fsck, isMounted, mountPool, run, within } from './helpers/mount.js';

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

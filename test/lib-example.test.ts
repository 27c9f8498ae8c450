// The README's runnable example (examples/hello-mmap.mjs), run as a user
// would: `import ... from 'daxvm'` resolves to this package's library.
import t from 'tap';
import { join } from 'node:path';
import { tablesMount } from './helpers/lib.js';
import { ROOT, run } from './helpers/mount.js';

t.test('examples/hello-mmap.mjs prints what the README says', async (t) => {
  const m = await tablesMount(t);
  const r = run(process.execPath, [join(ROOT, 'examples', 'hello-mmap.mjs'), join(m.mnt, 'data')]);
  t.equal(r.status, 0, r.summary);
  t.equal(r.stdout, 'attached 1 pages\n1 1\n', r.summary);
  await m.stop();
});

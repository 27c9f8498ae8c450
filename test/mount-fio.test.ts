// fio, briefly: 32 MiB file, random read/write, crc32c verify, psync, 10 s at most.
import t from 'tap';
import { join } from 'node:path';
import { freshMount, run } from './helpers/mount.js';

t.test('fio randrw with verify=crc32c', async (t) => {
  const m = await freshMount(t);
  const r = run('fio', [
    '--name=daxvm-verify',
    `--filename=${join(m.mnt, 'fio.dat')}`,
    '--size=32M',
    '--bs=4k',
    '--rw=randrw',
    '--ioengine=psync',
    '--verify=crc32c',
    '--do_verify=1',
    '--verify_fatal=1',
    '--runtime=10',
    '--verify_state_save=0',
    '--output-format=json',
  ], { timeout: 120_000, cwd: m.dir });
  t.equal(r.status, 0, r.summary);
  let job: { error: number; read: { io_bytes: number }; write: { io_bytes: number } } | undefined;
  t.doesNotThrow(() => {
    const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    job = json.jobs[0];
  }, 'fio JSON output');
  t.equal(job?.error, 0, 'fio reports no error (verify passed)');
  t.ok((job?.write.io_bytes ?? 0) > 0, `wrote ${job?.write.io_bytes} bytes`);
  t.ok((job?.read.io_bytes ?? 0) > 0, `read ${job?.read.io_bytes} bytes`);
  const st = await m.stop();
  t.equal(st.code, 0);
});

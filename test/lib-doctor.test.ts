// daxvm doctor: what the machine offers the library and what it falls back
// to; and the fallback itself (DAXVM_NO_TRACKING stands in for a kernel
// without userfaultfd WP-async or PAGEMAP_SCAN): whole-range msync.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { alignedFile, MiB, tablesMount } from './helpers/lib.js';
import { cli, ROOT } from './helpers/mount.js';

t.test('doctor --json and its human form, with a mount', async (t) => {
  const m = await tablesMount(t);
  alignedFile(m.mnt, 'a', 8 * MiB);
  let r = cli(['doctor', m.mnt, '--json']);
  t.equal(r.status, 0, r.summary);
  const j = JSON.parse(r.stdout) as Record<string, unknown> & { mount: { mountpoint: string; hugePages: { touchedBytes: number; rssKB: number } } };
  t.equal(j.fuse, true);
  t.type(j.wpAsync, 'boolean');
  t.type(j.pagemapScan, 'boolean');
  t.ok(j.msync === 'pages' || j.msync === 'whole-range');
  t.equal(j.mount.mountpoint, m.mnt);
  t.ok(j.mount.hugePages.touchedBytes > 0, 'it read part of the pool');
  t.ok(j.mount.hugePages.rssKB > 0, 'and saw its mapping in smaps');
  r = cli(['doctor', m.mnt]);
  t.equal(r.status, 0, r.summary);
  t.match(r.stdout, /userfaultfd/);
  t.match(r.stdout, /PAGEMAP_SCAN/);
  t.match(r.stdout, /pool huge pages .*FilePmdMapped/);
  r = cli(['doctor', '/tmp', '--json']);
  t.equal(r.status, 2, 'not a daxvm mount, nor a pool file: exit 2 (wrong argument)');
  t.match(r.stderr, /not a daxvm mount/);

  r = cli(['doctor', '--json'], { env: { ...process.env, DAXVM_NO_TRACKING: '1' } });
  const n = JSON.parse(r.stdout) as { msync: string; fallbacks: string[] };
  t.equal(n.msync, 'whole-range');
  t.ok(n.fallbacks.some((x) => /whole ranges/.test(x)), 'the fallback is named');
  await m.stop();
});

t.test('without page tracking: msync writes back the whole range, and says so', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const script = `
    import { mmap, MAP_DAXVM } from ${JSON.stringify(join(ROOT, 'dist/lib/index.js'))};
    const map = mmap(${JSON.stringify(a.path)}, { prot: 'rw', flags: MAP_DAXVM });
    map.buffer[0] = 1;
    console.log(JSON.stringify({ mode: map.mode, tracking: map.tracking, dirty: map.dirtyPages, synced: map.msync(), part: map.msync(0, 8192) }));
    map.unmap();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, DAXVM_NO_TRACKING: '1' } });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { mode: 'attached', tracking: 'whole-range', dirty: null, synced: 1024, part: 2 });
  await m.stop();
});

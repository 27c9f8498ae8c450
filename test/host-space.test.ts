// The host's space under the pool (issue 12, point 2), on real small file
// systems made for the test (a tmpfs, a loop-mounted ext4; removed after):
// mkfs allocates the pool and refuses a size the host cannot hold, with the
// figures; a --sparse pool filled by several writers until the host is full
// gives ENOSPC to the writers, the daemon lives, df never promises more than
// the host has, the space comes back after deletes, fsck is clean; fsck and
// info read a pool with holes on a full tmpfs without a signal; pre-zeroing
// keeps an allocated pool's host blocks.
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, df, errCode, isMounted, mountPool, run, runAsync, sh, sleep, unmountAllUnder } from './helpers/mount.js';
import { dfUntil } from './helpers/child.js';

const MiB = 1024 * 1024;
type Kind = 'tmpfs' | 'ext4';

/** A host file system of `mib` MiB at DIR/host; unmounted (with any FUSE mount under DIR) at teardown. */
function smallHost(t: Test, kind: Kind, mib: number): { dir: string; host: string } {
  const dir = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), `daxvm-host-${kind}-`)));
  const host = join(dir, 'host');
  fs.mkdirSync(host);
  const img = join(dir, 'ext4.img');
  t.teardown(async () => {
    unmountAllUnder(dir);
    for (let i = 0; i < 50 && spawnSync('umount', [host]).status !== 0; i++) await sleep(100); // the daemon may still hold the pool
    if (spawnSync('mountpoint', ['-q', host]).status === 0) spawnSync('umount', ['-l', host]);
    const loops = run('losetup', ['-j', img]).stdout.trim();
    if (loops) spawnSync('losetup', ['-d', loops.split(':')[0]!]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const r = kind === 'tmpfs'
    ? run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, 'tmpfs', host])
    : sh(`truncate -s ${mib}M ${img} && mkfs.ext4 -q -F -m 0 ${img} && mount -o loop ${img} ${host}`);
  if (r.status !== 0) throw new Error(r.summary);
  return { dir, host };
}

const hostAvail = (p: string) => { const s = fs.statfsSync(p); return s.bavail * s.bsize; };

t.test('mkfs --size 1T is refused here, with the figures', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'daxvm-1t-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = cli(['mkfs', '--size', '1T', join(dir, 'pool')]);
  t.equal(r.status, 1, r.summary);
  t.match(r.stderr, /not enough space for the pool: size 1 TiB asked, [\d.]+ [KMGT]iB available on the host file system holding/);
  t.match(r.stderr, /--sparse/, 'names the way out');
  t.notOk(fs.existsSync(join(dir, 'pool')), 'no file left');
});

for (const kind of ['tmpfs', 'ext4'] as const) {
  t.test(`${kind}: a 256 MiB pool on a ${kind === 'tmpfs' ? 64 : 80} MiB host, written until the host is full`, async (t) => {
    const { dir, host } = smallHost(t, kind, kind === 'tmpfs' ? 64 : 80);
    const pool = join(host, 'pool');
    let r = cli(['mkfs', '--size', '256M', pool]);
    t.equal(r.status, 1, 'mkfs refused\n' + r.summary);
    t.match(r.stderr, /size 256 MiB asked, [\d.]+ MiB available/, 'with the figures');
    r = cli(['mkfs', '--sparse', '--size', '256M', pool]);
    t.equal(r.status, 0, '--sparse accepted\n' + r.summary);
    t.match(r.stderr, /note: size 256 MiB asked/, 'with a note');

    const mnt = join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const m = await mountPool(t, pool, { mnt });
    const d0 = df(m.mnt);
    const avail0 = hostAvail(host);
    t.ok(d0.avail * 1024 <= avail0 + 4 * MiB, `df promises ${d0.avail} KiB, the host has ${avail0 >> 10} KiB`);
    t.ok(d0.size < 200 * 1024, `df size is what the host can back: ${d0.size} KiB`);

    // Three writers at once, each more than the host holds.
    const writers = await Promise.all([1, 2, 3].map((i) =>
      runAsync('dd', ['if=/dev/zero', `of=${m.mnt}/w${i}`, 'bs=1M', 'count=100', 'conv=fsync', 'status=none'], { timeoutMs: 300_000 })));
    for (const [i, w] of writers.entries()) {
      t.not(w.status, 0, `writer ${i + 1} failed`);
      t.match(w.stderr, /No space left on device/, `writer ${i + 1}: ENOSPC\n${w.summary}`);
    }
    t.equal(m.child.exitCode, null, 'the daemon lives');
    t.equal(m.child.signalCode, null);
    t.equal(errCode(() => fs.statSync(m.mnt)), 'no error', 'the mount answers');
    const full = df(m.mnt);
    t.ok(full.avail * 1024 <= hostAvail(host) + 2 * MiB, `df when full: ${full.avail} KiB available (host ${hostAvail(host) >> 10} KiB)`);
    r = cli(['info', pool]);
    t.equal(r.signal, null, 'info on the full host: no signal');
    t.equal(r.status, 0, r.summary);

    sh(`rm ${m.mnt}/w1 ${m.mnt}/w2 ${m.mnt}/w3`);
    const back = await dfUntil(m.mnt, (d) => d.avail >= d0.avail - 2048, 15_000);
    t.ok(back.avail >= d0.avail - 2048, `space back after deletes: ${back.avail} KiB available (${d0.avail} before)`);
    r = sh(`dd if=/dev/urandom of=${m.mnt}/again bs=1M count=20 conv=fsync status=none`);
    t.equal(r.status, 0, 'and usable: 20 MiB written\n' + r.summary);
    const sum = sh(`sha256sum < ${m.mnt}/again`).stdout;
    const st = await m.stop();
    t.equal(st.code, 0, 'clean unmount');
    r = cli(['fsck', pool]);
    t.equal(r.status, 0, 'fsck clean\n' + r.summary);

    // Holes where the pool reads zeros (fallocate --dig-holes), then the host filled to the last byte.
    t.equal(run('fallocate', ['--dig-holes', pool]).status, 0);
    sh(`dd if=/dev/zero of=${host}/filler bs=1M status=none || true`);
    t.ok(hostAvail(host) < MiB, `host full: ${hostAvail(host)} bytes available`);
    r = cli(['fsck', pool]);
    t.equal(r.signal, null, 'fsck of a pool with holes on the full host: no signal');
    t.equal(r.status, 0, 'and clean\n' + r.summary);
    r = cli(['info', pool]);
    t.equal(r.signal, null, 'info: no signal');
    t.equal(r.status, 0, r.summary);
    r = cli(['mount', pool, mnt, '-f'], { timeout: 60_000 });
    t.equal(r.status, 32, 'mount refuses: its blocks in use cannot be backed\n' + r.summary);
    t.match(r.stderr, /no space for the blocks in use/);
    t.notOk(isMounted(mnt), 'nothing mounted');
    // The refused mount gave nothing back behind the pool's back (it once punched the superblock's chunk).
    fs.rmSync(join(host, 'filler'));
    r = cli(['fsck', pool]);
    t.equal(r.status, 0, 'once the host has room: fsck clean\n' + r.summary);
    const again = await mountPool(t, pool, { mnt });
    t.equal(sh(`sha256sum < ${again.mnt}/again`).stdout, sum, 'and the file written before is intact');
    t.equal((await again.stop()).code, 0);
  });

  t.test(`${kind}: pre-zeroing keeps an allocated pool's host blocks`, async (t) => {
    const { dir, host } = smallHost(t, kind, 100);
    const pool = join(host, 'pool');
    let r = cli(['mkfs', '--size', '64M', pool]);
    t.equal(r.status, 0, r.summary);
    t.ok(fs.statSync(pool).blocks * 512 >= 64 * MiB, 'allocated on the host');
    const mnt = join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const m = await mountPool(t, pool, { mnt });
    fs.writeFileSync(join(m.mnt, '.daxvm', 'zeroout_blocks'), '0');
    r = sh(`head -c 16M /dev/urandom > ${m.mnt}/f && sync ${m.mnt}/f && rm ${m.mnt}/f`);
    t.equal(r.status, 0, r.summary);
    let zeroed = 0;
    for (let end = Date.now() + 30_000; Date.now() < end && zeroed < 4096; await sleep(200)) {
      zeroed = (JSON.parse(fs.readFileSync(join(m.mnt, '.daxvm', 'stats'), 'utf8')) as { blocksZeroedBackground: number }).blocksZeroedBackground;
    }
    t.ok(zeroed >= 4096, `the freed 16 MiB were pre-zeroed (${zeroed} blocks)`);
    t.ok(fs.statSync(pool).blocks * 512 >= 64 * MiB, 'no host block given back (no hole)');
    await m.stop();
    t.equal(cli(['fsck', pool]).status, 0, 'fsck clean');
  });
}

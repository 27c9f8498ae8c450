// The preload library (issue 11) on a real mount: a C program compiled here
// (test/fixtures/preload-probe.c) passes upstream's DaxVM flags to mmap(2),
// with libdaxvm-preload.so preloaded and DAXVM_DEBUG=1 saying what happened.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { preloadPath } from '../src/cli/cmd-run.js';
import { cli, freshMount, mountPool, ROOT, run, tempDir } from './helpers/mount.js';
import { setKnob, stats } from './helpers/control.js';

const SO = preloadPath();
const MAP_DAXVM = '0x400000';
const MAP_DAXVM_EPHEMERAL = '0x4000000';
const MAP_DAXVM_BATCHING_DAXVM = '0x600000';

const work = tempDir(t, 'daxvm-preload-');
const probe = join(work, 'probe');
const cc = run('cc', ['-O2', '-Wall', '-o', probe, join(ROOT, 'test', 'fixtures', 'preload-probe.c'), '-lpthread']);
if (cc.status !== 0) throw new Error(cc.summary);

interface Out { status: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }
/** The probe with the preload and DAXVM_DEBUG=1. */
function pre(args: string[], env: NodeJS.ProcessEnv = {}): Out {
  const r = spawnSync(probe, args, { env: { ...process.env, LD_PRELOAD: SO, DAXVM_DEBUG: '1', ...env }, timeout: 120_000, maxBuffer: 64 << 20 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: String(r.stderr) };
}
const mmapLines = (o: Out): string[] => o.stderr.split('\n').filter((l) => / mmap /.test(l));

const m = await freshMount(t);
setKnob(m.mnt, 'page_tables_on', 1);
const f = (name: string) => join(m.mnt, name);
const big = randomBytes(3 << 20);
writeFileSync(f('big'), big);
// A file in two pieces: another file's blocks between its first and second halves (two runs: stitched).
const fragA = randomBytes(8192), fragB = randomBytes(8192);
writeFileSync(f('frag'), fragA);
writeFileSync(f('other'), randomBytes(8192));
appendFileSync(f('frag'), fragB);
const frag = Buffer.concat([fragA, fragB]);

t.test('bytes equal the file: attached, stitched, ephemeral, batching', async (t) => {
  for (const [name, bytes] of [['big', big], ['frag', frag]] as const) {
    for (const flags of [MAP_DAXVM, MAP_DAXVM_EPHEMERAL, MAP_DAXVM_BATCHING_DAXVM]) {
      const o = pre(['cat', f(name), flags]);
      t.equal(o.status, 0, o.stderr);
      t.ok(o.stdout.equals(bytes), `${name} ${flags}: the bytes of the file`);
      t.match(mmapLines(o).join('\n'), /-> (attached|stitched)/, `${name} ${flags}: from the pool`);
    }
  }
  t.match(mmapLines(pre(['cat', f('frag'), MAP_DAXVM_EPHEMERAL])).join(''), /stitched \(ephemeral heap\) .*2 run\(s\)/);
  t.match(mmapLines(pre(['cat', f('big'), MAP_DAXVM])).join(''), /attached .*1 run\(s\), read-only view, table from the shared namespace/);
  const stitched = pre(['cat', f('big'), MAP_DAXVM], { DAXVM_ATTACH: '0' });
  t.match(mmapLines(stitched).join(''), /-> stitched .*1 run\(s\)/, 'DAXVM_ATTACH=0: one run, stitched all the same');
  t.ok(stitched.stdout.equals(big));
});

t.test('stores: in the mount at once; msync writes back exactly the pages written; nosync writes back none', async (t) => {
  const mtime0 = statSync(f('big')).mtimeMs;
  await new Promise((r) => setTimeout(r, 20));
  const o = pre(['write', f('big'), String(2 * 4096 + 10), '171', String(3 * 4096)]);
  t.equal(o.status, 0, o.stderr);
  t.ok(statSync(f('big')).mtimeMs > mtime0, 'msync moved the file\'s mtime');
  t.match(o.stderr, /msync .*, mtime moved/);
  t.match(o.stderr, /rw -> attached .*dirty pages tracked/);
  t.match(o.stderr, /msync .*written pages, 4 page\(s\) written back/, '3 pages + 10 bytes span 4 pages');
  big.fill(171, 2 * 4096 + 10, 5 * 4096 + 10);
  t.ok(readFileSync(f('big')).equals(big), 'read() through the mount sees the stores');
  const s = pre(['write', f('frag'), '0', '7', '100']);
  t.match(s.stderr, /rw -> stitched .*dirty pages tracked/);
  t.match(s.stderr, /1 page\(s\) written back/);
  frag.fill(7, 0, 100);
  t.ok(readFileSync(f('frag')).equals(frag));
  setKnob(m.mnt, 'msync', 0);
  const n = pre(['write', f('frag'), '9000', '8', '10']);
  setKnob(m.mnt, 'msync', 1);
  t.match(n.stderr, /nosync \(knob msync 0\)/);
  t.match(n.stderr, /msync .*nosync mode.*0 page\(s\) written back/);
  frag.fill(8, 9000, 9010);
  t.ok(readFileSync(f('frag')).equals(frag), 'the stores are in the pool all the same');
  // Right after an append + fsync, the commit vouches for the new bytes: the preload's writable lease meets them, it
  // fsyncs the file (the daemon confirms that commit with a barrier), then maps from the pool all the same.
  const fd = openSync(f('vouched'), 'a');
  writeSync(fd, Buffer.alloc(8192, 1));
  fsyncSync(fd);
  closeSync(fd);
  const c0 = stats(m.mnt).confirmBarriers!;
  const v = pre(['write', f('vouched'), '100', '9', '10']);
  t.equal(v.status, 0, v.stderr);
  t.match(v.stderr, /rw -> attached/, 'a writable mapping right after an append + fsync: from the pool');
  t.equal(stats(m.mnt).confirmBarriers! - c0, 1, 'the vouching commit was confirmed once');
  t.ok(readFileSync(f('vouched')).equals(Buffer.alloc(8192, 1).fill(9, 100, 110)), 'the store');
});

t.test('a store into a read-only DaxVM mapping dies of SIGSEGV and changes nothing', async (t) => {
  const before = readFileSync(f('big'));
  const o = pre(['rostore', f('big')]);
  t.equal(o.signal, 'SIGSEGV', o.stderr);
  t.equal(o.stdout.toString(), 'mapped\n');
  t.ok(readFileSync(f('big')).equals(before));
});

t.test('mprotect, mremap, a partial munmap: EINVAL; fork does not inherit the mapping', async (t) => {
  const o = pre(['refuse', f('big')]);
  t.equal(o.status, 0, o.stderr);
  t.equal(o.stdout.toString(), 'mprotect -1 EINVAL\nmremap failed EINVAL\npartial-munmap -1 EINVAL\nchild Segmentation fault\nmunmap 0\n');
});

t.test('a mapping outlives unlink; its bytes never change while another process refills the pool', async (t) => {
  const data = randomBytes(1 << 20);
  writeFileSync(f('held'), data);
  const child = spawn(probe, ['hold', f('held')], { env: { ...process.env, LD_PRELOAD: SO }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
  unlinkSync(f('held'));
  for (let i = 0; i < 8; i++) { // each fsync commits: the unlinked file's blocks are freed, or held
    const fd = openSync(f(`refill${i}`), 'w');
    writeSync(fd, Buffer.alloc(1 << 20, 0xee));
    fsyncSync(fd);
    closeSync(fd);
  }
  t.ok((stats(m.mnt).leaseHeldBlocks ?? 0) >= 256, 'the unlinked file\'s blocks are held by the mapping\'s lease');
  child.stdin.end('go\n');
  t.equal(await exited, 0);
  const [a, b] = out.trim().split('\n');
  t.equal(a, b, 'the same bytes after unlink and refill');
  for (let i = 0; i < 8; i++) unlinkSync(f(`refill${i}`));
  t.ok(await heldDropsToZero(), 'munmap dropped the lease: the daemon frees the blocks');
});

/** Polls .daxvm/stats (the daemon looks at held blocks every second) until no block is held for a lease. */
async function heldDropsToZero(ms = 8000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if ((stats(m.mnt).leaseHeldBlocks ?? 0) === 0) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

t.test('a SIGKILLed process\'s leases are reaped: its unlinked file\'s blocks are freed', async (t) => {
  writeFileSync(f('killed'), randomBytes(1 << 20));
  const child = spawn(probe, ['hold', f('killed')], { env: { ...process.env, LD_PRELOAD: SO }, stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('close', (_c, sig) => r(sig)));
  while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
  unlinkSync(f('killed'));
  const fd = openSync(f('nudge'), 'w'); // a commit: the unlinked file's blocks are freed, or held
  writeSync(fd, Buffer.alloc(4096, 1));
  fsyncSync(fd);
  closeSync(fd);
  t.ok((stats(m.mnt).leaseHeldBlocks ?? 0) >= 256, 'held while the process lives');
  child.kill('SIGKILL');
  t.equal(await exited, 'SIGKILL');
  t.ok(await heldDropsToZero(), 'reaped after the kill');
  unlinkSync(f('nudge'));
});

t.test('fallbacks: the kernel\'s mmap, and why', async (t) => {
  const host = join(work, 'host-file');
  writeFileSync(host, big);
  setKnob(m.mnt, 'page_tables_on', 0);
  writeFileSync(f('notables'), fragA);
  const noTables = pre(['cat', f('notables'), MAP_DAXVM]);
  setKnob(m.mnt, 'page_tables_on', 1); // (builds every file's table again)
  t.match(mmapLines(noTables).join(''), /kernel \(the file has no page tables/, 'no tables');
  t.ok(noTables.stdout.equals(fragA));
  const fd = openSync(f('holey'), 'w');
  writeSync(fd, Buffer.from('x'), 0, 1, 1 << 20);
  closeSync(fd);
  const cases: [string, string[], RegExp, Buffer][] = [
    ['private', ['cat', f('big'), MAP_DAXVM, 'private'], /kernel \(a private mapping needs copy-on-write\)/, big],
    ['host file', ['cat', host, MAP_DAXVM], /kernel \(not on a daxvm mount\)/, big],
    ['holes', ['cat', f('holey'), MAP_DAXVM], /kernel \(256 page\(s\) of the range have no block/, readFileSync(f('holey'))],
  ];
  for (const [what, args, why, bytes] of cases) {
    const o = pre(args);
    t.equal(o.status, 0, `${what}: ${o.stderr}`);
    t.match(mmapLines(o).join('\n'), why, what);
    t.ok(o.stdout.equals(bytes), `${what}: the bytes all the same`);
  }
  // Opened, then unlinked: no name in the namespace; the daemon's user.daxvm.ppt and the pool's table answer.
  writeFileSync(f('gone'), frag);
  const gone = pre(['unlinked', f('gone')]);
  t.equal(gone.status, 0, gone.stderr);
  t.match(mmapLines(gone).join(''), /-> (attached|stitched) .*table from the pool \(user\.daxvm\.ppt\)/, 'unlinked before the mmap: the pool\'s table');
  t.ok(gone.stdout.equals(frag));
  // Once the preload knows the mount it finds an fd's file by its inode number: an fd whose path another file
  // took since the open, and one whose file has no name left, still map their own file's bytes.
  const mine = randomBytes(3 * 4096), theirs = randomBytes(5 * 4096);
  writeFileSync(f('mine'), mine);
  writeFileSync(f('theirs'), theirs);
  const swapped = pre(['replaced', f('big'), f('mine'), f('theirs')]);
  t.equal(swapped.status, 0, swapped.stderr);
  t.equal(mmapLines(swapped).filter((l) => / -> (attached|stitched) /.test(l)).length, 3, 'all three from the pool');
  t.ok(swapped.stdout.equals(Buffer.concat([mine, theirs])), 'each fd maps its own file, whatever its path names now');
  const plain = pre(['cat', f('big'), '0']);
  t.same(mmapLines(plain), [], 'no flag: the kernel, silently');
  t.ok(plain.stdout.equals(big));
  const all = pre(['cat', f('big'), '0'], { DAXVM_MMAP: 'all' });
  t.match(mmapLines(all).join(''), /-> attached/, 'DAXVM_MMAP=all: the DaxVM path without the flag');
  t.ok(all.stdout.equals(big));
});

t.test('zero requests to the daemon per mmap+munmap after warm-up', async (t) => {
  pre(['loop', f('frag'), '10', MAP_DAXVM]);
  const req = () => stats(m.mnt).requests as unknown as Record<string, number>;
  const s0 = req(), s1 = req(); // what reading .daxvm/stats costs itself
  const o = pre(['loop', f('frag'), '200', MAP_DAXVM], { DAXVM_DEBUG: '0' });
  t.equal(o.status, 0, o.stderr);
  const s2 = req();
  const delta = (k: string) => (s2[k] ?? 0) - (s1[k] ?? 0) - ((s1[k] ?? 0) - (s0[k] ?? 0));
  // The file's table comes from the shared namespace (issue 10): no GETXATTR; the open, its
  // GETATTR/LOOKUP and its release are the program's own, once.
  t.equal(delta('GETXATTR'), 0, 'no GETXATTR for 200 mmaps: the table comes from the shared namespace');
  t.ok(delta('total') - delta('GETXATTR') <= 10, `other requests: ${delta('total') - delta('GETXATTR')}`);
  t.ok(delta('READ') <= 1, `READ: ${delta('READ')} (the mount's .daxvm/pool, once per process; the bytes come from the pool)`);
});

t.test('two threads mapping and unmapping at once', async (t) => {
  const o = pre(['threads', f('big'), f('frag'), '100'], { DAXVM_DEBUG: '0' });
  t.equal(o.status, 0, o.stderr);
  const [s1, s2, bad] = o.stdout.toString().trim().split(' ');
  t.equal(bad, '0', 'every pass saw the same bytes');
  t.equal(s1, pre(['loop', f('big'), '1', MAP_DAXVM]).stdout.toString().trim());
  t.equal(s2, pre(['loop', f('frag'), '1', MAP_DAXVM]).stdout.toString().trim());
});

t.test('fio\'s mmap engine with DAXVM_MMAP=all and verify=crc32c (daxvm run --all)', async (t) => {
  const r = cli(['run', '--all', '--debug', '--', 'fio', '--name=dvm', '--ioengine=mmap', '--rw=randwrite', '--bs=4k',
    '--size=4m', `--filename=${f('fio')}`, '--verify=crc32c', '--do_verify=1', '--verify_state_save=0', '--output-format=terse'], { cwd: work });
  t.equal(r.status, 0, r.summary);
  t.match(r.stderr, /mmap .*fio .*rw -> (attached|stitched)/, 'fio\'s mappings came from the pool');
  t.notMatch(r.stderr, /-> kernel/);
  unlinkSync(f('fio'));
});

t.test('daxvm preload-path, daxvm run: the preload first, the program\'s status', async (t) => {
  t.equal(cli(['preload-path']).stdout.trim(), SO);
  const r = cli(['run', 'sh', '-c', 'echo "$LD_PRELOAD"; exit 3']);
  t.equal(r.stdout.trim(), SO);
  t.equal(r.status, 3);
});

t.test('daxvm bench preload: the C program, every variant, one checksum', async (t) => {
  const json = join(work, 'bench.json');
  const r = cli(['bench', 'preload', '--quick', '--sizes', '4k,64k', '--runs', '1', '--mnt', m.mnt, '--json', json]);
  t.equal(r.status, 0, r.summary);
  t.match(r.stdout, /checksums: every pass of every variant agreed \(2 cases\)/);
  const doc = JSON.parse(readFileSync(json, 'utf8')) as { records: Array<{ variant: string; size: number; median_mibps: number }> };
  t.same([...new Set(doc.records.map((x) => x.variant))], ['read', 'mmap', 'daxvm', 'native', 'native-mmap']);
  t.ok(doc.records.every((x) => x.median_mibps > 0), 'a figure for every variant and size');
  t.match(r.stdout, /mappings made in the timed runs: daxvm (attached|stitched) \d+/);
});

t.test('stores made through the preload survive a remount', async (t) => {
  const o = pre(['write', f('big'), '0', '66', '5000']);
  t.equal(o.status, 0, o.stderr);
  big.fill(66, 0, 5000);
  const st = await m.stop();
  t.equal(st.code, 0);
  const again = await mountPool(t, m.pool);
  t.ok(readFileSync(join(again.mnt, 'big')).equals(big));
  t.equal((await again.stop()).code, 0);
});

t.test('msync with no daemon serving the pool: the stores are in the pool, msync says ENOTCONN', async (t) => {
  const d = await freshMount(t);
  setKnob(d.mnt, 'page_tables_on', 1);
  writeFileSync(join(d.mnt, 'w'), randomBytes(8192));
  const child = spawn(probe, ['holdwrite', join(d.mnt, 'w')], { env: { ...process.env, LD_PRELOAD: SO }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (x: string) => (out += x));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
  await d.kill(); // SIGKILL, then a lazy unmount: the mapping is pool memory and stays
  child.stdin.end('go\n');
  t.equal(await exited, 0);
  t.equal(out, 'mapped\nmsync -1 ENOTCONN\n');
});

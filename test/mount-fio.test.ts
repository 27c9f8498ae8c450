// fio through the mount: the job files of bench/fio run by their runner
// (npm run bench:fio) on a real mount, psync and mmap engines, every block
// written checked with verify=crc32c (the runtime is long enough that the size
// ends each job: every byte is written and verified); and a verify failure is
// counted, not lost, when a file does not hold what fio wrote.
import t from 'tap';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseFioJson, rowsOf, type FioRow } from '../src/bench/fio/report.js';
import { freshMount, NODE, ROOT, run, runAsync, tempDir } from './helpers/mount.js';

const RUNNER = join(ROOT, 'dist', 'bench', 'fio', 'run.js');
const JOBS = join(ROOT, 'bench', 'fio');

t.test('bench:fio runs seq-write and rand-write on a mount, psync and mmap, verify on', async (t) => {
  const m = await freshMount(t);
  const out = join(m.dir, 'fio.json');
  const r = await runAsync(NODE[0]!, [...NODE.slice(1), 
    RUNNER, '--mnt', m.mnt, '--jobs', 'seq-write,rand-write', '--size', '4M', '--runtime', '120', '--json', out,
  ], { timeoutMs: 120_000 });
  t.equal(r.status, 0, r.summary);
  t.match(r.stdout, /^target\s+job\s+engine\s+MiB\/s\s+IOPS\s+p99 µs/m, 'a table');
  const rep = JSON.parse(readFileSync(out, 'utf8')) as { rows: FioRow[]; problems: string[] };
  t.same(rep.problems, []);
  t.same(rep.rows.map((x) => `${x.job}/${x.engine}`), ['seq-write/psync', 'seq-write/mmap', 'rand-write/psync', 'rand-write/mmap']);
  for (const row of rep.rows) {
    const what = `${row.job} ${row.engine}`;
    t.equal(row.direction, 'write', `${what}: a write job`);
    t.equal(row.error, 0, `${what}: no fio error`);
    t.equal(row.verifyErrors, 0, `${what}: no verify error`);
    t.equal(row.bytes, 4 << 20, `${what}: wrote the whole 4 MiB`);
    t.equal(row.verifiedBytes, 4 << 20, `${what}: and read all of it back through verify`);
    t.ok(row.mibPerS > 0 && row.iops > 0, `${what}: ${row.mibPerS} MiB/s, ${row.iops} IOPS`);
  }
  t.equal(run('ls', ['-A', m.mnt]).stdout.trim(), '.daxvm', 'the runner left nothing on the mount');
  const st = await m.stop();
  t.equal(st.code, 0);
});

t.test('a file that does not hold what fio wrote: verify errors are counted', async (t) => {
  const dir = tempDir(t);
  const env = { ...process.env, DAXVM_MNT: dir, DAXVM_FIO_SIZE: '1M', DAXVM_FIO_RUNTIME: '10', DAXVM_FIO_SEQ_BS: '64k' };
  // Our job file, keeping its file (unlink=0) so that it can be damaged and verified again.
  const job = join(dir, 'seq-write.fio');
  const text = readFileSync(join(JOBS, 'seq-write.fio'), 'utf8');
  t.match(text, /^unlink=1$/m);
  writeFileSync(job, text.replace(/^unlink=1$/m, 'unlink=0'));
  const w = run('fio', ['--section=psync', '--output-format=json', job], { env, cwd: dir });
  t.equal(w.status, 0, w.summary);
  const file = join(dir, 'fio-psync.0.0');
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 5 * 65536 + 100);
  closeSync(fd);
  const v = run('fio', ['--section=psync', '--verify_only', '--output-format=json', `--output=${join(dir, 'v.json')}`, job], { env, cwd: dir });
  t.not(v.status, 0, 'fio fails');
  const [row] = rowsOf('host', 'seq-write', parseFioJson(readFileSync(join(dir, 'v.json'), 'utf8')), v.stderr);
  t.ok(row && row.verifyErrors >= 1, `verify errors: ${row?.verifyErrors}\n${v.stderr}`);
  t.equal(row?.error, 84, 'fio says EILSEQ');
});

t.test('bench:fio refuses a directory that is not a daxvm mount', async (t) => {
  const dir = tempDir(t);
  const r = await runAsync(NODE[0]!, [...NODE.slice(1), RUNNER, '--mnt', dir]);
  t.equal(r.status, 2, r.summary);
  t.match(r.stderr, /is not a daxvm mount \(mount a pool there first: daxvm mount POOL/);
  const j = await runAsync(NODE[0]!, [...NODE.slice(1), RUNNER, '--mnt', dir, '--jobs', 'nope']);
  t.equal(j.status, 2, j.summary);
  t.match(j.stderr, /unknown job 'nope': choose from seq-write, seq-read, rand-write, rand-read/);
});

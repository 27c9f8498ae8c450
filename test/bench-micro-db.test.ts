// daxvm bench append, db-read and db-write --quick, as a user runs them on a
// mount: exit 0; the table and the chart name every variant; the JSON has a
// record per variant x size x case parameter (zeroout_blocks, pattern) with
// positive finite medians, the raw runs and one checksum per case (the bytes
// written, read back, equal the reference); the facts of the method are
// recorded; the knobs the benches set are restored and nothing is left
// behind. The shape of the output only, never a speed. Wrong values of the
// database benches' options exit 2 naming the problem.
import t, { type Test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, freshMount, tempDir } from './helpers/mount.js';

interface Rec {
  variant: string;
  size: number;
  count: number;
  params?: Record<string, string | number>;
  median_mibps: number | null;
  median_ops_per_s: number | null;
  checksum: string | null;
  unavailable?: string;
  modes?: Record<string, number>;
  runs: Array<{ seconds: number; bytes: number; ops: number; untimed_seconds?: Record<string, number> }>;
}
interface Doc {
  bench: string;
  method: Record<string, string | number | boolean>;
  records: Rec[];
}

const positive = (x: number | null | undefined): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

interface Shape {
  bench: string;
  variants: string[];
  sizes: number[];
  param: string;
  values: Array<string | number>;
}

/** Runs the bench --quick with --json and --chart; checks the table, the records and the chart; returns the JSON. */
function runQuick(t: Test, mnt: string, out: string, s: Shape): Doc | undefined {
  const json = join(out, `${s.bench}.json`);
  const svg = join(out, `${s.bench}.svg`);
  const r = cli(['bench', s.bench, '--quick', '--mnt', mnt, '--json', json, '--chart', svg]);
  if (!t.equal(r.status, 0, `${s.bench}: exit 0\n${r.summary}`)) return undefined;
  for (const v of s.variants) t.match(r.stdout, new RegExp(`\\s${v}(\\s|$)`, 'm'), `${s.bench}: the table names ${v}`);
  t.match(r.stdout, new RegExp(`\\s${s.param}(\\s|$)`, 'm'), `${s.bench}: the table has a ${s.param} column`);
  t.match(r.stdout, /checksums: every pass of every variant agreed/, `${s.bench}: the table says the checksums agreed`);

  const doc = JSON.parse(readFileSync(json, 'utf8')) as Doc;
  t.equal(doc.bench, s.bench);
  t.equal(doc.records.length, s.variants.length * s.sizes.length * s.values.length, `${s.bench}: one record per variant, size and ${s.param}`);
  for (const size of s.sizes) {
    for (const value of s.values) {
      const sums = new Set<string | null>();
      for (const v of s.variants) {
        const what = `${s.bench} ${v}, ${size} B, ${s.param}=${value}`;
        const rec = doc.records.find((x) => x.variant === v && x.size === size && x.params?.[s.param] === value);
        if (!t.ok(rec, `a record for ${what}`) || !rec) continue;
        t.equal(rec.unavailable, undefined, `${what} ran (${rec.unavailable ?? ''})`);
        t.ok(positive(rec.median_mibps) && positive(rec.median_ops_per_s), `${what}: positive finite medians (${rec.median_mibps} MiB/s, ${rec.median_ops_per_s}/s)`);
        t.equal(rec.runs.length, 2, `${what}: the 2 raw runs of --quick`);
        t.ok(rec.runs.every((x) => positive(x.seconds) && x.bytes === size * rec.count && x.ops === rec.count), `${what}: every run did all ${rec.count}`);
        if (v.startsWith('daxvm')) t.ok(rec.modes && !rec.modes.vanilla && Object.keys(rec.modes).length > 0, `${what}: mapped from the pool (${JSON.stringify(rec.modes)})`);
        sums.add(rec.checksum);
      }
      t.equal(sums.size, 1, `${s.bench} ${size} B, ${s.param}=${value}: one checksum for all variants`);
      t.match([...sums][0], /^[0-9a-f]{16}$/, 'a 64-bit hex checksum');
    }
  }
  const chart = readFileSync(svg, 'utf8');
  t.match(chart, /^<svg[\s>]/, `${s.bench}: the chart is an SVG document`);
  for (const v of s.variants) t.match(chart, new RegExp(`>${v}<`), `${s.bench}: the chart names ${v}`);
  return doc;
}

t.test('bench append, db-read, db-write --quick on a mount: table, JSON, chart, knobs restored', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const out = tempDir(t, 'daxvm-bench-out-');
  const knob = (name: string): string => readFileSync(join(m.mnt, '.daxvm', name), 'utf8').trim();

  const append = runQuick(t, m.mnt, out, {
    bench: 'append', variants: ['write', 'mmap', 'daxvm', 'daxvm-nosync', 'native'], sizes: [4096, 1048576], param: 'zeroout_blocks', values: [1, 0],
  });
  if (append) {
    t.equal(append.method.fallocate_on_mount, 'works', 'append records that fallocate works on the mount');
    t.match(append.method, { extend_mmap: /^fallocate/, extend_daxvm: /^fallocate/, durability: /fsync/ }, 'and that it extends files with it, and how it makes them durable');
  }
  t.equal(knob('zeroout_blocks'), '1', 'zeroout_blocks restored to 1 after append');

  const dbVariants = { bench: 'db-read', sizes: [1024, 4096], param: 'pattern', values: ['seq', 'rand'] };
  const read = runQuick(t, m.mnt, out, { ...dbVariants, variants: ['read', 'mmap', 'daxvm', 'native'] });
  if (read) {
    t.equal(read.method.db_size, 16 * 1024 * 1024, 'db-read --quick records its 16 MiB file');
    const mapped = read.records.filter((x) => x.variant === 'mmap' || x.variant === 'daxvm');
    t.ok(mapped.every((x) => x.runs.every((r) => positive(r.untimed_seconds?.map))), 'the map time of every mapping pass is recorded aside');
  }
  const write = runQuick(t, m.mnt, out, { ...dbVariants, bench: 'db-write', variants: ['write', 'mmap', 'daxvm', 'daxvm-nosync', 'native'] });
  if (write) t.equal(write.method.sync_every, 1, 'db-write records its sync policy (after every write by default)');

  t.equal(knob('page_tables_on'), '0', 'page_tables_on restored to 0');
  t.equal(knob('msync'), '1', 'msync is 1 as before');
  t.same(readdirSync(m.mnt).filter((n) => n.startsWith('daxvm-bench-')), [], 'scratch directories removed from the mount');
  t.same(readdirSync(m.dir).filter((n) => n.startsWith('daxvm-bench-native-')), [], 'host directories beside the pool removed');
});

t.test('the database benches\' options: wrong values exit 2 and name the problem', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['bench', 'read', '--pattern', 'rand'], /bench read takes no --pattern/],
    [['bench', 'db-read', '--sync-every', '4'], /bench db-read takes no --sync-every[\s\S]*db-write/],
    [['bench', 'db-read', '--pattern', 'zigzag'], /no pattern 'zigzag'[\s\S]*seq, rand/],
    [['bench', 'db-read', '--db-size', '1500k'], /--db-size .*whole number of MiB/],
    [['bench', 'db-read', '--db-size', 'huge'], /'huge' is not a size/],
    [['bench', 'db-write', '--sizes', '3k'], /access size 3 KiB[\s\S]*powers of two/],
    [['bench', 'db-write', '--sync-every', 'often'], /--sync-every 'often' is not a whole number/],
    [['bench', 'append', '--threads', '2'], /append runs on one thread/],
  ];
  for (const [args, msg] of cases) {
    const r = cli(args);
    t.equal(r.status, 2, `daxvm ${args.join(' ')}: exit 2\n${r.summary}`);
    t.match(r.stderr, msg, `daxvm ${args.join(' ')}: names the problem`);
  }
  const l = cli(['bench', '--list']);
  t.equal(l.status, 0, l.summary);
  for (const b of ['append', 'db-read', 'db-write']) t.match(l.stdout, new RegExp(`^${b}\\s`, 'm'), `--list shows ${b}`);
});

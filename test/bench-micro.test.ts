// daxvm bench, as a user runs it on a mount: the table names every variant,
// the JSON has a record per variant and size with positive figures and the raw
// runs, the checksums agreed, the chart is an SVG naming the variants, nothing
// is left behind (scratch files, the host directory, the knob it turned on);
// wrong arguments exit 2 naming the problem. The shape of the output only,
// never a speed.
import t, { type Test } from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, freshMount, tempDir } from './helpers/mount.js';

interface Rec {
  bench: string;
  variant: string;
  size: number;
  threads: number;
  count: number;
  median_mibps: number | null;
  median_ops_per_s: number | null;
  checksum: string | null;
  unavailable?: string;
  modes?: Record<string, number>;
  runs: Array<{ seconds: number; bytes: number; ops: number }>;
}
interface Doc {
  bench: string;
  environment: { kernel: string; machine: { cores: number }; mount: { mnt: string; pool: string; knobs: Record<string, unknown>; aged: unknown } };
  records: Rec[];
}

const positive = (x: number | null): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

function checkRecords(t: Test, doc: Doc, bench: string, variants: string[], cases: Array<{ size: number; threads: number }>): void {
  for (const c of cases) {
    const sums = new Set<string | null>();
    for (const v of variants) {
      const r = doc.records.find((x) => x.variant === v && x.size === c.size && x.threads === c.threads);
      const what = `${bench} ${v} ${c.size} B, ${c.threads} thread(s)`;
      if (!t.ok(r, `a record for ${what}`) || !r) continue;
      t.equal(r.unavailable, undefined, `${what} ran (${r.unavailable ?? ''})`);
      t.ok(positive(r.median_mibps) && positive(r.median_ops_per_s), `${what}: positive finite medians (${r.median_mibps} MiB/s, ${r.median_ops_per_s}/s)`);
      t.equal(r.runs.length, 2, `${what}: the 2 raw runs of --quick`);
      t.ok(r.runs.every((x) => positive(x.seconds) && x.bytes === r.size * r.count && x.ops === r.count),
        `${what}: every run read all ${r.count} files`);
      sums.add(r.checksum);
    }
    t.equal(sums.size, 1, `${bench} ${c.size} B: one checksum for all variants`);
    t.match([...sums][0], /^[0-9a-f]{16}$/, 'a 64-bit hex checksum');
  }
}

t.test('bench read --quick on a mount: table, JSON, chart, nothing left behind', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const out = tempDir(t, 'daxvm-bench-out-');
  const json = join(out, 'read.json');
  const svg = join(out, 'read.svg');
  const r = cli(['bench', 'read', '--quick', '--mnt', m.mnt, '--json', json, '--chart', svg]);
  t.equal(r.status, 0, r.summary);
  const variants = ['read', 'mmap', 'populate', 'daxvm', 'native', 'native-mmap'];
  for (const v of variants) t.match(r.stdout, new RegExp(`\\s${v}(\\s|$)`, 'm'), `the table names ${v}`);
  t.match(r.stdout, /checksums: every pass of every variant agreed/, 'the table says the checksums agreed');
  t.match(r.stderr, /page_tables_on was 0: set to 1/, 'says it turned page tables on');

  const doc = JSON.parse(readFileSync(json, 'utf8')) as Doc;
  t.equal(doc.bench, 'read');
  t.equal(doc.environment.mount.mnt, m.mnt, 'the JSON names the mount');
  t.equal(doc.environment.mount.pool, m.pool, 'and its pool');
  t.ok(doc.environment.kernel && doc.environment.machine.cores > 0, 'and the machine');
  t.equal(doc.environment.mount.aged, false, 'a fresh pool is not aged');
  checkRecords(t, doc, 'read', variants, [4096, 65536, 1048576].map((size) => ({ size, threads: 1 })));
  const daxvm = doc.records.filter((x) => x.variant === 'daxvm');
  t.ok(daxvm.every((x) => !x.modes?.vanilla && (x.modes?.attached ?? 0) + (x.modes?.stitched ?? 0) === 2 * x.count),
    'daxvm mapped every file from the pool (attached or stitched), none vanilla');

  const chart = readFileSync(svg, 'utf8');
  t.match(chart, /^<svg[\s>]/, 'the chart is an SVG document');
  for (const v of variants) t.match(chart, new RegExp(`>${v}<`), `the chart names ${v}`);

  t.same(readdirSync(m.mnt).filter((n) => n.startsWith('daxvm-bench-')), [], 'scratch directory removed from the mount');
  t.same(readdirSync(m.dir).filter((n) => n.startsWith('daxvm-bench-native-')), [], 'host directory beside the pool removed');
  t.equal(readFileSync(join(m.mnt, '.daxvm', 'page_tables_on'), 'utf8').trim(), '0', 'page_tables_on restored to 0');
});

t.test('bench mt --quick --threads 1,2: worker threads map through the library; JSON on stdout', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const r = cli(['bench', 'mt', '--quick', '--threads', '1,2', '--mnt', m.mnt, '--json', '-']);
  t.equal(r.status, 0, r.summary);
  const doc = JSON.parse(r.stdout) as Doc;
  const variants = ['read', 'mmap', 'daxvm', 'daxvm-ephemeral', 'daxvm-batching', 'native'];
  for (const v of variants) t.match(r.stderr, new RegExp(`\\s${v}(\\s|$)`, 'm'), `the table (on stderr with --json -) names ${v}`);
  checkRecords(t, doc, 'mt', variants, [1, 2].map((threads) => ({ size: 32768, threads })));
  const daxvm = doc.records.filter((x) => x.variant.startsWith('daxvm'));
  t.ok(daxvm.length === 6 && daxvm.every((x) => !x.modes?.vanilla), 'MAP_DAXVM variants mapped from the pool in the workers');
  t.same(readdirSync(m.mnt).filter((n) => n.startsWith('daxvm-bench-')), [], 'scratch directory removed');
});

t.test('usage errors exit 2 and name the problem'
, async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['bench', 'nosuch'], /no bench named 'nosuch'[\s\S]*read/],
    [['bench'], /needs the name of a bench/],
    [['bench', 'read', '--variants', 'read,warp'], /no variant 'warp'[\s\S]*daxvm/],
    [['bench', 'read', '--sizes', '12q'], /'12q' is not a size/],
    [['bench', 'read', '--runs', '0'], /--runs '0'/],
    [['bench', 'mt', '--threads', '0'], /--threads '0'/],
    [['bench', 'mt', '--threads', '4', '--files', '2'], /2 files cannot keep 4 threads busy/],
    [['bench', 'read', '--threads', '2'], /one thread[\s\S]*bench mt/],
    [['bench', 'read', '--mnt', dir], /is not a daxvm mount[\s\S]*daxvm mount POOL/],
    [['bench', 'read', '--chart', join(dir, 'c.png')], /SVG/],
  ];
  for (const [args, msg] of cases) {
    const r = cli(args);
    t.equal(r.status, 2, `daxvm ${args.join(' ')}: exit 2\n${r.summary}`);
    t.match(r.stderr, msg, `daxvm ${args.join(' ')}: names the problem`);
  }
  const l = cli(['bench', '--list']);
  t.equal(l.status, 0, l.summary);
  t.match(l.stdout, /^read\s.*\n(\s+\S+\s.*\n)+/m, '--list shows read and its variants');
  t.notOk(existsSync(join(dir, 'c.png')), 'no chart written on a usage error');
});

/**
 * The contract of a `daxvm bench` microbenchmark. Adding one is ONE new file
 * exporting a `BenchDef` and one line in `registry.ts`; the framework does the
 * rest: options, the mount (or a temporary one), the scratch and host
 * directories, knobs, warm/cold runs, statistics, checksums, the table, the
 * JSON, the chart and the progress bars.
 *
 * How a run goes (runner.ts):
 *
 *   cases = bench.plan(options)                       sizes x threads (x params)
 *   for each case:
 *     session = await bench.setup(ctx, case)          write the files, start workers
 *     for pass in [warm-up, run 1 .. run N]:          warm-up untimed (also with --cold)
 *       for each variant (in turn, so drifting load falls on all alike):
 *         (--cold: drop the page cache)
 *         result = await session.run(variant, pass)   the bench times its own pass (wall time)
 *     await session.close()                           remove the files, stop workers
 *
 * A result that says `unavailable` (e.g. MAP_DAXVM fell back to the vanilla
 * path) takes the variant out of that case: it is reported, never measured as
 * something else. Checksums of all passes of all variants of a case must agree
 * (and with `session.expected` when given): a wrong sum is an error.
 */
import type { Debugger } from 'debug';

/** One variant a bench can measure, e.g. `read`, `mmap`, `daxvm`. */
export interface VariantDef {
  name: string;
  /** One line for `--list` and the README: what the variant does per file or access. */
  description: string;
  /** Works on the files in the host directory (`--native`), not on the mount. */
  native?: boolean;
  /** Needs persistent page tables (MAP_DAXVM): the framework turns `page_tables_on` to 1 for the run. */
  needsTables?: boolean;
}

/** The options every bench gets, parsed and checked (options.ts). */
export interface BenchOptions {
  /** `--sizes`, in bytes; undefined: the bench's default (or quick) sizes. */
  sizes?: number[];
  /** `--files N`: overrides the bench's count per case. */
  files?: number;
  /** Timed runs per case and variant (`--runs`, default 5; `--quick` 2). */
  runs: number;
  /** Variants to run, in the bench's order (checked against its list). */
  variants: string[];
  /** `--threads`; undefined: the bench's default. */
  threads?: number[];
  quick: boolean;
  /** Drop the page cache before each timed run (root only). */
  cold: boolean;
  /** Seed of anything random a bench does (`--seed`, default 1). */
  seed: number;
  /** `--db-size`: bytes of the one large file of the database benches. */
  dbSize?: number;
  /** `--pattern`: access orders of the database benches. */
  patterns?: AccessPattern[];
  /** `--sync-every N`: make writes durable after every N of them (0: once, at the end of the pass). */
  syncEvery?: number;
}

export type AccessPattern = 'seq' | 'rand';

/** Options only some benches take (a bench lists them in `BenchDef.takes`; the others refuse them). */
export type BenchFlag = 'db-size' | 'pattern' | 'sync-every';

/** One case: a row of the table. */
export interface CaseSpec {
  /** Bytes: the file size (read, mt, append) or the access size (db-*). */
  size: number;
  /** Files (or accesses) per pass. */
  count: number;
  /** Worker threads (1 for single-threaded benches). */
  threads: number;
  /** More dimensions of a bench's own (e.g. `{ pattern: 'random' }`); part of the case's identity. */
  params?: Record<string, string | number>;
}

/** What the framework hands a bench's `setup`. */
export interface BenchContext {
  /** A directory inside the mount, the bench's own; removed at the end. */
  scratch: string;
  /** A directory of the host (for `native` variants), the bench's own; removed at the end. */
  nativeDir: string;
  /** The mount point and its pool file. */
  mnt: string;
  pool: string;
  options: BenchOptions;
  /**
   * Set a knob (`MNT/.daxvm/NAME`) for the rest of the run; the framework
   * restores its first value at the end (also on Ctrl-C and errors).
   */
  setKnob(name: string, value: number): void;
  /** Read a knob's current value. */
  knob(name: string): string;
  /**
   * A fact of the method, found or decided at run time (e.g. how files are
   * extended), for the JSON's `method` object; the last value of a name wins.
   */
  record(name: string, value: string | number | boolean): void;
  /** A line for the user, on stderr (not mixed into the table or the JSON). */
  note(message: string): void;
  /** `DEBUG=daxvm:bench`. */
  debug: Debugger;
}

/** The figures of one pass of one variant. */
export interface RunResult {
  /** Wall time of the pass (the bench says where its clock starts and stops). */
  seconds: number;
  /** Bytes the pass moved (read, mapped and summed, written). */
  bytes: number;
  /** Files (or accesses) the pass did. */
  ops: number;
  /** The pass's checksum (e.g. uint64 sum of every word, hex); must agree across variants. */
  checksum?: string;
  /** How the library mapped what it mapped: `{ attached: 4096 }`. */
  modes?: Record<string, number>;
  /** The variant cannot run here, and why; the pass is not a figure. */
  unavailable?: string;
  /** Seconds of steps kept off the clock and measured aside (e.g. `map`: the mmap before the accesses), for the JSON. */
  untimed?: Record<string, number>;
}

/** What the runner says of a pass, for the bench to know what it runs. */
export interface PassInfo {
  /** 0: the untimed warm-up pass; 1..runs: timed. */
  index: number;
  warmup: boolean;
}

/** A case set up and ready: its variants run on the same data. */
export interface CaseSession {
  /** The checksum every pass must give (known from the data written), if the bench knows it. */
  expected?: string;
  /** Why a variant cannot run in this case, before any pass; undefined if it can. */
  unavailable?(variant: string): string | undefined;
  run(variant: string, pass: PassInfo): Promise<RunResult>;
  /** Remove the case's data, stop its workers. Called also after a failure. */
  close(): Promise<void>;
}

export interface BenchDef {
  name: string;
  /** One line for `daxvm bench --list`. */
  summary: string;
  /** Everything the bench can measure, in table order. */
  variants: readonly VariantDef[];
  /** The variant ratios are taken against (`read` or `write`). */
  baseline: string;
  /** What a case counts, for the table's header: 'files', 'accesses'. */
  countLabel: string;
  /** Cases to run, from the options (sizes x threads x params); throw CliError(EXIT.USAGE) on what it cannot do. */
  plan(options: BenchOptions): CaseSpec[];
  /** Host bytes the largest case needs in the pool (for the temporary pool's size); default size x count. */
  scratchBytes?(c: CaseSpec, options: BenchOptions): number;
  setup(ctx: BenchContext, c: CaseSpec): Promise<CaseSession>;
  /** The options of `BenchFlag` this bench takes. */
  takes?: readonly BenchFlag[];
  /** What the chart puts on its x axis: 'size' (default) or 'threads'. */
  chartX?: 'size' | 'threads';
}

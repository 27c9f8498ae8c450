/**
 * `daxvm bench mt`: 32 KiB files opened, mapped (or read), summed and
 * unmapped by 1..K worker threads, each over its own contiguous share of the files.
 * The workers are started and have loaded everything before any clock; per
 * pass they are armed, then released together through one shared word, and
 * the pass's time is the wall time from the release to the end of the last
 * worker (not the sum of the workers' times).
 */
import { Worker } from 'node:worker_threads';
import { CliError, EXIT } from '../../core/errors.js';
import { addSum, hex, writeFileSet } from './files.js';
import type { MtFromWorker, MtToWorker, MtWorkerData } from './mt-worker.js';
import { defaultThreadCounts, sizesByThreads } from './options.js';
import { FILE_VARIANTS, type FileVariantName } from './variants.js';
import type { BenchDef, RunResult } from './types.js';

const KiB = 1024;
const variantNames: FileVariantName[] = ['read', 'mmap', 'daxvm', 'daxvm-ephemeral', 'daxvm-batching', 'native'];

/** One worker and the messages it has sent that nobody took yet. */
class Thread {
  private readonly inbox: MtFromWorker[] = [];
  private waiting: ((m: MtFromWorker) => void) | undefined;
  private failure: Error | undefined;
  readonly worker: Worker;

  constructor(data: MtWorkerData) {
    this.worker = new Worker(new URL('./mt-worker.js', import.meta.url), { workerData: data });
    this.worker.on('message', (m: MtFromWorker) => this.push(m));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`a worker thread exited (code ${code})`)));
  }

  private push(m: MtFromWorker): void {
    if (m.type === 'failed') return this.fail(new Error(`in a worker thread: ${m.message}`));
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w(m);
    else this.inbox.push(m);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w({ type: 'failed', message: err.message });
  }

  /** The next message, which must be of `type`. */
  async next<T extends MtFromWorker['type']>(type: T): Promise<Extract<MtFromWorker, { type: T }>> {
    const m = this.inbox.shift() ?? (this.failure ? undefined : await new Promise<MtFromWorker>((r) => (this.waiting = r)));
    if (!m || m.type === 'failed') throw this.failure ?? new Error('a worker thread failed');
    if (m.type !== type) throw new Error(`a worker thread said ${m.type}, expected ${type}`);
    return m as Extract<MtFromWorker, { type: T }>;
  }

  send(m: MtToWorker): void {
    this.worker.postMessage(m);
  }
}

/**
 * Worker i gets the i-th of t contiguous slices of the files (as a thread per
 * directory would), not files i, i+t, i+2t...: the files are written in
 * order, so neighbours lie side by side in the pool (and mostly in the host's
 * page cache), and handing them out in turn put each 16 KiB file next to two
 * the other core reads. On the 2-core VM this bench was measured on, that
 * alone made every byte 3x dearer with two threads, in plain C too
 * (docs/performance.md, issue 10, "Files in turn"): a figure of the split,
 * not of how the bytes were obtained. Both variants get the same slices.
 */
const share = <X>(xs: readonly X[], i: number, t: number): X[] =>
  xs.slice(Math.floor((i * xs.length) / t), Math.floor(((i + 1) * xs.length) / t));

export const mtBench: BenchDef = {
  name: 'mt',
  summary: '32 KiB files mapped (or read), summed and unmapped by 1..K worker threads; wall time from release to the last one done',
  variants: variantNames.map((n) => FILE_VARIANTS[n]),
  baseline: 'read',
  countLabel: 'files',
  chartX: 'threads',
  plan: (o) => {
    const cases = sizesByThreads(o, {
      sizes: [32 * KiB],
      quickSizes: [32 * KiB],
      threads: defaultThreadCounts(),
      min: 1,
      max: 256 * 1024 * KiB,
      count: () => (o.quick ? 64 : 2048),
    });
    for (const c of cases) {
      if (c.count < c.threads) throw new CliError(`${c.count} files cannot keep ${c.threads} threads busy`, EXIT.USAGE, 'give --files at least the largest --threads');
    }
    return cases;
  },
  async setup(ctx, c) {
    const wantNative = ctx.options.variants.some((v) => FILE_VARIANTS[v as FileVariantName]?.native);
    const set = writeFileSet({
      mountDir: ctx.scratch, ...(wantNative ? { nativeDir: ctx.nativeDir } : {}),
      name: `mt-${c.size}-${c.threads}`, count: c.count, size: c.size, seed: ctx.options.seed,
    });
    const control = new SharedArrayBuffer(4);
    const word = new Int32Array(control);
    const threads: Thread[] = [];
    let generation = 0;
    const close = async (): Promise<void> => {
      await Promise.all(threads.map((t) => t.worker.terminate()));
      set.remove();
    };
    try {
      for (let i = 0; i < c.threads; i++) {
        threads.push(new Thread({ mount: share(set.mount, i, c.threads), native: share(set.native, i, c.threads), size: c.size, control }));
      }
      await Promise.all(threads.map((t) => t.next('ready')));
    } catch (err) {
      await close();
      throw err;
    }
    ctx.debug('mt: %d workers ready over %d files', c.threads, c.count);
    return {
      expected: set.checksum,
      async run(variant): Promise<RunResult> {
        generation++;
        for (const t of threads) t.send({ type: 'arm', variant, generation });
        await Promise.all(threads.map((t) => t.next('armed')));
        const t0 = process.hrtime.bigint();
        Atomics.store(word, 0, generation);
        Atomics.notify(word, 0);
        const done = await Promise.all(threads.map((t) => t.next('done')));
        const end = done.reduce((a, d) => (d.end > a ? d.end : a), t0);
        const seconds = Number(end - t0) / 1e9;
        const bytes = done.reduce((a, d) => a + d.bytes, 0);
        const ops = done.reduce((a, d) => a + d.ops, 0);
        const fallback = done.find((d) => d.fallback)?.fallback;
        if (fallback) return { seconds, bytes, ops, unavailable: fallback };
        const modes: Record<string, number> = {};
        for (const d of done) for (const [k, n] of Object.entries(d.modes)) modes[k] = (modes[k] ?? 0) + n;
        return { seconds, bytes, ops, checksum: hex(done.reduce((a, d) => addSum(a, d.sum), 0n)), modes };
      },
      close,
    };
  },
};

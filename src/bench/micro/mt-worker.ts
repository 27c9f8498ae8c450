/**
 * A worker thread of `daxvm bench mt`. It loads the library (and so the
 * native addons) and allocates its read buffer before any clock runs; per
 * pass it is armed with a variant, says so, waits on the shared release word,
 * makes its pass over its own files and reports when it ended (the process's
 * monotonic clock, the same in every thread) with its figures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FILE_VARIANTS, passOverFiles, settle, type FileVariantName } from './variants.js';

export interface MtWorkerData {
  /** Its share of the files: on the mount, and the same in the host directory. */
  mount: string[];
  native: string[];
  size: number;
  /** Int32Array over a SharedArrayBuffer: [0] is the release generation. */
  control: SharedArrayBuffer;
}

export type MtToWorker = { type: 'arm'; variant: string; generation: number };

export type MtFromWorker =
  | { type: 'ready' }
  | { type: 'armed' }
  | { type: 'done'; end: bigint; bytes: number; ops: number; sum: bigint; modes: Record<string, number>; fallback?: string }
  | { type: 'failed'; message: string };

const data = workerData as MtWorkerData;
const port = parentPort!;
const control = new Int32Array(data.control);
const buf = Buffer.allocUnsafe(data.size);
const send = (m: MtFromWorker): void => port.postMessage(m);

port.on('message', (m: MtToWorker) => {
  try {
    const v = FILE_VARIANTS[m.variant as FileVariantName];
    if (!v) throw new Error(`no variant ${m.variant}`);
    const paths = v.native ? data.native : data.mount;
    send({ type: 'armed' });
    // Blocks this thread (not the main one) until the main thread moves the word to `generation`.
    while (Atomics.load(control, 0) < m.generation) Atomics.wait(control, 0, m.generation - 1);
    const out = passOverFiles(v.op, paths, data.size, buf);
    const end = process.hrtime.bigint();
    settle(v.op);
    send({ type: 'done', end, ...out });
  } catch (err) {
    send({ type: 'failed', message: (err as Error).stack ?? String(err) });
  }
});

send({ type: 'ready' });

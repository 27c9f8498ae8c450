/**
 * A writer of the fill test, a child process:
 *
 *   node load-fill-client.js '{"log": FILE, "seed": S, "limit": BYTES}'
 *
 * run with its working directory inside the mount. It writes files f0,
 * f1... of seeded sizes (256 KiB to 4 MiB, in writes of 4 KiB to 1 MiB,
 * each file its own pattern), fsyncs and closes each, and logs every file
 * to FILE: its bytes written so far, and whether its fsync returned. ENOSPC
 * (from create, write, fsync or close) is logged with the call that gave
 * it; after four in a row the pool is full and the writer exits 0. Any
 * other error: logged, exit 3. Past `limit` bytes without ENOSPC: exit 5.
 */
import fs from 'node:fs';
import { mixSeed, rng } from './image.js';
import { patternAt } from './load-pattern.js';

export interface FillLine {
  f: string;
  seed: number;
  /** Bytes the writes returned (the file's size, as no crash intervenes). */
  written: number;
  durable?: boolean;
  enospc?: 'create' | 'write' | 'fsync' | 'close';
  err?: string;
}

export const fillFileSeed = (seed: number, k: number): number => mixSeed(seed, k, 0xf111);

function main(): number {
  const a = JSON.parse(process.argv[2] ?? '{}') as { log: string; seed: number; limit: number };
  const out = fs.openSync(a.log, 'a');
  const log = (l: FillLine | { t: string }): void => {
    fs.writeSync(out, JSON.stringify(l) + '\n');
  };
  const rand = rng(a.seed);
  let total = 0;
  let inARow = 0;
  for (let k = 0; inARow < 4; k++) {
    if (total > a.limit) {
      log({ t: 'never full' });
      return 5;
    }
    const line: FillLine = { f: `f${k}`, seed: fillFileSeed(a.seed, k), written: 0 };
    const size = (256 << 10) + Math.floor(rand() * (4 << 20));
    let step: NonNullable<FillLine['enospc']> = 'create';
    let fd = -1;
    try {
      fd = fs.openSync(line.f, 'wx');
      step = 'write';
      while (line.written < size) {
        const n = Math.min(size - line.written, 4096 << Math.floor(rand() * 9));
        line.written += fs.writeSync(fd, patternAt(line.seed, line.written, n), 0, n, line.written);
      }
      step = 'fsync';
      fs.fsyncSync(fd);
      step = 'close';
      const closing = fd;
      fd = -1;
      fs.closeSync(closing);
      line.durable = true;
      total += line.written;
      inARow = 0;
      log(line);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      if (fd >= 0) {
        try {
          fs.closeSync(fd);
        } catch {
          // the error that matters was logged already
        }
      }
      if (code !== 'ENOSPC') {
        log({ ...line, err: `${code} from ${step}` });
        return 3;
      }
      log({ ...line, enospc: step });
      inARow++;
    }
  }
  log({ t: 'full' });
  return 0;
}

process.exit(main());

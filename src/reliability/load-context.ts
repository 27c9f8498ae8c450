/** What the parts of the load test share: the work directory, output, and keeping what a failure left. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LoadFailure {
  part: 'kill' | 'fill' | 'hostfull' | 'clients';
  round: number;
  seed: number;
  problem: string;
  kept: string;
  replay: string;
}

export class LoadContext {
  readonly failures: LoadFailure[] = [];
  private keepDir: string | undefined;

  constructor(
    /** Scratch directory of this run (pools, mount points, client logs), removed at the end. */
    readonly work: string,
    readonly log: (line: string) => void,
    keep?: string,
  ) {
    this.keepDir = keep;
  }

  /** Record a failure: copy `files` (pool images, logs) into the keep directory and print how to replay it. */
  fail(f: Omit<LoadFailure, 'kept'>, files: string[]): void {
    if (!this.keepDir) this.keepDir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? os.tmpdir(), 'daxvm-load-failures-'));
    const dir = path.join(this.keepDir, `${f.part}-seed${f.seed}`);
    fs.mkdirSync(dir, { recursive: true });
    for (const file of files) {
      try {
        if (fs.statSync(file).isDirectory()) fs.cpSync(file, path.join(dir, path.basename(file)), { recursive: true });
        else fs.copyFileSync(file, path.join(dir, path.basename(file)));
      } catch {
        // not there: nothing to keep
      }
    }
    this.failures.push({ ...f, kept: dir });
    this.log(`FAILED ${f.part} round ${f.round} (seed ${f.seed}): ${f.problem}`);
    this.log(`  kept: ${dir}`);
    this.log(`  replay: ${f.replay}`);
  }
}

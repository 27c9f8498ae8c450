/**
 * Progress of a bench on stderr: a bar over every pass of every variant of
 * every case when stderr is a terminal (cli-progress), else one line per case
 * so a log still shows where the run is. Notes go through here too, so they
 * do not break the bar.
 */
import cliProgress from 'cli-progress';

export interface BenchProgress {
  /** A case starts: its label, e.g. 'read 4 KiB x 4096 files'. */
  startCase(label: string): void;
  /** One pass done; `detail` e.g. 'daxvm run 3/5'. */
  tick(detail: string): void;
  note(message: string): void;
  stop(): void;
}

export function benchProgress(bench: string, total: number, quiet = false): BenchProgress {
  if (!process.stderr.isTTY || quiet) {
    return {
      startCase: (label) => { if (!quiet) process.stderr.write(`${label}\n`); },
      tick: () => {},
      note: (m) => process.stderr.write(`${m}\n`),
      stop: () => {},
    };
  }
  const multi = new cliProgress.MultiBar({
    stream: process.stderr,
    format: `${bench} {bar} {value}/{total} | {case} {detail}`,
    hideCursor: true,
    clearOnComplete: true,
    autopadding: true,
  }, cliProgress.Presets.shades_classic);
  const bar = multi.create(total, 0, { case: '', detail: '' });
  let current = '';
  return {
    startCase(label) {
      current = label;
      bar.update({ case: label, detail: '' });
    },
    tick(detail) {
      bar.increment(1, { case: current, detail });
    },
    note(m) {
      multi.log(`${m}\n`);
    },
    stop() {
      multi.stop();
    },
  };
}

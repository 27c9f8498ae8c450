/** A progress bar on stderr, only when stderr is a terminal. */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Pass to the fs call; undefined when no bar is shown. */
  onProgress: ((done: number, total: number) => void) | undefined;
  stop(): void;
}

export function progressBar(label: string): Progress {
  if (!process.stderr.isTTY) return { onProgress: undefined, stop() {} };
  let bar: cliProgress.SingleBar | undefined;
  return {
    onProgress(done, total) {
      if (!bar) {
        bar = new cliProgress.SingleBar({
          stream: process.stderr,
          format: `${label} {bar} {percentage}% | {value}/{total}`,
          hideCursor: true,
          clearOnComplete: true,
        }, cliProgress.Presets.shades_classic);
        bar.start(total, 0);
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

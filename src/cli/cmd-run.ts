/**
 * daxvm run -- PROG ARGS: run an unmodified, dynamically linked program with
 * the preload library (native-shim/preload, docs/preload.md), so that its
 * mmap(MAP_DAXVM ...) maps daxvm files straight from the pool. The same as
 * `LD_PRELOAD=$(daxvm preload-path) PROG ARGS`; --all and --debug set
 * DAXVM_MMAP=all and DAXVM_DEBUG=1. The exit status is the program's (128 +
 * the signal's number when a signal ended it); signals sent to us go to it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { CliError, EXIT } from '../core/errors.js';
import { preloadLibraryPath } from '../core/paths.js';

/** Where npm install builds the preload library. */
export const preloadPath = preloadLibraryPath;

function checkedPreloadPath(): string {
  const p = preloadPath();
  if (!existsSync(p)) {
    throw new CliError(`the preload library is not built (${p} is missing)`, EXIT.FAILURE,
      'npm install builds it (in this repo: npx node-gyp rebuild)');
  }
  return p;
}

export function cmdPreloadPath(): number {
  process.stdout.write(checkedPreloadPath() + '\n');
  return EXIT.OK;
}

export interface RunOptions {
  all?: boolean;
  debug?: boolean;
}

/** The environment the program runs with: the preload first in LD_PRELOAD, and the knobs asked. */
export function runEnv(base: NodeJS.ProcessEnv, lib: string, o: RunOptions): NodeJS.ProcessEnv {
  const env = { ...base };
  const others = (base.LD_PRELOAD ?? '').split(/[:\s]+/).filter((s) => s && s !== lib);
  env.LD_PRELOAD = [lib, ...others].join(':');
  if (o.all) env.DAXVM_MMAP = 'all';
  if (o.debug) env.DAXVM_DEBUG = '1';
  return env;
}

export async function cmdRun(prog: string, args: string[], o: RunOptions): Promise<number> {
  const lib = checkedPreloadPath();
  const child = spawn(prog, args, { stdio: 'inherit', env: runEnv(process.env, lib, o) });
  const forward = (sig: NodeJS.Signals) => () => {
    child.kill(sig);
  };
  const forwarded = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, f] of forwarded) process.on(s, f);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') reject(new CliError(`${prog}: command not found`, 127));
        else if (err.code === 'EACCES') reject(new CliError(`${prog}: permission denied`, 126));
        else reject(new CliError(`${prog}: ${err.message}`, EXIT.FAILURE));
      });
      child.on('exit', (code, signal) => {
        resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? EXIT.FAILURE));
      });
    });
  } finally {
    for (const [s, f] of forwarded) process.off(s, f);
  }
}

/** The package's own files, wherever it is installed (this file is src/core/ or dist/core/). */
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root directory (two levels above this file). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Absolute path of the CLI's entry point, dist/cli/main.js, symlinks resolved. */
export function mainScript(): string {
  const p = join(packageRoot(), 'dist', 'cli', 'main.js');
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The preload library for C programs, as npm install builds it (native-shim/preload, docs/preload.md). */
export function preloadLibraryPath(): string {
  return join(packageRoot(), 'build', 'Release', 'libdaxvm-preload.so');
}

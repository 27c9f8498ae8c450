/** Default locations and the package's own files. */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import envPaths from 'env-paths';

export const DEFAULT_MOUNTPOINT = '/mnt/nvmm1';
export const DEFAULT_POOL_SIZE = '4G';

/** <env-paths('daxvm').data>/pool.daxvm, e.g. ~/.local/share/daxvm-nodejs/pool.daxvm. */
export function defaultPoolPath(): string {
  return path.join(envPaths('daxvm').data, 'pool.daxvm');
}

/** The package's root directory (dist/cli/ is two levels below it). */
export function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Absolute path of the CLI's entry point, dist/cli/main.js, symlinks resolved. */
export function mainScript(): string {
  const p = path.join(packageRoot(), 'dist', 'cli', 'main.js');
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

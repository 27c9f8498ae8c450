/** Default locations (the package's own files: core/paths.ts). */
import path from 'node:path';
import envPaths from 'env-paths';

export const DEFAULT_MOUNTPOINT = '/mnt/nvmm1';
export const DEFAULT_POOL_SIZE = '4G';

/** <env-paths('daxvm').data>/pool.daxvm, e.g. ~/.local/share/daxvm-nodejs/pool.daxvm. */
export function defaultPoolPath(): string {
  return path.join(envPaths('daxvm').data, 'pool.daxvm');
}

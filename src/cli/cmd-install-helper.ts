/**
 * daxvm install-helper [--dir /sbin] [--remove]: install mount/mount.fuse.daxvm
 * as /sbin/mount.fuse.daxvm with this node and this package's CLI baked in,
 * so mount(8), fstab and systemd (whose PATH may not hold node) find daxvm.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CliError, EXIT } from '../core/errors.js';
import { mainScript, packageRoot } from '../core/paths.js';

export const HELPER_NAME = 'mount.fuse.daxvm';

export interface InstallHelperOptions {
  dir?: string;
  remove?: boolean;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The helper script with the node binary and the CLI's path filled in. */
export function bakeHelper(template: string, node: string, main: string): string {
  const nodeLine = /^DAXVM_NODE=.*$/m;
  const mainLine = /^DAXVM_MAIN=.*$/m;
  if (!nodeLine.test(template) || !mainLine.test(template)) {
    throw new CliError(`the helper template lacks DAXVM_NODE=/DAXVM_MAIN= lines`, EXIT.FAILURE);
  }
  return template
    .replace(nodeLine, `DAXVM_NODE=${shQuote(node)}`)
    .replace(mainLine, `DAXVM_MAIN=${shQuote(main)}`);
}

function writeFailure(err: unknown, target: string): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new CliError(`cannot write ${target}: ${code}`, EXIT.FAILURE, 'run it as root: sudo daxvm install-helper');
  }
  if (code === 'ENOENT' && !existsSync(path.dirname(target))) return new CliError(`cannot write ${target}: directory ${path.dirname(target)} does not exist`, EXIT.FAILURE);
  return new CliError(`cannot write ${target}: ${(err as Error).message}`, EXIT.FAILURE);
}

export function cmdInstallHelper(opts: InstallHelperOptions): number {
  const dir = path.resolve(opts.dir ?? '/sbin');
  const target = path.join(dir, HELPER_NAME);
  if (opts.remove) {
    try {
      rmSync(target, { force: true });
    } catch (err) {
      throw writeFailure(err, target);
    }
    process.stdout.write(`Removed ${target}\n`);
    return EXIT.OK;
  }
  const template = readFileSync(path.join(packageRoot(), 'mount', HELPER_NAME), 'utf8');
  const main = mainScript();
  const script = bakeHelper(template, process.execPath, main);
  const tmp = `${target}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, script, { mode: 0o755 });
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw writeFailure(err, target);
  }
  process.stdout.write(
    `Installed ${target} (node ${process.execPath}, daxvm ${main}).\n` +
    `Now this works:   mount -t fuse.daxvm /path/pool.daxvm /mnt/nvmm1\n` +
    `and an fstab line: /path/pool.daxvm /mnt/nvmm1 fuse.daxvm defaults,nofail 0 0\n`,
  );
  return EXIT.OK;
}

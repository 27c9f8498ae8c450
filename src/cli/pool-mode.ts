/**
 * Who may read the pool. The pool is the disk: whoever can read it reads
 * every file on it, whoever can write it can corrupt them all. Pools are
 * 0600 (0660 with `mkfs --group`); `mount` refuses a pool that others than
 * its owner and its group can read or write, as ssh refuses a private key
 * with loose permissions; fsck, info and doctor warn.
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { CliError, EXIT } from '../core/errors.js';
import { notAPool, superblockRefusal } from '../fs/open.js';

/** The mount option that mounts a loose pool anyway (handled here, never passed to FUSE). */
export const ALLOW_LOOSE_POOL = 'allow_loose_pool';

export interface PoolMode {
  /** Permission bits, e.g. 0o600. */
  mode: number;
  uid: number;
  gid: number;
  /** Others (not owner, not group) may read or write it. */
  loose: boolean;
}

export const octal = (mode: number): string => mode.toString(8).padStart(4, '0');

/** The mode of a pool file; throws for anything but a regular file (the open says what it is: no chmod advice for /dev/null). */
export function poolMode(pool: string): PoolMode {
  const st = statSync(pool);
  if (!st.isFile()) throw new Error(`${pool} is not a regular file`);
  const mode = st.mode & 0o7777;
  return { mode, uid: st.uid, gid: st.gid, loose: (mode & 0o006) !== 0 };
}

/** "pool P is mode 0644: other users can read it, and so every file on it". */
export function looseMessage(pool: string, m: PoolMode): string {
  const what = (m.mode & 0o006) === 0o006 ? 'read and write' : (m.mode & 0o004) ? 'read' : 'write';
  return `pool ${pool} is mode ${octal(m.mode)}: other users can ${what} it, ` +
    `and so ${what === 'write' ? 'corrupt' : 'read'} every file on it`;
}

export const fixCommand = (pool: string): string => `chmod 600 ${pool}`;

/** A warning on stderr when the pool is loose (fsck, info); returns the mode read, if any. */
export function warnIfLoose(pool: string): PoolMode | undefined {
  let m: PoolMode;
  try {
    m = poolMode(pool);
  } catch {
    return undefined; // the command itself reports a missing pool
  }
  // The file is no daxvm pool at all: the command says so; a warning about its mode would only mislead.
  if (m.loose && !notAPool(superblockRefusal(pool))) process.stderr.write(`daxvm: warning: ${looseMessage(pool, m)}; fix it with: ${fixCommand(pool)}\n`);
  return m;
}

/** Take allow_loose_pool out of -o values (each a comma-separated list). */
export function takeAllowLoosePool(values: readonly string[]): { rest: string[]; allow: boolean } {
  let allow = false;
  const rest = values.map(v => v.split(',').filter(o => {
    if (o.trim() !== ALLOW_LOOSE_POOL) return true;
    allow = true;
    return false;
  }).join(',')).filter(v => v !== '');
  return { rest, allow };
}

/**
 * Mount's gate: a loose pool is refused (exit 32) unless allowed; allowed,
 * it is mounted with a warning on stderr (the daemon's stderr is its log).
 */
export function gateLoosePool(pool: string, allow: boolean): void {
  let m: PoolMode;
  try {
    m = poolMode(pool);
  } catch {
    return; // missing or unreadable: the open reports it
  }
  if (!m.loose) return;
  if (!allow) {
    throw new CliError(`${looseMessage(pool, m)}; refusing to mount it`, EXIT.MOUNT_FAILURE,
      `fix it with: ${fixCommand(pool)}  (or share it with a group: chmod 660 ${pool}; ` +
      `-o ${ALLOW_LOOSE_POOL} mounts it as it is)`);
  }
  process.stderr.write(`daxvm: warning: ${looseMessage(pool, m)}; mounted anyway (-o ${ALLOW_LOOSE_POOL}); ` +
    `fix it with: ${fixCommand(pool)}\n`);
}

/** A group by name or number, as `getent group` knows it (NSS included). */
export function resolveGroup(name: string): { gid: number; name: string } {
  const r = spawnSync('getent', ['group', name], { encoding: 'utf8' });
  const line = r.status === 0 ? String(r.stdout).split('\n')[0] ?? '' : '';
  const f = line.split(':');
  if (f.length >= 3 && /^\d+$/.test(f[2]!)) return { gid: Number(f[2]), name: f[0]! };
  if (/^\d+$/.test(name)) return { gid: Number(name), name };
  throw new CliError(`no group named '${name}'`, EXIT.FAILURE, 'give an existing group (getent group NAME lists it)');
}

/** mkfs --group: the caller must be in the group (root may name any). */
export function checkGroupMember(g: { gid: number; name: string }): void {
  if (process.geteuid?.() === 0) return;
  const mine = new Set([process.getegid?.(), ...(process.getgroups?.() ?? [])]);
  if (!mine.has(g.gid)) {
    throw new CliError(`you are not in group '${g.name}' (gid ${g.gid}): the pool cannot be given to it`, EXIT.FAILURE,
      `name a group you are in (id -Gn lists them), or ask root to run mkfs --group ${g.name}`);
  }
}

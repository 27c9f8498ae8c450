/**
 * Mount options (-o a,b,c), as `daxvm mount`, mount(8) and fstab pass them,
 * and the option string we hand to libfuse.
 */

export class MountOptionError extends Error {
  override readonly name = 'MountOptionError';
}

export interface MountOptions {
  readOnly: boolean;
  allowOther: boolean;
  allowRoot: boolean;
  /** Allow mounting over a non-empty directory (the daemon refuses otherwise, as libfuse 2 did). */
  nonempty: boolean;
  /**
   * no_open: the kernel opens and closes regular files without a request
   * (src/fuse/README.md, "-o no_open"): faster open+close, but read() through
   * the mount may keep showing bytes the library or the preload stored
   * straight into the pool. Off by default.
   */
  noOpen: boolean;
  /** commit=SECONDS: the file system's commit interval; undefined = its default. */
  commitIntervalMs?: number;
  /** VFS mount flags libfuse passes to the kernel (noexec, nosuid, noatime...). */
  kernelFlags: string[];
  /** Options accepted for mount(8)/fstab's sake and ignored. */
  ignored: string[];
}

/** Mount flags libfuse itself turns into mount(2) flags. */
const KERNEL_FLAGS = new Set([
  'suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec',
  'sync', 'async', 'dirsync', 'atime', 'noatime',
]);

/** A flag and its opposite: the later one wins. */
function opposite(flag: string): string {
  if (flag === 'sync') return 'async';
  if (flag === 'async') return 'sync';
  return flag.startsWith('no') ? flag.slice(2) : 'no' + flag;
}

/** mount(8)'s generic and userspace options, and flags libfuse does not take: accepted, ignored. */
const IGNORED = new Set([
  'defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'group',
  '_netdev', 'nofail', 'relatime', 'norelatime', 'strictatime', 'nostrictatime',
  'lazytime', 'nolazytime', 'diratime', 'nodiratime', 'iversion', 'noiversion',
  'silent', 'loud',
]);
const IGNORED_PREFIXES = ['x-', 'comment=', 'user='];

/**
 * libfuse options we always set: the kernel checks permissions
 * (default_permissions) and the mount shows as fuse.daxvm. Caching, write
 * size and the rest are set per session (lowlevel.ts, daemon.ts).
 */
const FIXED = ['subtype=daxvm', 'default_permissions'];

/** The binding copies the option string into a 4096-byte buffer. */
const MAX_OPTION_STRING = 4095;

/** Parse -o values (each a comma-separated list; -o may repeat). Throws MountOptionError. */
export function parseMountOptions(values: readonly string[]): MountOptions {
  const o: MountOptions = {
    readOnly: false, allowOther: false, allowRoot: false, nonempty: false, noOpen: false,
    kernelFlags: [], ignored: [],
  };
  for (const value of values) {
    for (const raw of value.split(',')) {
      const opt = raw.trim();
      if (opt === '') continue;
      const eq = opt.indexOf('=');
      const key = eq < 0 ? opt : opt.slice(0, eq);
      const arg = eq < 0 ? undefined : opt.slice(eq + 1);
      switch (key) {
        case 'ro': o.readOnly = true; continue;
        case 'rw': o.readOnly = false; continue;
        case 'allow_other': o.allowOther = true; continue;
        case 'allow_root': o.allowRoot = true; continue;
        case 'default_permissions': continue; // always on: permission checks are the kernel's
        case 'nonempty': o.nonempty = true; continue;
        case 'no_open': o.noOpen = true; continue;
        case 'open_requests': o.noOpen = false; continue; // the default, for a later -o to undo an earlier no_open
        case 'commit': {
          if (arg === undefined || !/^\d+(\.\d+)?$/.test(arg)) {
            throw new MountOptionError(`commit= takes a number of seconds, not '${arg ?? ''}'`);
          }
          const ms = Math.round(Number(arg) * 1000);
          o.commitIntervalMs = ms === 0 ? undefined : ms; // commit=0: the default, as ext4
          continue;
        }
      }
      if (arg === undefined && KERNEL_FLAGS.has(key)) {
        const other = opposite(key);
        o.kernelFlags = o.kernelFlags.filter(f => f !== key && f !== other);
        o.kernelFlags.push(key);
        continue;
      }
      if ((arg === undefined && IGNORED.has(key)) || IGNORED_PREFIXES.some(p => opt.startsWith(p))) {
        o.ignored.push(opt);
        continue;
      }
      throw new MountOptionError(`unknown mount option '${opt}'`);
    }
  }
  if (o.allowOther && o.allowRoot) throw new MountOptionError("'allow_other' and 'allow_root' are mutually exclusive");
  return o;
}

/** libfuse's option syntax: a comma or backslash inside a value is escaped with a backslash. */
export function escapeOptionValue(v: string): string {
  return v.replace(/[\\,]/g, c => '\\' + c);
}

/** The option string for libfuse: fsname (the pool path) shows as the mount's source. */
export function fuseOptionString(poolPath: string, o: MountOptions): string {
  const parts = [`fsname=${escapeOptionValue(poolPath)}`, ...FIXED];
  if (o.readOnly) parts.push('ro');
  if (o.allowOther) parts.push('allow_other');
  if (o.allowRoot) parts.push('allow_root');
  // nonempty: libfuse 3 mounts on a non-empty directory without asking; the daemon refuses unless told (daemon.ts).
  parts.push(...o.kernelFlags);
  const s = parts.join(',');
  if (Buffer.byteLength(s) + 2 > MAX_OPTION_STRING) {
    throw new MountOptionError(`pool path too long for FUSE's option string (${Buffer.byteLength(poolPath)} bytes): ${poolPath}`);
  }
  return s;
}

/**
 * Resolve: from a path to what the library needs to map it. The file is
 * opened through the mount with the mode asked (the kernel checks the
 * permission; the open handle is the lease on the file's blocks for the
 * life of the mapping), then its daxvm mount is found by device number in
 * /proc/self/mountinfo, and `user.daxvm.ppt` says where its page table is
 * (the daemon commits before answering, so the pool is current).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readMounts, FSTYPE } from '../core/mountinfo.js';
import { native } from './native.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../core/format/mode.js';
import { parsePpt, PPT_XATTR, type PptInfo } from '../core/format/ppt.js';
import { DaxvmError } from './errors.js';


export interface DaxvmMount {
  mountpoint: string;
  /** st_dev of files on it. */
  dev: number;
  /** The pool file's absolute path (`.daxvm/pool`). */
  pool: string;
  /** The process's access to that pool (a PoolAccess, set by map.ts), or why there is none. */
  access?: object | string;
}

/** glibc's makedev, as Node reports st_dev. */
function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + Math.floor(major / 0x1000) * 2 ** 32;
}

/** Mounts seen, by unique mount id (statx STATX_MNT_ID_UNIQUE: never reused, unlike device numbers). */
const mounts = new Map<number, DaxvmMount | null>();

function lookup(dev: number): DaxvmMount | null {
  for (const m of readMounts()) {
    if (m.fstype !== FSTYPE) continue;
    const [maj, min] = m.device.split(':').map(Number);
    if (makedev(maj!, min!) !== dev) continue;
    let pool: string;
    try {
      pool = fs.readFileSync(path.join(m.mountpoint, '.daxvm', 'pool'), 'utf8').trim();
    } catch {
      pool = m.source; // fsname is the pool path too
    }
    return { mountpoint: m.mountpoint, dev, pool };
  }
  return null;
}

/**
 * The daxvm mount an open file lives on, or undefined for any other file
 * system. Cached by the mount's unique id (no round trip to the mount);
 * where the kernel has no unique ids, /proc/self/mountinfo is read each time.
 */
export function mountOf(opened: Opened): DaxvmMount | undefined {
  if (!opened.uniqueMount) return lookup(opened.dev) ?? undefined;
  let m = mounts.get(opened.mountId);
  if (m === undefined) {
    m = lookup(opened.dev);
    mounts.set(opened.mountId, m);
  }
  return m ?? undefined;
}

/** The file's table, as the daemon reports it (fgetxattr: no path lookup); undefined when the attribute is not there. */
export function readPpt(opened: Opened): PptInfo | undefined {
  let value: Buffer;
  try {
    value = native.getxattr(opened.fd, PPT_XATTR);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return undefined;
    throw Object.assign(err as Error, { path: opened.path });
  }
  return parsePpt(value.toString('utf8'));
}

export interface Opened {
  fd: number;
  /** The absolute path, for messages (a Buffer path shown as UTF-8). */
  path: string;
  /** st_dev, as Node reports it. */
  dev: number;
  mountId: number;
  uniqueMount: boolean;
}


/**
 * open(2) with the mode asked; the handle is the mapping's lease. Regular
 * files only. Device, type and mount come from statx without a round trip
 * to the daemon (the size, when needed, from user.daxvm.ppt or fstat).
 */
export function openForMapping(file: string | Buffer, writable: boolean): Opened {
  // Opened as given: the kernel resolves it (a relative path from the cwd, '..' after a symbolic link
  // from the link's target; path.resolve would drop 'link/..' by the text and open another file).
  // A Buffer is a path of raw bytes (names need not be UTF-8).
  // For messages and mapping.path: absolute, as the namespace path shows it.
  const shown = typeof file === 'string' ? path.resolve(file)
    : String(file[0] === 0x2f ? file : Buffer.concat([Buffer.from(process.cwd() + '/'), file]));
  let fd: number;
  try {
    fd = fs.openSync(file, writable ? 'r+' : 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof file === 'string' && e.path === file && file !== shown) {
      e.message = e.message.replace(`'${file}'`, `'${shown}'`);
      e.path = shown;
    }
    throw e;
  }
  try {
    const q = native.quickStat(fd);
    if ((q.mode & S_IFMT) === S_IFDIR) throw new DaxvmError({ code: 'EISDIR', syscall: 'mmap', path: shown }, 'is a directory');
    if ((q.mode & S_IFMT) !== S_IFREG) throw new DaxvmError({ code: 'ENODEV', syscall: 'mmap', path: shown }, 'not a regular file');
    return { fd, path: shown, dev: makedev(q.devMajor, q.devMinor), mountId: q.mountId, uniqueMount: q.unique };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * /proc/self/mountinfo, read without touching any mount (so the daemon may
 * poll it for its own mount without calling into itself).
 */
import { readFileSync } from 'node:fs';

export const FSTYPE = 'fuse.daxvm';

export interface MountEntry {
  id: number;
  parentId: number;
  /** major:minor of the mount's st_dev. */
  device: string;
  root: string;
  mountpoint: string;
  options: string;
  fstype: string;
  /** For daxvm: the pool path (libfuse's fsname). */
  source: string;
  superOptions: string;
}

/** The kernel escapes space, tab, newline and backslash as \ooo. */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    // id parent maj:min root mountpoint options [optional fields...] - fstype source superoptions
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    const [id, parentId, device, root, mountpoint, options] = f;
    const fstype = f[sep + 1];
    const source = f[sep + 2];
    if (sep < 0 || options === undefined || fstype === undefined || source === undefined) continue;
    out.push({
      id: Number(id),
      parentId: Number(parentId),
      device: device ?? '',
      root: unescapeMountField(root ?? ''),
      mountpoint: unescapeMountField(mountpoint ?? ''),
      options,
      fstype,
      source: unescapeMountField(source),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

export function readMounts(file = '/proc/self/mountinfo'): MountEntry[] {
  return parseMountinfo(readFileSync(file, 'utf8'));
}

/** The mount visible at a path (the last one stacked there), if any. Path must be absolute and normalized. */
export function topMountAt(mountpoint: string, mounts: MountEntry[] = readMounts()): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const m of mounts) if (m.mountpoint === mountpoint) found = m;
  return found;
}

/** The daxvm mount at a path, if the mount visible there is one. */
export function daxvmMountAt(mountpoint: string, mounts?: MountEntry[]): MountEntry | undefined {
  const m = topMountAt(mountpoint, mounts);
  return m && m.fstype === FSTYPE ? m : undefined;
}

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
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2]!,
      root: unescapeMountField(f[3]!),
      mountpoint: unescapeMountField(f[4]!),
      options: f[5]!,
      fstype: f[sep + 1]!,
      source: unescapeMountField(f[sep + 2]!),
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

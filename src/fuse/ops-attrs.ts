/**
 * Operations on attributes: stat, chmod/chown/utimens/truncate by path,
 * statfs, extended attributes. Permission checks are the kernel's
 * (default_permissions is always on).
 */
import type { StatFs } from '../fs/api.js';
import type { DaxOps, StatfsReply } from './binding.js';
import { reply } from './reply.js';
import type { MountState } from './state.js';

type AttrOps = Pick<DaxOps,
  'getattr' | 'fgetattr' | 'chmod' | 'chown' | 'utimens' | 'truncate' | 'statfs' |
  'getxattr' | 'setxattr' | 'listxattr' | 'removexattr'>;

const U32 = 0xffffffff;
/** chown(2)'s "leave unchanged" (-1), as the uint32 fuse-native passes. */
const KEEP_ID = 0xffffffff;
/** FileSystemApi.utimens's "leave this time as is". */
const KEEP_TIME = -1;

/**
 * statfs for fuse-native, whose counts are 32-bit: a pool with more blocks
 * than fit reports a larger block size and counts divided accordingly, so
 * `df` still shows the right sizes. Inode counts are clamped.
 */
export function scaleStatfs(s: StatFs): StatfsReply {
  let factor = 1;
  while (Math.max(s.blocks, s.bfree, s.bavail) / factor > U32) factor *= 2;
  const bsize = s.bsize * factor;
  const files = Math.min(s.files, U32);
  const ffree = Math.min(s.ffree, U32);
  return {
    bsize,
    frsize: bsize,
    blocks: Math.floor(s.blocks / factor),
    bfree: Math.floor(s.bfree / factor),
    bavail: Math.floor(s.bavail / factor),
    files,
    ffree,
    favail: ffree,
    fsid: 0,
    flag: 0,
    namemax: s.namemax,
  };
}

export function attrOps(state: MountState): AttrOps {
  return {
    getattr(path, cb) {
      reply('getattr', path, cb, () => state.live.getattr(state.resolve(path)));
    },

    fgetattr(path, fh, cb) {
      // The kernel's getattr on behalf of an open file (before a read past the
      // size it knows, say): by the handle, so it works after the file lost its
      // path (path null). fstat(2) does not come here: it is a getattr by path.
      reply('fgetattr', `${path} fh=${fh}`, cb, () => state.live.getattr(state.inoOf(path, fh)));
    },

    chmod(path, mode, cb) {
      reply('chmod', `${path} ${mode.toString(8)}`, cb, () => {
        // The kernel sends the type bits too; only permission bits change.
        state.live.chmod(state.resolve(path), mode & 0o7777);
      });
    },

    chown(path, uid, gid, cb) {
      reply('chown', `${path} ${uid}:${gid}`, cb, () => {
        const ino = state.resolve(path);
        const fs = state.live;
        if (uid === KEEP_ID || gid === KEEP_ID) {
          const cur = fs.getattr(ino);
          if (uid === KEEP_ID) uid = cur.uid;
          if (gid === KEEP_ID) gid = cur.gid;
        }
        fs.chown(ino, uid, gid);
      });
    },

    utimens(path, atimeMs, mtimeMs, cb) {
      // null: the caller left that time alone (UTIME_OMIT: touch -a, touch -m);
      // UTIME_NOW arrives as the current time (binding.ts).
      reply('utimens', `${path} ${atimeMs} ${mtimeMs}`, cb, () => {
        state.live.utimens(state.resolve(path), atimeMs ?? KEEP_TIME, mtimeMs ?? KEEP_TIME);
      });
    },

    truncate(path, size, cb) {
      reply('truncate', `${path} ${size}`, cb, () => {
        state.live.truncate(state.resolve(path), size);
      });
    },

    statfs(path, cb) {
      reply('statfs', path, cb, () => scaleStatfs(state.live.statfs()));
    },

    getxattr(path, name, cb) {
      reply('getxattr', `${path} ${name}`, cb, () => state.live.getxattr(state.resolve(path), name));
    },

    setxattr(path, name, value, _position, flags, cb) {
      reply('setxattr', `${path} ${name}`, cb, () => {
        // value points into libfuse's memory, detached after we reply: copy it.
        state.live.setxattr(state.resolve(path), name, Buffer.from(value), flags);
      });
    },

    listxattr(path, cb) {
      reply('listxattr', path, cb, () => state.live.listxattr(state.resolve(path)));
    },

    removexattr(path, name, cb) {
      reply('removexattr', `${path} ${name}`, cb, () => {
        state.live.removexattr(state.resolve(path), name);
      });
    },
  };
}

/**
 * Operations on attributes: stat, chmod/chown/utimens/truncate by path,
 * statfs, extended attributes. Permission checks are the kernel's
 * (default_permissions is always on). Control files (`/.daxvm/...`) and the
 * computed `user.daxvm.ppt` xattr are control.ts's.
 */
import { FsError, type StatFs } from '../fs/api.js';
import type { DaxOps, StatfsReply } from './binding.js';
import { PPT_XATTR } from '../core/format/ppt.js';
import { Control, pptXattr } from './control.js';
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

export function attrOps(state: MountState, control: Control): AttrOps {
  return {
    getattr(path, cb) {
      reply('getattr', path, cb, () => {
        if (Control.owns(path)) return control.getattr(path);
        const attr = state.live.getattr(state.resolve(path));
        // The control directory is one more subdirectory of the root (find's leaf optimization counts them).
        return path === '/' ? { ...attr, nlink: attr.nlink + 1 } : attr;
      });
    },

    fgetattr(path, fh, cb) {
      // The kernel's getattr on behalf of an open file (before a read past the
      // size it knows, say): by the handle, so it works after the file lost its
      // path (path null). fstat(2) does not come here: it is a getattr by path.
      reply('fgetattr', `${path} fh=${fh}`, cb, () => {
        if (path !== null && Control.owns(path)) return control.getattr(path, fh);
        return state.live.getattr(state.inoOf(path, fh));
      });
    },

    chmod(path, mode, cb) {
      reply('chmod', `${path} ${mode.toString(8)}`, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
        // The kernel sends the type bits too; only permission bits change.
        state.live.chmod(state.resolve(path), mode & 0o7777);
      });
    },

    chown(path, uid, gid, cb) {
      reply('chown', `${path} ${uid}:${gid}`, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
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
        if (Control.owns(path)) return control.utimens(path);
        state.live.utimens(state.resolve(path), atimeMs ?? KEEP_TIME, mtimeMs ?? KEEP_TIME);
      });
    },

    truncate(path, size, cb) {
      reply('truncate', `${path} ${size}`, cb, () => {
        if (Control.owns(path)) return control.truncate(path);
        state.live.truncate(state.resolve(path), size);
      });
    },

    statfs(path, cb) {
      reply('statfs', path, cb, () => scaleStatfs(state.live.statfs()));
    },

    getxattr(path, name, cb) {
      reply('getxattr', `${path} ${name}`, cb, () => {
        if (Control.owns(path)) throw new FsError('ENODATA', `${path}: control files have no xattrs`);
        if (name === PPT_XATTR) return pptXattr(state.live, state.resolve(path));
        return state.live.getxattr(state.resolve(path), name);
      });
    },

    setxattr(path, name, value, _position, flags, cb) {
      reply('setxattr', `${path} ${name}`, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
        if (name === PPT_XATTR) throw new FsError('EPERM', `${PPT_XATTR} is computed, read-only`);
        // value points into libfuse's memory, detached after we reply: copy it.
        state.live.setxattr(state.resolve(path), name, Buffer.from(value), flags);
      });
    },

    listxattr(path, cb) {
      // user.daxvm.ppt is computed and not listed (cp -a and rsync -X would copy it, and fail).
      reply('listxattr', path, cb, () => (Control.owns(path) ? [] : state.live.listxattr(state.resolve(path))));
    },

    removexattr(path, name, cb) {
      reply('removexattr', `${path} ${name}`, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
        if (name === PPT_XATTR) throw new FsError('EPERM', `${PPT_XATTR} is computed, read-only`);
        state.live.removexattr(state.resolve(path), name);
      });
    },
  };
}

/**
 * Operations on attributes: getattr, setattr (chmod, chown, truncate,
 * utimens in one), statfs, extended attributes. Permission checks are the
 * kernel's (default_permissions is always on): it also decides who may chown,
 * chgrp and set times, and when setuid/setgid go on chown, write and truncate
 * (HANDLE_KILLPRIV_V2: it says so per request, we clear them: state.ts).
 * Control nodes (`.daxvm/`) and the computed `user.daxvm.ppt` are control.ts's.
 */
import { FsError, ROOT_INO, type Attr } from '../fs/api.js';
import { PPT_XATTR } from '../core/format/ppt.js';
import { Control, pptXattr } from './control.js';
import { N, SET, STATFS_SLOTS, type LowLevelOps } from './lowlevel.js';
import { run } from './reply.js';
import { errnoNumber } from './errno.js';
import type { MountState } from './state.js';

const ENODATA = errnoNumber('ENODATA');

type AttrOps = Pick<LowLevelOps,
  'getattr' | 'setattr' | 'statfs' | 'getxattr' | 'setxattr' | 'listxattr' | 'removexattr'>;

/** chown's "leave as is". */
const KEEP_ID = 0xffffffff;
/** FileSystemApi.utimens's "leave this time as is". */
const KEEP_TIME = -1;

/**
 * Namespaces the mount stores: any other name is refused when set and cannot exist when asked for (answered
 * without touching the inode). ops.c (stored_xattr) answers those itself, without calling these ops.
 */
const STORED_XATTR = /^(user|trusted)\./;

/** The access ACL's name; its value: version 2, then 8-byte entries (tag u16, perm u16, id u32), little endian. */
const ACL_ACCESS = 'system.posix_acl_access';
const ACL_TAGS = [0x01, 0x04, 0x20]; // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER (linux/posix_acl.h), in the kernel's order

/** The permission bits a minimal access ACL (owner, group and others, nothing else) stands for, or -1. */
function minimalAclMode(v: Buffer): number {
  if (v.length !== 4 + 8 * ACL_TAGS.length || v.readUInt32LE(0) !== 2) return -1;
  let mode = 0;
  for (let i = 0; i < ACL_TAGS.length; i++) {
    const perm = v.readUInt16LE(4 + 8 * i + 2);
    if (v.readUInt16LE(4 + 8 * i) !== ACL_TAGS[i] || perm > 7) return -1;
    mode |= perm << (6 - 3 * i);
  }
  return mode;
}

export function attrOps(state: MountState, control: Control): AttrOps {
  /** The root shows the control directory as one more subdirectory (find's leaf optimization counts them). */
  const attrOf = (ino: number): Attr => {
    const a = state.live.getattr(ino);
    return ino === ROOT_INO ? { ...a, nlink: a.nlink + 1 } : a;
  };

  return {
    getattr(ino, fh) {
      return run('getattr', ino, () => {
        if (Control.owns(ino)) state.putAttr(control.getattr(ino, fh), Control.volatile(ino) ? 0 : undefined);
        else state.putAttr(attrOf(ino));
      });
    },

    setattr(ino, fh, valid, mode, uid, gid, size, atimeMs, mtimeMs) {
      return run('setattr', ino, () => {
        if (Control.owns(ino)) {
          // Times are accepted and ignored (touch works, as on /proc/sys); sizes as `echo N >` needs.
          if (valid & (SET.MODE | SET.UID | SET.GID)) Control.refuse(ino);
          if (valid & SET.SIZE) control.truncate(ino);
          state.putAttr(control.getattr(ino, fh), 0);
          return;
        }
        const fs = state.live;
        // Before chown (whose rule looks at the old group) and truncate; the reply has the new mode.
        state.killSuidgid(ino);
        if (valid & SET.MODE) fs.chmod(ino, mode & 0o7777);
        if (valid & (SET.UID | SET.GID)) {
          fs.chown(ino, valid & SET.UID ? uid : KEEP_ID, valid & SET.GID ? gid : KEEP_ID);
        }
        if (valid & SET.SIZE) fs.truncate(ino, size);
        const times = SET.ATIME | SET.MTIME | SET.ATIME_NOW | SET.MTIME_NOW;
        if (valid & times) {
          const now = Date.now();
          const at = valid & SET.ATIME_NOW ? now : valid & SET.ATIME ? atimeMs : KEEP_TIME;
          const mt = valid & SET.MTIME_NOW ? now : valid & SET.MTIME ? mtimeMs : KEEP_TIME;
          fs.utimens(ino, at, mt);
        }
        state.putAttr(attrOf(ino));
      });
    },

    statfs(_ino) {
      return run('statfs', _ino, () => {
        const s = state.live.statfs();
        const v = [s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, s.namemax];
        for (let i = 0; i < STATFS_SLOTS; i++) state.io.num[i] = v[i]!;
      });
    },

    getxattr(ino, name, size) {
      return run('getxattr', name, () => {
        // No error object: the kernel asks security.capability at a file's first write and at every chown (tar x: twice per file).
        if (Control.owns(ino) || !STORED_XATTR.test(name)) return -ENODATA;
        const value = name === PPT_XATTR ? pptXattr(state.live, ino) : state.live.getxattr(ino, name);
        if (size > 0 && value.length <= size) value.copy(state.io.data);
        return value.length;
      });
    },

    setxattr(ino, name, at, size, flags) {
      return run('setxattr', name, () => {
        if (Control.owns(ino)) Control.refuse(ino);
        if (name === PPT_XATTR) throw new FsError('EPERM', `${PPT_XATTR} is computed, read-only`);
        const value = state.io.recv.subarray(at, at + size);
        if (name === ACL_ACCESS) {
          // cp -a sets its source's access ACL on every file it makes, and after a refusal chmods instead (one
          // request more). A minimal ACL is only a mode: root's is applied as one, as ext4 does (which stores
          // none: getxattr answers ENODATA after it there too; root keeps setgid, CAP_FSETID). Anyone else's, and
          // richer ACLs, are refused: the caller's chmod fallback then goes through the kernel's own checks.
          const bits = state.callerUid() === 0 ? minimalAclMode(value) : -1;
          if (bits < 0) throw new FsError('EOPNOTSUPP', 'POSIX ACLs are not stored (root may set a minimal one: a mode)');
          const mode = state.live.getattr(ino).mode & 0o7777;
          const next = (mode & 0o7000) | bits;
          if (next === mode) return;
          state.live.chmod(ino, next);
          state.io.invalInode(ino); // the kernel keeps the old mode otherwise (no reply attributes, no ACL support)
          return;
        }
        // security.* too: getxattr answers ENODATA for it, and we never hold a file capability.
        if (!STORED_XATTR.test(name)) throw new FsError('EOPNOTSUPP', `only user.* and trusted.* attributes are stored: ${name}`);
        // The value lies in the receive buffer; the file system copies what it keeps.
        state.live.setxattr(ino, name, value, flags);
      });
    },

    listxattr(ino, size) {
      // user.daxvm.ppt is computed and not listed (cp -a and rsync -X would copy it, and fail).
      return run('listxattr', ino, () => {
        if (Control.owns(ino)) return 0;
        const names = state.live.listxattr(ino);
        let len = 0;
        for (const n of names) len += n.length + 1;
        if (size > 0 && len <= size) {
          let at = 0;
          for (const n of names) {
            at += state.io.data.write(n, at, 'latin1');
            state.io.data[at++] = 0;
          }
        }
        return len;
      });
    },

    removexattr(ino, name) {
      return run('removexattr', name, () => {
        if (Control.owns(ino)) Control.refuse(ino);
        if (name === PPT_XATTR) throw new FsError('EPERM', `${PPT_XATTR} is computed, read-only`);
        state.live.removexattr(ino, name);
      });
    },
  };
}

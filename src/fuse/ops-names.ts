/**
 * Operations on names: lookup and forget, directory listing (READDIRPLUS
 * included), creating and removing names, rename and links. Node ids are
 * inode numbers; names are byte strings (latin1). The reserved `.daxvm` at
 * the root and everything under it are control.ts's: listed and looked up,
 * never created, removed or renamed.
 */
import { FsError, ROOT_INO, S_IFDIR, S_IFMT, type DirEntry } from '../fs/api.js';
import { Control } from './control.js';
import { N, type LowLevelOps } from './lowlevel.js';
import { run } from './reply.js';
import { errnoNumber } from './errno.js';
import { ENTRY_TIMEOUT_S, S_ISGID, type MountState } from './state.js';

const ENOENT = errnoNumber('ENOENT');

type NameOps = Pick<LowLevelOps,
  'lookup' | 'forget' | 'readlink' | 'mknod' | 'mkdir' | 'unlink' | 'rmdir' | 'symlink' | 'rename' | 'link' |
  'opendir' | 'readdir' | 'releasedir'>;

/** rename(2) flags (linux/fs.h). */
const RENAME_NOREPLACE = 1;

export function nameOps(state: MountState, control: Control): NameOps {
  /** Refuse names of the control directory; `parent` may be the root (the reserved name) or a control node. */
  const guardCreate = (parent: number, name: string): void => {
    if (Control.owns(parent) || Control.reserved(parent, name)) Control.refuseCreate(parent, name);
  };
  const guardRemove = (parent: number, name: string): void => {
    if (Control.owns(parent) || Control.reserved(parent, name)) Control.refuse(name);
  };

  /** Remove a name with `remove`, pinning its inode first if that was its last name and the kernel knows it. */
  const removeName = (parent: number, name: string, remove: () => void): void => {
    const ino = state.live.lookup(parent, name);
    const undo = state.pinBeforeRemove(ino);
    try {
      remove();
    } catch (err) {
      undo();
      throw err;
    }
  };

  /** The listing a directory handle reads: the file system's, the control entry at the root. */
  const listing = (ino: number): DirEntry[] => {
    if (Control.owns(ino)) return control.readdir(ino);
    const out = state.live.readdir(ino);
    if (ino !== ROOT_INO) return out;
    return [...out.filter(e => e.name !== control.rootEntry.name), control.rootEntry];
  };

  return {
    lookup(parent, name) {
      return run('lookup', name, () => {
        if (Control.owns(parent) || Control.reserved(parent, name)) {
          const a = control.lookup(parent, name);
          // no_open: every path walk to a control file asks LOOKUP (control.ts: it stands for the open).
          state.putEntry(a, Control.volatile(a.ino) ? 0 : undefined, state.noOpen && Control.volatile(a.ino) ? 0 : undefined);
          return;
        }
        const fs = state.live;
        const ino = fs.find(parent, name);
        if (ino === 0) return -ENOENT; // no error object: tar x and cp -a look up every name they make
        state.putEntry(fs.getattr(ino));
      });
    },

    forget(ino, nlookup) {
      if (!Control.owns(ino)) state.forget(ino, nlookup);
      return 0;
    },

    readlink(ino) {
      return run('readlink', ino, () => {
        if (Control.owns(ino)) throw new FsError('EINVAL', 'not a symbolic link');
        const target = state.live.readlink(ino);
        return state.io.data.write(target, 0, 'latin1');
      });
    },

    mknod(parent, name, mode, rdev) {
      return run('mknod', name, () => {
        guardCreate(parent, name);
        const fs = state.live;
        state.putEntry(fs.create(parent, name, mode, state.ownerIn(fs.getattr(parent)), rdev));
      });
    },

    mkdir(parent, name, mode) {
      return run('mkdir', name, () => {
        guardCreate(parent, name);
        const fs = state.live;
        const p = fs.getattr(parent);
        // A setgid directory passes its group and its setgid bit on to new subdirectories (ext4).
        const bits = (mode & 0o7777 & ~S_IFMT) | (p.mode & S_ISGID);
        state.putEntry(fs.mkdir(parent, name, bits | S_IFDIR, state.ownerIn(p)));
      });
    },

    unlink(parent, name) {
      return run('unlink', name, () => {
        guardRemove(parent, name);
        removeName(parent, name, () => state.live.unlink(parent, name));
      });
    },

    rmdir(parent, name) {
      return run('rmdir', name, () => {
        guardRemove(parent, name);
        removeName(parent, name, () => state.live.rmdir(parent, name));
      });
    },

    symlink(parent, name, target) {
      return run('symlink', name, () => {
        guardCreate(parent, name);
        const fs = state.live;
        state.putEntry(fs.symlink(parent, name, target, state.ownerIn(fs.getattr(parent))));
      });
    },

    rename(parent, name, newParent, newName, flags) {
      return run('rename', name, () => {
        guardRemove(parent, name);
        guardCreate(newParent, newName);
        if (flags & ~RENAME_NOREPLACE) throw new FsError('EINVAL', 'RENAME_EXCHANGE and RENAME_WHITEOUT are not supported');
        const fs = state.live;
        let target: number | undefined;
        try {
          target = fs.lookup(newParent, newName);
        } catch (err) {
          if (!(err instanceof FsError) || err.code !== 'ENOENT') throw err;
        }
        if (target === undefined) {
          fs.rename(parent, name, newParent, newName);
          return;
        }
        if (flags & RENAME_NOREPLACE) throw new FsError('EEXIST', 'the target exists');
        // The target loses a name: keep it while the kernel knows it, as unlink does.
        const undo = target !== fs.lookup(parent, name) ? state.pinBeforeRemove(target) : () => undefined;
        try {
          fs.rename(parent, name, newParent, newName);
        } catch (err) {
          undo();
          throw err;
        }
      });
    },

    link(ino, newParent, newName) {
      return run('link', newName, () => {
        if (Control.owns(ino)) Control.refuse(ino);
        guardCreate(newParent, newName);
        state.putEntry(state.live.link(ino, newParent, newName));
      });
    },

    opendir(ino, _flags) {
      return run('opendir', ino, () => {
        if (!Control.owns(ino) && (state.live.getattr(ino).mode & S_IFMT) !== S_IFDIR) throw new FsError('ENOTDIR');
        state.io.num[N.FH] = state.addDir(ino);
        state.io.num[N.OPEN_FLAGS] = 0;
      });
    },

    readdir(ino, fh, offset, plus) {
      return run('readdir', ino, () => {
        const d = state.dir(fh);
        // A listing per handle, taken at offset 0 (opendir, rewinddir): offsets are its indexes.
        if (offset === 0 || !d.entries) d.entries = listing(d.ino);
        const entries = d.entries;
        const num = state.io.num;
        const fs = state.live;
        for (let i = offset; i < entries.length; i++) {
          const e = entries[i]!;
          const dots = e.name === '.' || e.name === '..';
          if (plus && !dots) {
            // A whole entry: the kernel counts it as a lookup, so `ls -l` needs none of its own.
            const attr = Control.owns(e.ino) ? control.getattr(e.ino) : fs.getattr(e.ino);
            state.putAttr(attr, Control.volatile(e.ino) ? 0 : undefined);
            num[N.ENTRY_TIMEOUT] = state.noOpen && Control.volatile(e.ino) ? 0 : ENTRY_TIMEOUT_S;
            if (!state.io.dirAdd(e.name, i + 1)) break;
            state.countLookup(e.ino);
          } else {
            num[N.INO] = e.ino;
            num[N.MODE] = e.type;
            num[N.GEN] = 0;
            num[N.ATTR_TIMEOUT] = 0;
            num[N.ENTRY_TIMEOUT] = 0;
            if (!state.io.dirAdd(e.name, i + 1)) break;
          }
        }
      });
    },

    releasedir(_ino, fh) {
      return run('releasedir', fh, () => state.removeDir(fh));
    },
  };
}

/**
 * Operations on file data, through file handles. open/create pin the inode
 * (fs.open) and return a handle; read/write/fallocate/release go by the
 * handle's inode. With -o no_open there are no handles (fh 0: the kernel
 * sends no OPEN, and CREATE returns none): they go by the node id. Reads are written into the shared `data` buffer, writes are
 * taken from libfuse's receive buffer in place (no copy on either side).
 * Control files (`.daxvm/...`, control.ts) are opened with direct_io and
 * their handles are control.ts's own.
 */
import { constants } from 'node:fs';
import { FsError } from '../fs/api.js';
import { Control } from './control.js';
import { N, OPEN_DIRECT_IO, OPEN_KEEP_CACHE, type LowLevelOps } from './lowlevel.js';
import { run } from './reply.js';
import type { MountState } from './state.js';

const { O_RDONLY, O_WRONLY, O_APPEND, O_TRUNC } = constants;
const ACCMODE = 3; // O_ACCMODE (not in fs.constants)

type DataOps = Pick<LowLevelOps,
  'open' | 'create' | 'read' | 'write' | 'release' | 'fsync' | 'fsyncdir' | 'fallocate' | 'lseek'>;

const SEEK_DATA = 3;

/**
 * A write-only handle is direct_io: each write(2) is one WRITE of its own bytes. Through the page cache a write
 * that starts inside a page the cache does not hold sends that partial page as a WRITE of its own (tar x: 2.9
 * WRITEs per file for 2.1 write(2)s), and the first write of an inode asks GETXATTR security.capability (the
 * cached path's file_remove_privs; the direct path leaves clearing to us: KILL_SUIDGID, every write without
 * CAP_FSETID). Nothing is lost: such a handle cannot read or be mapped (mmap needs read access), and the kernel
 * drops the cached pages a direct write covers, so other readers and mappings see its bytes (src/fuse/README.md).
 */
const writeOnly = (flags: number): number => ((flags & ACCMODE) === O_WRONLY ? OPEN_DIRECT_IO : 0);
const SEEK_HOLE = 4;

export function dataOps(state: MountState, control: Control): DataOps {
  const setOpen = (fh: number, flags: number): void => {
    state.io.num[N.FH] = fh;
    state.io.num[N.OPEN_FLAGS] = flags;
  };

  return {
    open(ino, flags) {
      return run('open', ino, () => {
        if (Control.owns(ino)) return setOpen(control.open(ino, flags), OPEN_DIRECT_IO);
        const fs = state.live;
        const writing = (flags & ACCMODE) !== O_RDONLY;
        if (state.readOnly && writing) throw new FsError('EROFS');
        // atomic O_TRUNC: the kernel leaves the truncate to open (one request less).
        if (writing && flags & O_TRUNC) {
          fs.truncate(ino, 0);
          if (state.killSuidgid(ino)) state.io.invalInode(ino);
        }
        fs.open(ino);
        // No keep_cache once a library mapping may have stored straight into the pool: the open drops the
        // kernel's cached pages, so those stores show through the mount. Before any client took a lease
        // (every mapping of the pool needs one) the pages can only hold what the pool holds, and an open for
        // reading keeps them: a re-read asks no READ. An open for writing still drops them (O_TRUNC).
        setOpen(state.addHandle(ino, flags), !writing && !state.libraryMayStore() ? OPEN_KEEP_CACHE : writeOnly(flags));
      });
    },

    create(parent, name, mode, flags) {
      return run('create', name, () => {
        if (Control.owns(parent) || Control.reserved(parent, name)) Control.refuseCreate(parent, name);
        const fs = state.live;
        const attr = fs.create(parent, name, mode, state.ownerIn(fs.getattr(parent)));
        state.putEntry(attr);
        // no_open: no handle (older kernels send no RELEASE of it); the lookup count keeps the inode.
        if (state.noOpen) return setOpen(0, 0);
        fs.open(attr.ino);
        setOpen(state.addHandle(attr.ino, flags), writeOnly(flags));
      });
    },

    read(ino, fh, offset, size) {
      return run('read', ino, () => {
        const dst = state.io.data.subarray(0, size);
        if (Control.owns(ino)) return control.read(ino, fh, offset, dst);
        return state.live.read(fh ? state.handle(fh).ino : ino, offset, dst);
      });
    },

    write(ino, fh, offset, size, at, flags) {
      return run('write', ino, () => {
        const src = state.io.recv.subarray(at, at + size);
        if (Control.owns(ino)) return control.write(ino, fh, src);
        const h = fh ? state.handle(fh) : { ino, flags: flags ?? 0 };
        const fs = state.live;
        // The write reply carries no attributes: drop the kernel's, whose mode still shows the bits.
        if (state.killSuidgid(h.ino)) state.io.invalInode(h.ino);
        // O_APPEND: every write lands at the current end, whatever offset came with it.
        const pos = h.flags & O_APPEND ? fs.getattr(h.ino).size : offset;
        return fs.write(h.ino, pos, src);
      });
    },

    release(ino, fh) {
      return run('release', ino, () => {
        if (Control.owns(ino)) return control.release(fh);
        if (!fh) return; // no_open: a CREATE's file (newer kernels send its RELEASE, older ones none); nothing was pinned
        const h = state.removeHandle(fh);
        state.live.release(h.ino);
      });
    },

    fsync(ino, _fh, datasync) {
      return run('fsync', ino, () => {
        if (Control.owns(ino)) return; // nothing to make durable: knobs persist when set
        state.live.fsync(ino, datasync !== 0);
      });
    },

    fsyncdir(ino, _fh, datasync) {
      return run('fsyncdir', ino, () => {
        if (Control.owns(ino)) return;
        state.live.fsync(ino, datasync !== 0);
      });
    },

    fallocate(ino, fh, mode, offset, length) {
      return run('fallocate', ino, () => {
        if (Control.owns(ino)) throw new FsError('EOPNOTSUPP', 'a control file has no blocks');
        // The kernel checks this before asking us; a handle of ours says the same (no_open: no handle, the kernel's word).
        if (fh && (state.handle(fh).flags & ACCMODE) === O_RDONLY) throw new FsError('EBADF', 'the file is not open for writing');
        state.live.fallocate(ino, mode, offset, length);
      });
    },

    lseek(ino, _fh, offset, whence) {
      // Only SEEK_DATA and SEEK_HOLE come here; the kernel does the others.
      return run('lseek', ino, () => {
        if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError('EINVAL');
        if (Control.owns(ino)) {
          const size = control.getattr(ino).size;
          if (offset >= size) throw new FsError('ENXIO');
          return whence === SEEK_DATA ? offset : size;
        }
        return state.live.seekData(ino, offset, whence);
      });
    },
  };
}

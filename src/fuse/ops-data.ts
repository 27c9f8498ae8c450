/**
 * Operations on file data, through file handles. open/create pin the inode
 * (fs.open) and return a handle; read/write/fsync/ftruncate/fallocate/release use the
 * handle's inode, never the path (the path may have been renamed or hidden,
 * or be null: libfuse no longer has a name for a file unlinked while open
 * whose directory was removed since).
 * Control files (`/.daxvm/...`, control.ts) are told apart by path: their
 * names never change, and their handles are control.ts's own.
 */
import { constants } from 'node:fs';
import { FsError } from '../fs/api.js';
import type { DaxOps } from './binding.js';
import { Control } from './control.js';
import { log, reply, replyCount } from './reply.js';
import type { MountState } from './state.js';

const { O_RDONLY, O_RDWR, O_APPEND } = constants;
const ACCMODE = 3; // O_ACCMODE (not in fs.constants)

type DataOps = Pick<DaxOps,
  'open' | 'create' | 'read' | 'write' | 'release' | 'ftruncate' | 'fallocate' | 'fsync' | 'fsyncdir'>;

export function dataOps(state: MountState, control: Control): DataOps {
  return {
    open(path, flags, cb) {
      reply('open', path, cb, () => {
        if (Control.owns(path)) return control.open(path, flags);
        const ino = state.resolve(path);
        if (state.readOnly && (flags & ACCMODE) !== O_RDONLY) throw new FsError('EROFS');
        // O_TRUNC never reaches us: the kernel sends a truncate (setattr) of its own.
        state.live.open(ino);
        return state.addHandle(ino, flags);
      });
    },

    create(path, mode, cb) {
      reply('create', path, cb, () => {
        if (Control.owns(path)) Control.refuseCreate(path);
        const { parent, name } = state.split(path);
        const fs = state.live;
        const attr = fs.create(parent, name, mode, state.owner);
        fs.open(attr.ino);
        // fuse-native does not pass create's open flags: assume O_RDWR without
        // O_APPEND (for O_APPEND the kernel still sends offset = size).
        return state.addHandle(attr.ino, O_RDWR);
      });
    },

    read(path, fh, buf, len, position, cb) {
      const what = log.enabled ? `${path} fh=${fh} ${len}@${position}` : String(path);
      replyCount('read', what, cb, () => {
        if (path !== null && Control.owns(path)) return control.read(path, fh, position, len === buf.length ? buf : buf.subarray(0, len));
        const ino = state.handle(fh).ino;
        return state.live.read(ino, position, len === buf.length ? buf : buf.subarray(0, len));
      });
    },

    write(path, fh, buf, len, position, cb) {
      const what = log.enabled ? `${path} fh=${fh} ${len}@${position}` : String(path);
      replyCount('write', what, cb, () => {
        if (path !== null && Control.owns(path)) return control.write(path, fh, len === buf.length ? buf : buf.subarray(0, len));
        const h = state.handle(fh);
        const fs = state.live;
        // O_APPEND: every write lands at the current end, whatever offset came with it.
        const at = h.flags & O_APPEND ? fs.getattr(h.ino).size : position;
        return fs.write(h.ino, at, len === buf.length ? buf : buf.subarray(0, len));
      });
    },

    release(path, fh, cb) {
      reply('release', `${path} fh=${fh}`, cb, () => {
        if (path !== null && Control.owns(path)) return control.release(fh);
        const h = state.removeHandle(fh);
        const fs = state.live;
        fs.release(h.ino);
        // Last close of an unlinked file: drop the hidden pin here rather than
        // wait for libfuse's unlink of the hidden name, which never comes when
        // the directory was removed meanwhile (libfuse has no path for it).
        if (state.hiddenCount > 0 && !state.isOpen(h.ino)) {
          const name = state.hiddenNameOf(h.ino);
          if (name !== undefined) {
            state.unhide(name);
            fs.release(h.ino);
          }
        }
      });
    },

    ftruncate(path, fh, size, cb) {
      reply('ftruncate', `${path} fh=${fh} ${size}`, cb, () => {
        if (path !== null && Control.owns(path)) return control.truncate(path);
        state.live.truncate(state.inoOf(path, fh), size);
      });
    },

    fallocate(path, fh, mode, offset, length, cb) {
      reply('fallocate', `${path} fh=${fh} mode=0x${mode.toString(16)} ${length}@${offset}`, cb, () => {
        if (path !== null && Control.owns(path)) throw new FsError('EOPNOTSUPP', 'a control file has no blocks');
        const h = state.handle(fh);
        // The kernel checks this before asking us; a handle of ours says the same.
        if ((h.flags & ACCMODE) === O_RDONLY) throw new FsError('EBADF', 'the file is not open for writing');
        state.live.fallocate(h.ino, mode, offset, length);
      });
    },

    fsync(path, datasync, fh, cb) {
      reply('fsync', `${path} fh=${fh}${datasync ? ' data' : ''}`, cb, () => {
        if (path !== null && Control.owns(path)) return; // nothing to make durable: knobs persist when set
        state.live.fsync(state.inoOf(path, fh), datasync !== 0);
      });
    },

    fsyncdir(path, datasync, _fh, cb) {
      // No opendir: directory handles are libfuse's, not in our table; go by path.
      reply('fsyncdir', `${path}`, cb, () => {
        // path null: the directory was removed while open; make that durable.
        if (path === null) return state.live.sync();
        if (Control.owns(path)) return;
        state.live.fsync(state.resolve(path), datasync !== 0);
      });
    },
  };
}

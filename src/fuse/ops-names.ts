/**
 * Operations on names: directory listing, creating and removing names,
 * rename and links. Paths come from libfuse; `state` resolves them (hidden
 * names of unlinked open files included, see state.ts). Names under
 * `/.daxvm` are control.ts's: listed, never created, removed or renamed.
 */
import { FsError, S_IFDIR, S_IFMT, type DirEntry } from '../fs/api.js';
import type { DaxOps } from './binding.js';
import { Control } from './control.js';
import { reply, requestsServed } from './reply.js';
import { HIDDEN_NAME, type MountState } from './state.js';

type NameOps = Pick<DaxOps,
  'readdir' | 'readlink' | 'mknod' | 'mkdir' | 'unlink' | 'rmdir' | 'symlink' | 'rename' | 'link'>;

export function nameOps(state: MountState, control: Control): NameOps {
  /** The open file libfuse just hid: a rename onto its name may follow in the same rename(2). */
  let lastHide: { parent: number; name: string; ino: number; at: number } | null = null;
  return {
    readdir(path, cb) {
      reply('readdir', `${path}`, cb, () => {
        // A directory removed while open (libfuse has no path for it) lists nothing, as on ext4.
        if (path === null) return [];
        if (Control.owns(path)) return control.readdir(path);
        const ino = state.resolve(path);
        const entries = state.live.readdir(ino);
        const out: DirEntry[] = [];
        let dot = false;
        let dotdot = false;
        for (const e of entries) {
          if (e.name === '.') dot = true;
          else if (e.name === '..') dotdot = true;
          else if (state.isHidden(e.name)) continue; // never listed
          else if (path === '/' && e.name === control.rootEntry.name) continue; // shadowed by the control dir
          out.push(e);
        }
        if (path === '/') out.push(control.rootEntry);
        // The kernel does not make up "." and ".."; the high-level API leaves them to us.
        if (!dotdot) {
          const up = path === '/' ? ino : state.resolve(path.slice(0, path.lastIndexOf('/')) || '/');
          out.unshift({ name: '..', ino: up, type: S_IFDIR });
        }
        if (!dot) out.unshift({ name: '.', ino, type: S_IFDIR });
        return out;
      });
    },

    readlink(path, cb) {
      reply('readlink', path, cb, () => {
        if (Control.owns(path)) throw new FsError('EINVAL', `${path} is not a symbolic link`);
        return state.live.readlink(state.resolve(path));
      });
    },

    mknod(path, mode, dev, cb) {
      reply('mknod', path, cb, () => {
        if (Control.owns(path)) Control.refuseCreate(path);
        const { parent, name } = state.split(path);
        state.live.create(parent, name, mode, state.owner, dev);
      });
    },

    mkdir(path, mode, cb) {
      reply('mkdir', path, cb, () => {
        if (Control.owns(path)) Control.refuseCreate(path);
        const { parent, name } = state.split(path);
        // The kernel passes permission bits only (umask applied); the type is ours to add.
        state.live.mkdir(parent, name, (mode & ~S_IFMT) | S_IFDIR, state.owner);
      });
    },

    unlink(path, cb) {
      reply('unlink', path, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
        const name = path.slice(path.lastIndexOf('/') + 1);
        if (state.isHidden(name)) {
          // A hidden name whose file is still open elsewhere (libfuse unlinks it
          // at the last close, and we drop its pin then, see release): drop it now.
          const ino = state.unhide(name)!;
          state.live.release(ino);
          return;
        }
        try {
          const { parent } = state.split(path);
          state.live.unlink(parent, name);
        } catch (err) {
          // libfuse removing the hidden name after the last close: release already
          // dropped it (the file was unlinked at the rename). Nothing left to do.
          if (HIDDEN_NAME.test(name) && err instanceof FsError && err.code === 'ENOENT') return;
          throw err;
        }
      });
    },

    rmdir(path, cb) {
      reply('rmdir', path, cb, () => {
        if (Control.owns(path)) Control.refuse(path);
        const { parent, name } = state.split(path);
        state.live.rmdir(parent, name);
      });
    },

    symlink(target, path, cb) {
      reply('symlink', `${path} -> ${target}`, cb, () => {
        if (Control.owns(path)) Control.refuseCreate(path);
        const { parent, name } = state.split(path);
        state.live.symlink(parent, name, target, state.owner);
      });
    },

    rename(src, dst, cb) {
      reply('rename', `${src} -> ${dst}`, cb, () => {
        if (Control.owns(src)) Control.refuse(src);
        if (Control.owns(dst)) Control.refuseCreate(dst);
        const from = state.split(src);
        const dstName = dst.slice(dst.lastIndexOf('/') + 1);
        if (HIDDEN_NAME.test(dstName)) {
          // libfuse hiding a file that is being unlinked (or renamed over) while open.
          const ino = state.live.lookup(from.parent, from.name);
          if (state.isOpen(ino)) {
            const fs = state.live;
            fs.open(ino); // the pin that keeps the data until libfuse unlinks the hidden name
            try {
              fs.unlink(from.parent, from.name);
            } catch (err) {
              fs.release(ino);
              throw err;
            }
            state.hide(dstName, ino);
            lastHide = { ...from, ino, at: requestsServed() };
            return;
          }
        }
        const to = state.split(dst);
        const hid = lastHide;
        lastHide = null;
        // rename(2) onto an open file: libfuse hides the target first, then renames. When source
        // and target were two names of one file, POSIX says rename does nothing: put the name
        // back. Only when this rename came right after the hide (with libfuse's threads, another
        // request between them makes us miss it, never misfire).
        if (hid && hid.at === requestsServed() - 1 && hid.parent === to.parent && hid.name === to.name &&
            state.live.lookup(from.parent, from.name) === hid.ino) {
          state.live.link(hid.ino, to.parent, to.name);
          return;
        }
        state.live.rename(from.parent, from.name, to.parent, to.name);
      });
    },

    link(src, dst, cb) {
      reply('link', `${dst} => ${src}`, cb, () => {
        if (Control.owns(src)) Control.refuse(src);
        if (Control.owns(dst)) Control.refuseCreate(dst);
        const ino = state.resolve(src);
        const { parent, name } = state.split(dst);
        state.live.link(ino, parent, name);
      });
    },
  };
}

/**
 * The vanilla path: a plain mmap of the file through the mount (the kernel's
 * page cache over FUSE), with @riaskov/mmap-io, as a user would write it.
 * mmap-io parses size and offset as 32-bit signed ints and has no munmap:
 * beyond 2 GiB - 1 (size or offset) the shim's own file map is used instead
 * (shared mappings only); unmap() detaches mmap-io's buffer and puts a
 * PROT_NONE placeholder over its pages (native retire), so the pages go at
 * once and mmap-io's finalizer later unmaps only the placeholder.
 */
import { createRequire } from 'node:module';
import { native, type MapHandle } from './native.js';
import { DaxvmError } from './errors.js';

const require = createRequire(import.meta.url);

interface MmapIo {
  map(size: number, protection: number, flags: number, fd: number, offset?: number, advise?: number): Buffer;
  sync(buffer: Buffer, offset: number, size: number, blocking: boolean, invalidate: boolean): void;
  readonly PROT_READ: number;
  readonly PROT_WRITE: number;
  readonly MAP_SHARED: number;
  readonly MAP_PRIVATE: number;
}

let mmapIo: MmapIo | undefined;
function mmapIoModule(): MmapIo {
  mmapIo ??= require('@riaskov/mmap-io') as MmapIo;
  return mmapIo;
}

/** mmap-io's largest size and offset: a signed 32-bit int. */
export const MMAP_IO_LIMIT = 2 ** 31 - 1;

export interface VanillaMap {
  buffer: Buffer;
  /** 'mmap-io', or 'shim' beyond mmap-io's limits. */
  via: 'mmap-io' | 'shim';
  sync(offset: number, length: number): void;
  release(): void;
}

/** Linux's MAP_POPULATE: fault the whole range in at mmap (read-ahead through FUSE included). */
const MAP_POPULATE = 0x8000;

export function mapVanilla(fd: number, offset: number, length: number, writable: boolean, priv: boolean, file: string, populate = false): VanillaMap {
  if (offset + length <= MMAP_IO_LIMIT) {
    const m = mmapIoModule();
    const prot = m.PROT_READ | (writable ? m.PROT_WRITE : 0);
    let buffer: Buffer;
    try {
      buffer = m.map(length, prot, (priv ? m.MAP_PRIVATE : m.MAP_SHARED) | (populate ? MAP_POPULATE : 0), fd, offset);
    } catch (err) {
      throw new DaxvmError({ code: (err as NodeJS.ErrnoException).code ?? 'EIO', syscall: 'mmap', path: file }, (err as Error).message, err);
    }
    return {
      buffer,
      via: 'mmap-io',
      sync: (off, len) => {
        if (!priv && writable && len > 0) m.sync(buffer, off, len, true, false);
      },
      release: () => native.retire(buffer.buffer as ArrayBuffer),
    };
  }
  if (priv) throw new DaxvmError({ code: 'EOVERFLOW', syscall: 'mmap', path: file }, 'private vanilla mappings end below 2 GiB (mmap-io parses 32-bit sizes)');
  // The shim maps from offset 0: map [0, offset+length) and hand out the part asked.
  const handle: MapHandle = native.map(fd, offset + length, writable, populate);
  const buffer = Buffer.from(native.view(handle, offset, length));
  return {
    buffer,
    via: 'shim',
    sync: (off, len) => {
      if (writable && len > 0) native.msync(handle, offset + off, len);
    },
    release: () => native.unmap(handle),
  };
}

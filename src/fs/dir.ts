/**
 * Directories: ext2-style variable-length records in 4 KiB blocks (the
 * directory inode's data, journaled as metadata), indexed in memory by name
 * so lookup, insert and delete never scan the directory.
 *
 * Record layout: src/core/format/dir.ts; the name is raw bytes (see
 * bytestr.ts). recLen is a multiple of 4; the records of a block tile bytes
 * [0, CRC_OFFSET) exactly; ino 0 marks free space. CRC tail.
 */
import { FsError } from './api.js';
import { fromBytes, toBytes } from './bytestr.js';
import { DIR_RECORD_HEADER, DIRENT_INO, DIRENT_NAME_LEN, DIRENT_REC_LEN, DIRENT_TYPE } from '../core/format/dir.js';
import { CRC_OFFSET } from '../core/format/pool.js';
import type { MetaStore } from './metastore.js';

const HEADER = DIR_RECORD_HEADER;
const recordSize = (nameLen: number): number => (HEADER + nameLen + 3) & ~3;

export interface Slot {
  ino: number;
  type: number;
  /** Index of the directory block, and byte offset of the record in it. */
  index: number;
  offset: number;
}

export class Directory {
  readonly entries = new Map<string, Slot>();
  /** Largest free space in each block, for placing new records. */
  private readonly slack: number[] = [];
  private hint = 0;

  constructor(
    private readonly store: MetaStore,
    /** Physical block of each directory block, by index. */
    readonly blocks: number[],
  ) {}

  /** Parse every block; throws EIO on a malformed or corrupt block. */
  load(): void {
    this.blocks.forEach((block, index) => {
      const image = this.store.load(block, 'crc', 'directory block');
      this.walk(image, block, (off, ino, recLen, name, type) => {
        if (ino === 0) return;
        const bad = badName(name) ?? (this.entries.has(name) ? 'a second entry of that name' : null);
        if (bad) {
          this.store.reportCorrupt(block, `directory block ${block}: ${bad}`);
          throw new FsError('EIO', `malformed directory block ${block} at byte ${off} (${bad}); run daxvm fsck`);
        }
        this.entries.set(name, { ino, type, index, offset: off });
        void recLen;
      }, true);
      this.slack[index] = this.computeSlack(image, block);
    });
  }

  /** The pool block of directory block `index` (a slot's index always has one). */
  private blockAt(index: number): number {
    const block = this.blocks[index];
    if (block === undefined) throw new FsError('EIO', `directory block ${index} of ${this.blocks.length}: the index is out of step`);
    return block;
  }

  get(name: string): Slot | undefined {
    return this.entries.get(name);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Index of a block with room for `name`, or -1 (the caller adds a block). */
  findRoom(name: string): number {
    const need = recordSize(name.length); // a byte string: one code unit per byte
    const n = this.slack.length;
    for (let k = 0; k < n; k++) {
      const i = (this.hint + k) % n;
      if ((this.slack[i] ?? 0) >= need) return i;
    }
    return -1;
  }

  /** Add a new, empty block (already allocated) at the end. */
  addBlock(block: number): number {
    const image = this.store.fresh(block, 'crc');
    image.writeUInt32LE(0, DIRENT_INO);
    image.writeUInt16LE(CRC_OFFSET, DIRENT_REC_LEN);
    this.blocks.push(block);
    this.slack.push(CRC_OFFSET);
    return this.blocks.length - 1;
  }

  /** Insert into block `index` (which has room). */
  insert(index: number, name: string, ino: number, type: number): void {
    const nameBytes = toBytes(name);
    const need = recordSize(nameBytes.length);
    const block = this.blockAt(index);
    const image = this.store.load(block, 'crc', 'directory block');
    let placed = -1;
    this.walk(image, block, (off, recIno, recLen, _name, _type, recNameLen) => {
      if (placed >= 0) return;
      const used = recIno === 0 ? 0 : recordSize(recNameLen);
      if (recLen - used < need) return;
      let at = off;
      let len = recLen;
      if (recIno !== 0) {
        image.writeUInt16LE(used, off + DIRENT_REC_LEN);
        at = off + used;
        len = recLen - used;
      }
      image.writeUInt32LE(ino, at + DIRENT_INO);
      image.writeUInt16LE(len, at + DIRENT_REC_LEN);
      image.writeUInt8(nameBytes.length, at + DIRENT_NAME_LEN);
      image.writeUInt8(type >> 12, at + DIRENT_TYPE);
      nameBytes.copy(image, at + HEADER);
      placed = at;
    });
    if (placed < 0) throw new Error(`directory block ${block} has no room after all`);
    this.entries.set(name, { ino, type, index, offset: placed });
    this.slack[index] = this.computeSlack(image, block);
    this.hint = index;
    this.store.markDirty(block, 'crc');
  }

  remove(name: string): Slot {
    const slot = this.entries.get(name);
    if (!slot) throw new FsError('ENOENT', name);
    const block = this.blockAt(slot.index);
    const image = this.store.load(block, 'crc', 'directory block');
    let prev = -1;
    this.walk(image, block, (off) => {
      if (off < slot.offset) prev = off;
    });
    const recLen = image.readUInt16LE(slot.offset + DIRENT_REC_LEN);
    if (prev >= 0) image.writeUInt16LE(image.readUInt16LE(prev + DIRENT_REC_LEN) + recLen, prev + DIRENT_REC_LEN);
    else image.writeUInt32LE(0, slot.offset + DIRENT_INO);
    this.entries.delete(name);
    this.slack[slot.index] = this.computeSlack(image, block);
    this.store.markDirty(block, 'crc');
    return slot;
  }

  /** Point an existing entry at another inode (rename over a name). */
  retarget(name: string, ino: number, type: number): void {
    const slot = this.entries.get(name);
    if (!slot) throw new FsError('ENOENT', name);
    const block = this.blockAt(slot.index);
    const image = this.store.load(block, 'crc', 'directory block');
    image.writeUInt32LE(ino, slot.offset + DIRENT_INO);
    image.writeUInt8(type >> 12, slot.offset + DIRENT_TYPE);
    slot.ino = ino;
    slot.type = type;
    this.store.markDirty(block, 'crc');
  }

  private computeSlack(image: Buffer, block: number): number {
    let best = 0;
    this.walk(image, block, (_off, ino, recLen, _name, _type, nameLen) => {
      const free = recLen - (ino === 0 ? 0 : recordSize(nameLen));
      if (free > best) best = free;
    });
    return best;
  }

  private walk(image: Buffer, block: number, visit: (off: number, ino: number, recLen: number, name: string, type: number, nameLen: number) => void, wantNames = false): void {
    let off = 0;
    while (off < CRC_OFFSET) {
      const ino = image.readUInt32LE(off + DIRENT_INO);
      const recLen = image.readUInt16LE(off + DIRENT_REC_LEN);
      const nameLen = image.readUInt8(off + DIRENT_NAME_LEN);
      if (recLen < HEADER || recLen % 4 !== 0 || off + recLen > CRC_OFFSET || (ino !== 0 && (nameLen === 0 || recordSize(nameLen) > recLen))) {
        throw new FsError('EIO', `malformed directory block ${block} at byte ${off}; run daxvm fsck`);
      }
      const name = ino === 0 || !wantNames ? '' : fromBytes(image, off + HEADER, off + HEADER + nameLen);
      visit(off, ino, recLen, name, image.readUInt8(off + DIRENT_TYPE) << 12, nameLen);
      off += recLen;
    }
  }
}

/** Why a stored name cannot be an entry (null when it can). */
function badName(name: string): string | null {
  if (name === '.' || name === '..') return `an entry named ${name}`;
  if (name.includes('/') || name.includes('\0')) return 'a name with / or NUL';
  return null;
}

/**
 * fsck: the records of a damaged directory block that still make sense,
 * packed into a new image (the caller seals it). A record that breaks the
 * tiling ends the salvage: what follows it cannot be found.
 */
export function salvageDirBlock(image: Buffer, keep: (ino: number, name: string) => boolean, seen: Set<string>): { image: Buffer; kept: number; lost: number } {
  const records: Array<{ ino: number; type: number; name: Buffer }> = [];
  let lost = 0;
  let off = 0;
  while (off + HEADER <= CRC_OFFSET) {
    const ino = image.readUInt32LE(off + DIRENT_INO);
    const recLen = image.readUInt16LE(off + DIRENT_REC_LEN);
    const nameLen = image.readUInt8(off + DIRENT_NAME_LEN);
    if (recLen < HEADER || recLen % 4 !== 0 || off + recLen > CRC_OFFSET) {
      lost++;
      break;
    }
    if (ino !== 0) {
      const name = nameLen > 0 && recordSize(nameLen) <= recLen ? fromBytes(image, off + HEADER, off + HEADER + nameLen) : '';
      if (name && !badName(name) && !seen.has(name) && keep(ino, name)) {
        seen.add(name);
        records.push({ ino, type: image.readUInt8(off + DIRENT_TYPE), name: Buffer.from(image.subarray(off + HEADER, off + HEADER + nameLen)) });
      } else {
        lost++;
      }
    }
    off += recLen;
  }
  const out = Buffer.alloc(image.length);
  let at = 0;
  records.forEach((r, i) => {
    const len = i === records.length - 1 ? CRC_OFFSET - at : recordSize(r.name.length);
    out.writeUInt32LE(r.ino, at + DIRENT_INO);
    out.writeUInt16LE(len, at + DIRENT_REC_LEN);
    out.writeUInt8(r.name.length, at + DIRENT_NAME_LEN);
    out.writeUInt8(r.type, at + DIRENT_TYPE);
    r.name.copy(out, at + HEADER);
    at += len;
  });
  if (records.length === 0) out.writeUInt16LE(CRC_OFFSET, DIRENT_REC_LEN);
  return { image: out, kept: records.length, lost };
}

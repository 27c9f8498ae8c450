/**
 * The shared namespace (`<shm dir>/daxvm-<pool dev>-<pool ino>-<pool uid>.ns`,
 * docs/format.md "The namespace"): what a mounted daemon publishes so that
 * a client resolves a path and maps a file with no request to it. Written
 * by the daemon only (src/fuse/publish/namespace.ts), read lock-free by the
 * C core (native-shim/core/ns.c). Not in the pool: nothing on media depends
 * on it, a daemon makes it anew at every mount.
 *
 * Every record that changes carries a sequence word: the writer makes it
 * odd, writes, makes it even; a reader reads it before and after and uses
 * what it read only when both are the same even value.
 */
import { bytes, constants, layout, u16, u32, u64 } from './describe.js';

export const NS_HEADER = layout('ns_header', 4096, 'the namespace region header (offset 0)', {
  magic: bytes(0, 8, 'magic `DAXVMNS1`'),
  version: u32(8, 'version (1)'),
  header_size: u32(12, 'bytes of this header (4096)'),
  pool_dev: u64(16, 'pool `st_dev`'),
  pool_ino: u64(24, 'pool `st_ino`'),
  pool_uuid: bytes(32, 16, 'pool UUID (superblock offset 160)'),
  daemon_pid: u32(48, 'the publishing daemon\'s pid'),
  live: u32(52, '1 while the daemon publishes; 0 once it stops (unmount, exit, or a later daemon found it left behind)'),
  daemon_start: u64(56, 'the daemon\'s start time (field 22 of /proc/<pid>/stat)'),
  region_gen: u32(64, 'generation of this region: random, new each time a daemon makes one'),
  mount_flags: u32(68, 'NS_MOUNT_*: allow_other, read-only'),
  mount_uid: u32(72, 'the mount\'s user_id (who may use it without allow_other)'),
  mount_gid: u32(76, 'the mount\'s group_id'),
  inode_count: u32(80, 'inode records (the pool\'s inode count)'),
  bucket_count: u32(84, 'hash buckets of names (a power of two)'),
  inodes_off: u64(88, 'offset of the inode records'),
  buckets_off: u64(96, 'offset of the buckets (u32 each: 1 + first name entry, 0 = empty)'),
  names_off: u64(104, 'offset of the name entries'),
  name_count: u32(112, 'name entries'),
  heap_granules: u32(116, 'granules of the heap (NS_GRANULE bytes each: name bytes and extents)'),
  heap_off: u64(120, 'offset of the heap'),
  total_size: u64(128, 'bytes of the region'),
  pidns: u64(136, 'the daemon\'s pid namespace (inode of /proc/self/ns/pid)'),
});

export const NS_INODE = layout('ns_inode', 64, 'an inode record, indexed by inode number', {
  seq: u32(0, 'sequence word: odd while the daemon writes the record'),
  generation: u32(4, 'generation'),
  mode: u32(8, 'type and permission bits; 0: not published (ask the mount)'),
  uid: u32(12, 'owner'),
  gid: u32(16, 'group'),
  nlink: u32(20, 'link count'),
  size: u64(24, 'size in bytes'),
  parent: u32(32, 'directories: the parent directory'),
  flags: u32(36, 'NS_INODE_*: names complete, has tables, extents published'),
  extents: u32(40, 'regular files: first heap granule of the extents'),
  extent_count: u32(44, 'regular files: extents, in file order'),
});

export const NS_NAME = layout('ns_name', 32, 'a directory entry in a hash chain', {
  seq: u32(0, 'sequence word: odd while the daemon writes the entry'),
  bucket: u32(4, 'the bucket whose chain holds the entry; NS_NO_BUCKET when free'),
  parent: u32(8, 'the directory'),
  ino: u32(12, 'the inode it names'),
  hash: u32(16, 'FNV-1a of the parent (4 bytes, little-endian) then the name bytes'),
  name_len: u16(20, 'name length (1 to 255)'),
  name: u32(24, 'first heap granule of the name bytes'),
  next: u32(28, '1 + next entry of the chain; 0: end'),
});

export const NS_EXTENT = layout('ns_extent', 16, 'an extent of a file: `count` blocks from file block `logical` at pool block `physical`', {
  logical: u32(0, 'first file block'),
  count: u32(4, 'blocks'),
  physical: u64(8, 'first pool block'),
});

export const NS_CONSTANTS = constants('ns', 'the shared namespace', {
  NS_MAGIC: 'DAXVMNS1',
  NS_VERSION: 1,
  NS_GRANULE: 16,
  NS_NO_BUCKET: 0xffffffff,
  /** Directories: every name of it is published (a name not found does not exist). */
  NS_INODE_NAMES: 1,
  /** Regular files: the file has persistent page tables (MAP_DAXVM maps it from the pool). */
  NS_INODE_TABLES: 2,
  /** Regular files: its extents are published (else: too many, or no room). */
  NS_INODE_EXTENTS: 4,
  NS_MOUNT_ALLOW_OTHER: 1,
  NS_MOUNT_READ_ONLY: 2,
  /** FNV-1a (32 bits). */
  NS_FNV_OFFSET: 0x811c9dc5,
  NS_FNV_PRIME: 0x01000193,
});

export const {
  NS_MAGIC, NS_VERSION, NS_GRANULE, NS_NO_BUCKET, NS_INODE_NAMES, NS_INODE_TABLES, NS_INODE_EXTENTS,
  NS_MOUNT_ALLOW_OTHER, NS_MOUNT_READ_ONLY, NS_FNV_OFFSET, NS_FNV_PRIME,
} = NS_CONSTANTS.values;

/** The hash of a name entry: FNV-1a of the parent's number (little-endian) then the name's bytes. */
export function nsHash(parent: number, name: Uint8Array): number {
  let h = NS_FNV_OFFSET;
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ ((parent >>> (8 * i)) & 0xff), NS_FNV_PRIME);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name[i]!, NS_FNV_PRIME);
  return h >>> 0;
}

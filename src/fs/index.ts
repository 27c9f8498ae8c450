/** The file system layer: everything above it (fuse, cli, tests) imports from here. */
export * from './api.js';
export { utf8Name, showName } from './bytestr.js';
export { FileSystem } from './filesystem.js';
export { mergeRuns } from './lease-hold.js';
export { PoolError, type PoolErrorCode } from '../core/errors.js';
// For the daemon's shared files (fuse/publish): fuse reaches the media layer only through fs.
export { allocateHost, hostShortfall, HOST_CHUNK } from '../media/host.js';
export { mkfs, type MkfsOptions, type MkfsResult } from './mkfs.js';
export { openFileSystem, type OpenOptions } from './open.js';
export { fsck, type FsckReport, type FsckProblem, type FsckOptions } from './fsck.js';
export { poolInfo, type PoolInfo, type FileExtents } from './info.js';
export { parseKnobValue } from './ops-knobs.js';
export { KNOB_FILES, SUPERBLOCK_VERSION_OFFSET, type KnobName } from '../core/format/superblock.js';
export { FORMAT_VERSION, MAX_FILE_SIZE } from '../core/format/pool.js';
export { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE } from './ops-prealloc.js';

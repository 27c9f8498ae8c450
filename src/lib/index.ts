/**
 * daxvm, the library: `mmap` maps file data of a daxvm mount straight out of
 * the pool. See docs/library.md for the guide, and README.md for an example.
 *
 *   import { mmap, MAP_DAXVM } from 'daxvm';
 *   const m = mmap('/mnt/nvmm1/data', { prot: 'rw', flags: MAP_DAXVM });
 *   m.buffer.write('hello');
 *   m.msync();            // pages written back: 1
 *   m.unmap();
 */
export { mmap } from './entry.js';
export type { MmapOptions } from './map.js';
export { Mapping, type MappingMode, type Tracking } from './mapping.js';
export { MAP_DAXVM, MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL, MAP_DAXVM_NOSYNC } from './flags.js';
export { DaxvmError } from './errors.js';
export { libraryFeatures, flushBatched, libraryStats, poolHugePages, type LibraryFeatures, type PoolHugePages } from './features.js';

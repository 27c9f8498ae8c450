/**
 * mmap flags, with upstream DaxVM's values (its kernel header), plus the
 * per-mapping nosync flag the paper describes and upstream never built.
 */

/** Map from the file's persistent page tables (attach, or stitch when fragmented). */
export const MAP_DAXVM = 0x400000;
/** Asynchronous unmapping: unmap() returns at once, spans are dropped in batches of `zombie_max_pages`. */
export const MAP_DAXVM_BATCHING = 0x200000;
/** Stitched spans come from the process's ephemeral heap (2 MiB slots of one reservation); implies MAP_DAXVM. */
export const MAP_DAXVM_EPHEMERAL = 0x4000000;
/** No dirty tracking for this mapping: nothing registered, no faults; msync() does nothing, persist() flushes. */
export const MAP_DAXVM_NOSYNC = 0x8000000;

export const KNOWN_FLAGS = MAP_DAXVM | MAP_DAXVM_BATCHING | MAP_DAXVM_EPHEMERAL | MAP_DAXVM_NOSYNC;

export function describeFlags(flags: number): string[] {
  const out: string[] = [];
  if (flags & MAP_DAXVM) out.push('MAP_DAXVM');
  if (flags & MAP_DAXVM_BATCHING) out.push('MAP_DAXVM_BATCHING');
  if (flags & MAP_DAXVM_EPHEMERAL) out.push('MAP_DAXVM_EPHEMERAL');
  if (flags & MAP_DAXVM_NOSYNC) out.push('MAP_DAXVM_NOSYNC');
  return out;
}

/* A file's persistent page table read from the pool (see table.h). */
#include "table.h"

#include <errno.h>
#include <string.h>

#include "../include/daxvm_format.h"

#define SEQLOCK_TRIES 200

static uint32_t ld32(const unsigned char *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED); }
static uint64_t ld64(const unsigned char *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }

int dvm_pool_info_read(const void *view, uint64_t size, dvm_pool_info *out)
{
  const unsigned char *sb = view;
  if (size < 2 * DAXVM_BLOCK_SIZE) return -EPROTO;
  if (memcmp(sb + DAXVM_SUPERBLOCK_MAGIC_OFF, DAXVM_MAGIC, 8) != 0) return -EPROTO;
  if (ld32(sb + DAXVM_SUPERBLOCK_BLOCK_SIZE_OFF) != DAXVM_BLOCK_SIZE) return -EPROTO;
  out->total_blocks = ld64(sb + DAXVM_SUPERBLOCK_TOTAL_BLOCKS_OFF);
  out->data_start = ld64(sb + DAXVM_SUPERBLOCK_DATA_START_OFF);
  out->inode_table_start = ld64(sb + DAXVM_SUPERBLOCK_INODE_TABLE_START_OFF);
  out->inode_count = ld32(sb + DAXVM_SUPERBLOCK_INODE_COUNT_OFF);
  out->knob_msync = ld32(sb + DAXVM_SUPERBLOCK_MSYNC_OFF);
  out->knob_zombie_max_pages = ld32(sb + DAXVM_SUPERBLOCK_ZOMBIE_MAX_PAGES_OFF);
  if (out->total_blocks > size / DAXVM_BLOCK_SIZE) out->total_blocks = size / DAXVM_BLOCK_SIZE;
  uint64_t itab_end = out->inode_table_start + (out->inode_count + DAXVM_INODES_PER_BLOCK - 1) / DAXVM_INODES_PER_BLOCK;
  if (out->inode_table_start == 0 || itab_end > out->total_blocks || out->data_start >= out->total_blocks)
    return -EPROTO;
  return 0;
}

const char *dvm_table_problem_text(dvm_table_problem p)
{
  switch (p) {
  case DVM_TABLE_OK: return "ok";
  case DVM_TABLE_NOT_REGULAR: return "the inode is not a regular file any more";
  case DVM_TABLE_REUSED: return "the inode was reused (generation changed)";
  case DVM_TABLE_NO_TABLE: return "the file has no page table";
  case DVM_TABLE_BAD_BLOCK: return "unreadable table: a block outside the data area";
  case DVM_TABLE_BAD_INODE: return "inode outside the inode table";
  case DVM_TABLE_BUSY: return "the table kept changing while being read";
  }
  return "?";
}

static const unsigned char *inode_at(const void *view, const dvm_pool_info *info, uint32_t ino)
{
  if (ino < 1 || ino >= info->inode_count) return NULL;
  uint64_t block = info->inode_table_start + ino / DAXVM_INODES_PER_BLOCK;
  return (const unsigned char *)view + block * DAXVM_BLOCK_SIZE + (ino % DAXVM_INODES_PER_BLOCK) * DAXVM_INODE_SIZE;
}

typedef struct {
  const unsigned char *view;
  const dvm_pool_info *info;
  uint64_t first, end;
  dvm_run *out;
  unsigned room;
  dvm_table_result *res;
  uint64_t last_logical_end; /* for merging: the logical block after the last run */
  uint64_t mapped;           /* blocks of [first, end) found */
  int bad;
} walk;

static int good_block(const walk *w, uint64_t b) { return b >= w->info->data_start && b < w->info->total_blocks; }

static void leaf(walk *w, uint64_t logical, uint64_t physical, uint64_t count, int level)
{
  uint64_t from = logical > w->first ? logical : w->first;
  uint64_t to = logical + count < w->end ? logical + count : w->end;
  if (to <= from) return;
  if (!good_block(w, physical) || !good_block(w, physical + count - 1)) {
    w->bad = 1;
    return;
  }
  if (level == 1) w->res->leaves.pte++;
  else if (level == 2) w->res->leaves.pmd++;
  else w->res->leaves.pud++;
  w->mapped += to - from;
  uint64_t off = (physical + (from - logical)) * DAXVM_BLOCK_SIZE, len = (to - from) * DAXVM_BLOCK_SIZE;
  unsigned n = w->res->runs;
  if (n > 0 && n <= w->room && w->last_logical_end == from && w->out[n - 1].offset + w->out[n - 1].length == off) {
    w->out[n - 1].length += len;
  } else {
    if (n < w->room) w->out[n] = (dvm_run){off, len};
    w->res->runs = n + 1;
  }
  w->last_logical_end = to;
}

static void visit(walk *w, uint64_t block, int level, uint64_t base)
{
  if (w->bad) return;
  if (!good_block(w, block)) {
    w->bad = 1;
    return;
  }
  const unsigned char *node = w->view + block * DAXVM_BLOCK_SIZE;
  uint64_t span = 1;
  for (int l = 1; l < level; l++) span *= DAXVM_PPT_ENTRIES_PER_NODE;
  uint64_t i0 = w->first > base ? (w->first - base) / span : 0;
  uint64_t i1 = (w->end - 1 - base) / span;
  if (i1 > DAXVM_PPT_ENTRIES_PER_NODE - 1) i1 = DAXVM_PPT_ENTRIES_PER_NODE - 1;
  for (uint64_t i = i0; i <= i1 && !w->bad; i++) {
    uint64_t e = ld64(node + i * DAXVM_PPT_ENTRY_SIZE);
    if (!(e & DAXVM_PPT_ENTRY_PRESENT)) continue;
    uint64_t b = (e >> DAXVM_PPT_ADDRESS_SHIFT) & ((1ull << DAXVM_PPT_ADDRESS_BITS) - 1);
    uint64_t logical = base + i * span;
    if (level == 1 || (e & DAXVM_PPT_ENTRY_HUGE)) leaf(w, logical, b, span, level);
    else visit(w, b, level - 1, logical);
  }
}

dvm_table_problem dvm_table_read(const void *view, const dvm_pool_info *info, uint32_t ino,
                                 uint32_t gen, uint64_t first, uint64_t end, dvm_run *out,
                                 unsigned room, dvm_table_result *res)
{
  const unsigned char *rec = inode_at(view, info, ino);
  if (!rec) return DVM_TABLE_BAD_INODE;
  for (int attempt = 0; attempt < SEQLOCK_TRIES; attempt++) {
    uint32_t seq = __atomic_load_n((const uint32_t *)(rec + DAXVM_INODE_SEQ_OFF), __ATOMIC_ACQUIRE);
    if (seq & 1) continue;
    memset(res, 0, sizeof *res);
    dvm_table_problem p = DVM_TABLE_OK;
    uint64_t root = ld64(rec + DAXVM_INODE_PPT_ROOT_OFF);
    uint32_t level = ld32(rec + DAXVM_INODE_PPT_LEVEL_OFF);
    res->size = ld64(rec + DAXVM_INODE_SIZE_OFF);
    if ((ld32(rec + DAXVM_INODE_MODE_OFF) & 0170000) != 0100000) p = DVM_TABLE_NOT_REGULAR;
    else if (ld32(rec + DAXVM_INODE_GENERATION_OFF) != gen) p = DVM_TABLE_REUSED;
    else if (!root || level < 1 || level > DAXVM_PPT_MAX_LEVEL) p = DVM_TABLE_NO_TABLE;
    else if (end > first) {
      walk w = {view, info, first, end, out, room, res, UINT64_MAX, 0, 0};
      visit(&w, root, (int)level, 0);
      if (w.bad) p = DVM_TABLE_BAD_BLOCK;
      res->holes = (end - first) - w.mapped;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n((const uint32_t *)(rec + DAXVM_INODE_SEQ_OFF), __ATOMIC_RELAXED) != seq) continue;
    res->seq = seq;
    return p;
  }
  return DVM_TABLE_BUSY;
}

int dvm_table_unchanged(const void *view, const dvm_pool_info *info, uint32_t ino, uint32_t seq)
{
  const unsigned char *rec = inode_at(view, info, ino);
  return rec && __atomic_load_n((const uint32_t *)(rec + DAXVM_INODE_SEQ_OFF), __ATOMIC_ACQUIRE) == seq;
}

/*
 * The byte layouts of daxvm's shared memory (docs/format.md, "Shared
 * memory"): the lease table. The TypeScript side is src/fuse/publish/layout.ts;
 * test/shared-format.test.ts fails when the two disagree.
 */
#ifndef DAXVM_SHARED_FORMAT_H
#define DAXVM_SHARED_FORMAT_H

/* ---- the lease table: <shm dir>/daxvm-<pool dev>-<pool ino>-<pool uid>.leases (hex) ---- */
#define DAXVM_LEASES_MAGIC 0x31534c4d56584144ULL /* the bytes "DAXVMLS1", read as a little-endian u64 */
#define DAXVM_LEASES_VERSION 1
#define DAXVM_LEASES_HEADER_SIZE 4096
#define DAXVM_LEASES_OFF_MAGIC 0
#define DAXVM_LEASES_OFF_VERSION 8
#define DAXVM_LEASES_OFF_SLOT_SIZE 12
#define DAXVM_LEASES_OFF_SLOTS 16
#define DAXVM_LEASES_OFF_HIGH 20
#define DAXVM_LEASES_OFF_POOL_DEV 24
#define DAXVM_LEASES_OFF_POOL_INO 32
#define DAXVM_LEASES_OFF_POOL_UUID 40
#define DAXVM_LEASES_OFF_PIDNS 56
#define DAXVM_LEASE_SLOT_SIZE 32
#define DAXVM_LEASE_OFF_OWNER 0
#define DAXVM_LEASE_OFF_RANGE 8
#define DAXVM_LEASE_OFF_INO 16
#define DAXVM_LEASE_OFF_GEN 20
#define DAXVM_LEASE_COUNT_BITS 24
#define DAXVM_LEASE_START_BITS 40

#endif

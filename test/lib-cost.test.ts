// Cheap mapping objects (issue 10): an attached or stitched mapping's Buffer is not
// counted as V8 external memory (no collection asked for by its size),
// unmap makes it unusable (length 0, every view of it too) and drops its
// lease at once, and a Buffer let go without unmap gives its lease back
// once it is collected.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { mmap, MAP_DAXVM, type Mapping } from '../src/lib/index.js';
import { native } from '../src/lib/native.js';
import { LEASE_SLOT, LEASE_SLOT_SIZE, LEASES_HEADER, LEASES_HEADER_SIZE } from '../src/core/format/leases.js';
import { sharedPath } from '../src/core/format/shared.js';
import { alignedFile, collect, fragmentedFile, KiB, MiB, PAGE, smapsAt, tablesMount } from './helpers/lib.js';

const H = LEASES_HEADER.off;
const S = LEASE_SLOT.off;

/** Slots of the pool's lease table this process holds a lease in. */
function heldByUs(mnt: string): number {
  const pool = fs.readFileSync(join(mnt, '.daxvm', 'pool'), 'utf8').trim();
  const st = fs.statSync(pool, { bigint: true });
  const table = fs.readFileSync(sharedPath(st, 'leases'));
  const slots = table.readUInt32LE(H.slots);
  const me = native.leaseOwner();
  let n = 0;
  for (let s = 0; s < slots; s++) {
    const at = LEASES_HEADER_SIZE + s * LEASE_SLOT_SIZE;
    if (table.readBigUInt64LE(at + S.owner) === me && table.readBigUInt64LE(at + S.range) !== 0n) n++;
  }
  return n;
}

t.test('attached buffers: not external memory; unmap detaches and drops the lease; the GC drops a forgotten one', async (t) => {
  const m = await tablesMount(t, '256M');
  const big = alignedFile(m.mnt, 'big', 64 * MiB, 3);
  const small = alignedFile(m.mnt, 'small', 16 * KiB, 4);
  const held0 = heldByUs(m.mnt);

  const ext0 = process.memoryUsage().external;
  const maps: Mapping[] = [];
  for (let i = 0; i < 4; i++) maps.push(mmap(big.path, { flags: MAP_DAXVM }));
  const grown = process.memoryUsage().external - ext0;
  t.same(maps.map((x) => x.mode), ['attached', 'attached', 'attached', 'attached']);
  t.ok(grown < MiB, `external memory grew by ${grown} bytes for 256 MiB mapped`);
  t.ok(maps[3]!.buffer.equals(big.data), 'the bytes are the file');
  t.equal(heldByUs(m.mnt), held0 + 4, 'one lease each');

  const views = maps.map((x) => x.buffer.subarray(PAGE, 2 * PAGE));
  for (const x of maps) x.unmap();
  t.same(maps.map((x) => x.buffer.length), [0, 0, 0, 0], 'unmapped buffers have length 0');
  t.same(views.map((v) => v.length), [0, 0, 0, 0], 'and so has every view of them');
  t.equal(maps[0]!.buffer[0], undefined, 'reads find nothing');
  t.equal(heldByUs(m.mnt), held0, 'unmap dropped the leases');

  // The lease follows the buffer, not the Mapping: keep only the buffers (or only their ArrayBuffers), then let them go.
  // Mappings made in turn share a guard once the one before was unmapped: a buffer kept after its unmap must not
  // keep the guard, and with it the lease of the mapping forgotten after it.
  let buffers: (Buffer | ArrayBufferLike)[] = [];
  const unmappedKept: Mapping[] = [];
  const mapTwo = (i: number): void => { // in a function of its own: no register of the test's frame keeps the last buffer
    const u = mmap(small.path, { flags: MAP_DAXVM });
    u.unmap();
    unmappedKept.push(u);
    const b = mmap(small.path, { flags: MAP_DAXVM }).buffer; // never unmapped
    buffers.push(i % 2 ? b : b.buffer);
  };
  for (let i = 0; i < 50; i++) mapTwo(i);
  const kept = mmap(small.path, { flags: MAP_DAXVM });
  await collect();
  t.equal(heldByUs(m.mnt), held0 + 51, 'forgotten mappings hold their leases while their buffers are reachable');
  t.ok(buffers.every((b) => (Buffer.isBuffer(b) ? b : Buffer.from(b)).equals(small.data)), 'and their buffers read the file');
  buffers = [];
  await collect();
  await new Promise((r) => setTimeout(r, 100));
  await collect();
  t.equal(buffers.length + heldByUs(m.mnt), held0 + 1, 'collected buffers gave their leases back; the live one keeps its own');
  t.ok(unmappedKept.every((u) => u.buffer.length === 0), 'while the unmapped ones kept before them are still reachable');
  t.ok(kept.buffer.equals(small.data), 'the live mapping still reads the file');
  kept.unmap();
  t.equal(heldByUs(m.mnt), held0);
  await m.stop();
});

t.test('stitched buffers: not external memory either; unmap detaches; a forgotten one is unmapped once collected', async (t) => {
  const m = await tablesMount(t, '256M');
  const frag = fragmentedFile(m.mnt, 'frag', 32 * MiB, 64 * KiB, 5);

  const ext0 = process.memoryUsage().external;
  const stitched = [mmap(frag.path, { flags: MAP_DAXVM }), mmap(frag.path, { flags: MAP_DAXVM, prot: 'rw' })];
  const grown = process.memoryUsage().external - ext0;
  t.same(stitched.map((x) => x.mode), ['stitched', 'stitched']);
  t.ok(grown < MiB, `external memory grew by ${grown} bytes for 64 MiB mapped`);
  t.ok(stitched.every((x) => x.buffer.equals(frag.data)), 'the bytes are the file');

  const views = stitched.map((x) => x.buffer.subarray(PAGE, 2 * PAGE));
  for (const x of stitched) x.unmap();
  t.same([...stitched.map((x) => x.buffer.length), ...views.map((v) => v.length)], [0, 0, 0, 0], 'unmapped buffers and their views have length 0');

  // Let a stitched mapping go without unmap: its memory is given back once its buffer is collected.
  const forgotten = (): { buffer: Buffer; address: number } => {
    const x = mmap(frag.path, { flags: MAP_DAXVM });
    return { buffer: x.buffer, address: x.address ?? 0 };
  };
  let { buffer, address } = forgotten() as { buffer: Buffer | undefined; address: number };
  await collect();
  t.ok(smapsAt(address), 'mapped while its buffer is reachable');
  t.ok(buffer!.equals(frag.data), 'and it reads the file');
  buffer = undefined;
  for (let i = 0; i < 5 && smapsAt(address); i++) {
    await collect();
    await new Promise((r) => setTimeout(r, 100));
  }
  t.notOk(smapsAt(address), 'unmapped once collected');
  await m.stop();
});

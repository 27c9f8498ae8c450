/** The crash-explorer workload of fallocate(2): preallocation, punched holes, zeroed ranges. */
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from '../fs/index.js';
import { KiB, MiB, type Driver, type Workload } from './driver.js';
import { pickOne } from './image.js';

const KEEP = FALLOC_FL_KEEP_SIZE;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const ZERO = FALLOC_FL_ZERO_RANGE;

/** Mode 0 growth, KEEP_SIZE past EOF, punched holes open and after release, ZERO_RANGE; zeroout_blocks 1. */
function basics(d: Driver): void {
  d.create('/a');
  d.write('/a', 0, 10000);
  d.fsync('/a');
  d.fallocate('/a', 0, 8000, 40 * KiB); // grows: the stale tail and the new blocks zeroed
  d.write('/a', 20 * KiB, 3000); // into the preallocated range, in place
  d.fsync('/a');
  d.create('/k');
  d.write('/k', 0, 5000);
  d.fallocate('/k', KEEP, 0, 64 * KiB); // blocks past EOF, invisible to reads
  d.fsync('/k');
  d.write('/k', 30 * KiB, 6000); // past EOF, onto preallocated blocks: the size grows, no allocation
  d.fallocate('/k', KEEP, 100 * KiB, 20 * KiB); // more past EOF, after a hole
  d.truncate('/k', 20 * KiB); // frees the blocks past the new EOF
  d.sync();
  d.create('/p');
  d.write('/p', 0, 96 * KiB);
  d.sync();
  d.open('/p');
  d.fallocate('/p', PUNCH, 10000, 30 * KiB); // partial, whole and partial blocks; the whole ones held by the handle
  d.fallocate('/p', PUNCH, 50 * KiB + 100, 1000); // inside one block
  d.write('/p', 12 * KiB, 2000); // into the hole again
  d.fsync('/p');
  d.release('/p'); // the punched blocks are freed now
  d.fallocate('/p', PUNCH, 64 * KiB, 32 * KiB); // whole blocks at the end, no handle: freed at the commit
  d.create('/x');
  d.write('/x', 0, 8 * KiB);
  d.create('/after');
  d.write('/after', 0, 40 * KiB); // may take punched blocks only after a commit
  d.fsync('/after');
  d.unlink('/after');
  d.sync();
  d.fallocate('/x', 0, 4 * KiB, 44 * KiB); // onto the freed blocks of /after: zeroed before the commit that maps them
  d.fsync('/x');
  d.fallocate('/a', ZERO, 4000, 10000); // mapped blocks zeroed in place
  d.fallocate('/a', ZERO, 40 * KiB, 20 * KiB); // across EOF: grows
  d.fallocate('/a', ZERO | KEEP, 56 * KiB, 16 * KiB); // across EOF, the size kept
  d.fsync('/a');
}

/** zeroout_blocks 0: preallocation on blocks the background zeroer punched. */
function prezeroed(d: Driver): void {
  d.knob('zerooutBlocks', 0);
  d.unlink('/x');
  d.truncate('/k', 0);
  d.sync();
  d.drainZeroer();
  d.create('/z');
  d.fallocate('/z', 0, 0, 64 * KiB); // on pre-zeroed blocks: nothing zeroed synchronously
  d.write('/z', 100, 5000);
  d.fallocate('/z', PUNCH, 8 * KiB, 16 * KiB);
  d.fsync('/z');
  d.sync();
  d.drainZeroer(); // the punched blocks, once free
  d.fallocate('/z', KEEP, 64 * KiB, 64 * KiB);
  d.write('/z', 70 * KiB, 100); // the gap up to it reads as zeros
  d.fallocate('/k', 0, 3000, 9000);
  d.fsync('/z');
  d.knob('zerooutBlocks', 1);
}

/** Page tables on; a large range across 2 MiB moves the file into an aligned region. */
function huge(d: Driver): void {
  d.knob('pageTablesOn', 1);
  d.create('/big');
  d.write('/big', 0, 300 * KiB);
  d.fsync('/big');
  d.fallocate('/big', 0, 200 * KiB, 3 * MiB); // past 2 MiB: moved, one huge entry
  d.write('/big', 2 * MiB + 5000, 8 * KiB);
  d.fsync('/big');
  d.fallocate('/big', PUNCH, 1 * MiB + 100, 1 * MiB + 4096); // across the 2 MiB boundary
  d.fallocate('/big', ZERO | KEEP, 3 * MiB, 1 * MiB); // across EOF, the size kept
  d.sync();
  d.truncate('/big', 1500 * KiB); // the level changes; the blocks past EOF go
  d.fallocate('/a', KEEP, 0, 128 * KiB);
  d.knob('pageTablesOn', 0);
  d.fsync('/big');
}

const MODES = [0, KEEP, PUNCH, ZERO, ZERO | KEEP];

/** A seeded mix of fallocate with writes, truncates and fsyncs on the files above. */
function mix(d: Driver, count: number): void {
  const files = ['/a', '/k', '/p', '/z', '/big'];
  for (let i = 0; i < count; i++) {
    const file = pickOne(files, d.random);
    const r = d.random();
    const offset = Math.floor(d.random() * 128 * KiB);
    const length = 1 + Math.floor(d.random() * 48 * KiB);
    if (r < 0.5) d.fallocate(file, pickOne(MODES, d.random), offset, length);
    else if (r < 0.7) d.write(file, offset, length);
    else if (r < 0.8) d.truncate(file, offset);
    else if (r < 0.95) d.fsync(file);
    else d.sync();
  }
}

export const prealloc: Workload = {
  name: 'prealloc',
  about: 'fallocate: mode 0 growing a file, KEEP_SIZE past EOF then a write into it and a truncate, punch hole (whole and partial blocks) open and after release, ZERO_RANGE, a large range across 2 MiB (the move into an aligned region), zeroout_blocks 0 and 1, page tables on for part, a seeded mix',
  poolMiB: 56,
  run(d) {
    basics(d);
    prezeroed(d);
    huge(d);
    mix(d, 30);
  },
};

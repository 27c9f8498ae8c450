/** Crash-explorer workloads on file data: writes and truncates, page tables, orphans, the pre-zeroer. */
import { KiB, MiB, type Workload } from './driver.js';

export const data: Workload = {
  name: 'data',
  about: 'write, append, overwrite in place, truncate down and up, sparse writes, growth past 2 MiB (move into an aligned region), a fragmented file (extent chain), fsync at chosen points and long stretches without',
  poolMiB: 56,
  run(d) {
    d.create('/f');
    d.write('/f', 0, 10000);
    d.fsync('/f');
    d.write('/f', 4000, 3000); // in place
    d.append('/f', 6000);
    d.truncate('/f', 5000);
    d.append('/f', 100); // grows over the shrink: commits first
    d.fsync('/f');
    d.truncate('/f', 300 * KiB); // grow: a hole
    d.write('/f', 200 * KiB, 8 * KiB); // into the hole
    d.create('/g');
    d.write('/g', 1 * MiB, 4 * KiB); // sparse
    d.fsync('/g');
    d.create('/big');
    d.write('/big', 0, 700 * KiB);
    d.write('/big', 700 * KiB, 1800 * KiB); // past 2 MiB: moved into an aligned 2 MiB region
    d.fsync('/big');
    d.create('/frag1');
    d.create('/frag2');
    for (let i = 0; i < 12; i++) {
      d.append('/frag1', 4 * KiB);
      d.append('/frag2', 4 * KiB);
    }
    d.fsync('/frag1');
    d.truncate('/frag1', 10 * KiB);
    d.truncate('/big', 100 * KiB);
    d.unlink('/g');
    d.sync();
    d.write('/frag2', 0, 48 * KiB); // overwrite everything in place
    d.append('/frag2', 20 * KiB);
    d.unlink('/frag1');
    d.create('/late');
    d.write('/late', 0, 64 * KiB);
  },
};

export const ppt: Workload = {
  name: 'ppt',
  about: 'page tables on (built for existing files), then writes, growth past 2 MiB (huge entries), truncate and unlink with tables, page tables off again',
  poolMiB: 56,
  run(d) {
    d.create('/small');
    d.write('/small', 0, 20 * KiB);
    d.create('/mid');
    d.write('/mid', 0, 600 * KiB);
    d.sync();
    d.knob('pageTablesOn', 1);
    d.append('/small', 8 * KiB);
    d.fsync('/small');
    d.create('/huge');
    d.write('/huge', 0, 1 * MiB);
    d.write('/huge', 1 * MiB, 3 * MiB); // moved, one huge PMD entry
    d.fsync('/huge');
    d.truncate('/huge', 1500 * KiB); // the level changes
    d.truncate('/mid', 0);
    d.write('/mid', 100 * KiB, 4 * KiB);
    d.sync();
    d.unlink('/huge');
    d.create('/t');
    d.write('/t', 0, 12 * KiB);
    d.knob('pageTablesOn', 0);
    d.append('/t', 4 * KiB);
    d.fsync('/t');
  },
};

export const orphan: Workload = {
  name: 'orphan',
  about: 'files unlinked while open (orphans), written and truncated through the open handle, released before and after a commit',
  poolMiB: 56,
  run(d) {
    d.create('/o1');
    d.write('/o1', 0, 64 * KiB);
    d.create('/o2');
    d.write('/o2', 0, 16 * KiB);
    d.sync();
    d.open('/o1');
    d.unlink('/o1');
    d.writeHandle('/o1', 64 * KiB, 32 * KiB);
    d.fsync('/o2');
    d.open('/o2');
    d.truncate('/o2', 1000); // blocks held by the handle
    d.append('/o2', 5000);
    d.sync();
    d.release('/o1');
    d.create('/after');
    d.write('/after', 0, 80 * KiB); // may take the orphan's blocks only after a commit
    d.release('/o2');
    d.fsync('/after');
    d.unlink('/o2');
  },
};

export const prezero: Workload = {
  name: 'prezero',
  about: 'zeroout_blocks 0: freed blocks are punched to zero in the background and reused; partial-block writes rely on them reading as zeros; the prewriter stores zeros ahead of use (free blocks, the journal past its position)',
  poolMiB: 56,
  run(d) {
    d.knob('zerooutBlocks', 0);
    d.create('/p');
    d.write('/p', 0, 200 * KiB);
    d.create('/q');
    d.write('/q', 0, 100 * KiB);
    d.sync();
    d.unlink('/p');
    d.sync();
    d.drainZeroer();
    d.create('/r');
    d.write('/r', 100, 5000); // partial first and last blocks, on pre-zeroed blocks
    d.write('/r', 150 * KiB, 10); // sparse
    d.fsync('/r');
    d.prewrite(); // the daemon's, after an fsync: ahead of the cursors, over punched blocks too
    d.truncate('/q', 10 * KiB);
    d.sync();
    d.drainZeroer();
    d.append('/r', 3000);
  },
};

export const vouch: Workload = {
  name: 'vouch',
  about: 'appends + fsync, each one barrier (the commit vouches for the appended bytes); then stores over vouched bytes before a later commit (an overwrite, a small append into the zeros of a new block, zeros past a shrunk end), which must confirm the commit first',
  poolMiB: 56,
  run(d) {
    d.create('/log');
    d.append('/log', 4 * KiB);
    d.fsync('/log'); // vouches for [0, 4 KiB)
    d.append('/log', 4 * KiB);
    d.fsync('/log'); // proves the one before
    d.write('/log', 5 * KiB, 1000); // over vouched bytes, no fsync: confirms first
    d.append('/log', 100);
    d.fsync('/log'); // a new block vouched whole (its zeros past the end)
    d.append('/log', 100); // into those zeros: confirms first
    d.fsync('/log');
    d.append('/log', 300); // past the vouched range: no confirm
    d.fsync('/log');
    d.write('/log', 8 * KiB + 150, 100); // over the last vouched bytes
    d.append('/log', 3000);
    d.create('/t');
    d.write('/t', 0, 10000);
    d.fsync('/t');
    d.truncate('/t', 5000); // shrink: the next growth commits first
    d.truncate('/t', 9000); // zeros past the old end, vouched
    d.fsync('/t');
    d.append('/t', 2000); // over the zeros vouched for
    d.append('/log', 5000);
  },
};

/**
 * The aging profile: what files look like and where they live.
 *
 * The numbers are Geriatrix's "agrawal" profile (Kadekodi et al., ATC'18),
 * taken from Agrawal et al.'s five-year study of file-system metadata
 * (FAST'07): file sizes by count, in powers of four from 8 B to 8 MiB, many
 * small files and a heavy tail; and files by directory depth, with how many
 * directories each depth has. Geriatrix creates every file of a bucket at
 * the bucket's exact size; we spread sizes log-uniformly over [size/2, 2*size)
 * so that files do not all end on the same few block counts.
 */
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';

/** [size in bytes, weight]: how many files (by count) are about that size. */
export const SIZE_BUCKETS: readonly (readonly [number, number])[] = [
  [8, 1], [32, 7], [128, 16], [512, 40], [2048, 50], [8192, 46],
  [32768, 35], [131072, 20], [524288, 10], [2097152, 4], [8388608, 1],
];

/** [depth, weight, directories at that depth]: depth 1 is the aging root itself. */
export const DEPTH_BUCKETS: readonly (readonly [number, number, number])[] = [
  [1, 1, 1], [2, 2, 5], [3, 14, 13], [4, 15, 19], [5, 23, 30], [6, 24, 36], [7, 42, 32], [8, 22, 26],
  [9, 15, 22], [10, 12, 17], [11, 7, 8], [12, 4, 5], [13, 3, 2], [14, 2, 1], [15, 1, 1],
];

/** Index of a bucket drawn with probability weight / total. */
function pick(rng: RandomGenerator, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = uniformInt(rng, 0, total - 1);
  for (const [i, w] of weights.entries()) {
    r -= w;
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/** The largest size drawSize gives: twice the largest bucket. */
export const PROFILE_MAX_BYTES = 2 * SIZE_BUCKETS[SIZE_BUCKETS.length - 1]![0];

const sizeWeights = SIZE_BUCKETS.map((b) => b[1]);
const depthWeights = DEPTH_BUCKETS.map((b) => b[1]);

/** A file size from the profile, at most `max` bytes (and at least 1). */
export function drawSize(rng: RandomGenerator, max: number): number {
  const base = SIZE_BUCKETS[pick(rng, sizeWeights)]![0];
  const size = Math.floor(base * 2 ** (uniformFloat64(rng) * 2 - 1)); // [base/2, 2*base)
  return Math.max(1, Math.min(max, size));
}

/**
 * The directory of a new file, relative to the aging root ('' for the root):
 * a depth from the profile, then one of that depth's directories. Directory i
 * at depth d hangs under directory i mod n(d-1) of the depth above, so the
 * tree is fixed by the profile and every depth has its share of directories.
 */
export function drawDir(rng: RandomGenerator): string {
  const b = pick(rng, depthWeights);
  let index = uniformInt(rng, 0, DEPTH_BUCKETS[b]![2] - 1);
  const parts: string[] = [];
  for (let k = b; k >= 1; k--) {
    parts.push(`d${DEPTH_BUCKETS[k]![0]}-${index}`);
    index %= DEPTH_BUCKETS[k - 1]![2];
  }
  return parts.reverse().join('/');
}

/** The native shim's functions daxvm bench calls: its own (native-shim/node/bench.c) and the media layer's. */
import { loadShim } from '../core/native.js';
import type { MediaShim } from '../media/native.js';

export interface BenchShim extends MediaShim {
  /**
   * Sum of the bytes as little-endian uint64 words, wrapping at 2^64 (a last
   * partial word zero-padded); of the first `length` bytes when given.
   */
  sum64(data: ArrayBufferView | ArrayBuffer, length?: number): bigint;
}

export const native = loadShim<BenchShim>();

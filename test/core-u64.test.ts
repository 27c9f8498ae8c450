// The format's u64 fields read and written without BigInt give exactly what
// readBigUInt64LE / writeBigUInt64LE give: the same bytes, the same number
// (rounded the same way above 2^53), and a RangeError for what has no u64.
import t from 'tap';
import { readU64, writeU64 } from '../src/core/format/u64.js';

t.test('same bytes and numbers as the BigInt calls', async (t) => {
  const values = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 123456789012345, Number.MAX_SAFE_INTEGER, 2 ** 60, 2 ** 64 - 2 ** 11];
  for (const v of values) {
    const a = Buffer.alloc(12, 0xee);
    const b = Buffer.alloc(12, 0xee);
    writeU64(a, 2, v);
    b.writeBigUInt64LE(BigInt(v), 2);
    t.same(a, b, `bytes of ${v}`);
    t.equal(readU64(a, 2), v, `read back ${v}`);
  }
  const raw = Buffer.alloc(8);
  for (const big of [2n ** 53n + 1n, 2n ** 63n + 12345n, 2n ** 64n - 1n, 0xfedcba9876543210n]) {
    raw.writeBigUInt64LE(big);
    t.equal(readU64(raw, 0), Number(raw.readBigUInt64LE(0)), `damaged field ${big}: rounded as Number(BigInt)`);
  }
});

t.test('no u64 for negatives, fractions, 2^64 and beyond', async (t) => {
  const b = Buffer.alloc(8);
  for (const v of [-1, 0.5, 2 ** 64, Infinity, NaN]) t.throws(() => writeU64(b, 0, v), RangeError, `${v}`);
  t.same(b, Buffer.alloc(8), 'nothing written');
});

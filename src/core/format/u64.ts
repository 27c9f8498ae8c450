/**
 * The format's u64 fields from and to JavaScript numbers, without a BigInt:
 * readBigUInt64LE/writeBigUInt64LE allocate one per field, and the daemon
 * encodes an inode (five u64 fields, one per inline extent) at every save,
 * which made BigInts a tenth of its garbage under `tar x`.
 */

const TWO32 = 2 ** 32;

/** The field as a number: exact up to 2^53, correctly rounded above (as Number(readBigUInt64LE)). */
export function readU64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * TWO32;
}

/** Store an integer in [0, 2^64) (RangeError otherwise, as writeBigUInt64LE). */
export function writeU64(b: Buffer, off: number, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** 64) throw new RangeError(`u64 field: ${v} is not an integer in [0, 2^64)`);
  b.writeUInt32LE(v % TWO32, off);
  b.writeUInt32LE(Math.floor(v / TWO32), off + 4);
}

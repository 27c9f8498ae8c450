/**
 * Names are raw bytes. POSIX allows any byte but '/' and NUL in a file name,
 * UTF-8 or not, and so does ext4; so do we. File names, symlink targets and
 * extended attribute names are kept on the media as exactly the bytes the
 * caller gave, and counted in bytes (NAME_MAX 255).
 *
 * In JavaScript they are byte strings: one code unit per byte (latin1), as
 * the FUSE binding hands them over (native-shim/fuse passes names as
 * latin1). Decoding them as UTF-8 would turn every invalid sequence into
 * U+FFFD, and distinct names would collide. A string with a code unit above
 * 0xff cannot be a byte string: the API refuses it (EINVAL).
 */
import { FsError } from './api.js';

/** The bytes of a byte string. */
export function toBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Bytes [start, end) of a buffer, as a byte string. */
export function fromBytes(b: Buffer, start = 0, end = b.length): string {
  return b.toString('latin1', start, end);
}

const NOT_BYTES = /[^\x00-\xff]/;

/** EINVAL unless every code unit of `s` is a byte. */
export function requireByteString(s: string, what: string): void {
  if (NOT_BYTES.test(s)) {
    throw new FsError('EINVAL', `${what} is not a byte string (one code unit per byte): pass Buffer.from(text).toString('latin1')`);
  }
}

/** A byte string of text's UTF-8 bytes: how a caller with Unicode text names a file. */
export function utf8Name(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A byte string for messages: its UTF-8 text when it is valid UTF-8, else with \xNN for bytes past ASCII; quoted. */
export function showName(s: string): string {
  const b = toBytes(s);
  try {
    return JSON.stringify(strictUtf8.decode(b));
  } catch {
    let out = '';
    for (const c of b) out += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
    return `"${out}"`;
  }
}

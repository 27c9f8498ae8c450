// Bad input: a pool that is not ours, truncated, of a newer format, with a
// corrupt superblock checksum. Mount refuses with a message that names the
// problem and mentions fsck, and never writes to the file. Offsets of the
// superblock fields are those of docs/format.md (version: u32 LE at byte 8;
// CRC32C of bytes [0, 508) at byte 508; backup superblock in block 1).
import t from 'tap';
import * as fs from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { cli, isMounted, makePool, tempDir, unmountAllUnder } from './helpers/mount.js';

const VERSION_OFFSET = 8;
const SB_CRC_OFFSET = 508;
const BLOCK = 4096;

function sha(path: string): string {
  return createHash('sha256').update(fs.readFileSync(path)).digest('hex');
}

function patch(path: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(path, 'r+');
  fs.writeSync(fd, bytes, 0, bytes.length, offset);
  fs.closeSync(fd);
}

/** Set the version of the superblock at `base` and fix its checksum. */
function setVersion(path: string, base: number, version: number): void {
  const fd = fs.openSync(path, 'r+');
  const sb = Buffer.alloc(BLOCK);
  fs.readSync(fd, sb, 0, BLOCK, base);
  sb.writeUInt32LE(version, VERSION_OFFSET);
  sb.writeUInt32LE(crc32c(sb.subarray(0, SB_CRC_OFFSET)), SB_CRC_OFFSET);
  fs.writeSync(fd, sb, 0, BLOCK, base);
  fs.closeSync(fd);
}

interface Case {
  name: string;
  make(t: Test): string;
  problem: RegExp;
}

const cases: Case[] = [
  {
    name: 'a file of random bytes',
    make(t) {
      const p = join(tempDir(t), 'random.pool');
      fs.writeFileSync(p, randomBytes(16 * 1024 * 1024));
      return p;
    },
    problem: /not a daxvm pool|not ours|magic|unrecogni[sz]ed/i,
  },
  {
    name: 'an empty file',
    make(t) {
      const p = join(tempDir(t), 'empty.pool');
      fs.writeFileSync(p, '');
      return p;
    },
    problem: /empty|too small|truncated|not a daxvm pool|magic/i,
  },
  {
    name: 'a truncated pool',
    make(t) {
      const { pool } = makePool(t, { size: '256M' });
      fs.truncateSync(pool, 100 * 1024 * 1024);
      return pool;
    },
    problem: /truncated|too small|shorter|size/i,
  },
  {
    name: 'a pool of a newer format version',
    make(t) {
      const { pool } = makePool(t, { size: '64M' });
      setVersion(pool, 0, 99);
      setVersion(pool, BLOCK, 99);
      return pool;
    },
    problem: /version|newer/i,
  },
  {
    name: 'a corrupt superblock checksum',
    make(t) {
      const { pool } = makePool(t, { size: '64M' });
      const b = Buffer.alloc(1);
      const fd = fs.openSync(pool, 'r');
      fs.readSync(fd, b, 0, 1, 300);
      fs.closeSync(fd);
      patch(pool, 300, Buffer.from([b[0]! ^ 0x5a]));
      return pool;
    },
    problem: /checksum|crc|corrupt/i,
  },
];

for (const c of cases) {
  t.test(`mount refuses ${c.name}`, async (t) => {
    const pool = c.make(t);
    const before = sha(pool);
    const base = tempDir(t, 'daxvm-mnt-');
    const mnt = join(base, 'mnt');
    fs.mkdirSync(mnt);
    for (const mode of [['-f'], []]) {
      const r = cli(['mount', pool, mnt, ...mode], { timeout: 30_000 });
      const label = mode.length ? 'foreground' : 'background';
      const mounted = isMounted(mnt);
      if (mounted) unmountAllUnder(base);
      t.notOk(mounted, `${label}: nothing mounted`);
      t.equal(r.signal, null, `${label}: exits by itself (no hang)`);
      t.not(r.status, 0, `${label}: non-zero exit\n${r.summary}`);
      const msg = r.stderr + r.stdout;
      t.match(msg, c.problem, `${label}: the message names the problem`);
      t.match(msg, /fsck/, `${label}: the message mentions fsck`);
      t.notMatch(msg, /^\s+at .*\(.*:\d+:\d+\)$/m, `${label}: no stack trace`);
    }
    t.equal(sha(pool), before, 'the pool file was not written');
    const f = cli(['fsck', pool], { timeout: 60_000 });
    t.ok(f.status === 4 || f.status === 8, `fsck reports it (exit ${f.status}: 4 uncorrected or 8 operational)\n${f.summary}`);
    t.equal(sha(pool), before, 'fsck without --repair did not write either');
  });
}

t.test('mount of a missing pool file', async (t) => {
  const dir = tempDir(t);
  const mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const r = cli(['mount', join(dir, 'no-such.pool'), mnt, '-f'], { timeout: 30_000 });
  t.not(r.status, 0, r.summary);
  t.match(r.stderr + r.stdout, /no-such\.pool/, 'names the file');
  t.notOk(isMounted(mnt));
  t.notOk(fs.existsSync(join(dir, 'no-such.pool')), 'does not create a pool that was named explicitly');
  unmountAllUnder(dir);
});

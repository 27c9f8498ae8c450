// Bad input: a pool that is not ours, truncated, of a newer format, with a
// corrupt superblock checksum. Mount refuses with a message that names the
// problem and says what to do (fsck for a damaged pool, the path for a file
// that is no pool), and never writes to the file. Offsets of the
// superblock fields are those of docs/format.md (version: u32 LE at byte 8;
// CRC32C of bytes [0, 508) at byte 508; backup superblock in block 1).
import t from 'tap';
import * as fs from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { cli, isMounted, makePool, mountPool, tempDir, unmountAllUnder } from './helpers/mount.js';

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
  /** What the hint must point to: fsck for a damaged pool; for a file that is no pool at all, the path (fsck cannot help). */
  fix?: RegExp;
}

const cases: Case[] = [
  {
    name: 'a file of random bytes',
    make(t) {
      const p = join(tempDir(t), 'random.pool');
      fs.writeFileSync(p, randomBytes(16 * 1024 * 1024), { mode: 0o600 }); // 0644 is refused first (mount-perms)
      return p;
    },
    problem: /not a daxvm pool|not ours|magic|unrecogni[sz]ed/i,
    fix: /check the path/,
  },
  {
    name: 'an empty file',
    make(t) {
      const p = join(tempDir(t), 'empty.pool');
      fs.writeFileSync(p, '', { mode: 0o600 });
      return p;
    },
    problem: /empty|too small|truncated|not a daxvm pool|magic/i,
    fix: /check the path/,
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
      t.match(msg, c.fix ?? /fsck/, `${label}: the hint says what to do (${String(c.fix ?? /fsck/)})`);
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

t.test('corrupt metadata (an inode, a directory block): errors, no crash, fsck finds and repairs', async (t) => {
  const p = makePool(t, { size: '64M' });
  const m1 = await mountPool(t, p);
  const M = m1.mnt;
  fs.writeFileSync(join(M, 'victim'), 'the corrupt inode');
  fs.writeFileSync(join(M, 'bystander'), 'untouched');
  fs.mkdirSync(join(M, 'dir'));
  fs.writeFileSync(join(M, 'dir', 'inside'), 'x');
  const victimIno = fs.statSync(join(M, 'victim')).ino;
  const dirIno = fs.statSync(join(M, 'dir')).ino;
  t.equal((await m1.stop()).code, 0);
  t.equal(cli(['fsck', p.pool]).status, 0, 'clean before the damage');

  // docs/format.md: inode table start is a u64 at superblock byte 96; inode N
  // is the 256-byte slot N; its first inline extent's physical block is at 120.
  const fd = fs.openSync(p.pool, 'r+');
  const sb = Buffer.alloc(BLOCK);
  fs.readSync(fd, sb, 0, BLOCK, 0);
  const itable = Number(sb.readBigUInt64LE(96)) * BLOCK;
  const inode = (ino: number) => {
    const b = Buffer.alloc(256);
    fs.readSync(fd, b, 0, 256, itable + ino * 256);
    return b;
  };
  const dirBlock = Number(inode(dirIno).readBigUInt64LE(120));
  const flip = (off: number) => {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, off);
    b.writeUInt8(b.readUInt8(0) ^ 0x41, 0);
    fs.writeSync(fd, b, 0, 1, off);
  };
  flip(itable + victimIno * 256 + 16); // the victim's size field: its CRC no longer matches
  flip(dirBlock * BLOCK + 100); // inside the directory's block: its CRC tail no longer matches
  fs.closeSync(fd);

  const r = cli(['fsck', p.pool]);
  t.equal(r.status, 4, `fsck finds it and leaves it (exit 4)\n${r.summary}`);
  t.match(r.stdout + r.stderr, new RegExp(`inode ${victimIno}\\b|\\b${victimIno}\\b`), 'names the bad inode');

  let mounted: Awaited<ReturnType<typeof mountPool>> | undefined;
  try {
    mounted = await mountPool(t, p);
  } catch (e) {
    // refusing is fine, if it says why and how to fix it
    t.match(String(e), /fsck/, `mount refused, naming fsck: ${String(e).split('\n')[0]}`);
  }
  if (mounted) {
    const M2 = mounted.mnt;
    const code = (f: () => unknown) => {
      try {
        f();
        return 'no error';
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    };
    t.match(code(() => fs.readFileSync(join(M2, 'victim'))), /^(EIO|EUCLEAN)$/, 'the corrupt inode: EIO or EUCLEAN');
    t.match(code(() => fs.readdirSync(join(M2, 'dir'))), /^(EIO|EUCLEAN)$/, 'the corrupt directory: EIO or EUCLEAN');
    t.equal(fs.readFileSync(join(M2, 'bystander'), 'utf8'), 'untouched', 'the rest still reads');
    t.equal(mounted.child.exitCode, null, 'the daemon is still alive');
    const st = await mounted.stop();
    t.equal(st.code, 0, 'and unmounts cleanly');
  }
  const rep = cli(['fsck', p.pool, '--repair']);
  t.equal(rep.status, 1, `fsck --repair corrects (exit 1)\n${rep.summary}`);
  const again = cli(['fsck', p.pool]);
  t.equal(again.status, 0, `then clean (exit 0)\n${again.summary}`);
  const m3 = await mountPool(t, p);
  t.equal(fs.readFileSync(join(m3.mnt, 'bystander'), 'utf8'), 'untouched', 'mountable after repair');
  await m3.stop();
});

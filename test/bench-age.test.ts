// daxvm age: Geriatrix-style aging of a real mount through the kernel's FUSE.
// The fill it keeps, the bytes it writes, the fragmentation it reports, the
// contents of the aged files, a clean fsck after, the same operations for the
// same seed, and usage errors for bad input.
import t from 'tap';
import type { Test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pattern } from '../src/bench/age/pattern.js';
import { listAged, readMarker } from '../src/bench/age/tree.js';
import type { AgeResult } from '../src/bench/age/ager.js';
import { cli, cliAsync, df, freshMount, fsck, tempDir, type RunResult } from './helpers/mount.js';

/** `daxvm age` of a fresh mount, not blocking the event loop (so several can run at once). */
async function ageFresh(t: Test, seed: number, size = '64M') {
  const m = await freshMount(t, { size });
  const r = await cliAsync(['age', m.mnt, '--fill', '50%', '--churn', '1x', '--seed', String(seed), '--json'], { timeoutMs: 240_000 });
  return { m, r };
}

t.test('age a fresh mount to 50%, churn 1x; bad input', async (t) => {
  const { m, r } = await ageFresh(t, 3);
  t.equal(r.status, 0, r.summary);
  const res = JSON.parse(r.stdout) as AgeResult;
  t.equal(res.status, 'done');
  const cap = res.after.capacityBytes;
  t.ok(res.bytesWritten >= cap, `wrote ${res.bytesWritten} bytes, capacity ${cap}`);
  t.ok(res.deletes > 0 && res.creates > res.files, `churned: ${res.creates} creates, ${res.deletes} deletes, ${res.files} files left`);
  t.ok(Math.abs(res.after.fill - 0.5) < 0.02, `fill after (statfs) ${res.after.fill}`);
  const d = df(m.mnt);
  t.ok(Math.abs(d.used / d.size - 0.5) < 0.02, `df: ${d.used} of ${d.size} KiB used`);

  // Fragmentation as daxvm info gives it, before and after: a fresh pool has its free space in one piece or two.
  t.ok(res.before.fragmentation && res.after.fragmentation, 'fragmentation figures before and after');
  const fb = res.before.fragmentation!;
  const fa = res.after.fragmentation!;
  t.ok(fb.freeExtents <= 2, `before: ${fb.freeExtents} free extents`);
  t.ok(fa.freeExtents > fb.freeExtents, `after: ${fa.freeExtents} free extents`);
  t.ok(fa.largestFreeExtentBlocks < fb.largestFreeExtentBlocks, `largest free extent ${fb.largestFreeExtentBlocks} -> ${fa.largestFreeExtentBlocks} blocks`);
  t.ok(fa.freeHugeRegions < fb.freeHugeRegions, `free 2 MiB regions ${fb.freeHugeRegions} -> ${fa.freeHugeRegions}`);
  t.ok(res.after.fileExtents && res.after.fileExtents.files >= res.files, `extents of ${res.after.fileExtents?.files} files counted`);
  t.ok(res.after.fileExtents!.avgExtentsPerFile >= 1, `${res.after.fileExtents!.avgExtentsPerFile} extents per file`);

  // The marker a benchmark reads.
  const marker = readMarker(res.dir);
  t.equal(marker?.status, 'done');
  t.same(marker?.params, res.params);

  // Every aged file holds the seeded bytes of its name, read back through the mount.
  const files = listAged(res.dir);
  t.equal(files.length, res.files, 'the files the result counts are there');
  t.equal(files.reduce((n, f) => n + f.size, 0), res.fileBytes, 'with the bytes it counts');
  t.ok(files.some((f) => f.rel.split('/').length > 3), 'some files sit several directories deep');
  const pattern = new Pattern(3);
  let wrong = 0;
  for (const f of files) {
    const got = readFileSync(join(res.dir, f.rel));
    if (got.length !== f.size || !got.equals(Buffer.concat(chunks(pattern, f.rel, f.size)))) wrong++;
  }
  t.equal(wrong, 0, `${files.length} files read back as written`);
  const v = cli(['age', m.mnt, '--verify']);
  t.equal(v.status, 0, v.summary);
  t.match(v.stdout, /0 wrong/);

  // Aging again into the same directory would mix two trees: a usage error that says what to do.
  const again = cli(['age', m.mnt, '--seed', '3']);
  t.equal(again.status, 2, again.summary);
  t.match(again.stderr, /not empty.*aged tree: done, seed 3/);
  t.match(again.stderr, /hint: .*--dir.*rm -rf/);

  await badInput(t, m.mnt, readdirSync(m.mnt).sort());

  const st = await m.stop();
  t.equal(st.code, 0, 'daemon exits cleanly');
  const f = fsck(m.pool);
  t.equal(f.status, 0, f.summary);
});

function chunks(p: Pattern, rel: string, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < size; pos += 1 << 20) out.push(p.bytes(rel, pos, Math.min(1 << 20, size - pos)));
  return out;
}

t.test('the same seed gives the same operations and the same files', async (t) => {
  const runs = await Promise.all([11, 11, 12].map((seed) => ageFresh(t, seed)));
  const [a, b, c] = runs.map(({ r }) => {
    t.equal(r.status, 0, r.summary);
    const res = JSON.parse(r.stdout) as AgeResult;
    return { res, files: listAged(res.dir) };
  }) as [{ res: AgeResult; files: ReturnType<typeof listAged> }, { res: AgeResult; files: ReturnType<typeof listAged> }, { res: AgeResult }];
  t.equal(a.res.enospcBackoffs + b.res.enospcBackoffs, 0, 'no ENOSPC changed the course');
  t.equal(a.res.sequenceDigest, b.res.sequenceDigest, 'same sequence of operations');
  t.equal(a.res.creates, b.res.creates);
  t.equal(a.res.deletes, b.res.deletes);
  t.same(a.files, b.files, `same ${a.files.length} files, same sizes`);
  t.not(c.res.sequenceDigest, a.res.sequenceDigest, 'another seed, other operations');
});

/** Bad input on a real mount (the aged one): exit 2, the problem and the fix named, nothing written. */
async function badInput(t: Test, mnt: string, before: string[]) {
  const plain = tempDir(t);
  const cases: [string[], RegExp][] = [
    [['--fill', '0%'], /invalid --fill '0%'.*1% to 95%/],
    [['--fill', '96%'], /invalid --fill/],
    [['--churn', '0x'], /invalid --churn '0x'/],
    [['--seed', 'abc'], /invalid --seed/],
    [['--dir', '../escape'], /invalid --dir/],
  ];
  const all = await Promise.all([
    ...cases.map(([args]) => cliAsync(['age', mnt, '--dir', 'fresh', ...args])),
    cliAsync(['age', plain]),
    cliAsync(['age', join(plain, 'nope')]),
  ]);
  cases.forEach(([args, re], i) => {
    const r = all[i]!;
    t.equal(r.status, 2, `${args.join(' ')}: exit 2\n${r.summary}`);
    t.match(r.stderr, re, args.join(' '));
  });
  const [notMount, missing] = all.slice(cases.length) as [RunResult, RunResult];
  t.equal(notMount.status, 2, notMount.summary);
  t.match(notMount.stderr, /not a mount point, not a daxvm mount/);
  t.match(notMount.stderr, /hint: mount a pool there first: (npx )?daxvm mount POOL/);
  t.equal(missing.status, 2, missing.summary);
  t.match(missing.stderr, /does not exist/);
  t.same(readdirSync(mnt).sort(), before, 'the refused runs wrote nothing');
}

/**
 * One of the concurrent clients, a child process:
 *
 *   node load-churn-client.js '{"client": C, "runSeed": S, "until": EPOCH_MS, "dirs": 4}'
 *
 * run with its working directory inside the mount, where D0..D<dirs-1>
 * exist. Until the time is up it writes files (as t-C-N, in one to four
 * writes, then renamed to f-C-N: a file's only writer is its creator, and a
 * name f-* is always a complete file), reads whole files, stats, lists,
 * renames and links and unlinks complete files (any client's), and makes
 * and removes the shared subdirectories Dk/s0..s2. Every file it reads is
 * checked whole against its own header. It prints a JSON summary on exit:
 * operations, errors by code, and anything unexpected (exit 3 then).
 */
import fs from 'node:fs';
import { mixSeed, rng } from './image.js';
import { checkDescribed, describedContent, fileSeed, HEADER_SIZE } from './load-pattern.js';

/**
 * The errors a client may meet, and why: the others change the same
 * directories between this client's look and its call. Which operations
 * may meet each is listed with it; anything else is a failure.
 */
export const EXPECTED_ERRORS: Record<string, { why: string; ops: string[] }> = {
  ENOENT: {
    why: 'the name was renamed, unlinked or its subdirectory removed by another client between readdir and this call',
    ops: ['read', 'stat', 'rename', 'link', 'unlink', 'list', 'rmdir', 'write'],
  },
  EEXIST: { why: 'another client made that shared subdirectory first', ops: ['mkdir'] },
  ENOTEMPTY: { why: 'another client put a file in that shared subdirectory', ops: ['rmdir'] },
};

export interface ChurnSummary {
  client: number;
  ops: Record<string, number>;
  errors: Record<string, number>;
  unexpected: string[];
  bad: string[];
  filesWritten: number;
  bytesWritten: number;
  filesRead: number;
  bytesRead: number;
}

const a = JSON.parse(process.argv[2] ?? '{}') as { client: number; runSeed: number; until: number; dirs: number };
const rand = rng(mixSeed(a.runSeed, a.client, 0xc4));
const pick = <T>(xs: readonly T[]): T | undefined => (xs.length ? xs[Math.floor(rand() * xs.length)] : undefined);
const sum: ChurnSummary = { client: a.client, ops: {}, errors: {}, unexpected: [], bad: [], filesWritten: 0, bytesWritten: 0, filesRead: 0, bytesRead: 0 };
const tops = Array.from({ length: a.dirs }, (_, k) => `D${k}`);
let seq = 0;

/** A directory to work in: a top one, or one of its shared subdirectories (which may vanish). */
const someDir = (): string => (rand() < 0.7 ? pick(tops)! : `${pick(tops)}/s${Math.floor(rand() * 3)}`);

/** A complete file's path seen in a listing of some directory, or undefined. */
function someFile(): string | undefined {
  const d = someDir();
  const names = fs.readdirSync(d).filter((n) => n.startsWith('f-'));
  const n = pick(names);
  return n ? `${d}/${n}` : undefined;
}

function check(p: string, b: Buffer, complete: boolean): void {
  sum.filesRead++;
  sum.bytesRead += b.length;
  const c = checkDescribed(b, complete, a.runSeed);
  if ('problem' in c && sum.bad.length < 10) sum.bad.push(`${p}: ${c.problem}`);
}

function write(): void {
  const s = ++seq;
  const dir = someDir();
  const length = HEADER_SIZE + Math.floor(rand() * (rand() < 0.8 ? 16384 : 262144));
  const content = describedContent({ client: a.client, seq: s, length, seed: fileSeed(a.runSeed, a.client, s) });
  const tmp = `${dir}/t-${a.client}-${s}`;
  const fd = fs.openSync(tmp, 'wx');
  try {
    const pieces = 1 + Math.floor(rand() * 4);
    let at = 0;
    for (let k = 0; k < pieces && at < length; k++) {
      const n = k === pieces - 1 ? length - at : Math.max(HEADER_SIZE, Math.floor(rand() * (length - at)));
      at += fs.writeSync(fd, content, at, Math.min(n, length - at), at);
    }
    if (at < length) at += fs.writeSync(fd, content, at, length - at, at);
    if (rand() < 0.3) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // Its directory cannot go while the file is in it (rmdir: ENOTEMPTY), so the rename within it always works.
  const dest = rand() < 0.5 ? dir : pick(tops)!;
  fs.renameSync(tmp, `${dest}/f-${a.client}-${s}`);
  sum.filesWritten++;
  sum.bytesWritten += length;
}

const OPS: Array<[string, number, () => void]> = [
  ['write', 20, write],
  ['read', 25, () => {
    const d = someDir();
    const n = pick(fs.readdirSync(d).filter((x) => !x.startsWith('s')));
    if (n) check(`${d}/${n}`, fs.readFileSync(`${d}/${n}`), n.startsWith('f-'));
  }],
  ['stat', 10, () => {
    const p = someFile();
    if (p && !fs.lstatSync(p).isFile()) sum.bad.push(`${p}: not a regular file`);
  }],
  ['list', 5, () => {
    const d = someDir();
    for (const n of fs.readdirSync(d)) if (!/^(f-\d+-\d+[rl]?|t-\d+-\d+|s\d)$/.test(n)) sum.bad.push(`${d}: a name no client made: ${JSON.stringify(n)}`);
  }],
  ['rename', 12, () => {
    const p = someFile();
    if (!p) return;
    const over = rand() < 0.5 ? someFile() : undefined;
    fs.renameSync(p, over ?? `${someDir()}/f-${a.client}-${++seq}r`);
  }],
  ['link', 8, () => {
    const p = someFile();
    if (p) fs.linkSync(p, `${someDir()}/f-${a.client}-${++seq}l`);
  }],
  ['unlink', 14, () => {
    const p = someFile();
    if (p) fs.unlinkSync(p);
  }],
  ['mkdir', 3, () => fs.mkdirSync(`${pick(tops)}/s${Math.floor(rand() * 3)}`)],
  ['rmdir', 3, () => fs.rmdirSync(`${pick(tops)}/s${Math.floor(rand() * 3)}`)],
];
const TOTAL = OPS.reduce((n, [, w]) => n + w, 0);

while (Date.now() < a.until) {
  let x = rand() * TOTAL;
  const [name, , fn] = OPS.find(([, w]) => (x -= w) < 0) ?? OPS[0]!;
  sum.ops[name] = (sum.ops[name] ?? 0) + 1;
  try {
    fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    sum.errors[code] = (sum.errors[code] ?? 0) + 1;
    if (!EXPECTED_ERRORS[code]?.ops.includes(name) && sum.unexpected.length < 10) sum.unexpected.push(`${name}: ${code} ${(err as Error).message}`);
  }
}
process.stdout.write(JSON.stringify(sum) + '\n');
process.exit(sum.unexpected.length || sum.bad.length ? 3 : 0);

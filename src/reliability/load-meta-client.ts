/**
 * The metadata-heavy client of the load tests, a child process:
 *
 *   node load-meta-client.js '{"log": FILE, "seed": S, "mode": "kill"|"fill"}'
 *
 * run with its working directory inside the mount (so that once the mount
 * is gone every call answers ENOTCONN, never a path of the host's). It
 * creates `meta/d0..d3` and then, seeded, creates, appends, truncates,
 * fsyncs, renames files and directories, links, unlinks, makes and removes
 * directories, sets and removes xattrs, and holds a file open across its
 * unlink. Each operation is logged to FILE (outside the mount) before it
 * is tried and again once it returned: the checker replays the log.
 *
 * Errors that end it quietly (exit 0): ENOTCONN or ECONNABORTED in "kill"
 * mode (the daemon was killed); in "fill" mode ENOSPC is logged and the
 * client goes on (the operation did not happen). SIGTERM: stop after the
 * operation under way (exit 0). Any other error: logged, exit 3.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { rng } from './image.js';
import { patternAt } from './load-pattern.js';
import { contentSeed, MetaModel, type MetaOp } from './load-meta-model.js';

interface Args {
  log: string;
  seed: number;
  mode: 'kill' | 'fill';
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const out = fs.openSync(a.log, 'a');
const line = (o: object): void => {
  fs.writeSync(out, JSON.stringify(o) + '\n');
};
const model = new MetaModel(a.seed);
const rand = rng(a.seed);
const pick = <T>(xs: readonly T[]): T | undefined => (xs.length ? xs[Math.floor(rand() * xs.length)] : undefined);
let stop = false;
process.on('SIGTERM', () => (stop = true));
let held: number | null = null;
let seq = 0;
let nextId = 1;

/** errno names of setfattr's messages (it has no exit code per errno). */
const SETFATTR_ERRORS: Array<[RegExp, string]> = [
  [/No space left on device/, 'ENOSPC'],
  [/Transport endpoint is not connected/, 'ENOTCONN'],
  [/Software caused connection abort/, 'ECONNABORTED'],
  [/No such file or directory/, 'ENOENT'],
  [/No such attribute|No data available/, 'ENODATA'],
  [/Argument list too long/, 'E2BIG'],
];

function attr(args: string[]): void {
  const r = spawnSync('setfattr', args, { encoding: 'utf8' });
  if (r.status === 0) return;
  const msg = (r.stderr ?? '').trim();
  const code = SETFATTR_ERRORS.find(([re]) => re.test(msg))?.[1] ?? `setfattr: ${msg || r.error?.message || `exit ${r.status}`}`;
  throw Object.assign(new Error(msg), { code });
}

/** Do one operation; returns the bytes written for an append (short when the pool is full). */
function perform(o: MetaOp): number | undefined {
  switch (o.op) {
    case 'mkdir': fs.mkdirSync(o.p); return;
    case 'rmdir': fs.rmdirSync(o.p); return;
    case 'create': fs.closeSync(fs.openSync(o.p, 'wx')); return;
    case 'append': {
      const f = model.inodes.get(model.names.get(o.p)!)!;
      const fd = fs.openSync(o.p, 'r+');
      try {
        return fs.writeSync(fd, patternAt(contentSeed(a.seed, f.id), f.size, o.n), 0, o.n, f.size);
      } finally {
        fs.closeSync(fd);
      }
    }
    case 'trunc': fs.truncateSync(o.p, o.size); return;
    case 'fsync': {
      const fd = fs.openSync(o.p, 'r+');
      try {
        if (o.data) fs.fdatasyncSync(fd);
        else fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return;
    }
    case 'dirsync': {
      const fd = fs.openSync(o.p, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return;
    }
    case 'rename': fs.renameSync(o.from, o.to); return;
    case 'link': fs.linkSync(o.from, o.to); return;
    case 'unlink': fs.unlinkSync(o.p); return;
    case 'setx': attr(['-n', o.name, '-v', o.v, '--', o.p]); return;
    case 'rmx': attr(['-x', o.name, '--', o.p]); return;
    case 'hold': held = fs.openSync(o.p, 'r'); return;
    case 'drop': fs.closeSync(held!); held = null; return;
  }
}

const files = (): string[] => [...model.names.keys()];
const dirs = (): string[] => [...model.dirs].filter((d) => d !== 'meta');
/** Directories below meta/dN: the ones that may be renamed and removed. */
const subdirs = (): string[] => dirs().filter((d) => d.split('/').length > 2);

/** Generators of operations, with weights; null when not possible now. */
const GENERATORS: Array<[number, () => MetaOp | null]> = [
  [14, () => (files().length < 80 ? { op: 'create', p: `${pick(dirs())}/f${nextId}`, id: nextId++ } : null)],
  [18, () => {
    const p = pick(files().filter((f) => model.inodes.get(model.names.get(f)!)!.size < 256 << 10));
    // A third small, the rest up to 64 KiB: within max_write (128 KiB), so one WRITE, or two when it starts mid-page (load-meta-check.ts).
    return p ? { op: 'append', p, n: 1 + Math.floor(rand() * (rand() < 0.35 ? 4096 : 65536)) } : null;
  }],
  [4, () => {
    const p = pick(files().filter((f) => model.inodes.get(model.names.get(f)!)!.size > 0));
    return p ? { op: 'trunc', p, size: Math.floor(rand() * model.inodes.get(model.names.get(p)!)!.size) } : null;
  }],
  [10, () => {
    const p = pick(files());
    return p ? { op: 'fsync', p, data: rand() < 0.3 } : null;
  }],
  [2, () => ({ op: 'dirsync', p: pick([...model.dirs])! })],
  [10, () => {
    const from = pick(files());
    if (!from) return null;
    const over = rand() < 0.4 ? pick(files().filter((f) => f !== from)) : undefined;
    return { op: 'rename', from, to: over ?? `${pick(dirs())}/r${seq}` };
  }],
  [3, () => {
    const from = pick(subdirs());
    if (!from) return null;
    const targets = dirs().filter((d) => d !== from && !d.startsWith(from + '/'));
    const empty = subdirs().filter((d) => targets.includes(d) && !model.childrenOf(d).length && !from.startsWith(d + '/'));
    const over = rand() < 0.3 ? pick(empty) : undefined;
    return { op: 'rename', from, to: over ?? `${pick(targets)}/s${seq}` };
  }],
  [6, () => {
    const from = pick(files());
    return from ? { op: 'link', from, to: `${pick(dirs())}/l${seq}` } : null;
  }],
  [8, () => {
    const p = files().length > 5 ? pick(files()) : undefined;
    return p ? { op: 'unlink', p } : null;
  }],
  [4, () => (model.dirs.size < 24 ? { op: 'mkdir', p: `${pick(dirs())}/s${seq}` } : null)],
  [3, () => {
    const p = pick(subdirs().filter((d) => !model.childrenOf(d).length));
    return p ? { op: 'rmdir', p } : null;
  }],
  [6, () => {
    const p = pick(files());
    if (!p) return null;
    // At most four names of at most 700 bytes: the xattrs fit one block.
    const v = rand() < 0.15 ? `${'x'.repeat(200 + Math.floor(rand() * 500))}${seq}` : `v${seq}`;
    return { op: 'setx', p, name: `user.k${Math.floor(rand() * 4)}`, v };
  }],
  [3, () => {
    const p = pick(files().filter((f) => model.inodes.get(model.names.get(f)!)!.xattrs.size > 0));
    return p ? { op: 'rmx', p, name: pick([...model.inodes.get(model.names.get(p)!)!.xattrs.keys()])! } : null;
  }],
  [2, () => {
    const p = held === null ? pick(files()) : undefined;
    return p ? { op: 'hold', p } : null;
  }],
  [2, () => (held !== null ? { op: 'drop' } : null)],
];
const TOTAL = GENERATORS.reduce((n, [w]) => n + w, 0);

function next(): MetaOp {
  for (;;) {
    let x = rand() * TOTAL;
    for (const [w, gen] of GENERATORS) {
      x -= w;
      if (x < 0) {
        const o = gen();
        if (o) return o;
        break;
      }
    }
  }
}

const ENDS_QUIETLY: Record<Args['mode'], string[]> = { kill: ['ENOTCONN', 'ECONNABORTED'], fill: [] };

async function main(): Promise<number> {
  const setup: MetaOp[] = [{ op: 'mkdir', p: 'meta' }, ...[0, 1, 2, 3].map((i): MetaOp => ({ op: 'mkdir', p: `meta/d${i}` })), { op: 'dirsync', p: 'meta' }];
  for (;;) {
    if (stop) {
      line({ t: 'end', s: seq });
      return 0;
    }
    const o = setup.shift() ?? next();
    const s = ++seq;
    line({ s, t: 'try', ...o });
    let n: number | undefined;
    try {
      n = perform(o);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      line({ s, t: 'err', code });
      if (ENDS_QUIETLY[a.mode].includes(code)) return 0;
      if (a.mode === 'fill' && code === 'ENOSPC') {
        if (o.op === 'hold') held = null;
        await yieldNow();
        continue;
      }
      process.stderr.write(`meta client: ${JSON.stringify(o)}: ${code} ${(err as Error).message}\n`);
      return 3;
    }
    line(n === undefined ? { s, t: 'ok' } : { s, t: 'ok', n });
    model.apply(o, n);
    await yieldNow();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`meta client: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(4);
  },
);

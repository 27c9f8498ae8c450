/**
 * Checks the metadata client's tree against its log (load-meta-client.ts).
 *
 * After a crash: daxvm's fsync (and fdatasync, and fsync of a directory)
 * commits the whole running transaction, and every operation is one
 * request the daemon applies whole, but for one case: an append that starts
 * mid-page is two WRITEs, the rest of that page first (the kernel does not
 * have the page whole, so it sends it alone), and a commit may fall between
 * them (ext4 may show a partly written write(2) after a crash too). So the
 * tree read back must equal the model's state after some operation at or
 * after the last fsync that returned, or after the first WRITE of such an
 * append: everything up to that fsync is there, each later operation is
 * there whole or not at all, in order, and the one in flight when the
 * daemon died (tried, no answer or ENOTCONN) may be there too. File bytes
 * are compared whole (each file's own pattern), as are xattrs, sizes and
 * which names share an inode.
 *
 * Without a crash (the fill test): the tree must equal the state after
 * every operation that returned, and none that failed (ENOSPC) may show.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonLines } from './load-mount.js';
import { bytesHash, contentSeed, fileDesc, isDurabilityPoint, MetaModel, type MetaLogLine, type MetaOp } from './load-meta-model.js';
import { patternMismatch } from './load-pattern.js';

export interface MetaCheck {
  problem: string | null;
  /** Operations that returned. */
  ops: number;
  /** Durability points (fsyncs) that returned, and the operations they made durable. */
  fsyncs: number;
  durableOps: number;
  /** Operations after the last fsync found in the tree. */
  laterFound: number;
  /** File bytes read back and compared. */
  bytes: number;
  /** ENOSPC answers (fill mode). */
  enospc: number;
}

interface Logged {
  op: MetaOp;
  n?: number;
}

/** Parse the log: operations that returned, the one maybe applied (in flight), ENOSPC count, the error that ended it. */
export function parseMetaLog(file: string): { done: Logged[]; inflight: Logged | null; enospc: number; lastError: string | null } {
  const done: Logged[] = [];
  let tried: Logged | null = null;
  let enospc = 0;
  let lastError: string | null = null;
  for (const l of readJsonLines<MetaLogLine | { t: 'end' }>(file)) {
    if (l.t === 'try') {
      const { s: _s, t: _t, ...op } = l;
      tried = { op: op as MetaOp };
    } else if (l.t === 'ok' && tried) {
      done.push(l.n === undefined ? tried : { ...tried, n: l.n });
      tried = null;
    } else if (l.t === 'err') {
      lastError = l.code;
      if (l.code === 'ENOSPC') {
        enospc++;
        tried = null;
      }
    }
  }
  return { done, inflight: tried, enospc, lastError };
}

/** Walk `meta` under `root` as the model describes a state. */
export function describeTree(root: string, runSeed: number, idOf: Map<string, number> = new Map()): { desc: Map<string, string>; bytes: number; notes: Map<string, string> } {
  const desc = new Map<string, string>();
  const notes = new Map<string, string>();
  const files: Array<{ p: string; ino: number; nlink: number; size: number; hash: string }> = [];
  let bytes = 0;
  const walk = (rel: string): void => {
    const st = fs.lstatSync(path.join(root, rel));
    if (st.isDirectory()) {
      desc.set(rel, 'dir');
      for (const n of fs.readdirSync(path.join(root, rel))) walk(`${rel}/${n}`);
    } else if (st.isFile()) {
      const b = fs.readFileSync(path.join(root, rel));
      bytes += b.length;
      files.push({ p: rel, ino: st.ino, nlink: st.nlink, size: st.size, hash: b.length === st.size ? bytesHash(b) : `short read ${b.length}` });
      // Explain a content difference: which file's pattern the bytes follow, and where they stop.
      const id = idOf.get(rel);
      if (id !== undefined) {
        const bad = patternMismatch(contentSeed(runSeed, id), 0, b);
        notes.set(rel, bad < 0 ? `its ${b.length} bytes are file ${id}'s own` : `byte ${bad} of ${b.length} is not file ${id}'s own`);
      }
    } else {
      desc.set(rel, `unexpected type (mode ${st.mode.toString(8)})`);
    }
  };
  if (fs.existsSync(path.join(root, 'meta'))) walk('meta');
  const xattrs = readXattrs(root);
  const byIno = new Map<number, string[]>();
  for (const f of files) (byIno.get(f.ino) ?? byIno.set(f.ino, []).get(f.ino)!).push(f.p);
  for (const f of files) {
    const names = byIno.get(f.ino)!.sort();
    desc.set(f.p, fileDesc(f.size, f.nlink, f.hash, xattrs.get(f.p) ?? new Map(), names[0]!));
  }
  return { desc, bytes, notes };
}

/** user.* xattrs of every file under root/meta: one getfattr -R. */
function readXattrs(root: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  if (!fs.existsSync(path.join(root, 'meta'))) return out;
  const r = spawnSync('getfattr', ['-R', '-d', '-m', '^user\\.', '-e', 'hex', 'meta'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  let cur: Map<string, string> | undefined;
  for (const l of (r.stdout ?? '').split('\n')) {
    const file = /^# file: (.*)$/.exec(l);
    if (file) out.set(file[1]!, (cur = new Map()));
    const kv = /^(user\.[^=]+)=0x([0-9a-f]*)$/.exec(l);
    if (kv && cur) cur.set(kv[1]!, Buffer.from(kv[2]!, 'hex').toString('utf8'));
  }
  return out;
}

function diff(want: Map<string, string>, got: Map<string, string>, notes: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [p, w] of want) {
    const g = got.get(p);
    if (g === undefined) out.push(`${p}: missing (want ${w})`);
    else if (g !== w) out.push(`${p}: ${g}, want ${w}${notes.has(p) ? ` (${notes.get(p)})` : ''}`);
  }
  for (const [p, g] of got) if (!want.has(p)) out.push(`${p}: there (${g}) but not in the state`);
  return out;
}

/**
 * Check the tree under `root` (the round's directory through the mount)
 * against the log. `crashed`: the daemon was killed (allow the states after
 * the last fsync); otherwise only the final state.
 */
export function checkMetaTree(root: string, logFile: string, runSeed: number, crashed: boolean): MetaCheck {
  const { done, inflight, enospc } = parseMetaLog(logFile);
  let lastSync = -1;
  done.forEach((l, i) => {
    if (isDurabilityPoint(l.op)) lastSync = i;
  });
  const fsyncs = done.filter((l) => isDurabilityPoint(l.op)).length;
  const model = new MetaModel(runSeed);
  const first = crashed ? lastSync + 1 : done.length;
  for (const l of done.slice(0, first)) model.apply(l.op, l.n);
  const candidates: Array<Map<string, string>> = [model.describe()];
  const later = crashed ? [...done.slice(first), ...(inflight ? [inflight] : [])] : [];
  for (const l of later) {
    try {
      const head = firstWrite(model, l);
      if (head !== undefined) {
        model.apply(l.op, head);
        candidates.push(model.describe());
        model.apply(l.op, (l.n ?? (l.op as { n: number }).n) - head);
      } else {
        model.apply(l.op, l.n);
      }
    } catch {
      break; // the in-flight one could not have applied after all
    }
    candidates.push(model.describe());
  }
  const base = { ops: done.length, fsyncs, durableOps: lastSync + 1, enospc };
  const tree = describeTree(root, runSeed, new Map(model.names));
  const same = (m: Map<string, string>): boolean => m.size === tree.desc.size && [...m].every(([k, v]) => tree.desc.get(k) === v);
  for (let j = candidates.length - 1; j >= 0; j--) {
    const c = candidates[j];
    if (c && same(c)) return { ...base, problem: null, laterFound: j, bytes: tree.bytes };
  }
  // The nearest state, and how the tree differs from it.
  let best = 0;
  let bestDiff: string[] = [];
  candidates.forEach((c, j) => {
    const d = diff(c, tree.desc, tree.notes);
    if (j === 0 || d.length < bestDiff.length) [best, bestDiff] = [j, d];
  });
  const at = first + best;
  const what = crashed
    ? `the tree is no state the log allows (operations 1..${done.length} returned, the last fsync was operation ${lastSync + 1}${inflight ? `, one more in flight: ${JSON.stringify(inflight.op)}` : ''}); nearest: after operation ${at}`
    : `the tree is not the state after the ${done.length} operations that returned`;
  return { ...base, laterFound: 0, bytes: tree.bytes, problem: `${what}:\n    ${bestDiff.slice(0, 8).join('\n    ')}${bestDiff.length > 8 ? `\n    ... ${bestDiff.length - 8} more` : ''}` };
}

const PAGE = 4096;

/**
 * The bytes of an append's first WRITE when the kernel splits it: one that
 * starts mid-page and goes past that page's end sends the rest of the page
 * alone (the page is not in the kernel's cache whole). Else undefined.
 */
function firstWrite(model: MetaModel, l: Logged): number | undefined {
  if (l.op.op !== 'append') return undefined;
  const ino = model.names.get(l.op.p);
  const size = ino === undefined ? undefined : model.inodes.get(ino)?.size;
  if (size === undefined || size % PAGE === 0) return undefined;
  const head = PAGE - (size % PAGE);
  return head < (l.n ?? l.op.n) ? head : undefined;
}

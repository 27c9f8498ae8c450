/**
 * Many concurrent clients: N processes (load-churn-client.ts) on the same
 * few directories for the given time, on a fresh pool. Each must meet only
 * the errors its races explain (EXPECTED_ERRORS) and read only whole,
 * self-consistent files. Then a walk of the whole tree checks every file
 * against its header, that no unfinished file is left, and that each
 * inode's link count is the number of names it has; a clean unmount, and
 * fsck is clean.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChurnSummary } from './load-churn-client.js';
import { LoadContext } from './load-context.js';
import { exitWithin, fsckPool, mkfsPool, spawnClient, mountDaemon, stopDaemon } from './load-mount.js';
import { checkDescribed } from './load-pattern.js';

export interface ClientsRun {
  seed: number;
  clients: number;
  seconds: number;
  ops: Record<string, number>;
  errors: Record<string, number>;
  filesWritten: number;
  filesRead: number;
  bytesRead: number;
  /** Files and bytes the final walk verified. */
  filesAtEnd: number;
  bytesAtEnd: number;
  problem: string | null;
}

const DIRS = 4;

/** Walk the clients' tree: every file whole and named as a finished one, link counts right. */
function walk(root: string, runSeed: number): { files: number; bytes: number; problems: string[] } {
  const problems: string[] = [];
  const names = new Map<number, { nlink: number; paths: string[] }>();
  let bytes = 0;
  const visit = (rel: string): void => {
    for (const n of fs.readdirSync(path.join(root, rel))) {
      const p = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(root, p));
      if (st.isDirectory()) {
        if (!/^(D\d|D\d\/s\d)$/.test(p)) problems.push(`${p}: a directory no client made`);
        visit(p);
        continue;
      }
      if (!st.isFile() || !n.startsWith('f-')) {
        problems.push(`${p}: ${st.isFile() ? 'an unfinished file left behind' : `not a regular file (mode ${st.mode.toString(8)})`}`);
        continue;
      }
      const b = fs.readFileSync(path.join(root, p));
      bytes += b.length;
      const c = checkDescribed(b, true, runSeed);
      if ('problem' in c) problems.push(`${p}: ${c.problem}`);
      const e = names.get(st.ino) ?? { nlink: st.nlink, paths: [] };
      e.paths.push(p);
      names.set(st.ino, e);
    }
  };
  visit('');
  for (const [ino, e] of names) {
    if (e.nlink !== e.paths.length) problems.push(`inode ${ino}: link count ${e.nlink}, names ${e.paths.length} (${e.paths.slice(0, 4).join(', ')})`);
  }
  return { files: [...names.values()].reduce((n, e) => n + e.paths.length, 0), bytes, problems };
}

export async function runClients(ctx: LoadContext, clients: number, seconds: number, seed: number): Promise<ClientsRun> {
  const out: ClientsRun = { seed, clients, seconds, ops: {}, errors: {}, filesWritten: 0, filesRead: 0, bytesRead: 0, filesAtEnd: 0, bytesAtEnd: 0, problem: null };
  const host = path.join(ctx.work, 'clients');
  fs.mkdirSync(host, { recursive: true });
  const pool = path.join(host, 'clients.pool');
  mkfsPool(pool, '256M');
  const mnt = path.join(ctx.work, 'mnt');
  let problem: string | null = null;
  const d = await mountDaemon(pool, mnt, path.join(host, 'daemon.log'));
  try {
    const root = path.join(mnt, 'clients');
    for (let k = 0; k < DIRS; k++) fs.mkdirSync(path.join(root, `D${k}`), { recursive: true });
    const until = Date.now() + seconds * 1000;
    const procs = Array.from({ length: clients }, (_, c) =>
      spawnClient('load-churn-client', { client: c, runSeed: seed, until, dirs: DIRS }, path.join(host, `client-${c}.out`), root));
    const ends = await Promise.all(procs.map((p) => exitWithin(p, seconds * 1000 + 120_000)));
    const problems: string[] = [];
    for (let c = 0; c < clients; c++) {
      const text = fs.readFileSync(path.join(host, `client-${c}.out`), 'utf8');
      let s: ChurnSummary | undefined;
      try {
        s = JSON.parse(text.trim().split('\n').pop() ?? '') as ChurnSummary;
      } catch {
        const end = ends[c];
        problems.push(`client ${c} ${end ? `exited ${end.code ?? end.signal}` : 'hung'} without a summary: ${text.slice(0, 800)}`);
        procs[c]?.kill('SIGKILL');
        continue;
      }
      for (const [k, v] of Object.entries(s.ops)) out.ops[k] = (out.ops[k] ?? 0) + v;
      for (const [k, v] of Object.entries(s.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
      out.filesWritten += s.filesWritten;
      out.filesRead += s.filesRead;
      out.bytesRead += s.bytesRead;
      for (const u of s.unexpected) problems.push(`client ${c}: unexpected error: ${u}`);
      for (const b of s.bad) problems.push(`client ${c}: ${b}`);
    }
    if (!problems.length) {
      const w = walk(root, seed);
      out.filesAtEnd = w.files;
      out.bytesAtEnd = w.bytes;
      problems.push(...w.problems);
    }
    if (!problems.length) {
      const st = await stopDaemon(d);
      if (!st.ok) problems.push(`clean unmount failed: ${st.detail}`);
      else {
        const f = fsckPool(pool);
        if (f.exit !== 0) problems.push(`fsck: exit ${f.exit}: ${f.problems.slice(0, 5).join('; ')}`);
      }
    }
    if (problems.length) problem = problems.slice(0, 10).join('\n  ') + (problems.length > 10 ? `\n  ... ${problems.length - 10} more` : '');
  } catch (err) {
    problem = `harness error: ${(err as Error).stack ?? String(err)}`;
  } finally {
    d.cleanup();
  }
  out.problem = problem;
  const total = Object.values(out.ops).reduce((n, v) => n + v, 0);
  if (problem) {
    ctx.fail({ part: 'clients', round: 0, seed, problem, replay: `npx daxvm test-load --only clients --clients ${clients} --minutes ${seconds / 60} --seed ${seed}` }, [host]);
  } else {
    const errs = Object.entries(out.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    ctx.log(`clients (seed ${seed}): ${clients} clients for ${seconds} s, ${total} ops (${Object.entries(out.ops).map(([k, v]) => `${k} ${v}`).join(', ')}); ` +
      `expected errors: ${errs}; ${out.filesRead} files read whole; at the end ${out.filesAtEnd} names, ${out.bytesAtEnd} bytes verified; fsck clean`);
  }
  fs.rmSync(host, { recursive: true, force: true });
  return out;
}

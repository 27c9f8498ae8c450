/**
 * fio in the kill loop: random overwrites of a laid-out file, each write
 * followed by fsync (or fdatasync), every block carrying fio's crc32c
 * verify header. fio saves its write state when it dies of the mount's
 * errors (verify_state_save), and after the remount `--verify_only
 * --verify_state_load=1` reads back exactly the writes that completed.
 * With a SIGKILL of the daemon nothing already stored to the pool mapping
 * is lost, so every completed write must verify, fsync'ed or not.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface FioJob {
  /** fio runs here, in the mount: once the mount is gone every path it opens fails (never one of the host's). */
  cwd: string;
  /** The file, relative to cwd. */
  file: string;
  /** fio's state file (--aux-path) and output live here, outside the mount. */
  hostDir: string;
  size: string;
  bs: string;
  sync: 'fsync' | 'fdatasync';
  seed: number;
  /** A pace that keeps fio busy past the longest delay before the kill. */
  rateIops: number;
}

export const FIO_JOB = 'load';

function args(j: FioJob): string[] {
  return [
    `--name=${FIO_JOB}`, `--filename=${j.file}`, `--size=${j.size}`, `--bs=${j.bs}`, '--rw=randwrite',
    '--ioengine=psync', `--${j.sync}=1`, `--rate_iops=,${j.rateIops}`, '--overwrite=1', '--verify=crc32c', `--randseed=${j.seed}`,
    `--aux-path=${j.hostDir}`, '--output-format=json',
  ];
}

export interface FioOutcome {
  exit: number | null;
  /** fio's own error number for the job (0: none). */
  error: number;
  ios: number;
  bytes: number;
  stderr: string;
}

function outcome(exit: number | null, stdout: string, stderr: string, dir: 'read' | 'write'): FioOutcome {
  try {
    const job = (JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ error: number; read: { io_bytes: number; total_ios: number }; write: { io_bytes: number; total_ios: number } }> }).jobs[0]!;
    return { exit, error: job.error, ios: job[dir].total_ios, bytes: job[dir].io_bytes, stderr: stderr.trim() };
  } catch {
    return { exit, error: -1, ios: 0, bytes: 0, stderr: `no JSON from fio: ${(stderr + stdout).trim().slice(0, 800)}` };
  }
}

/** Lay the file out (written whole and fsync'ed), so that the kill window sees only overwrites. */
export function fioLayout(j: FioJob): FioOutcome {
  const r = spawnSync('fio', [...args(j), '--create_only=1'], { cwd: j.cwd, encoding: 'utf8', timeout: 300_000 });
  return outcome(r.status, r.stdout ?? '', (r.stderr ?? '') + (r.error ? r.error.message : ''), 'write');
}

/** Start the write job; its JSON goes to fio.json and its stderr to fio.err in hostDir. */
export function fioStart(j: FioJob): ChildProcess {
  const outFd = fs.openSync(path.join(j.hostDir, 'fio.json'), 'w');
  const errFd = fs.openSync(path.join(j.hostDir, 'fio.err'), 'w');
  try {
    return spawn('fio', [...args(j), '--do_verify=0', '--verify_state_save=1'], { cwd: j.cwd, stdio: ['ignore', outFd, errFd] });
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
}

export function fioWriteOutcome(j: FioJob, exit: number | null): FioOutcome {
  const read = (n: string) => (fs.existsSync(path.join(j.hostDir, n)) ? fs.readFileSync(path.join(j.hostDir, n), 'utf8') : '');
  return outcome(exit, read('fio.json'), read('fio.err'), 'write');
}

/** fio's saved write state: present when it stopped before the job's end. */
export const fioStateFile = (j: FioJob): string => path.join(j.hostDir, `local-${FIO_JOB}-0-verify.state`);

/** Verify what the write job completed (all of the file when it ran to its end). */
export function fioVerify(j: FioJob): FioOutcome {
  const state = fs.existsSync(fioStateFile(j)) ? ['--verify_state_load=1'] : [];
  const r = spawnSync('fio', [...args(j), '--verify_only', '--verify_fatal=1', ...state], { cwd: j.cwd, encoding: 'utf8', timeout: 600_000 });
  return outcome(r.status, r.stdout ?? '', (r.stderr ?? '') + (r.error ? r.error.message : ''), 'read');
}

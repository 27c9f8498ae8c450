/**
 * fio's JSON output (--output-format=json) as the rows of our table: per job,
 * the direction that job measures (write for a write job, whose reads are
 * fio's verify reads; read otherwise), MiB/s, IOPS, p99 completion latency,
 * bytes checked by verify and verify errors.
 */
import { textTable } from '../../core/output.js';

interface FioDir {
  io_bytes: number;
  bw_bytes: number;
  iops: number;
  clat_ns?: { percentile?: Record<string, number> };
  lat_ns?: { percentile?: Record<string, number> };
}

interface FioJob {
  jobname: string;
  error: number;
  job_runtime?: number;
  read: FioDir;
  write: FioDir;
}

export interface FioOutput {
  'fio version'?: string;
  jobs: FioJob[];
}

export interface FioRow {
  /** 'mount' or 'host'. */
  target: string;
  /** The job file, without .fio. */
  job: string;
  /** The job's section: psync or mmap. */
  engine: string;
  direction: 'read' | 'write';
  mibPerS: number;
  iops: number;
  /** 99th percentile of completion latency, microseconds (null when fio gave none). */
  p99Us: number | null;
  /** Bytes moved in the measured direction. */
  bytes: number;
  /** Bytes fio read back and checked (write jobs with verify); null for read jobs. */
  verifiedBytes: number | null;
  verifyErrors: number;
  /** fio's error number for the job (0: none; 84 EILSEQ: verify failed). */
  error: number;
  seconds: number;
}

/** fio's error number for a failed verify. */
const EILSEQ = 84;

/** The JSON document in fio's output (fio may print a line or two before it). */
export function parseFioJson(text: string): FioOutput {
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`no JSON in fio's output: ${text.slice(0, 200)}`);
  const doc = JSON.parse(text.slice(start)) as FioOutput;
  if (!Array.isArray(doc.jobs)) throw new Error('fio JSON without jobs');
  return doc;
}

/** fio's verify complaints ("... at file PATH offset N ...") per file name. */
export function verifyFailuresByFile(stderr: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of stderr.split('\n')) {
    if (!/verify/i.test(line)) continue;
    const file = / at file (.+?) offset \d+/.exec(line)?.[1];
    if (!file) continue;
    const name = file.slice(file.lastIndexOf('/') + 1);
    out.set(name, (out.get(name) ?? 0) + 1);
  }
  return out;
}

function p99(d: FioDir): number | null {
  const pct = d.clat_ns?.percentile ?? d.lat_ns?.percentile;
  const v = pct?.['99.000000'];
  return typeof v === 'number' && v > 0 ? Math.round(v / 100) / 10 : null;
}

/** Rows for the jobs of one fio run of `job` (a job file) on `target`. */
export function rowsOf(target: string, job: string, doc: FioOutput, stderr: string): FioRow[] {
  const failures = verifyFailuresByFile(stderr);
  return doc.jobs.map((j) => {
    const isWrite = j.write.io_bytes > 0;
    const d = isWrite ? j.write : j.read;
    // Our job files name each file fio-<jobname>.<jobnum>.<filenum>.
    let verifyErrors = 0;
    for (const [name, n] of failures) if (name.startsWith(`fio-${j.jobname}.`)) verifyErrors += n;
    if (j.error === EILSEQ && verifyErrors === 0) verifyErrors = 1;
    return {
      target,
      job,
      engine: j.jobname,
      direction: isWrite ? 'write' : 'read',
      mibPerS: Math.round((d.bw_bytes / 2 ** 20) * 10) / 10,
      iops: Math.round(d.iops),
      p99Us: p99(d),
      bytes: d.io_bytes,
      verifiedBytes: isWrite ? j.read.io_bytes : null,
      verifyErrors,
      error: j.error,
      seconds: Math.round((j.job_runtime ?? 0) / 100) / 10,
    };
  });
}

export function formatRows(rows: FioRow[]): string {
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  const head = ['target', 'job', 'engine', 'MiB/s', 'IOPS', 'p99 µs', 'MiB moved', 'MiB verified', 'verify errors', 'error'];
  const body = rows.map((r) => [
    r.target, r.job, r.engine, r.mibPerS.toFixed(1), String(r.iops), r.p99Us === null ? '-' : r.p99Us.toFixed(1),
    mib(r.bytes), r.verifiedBytes === null ? '-' : mib(r.verifiedBytes), String(r.verifyErrors), String(r.error),
  ]);
  return textTable(head, body, { left: 3 }) + '\n';
}

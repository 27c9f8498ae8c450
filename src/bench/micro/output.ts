/**
 * What a bench run leaves: the table (stdout, or stderr when the JSON goes
 * to stdout) and the JSON (`--json FILE`). The JSON file is rewritten after
 * every finished case (`"complete": false` until the end), so a run that is
 * interrupted or fails keeps every case it measured; such a run also prints
 * the table of those cases and says why it stopped (`"stopped"`).
 */
import { accessSync, constants, existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import type { Environment } from './env.js';
import { records, type BenchJson } from './json.js';
import type { RawBenchOptions } from './options.js';
import type { CaseResult } from './runner.js';
import { formatTable } from './table.js';
import type { BenchDef, BenchOptions } from './types.js';

/**
 * An output file (--json, --chart) checked before anything is measured: its
 * directory exists and can be written, and it is not itself a directory
 * (else the first write fails after minutes of running).
 */
export function checkOutputPath(flag: string, file: string): void {
  const abs = resolve(file);
  const dir = dirname(abs);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`${flag} ${file}: no directory ${dir}`, EXIT.USAGE);
  if (existsSync(abs) && statSync(abs).isDirectory()) {
    throw new CliError(`${flag} ${file} is a directory`, EXIT.USAGE, `give a file name in it, e.g. ${flag} ${abs.replace(/\/$/, '')}/${flag === '--chart' ? 'chart.svg' : 'run.json'}`);
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new CliError(`${flag} ${file}: cannot write in ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.USAGE);
  }
}

export class BenchOutput {
  /** Facts of the method the bench found at run time (BenchContext.record). */
  readonly method: Record<string, string | number | boolean> = {};
  private ended = false;

  constructor(
    private readonly bench: BenchDef,
    private readonly options: BenchOptions,
    private readonly raw: RawBenchOptions,
    private readonly started: Date,
  ) {}

  private get file(): string | undefined {
    return this.raw.json !== undefined && this.raw.json !== '-' ? resolve(this.raw.json) : undefined;
  }

  private doc(results: CaseResult[], env: Environment, stopped?: string): BenchJson {
    return {
      bench: this.bench.name,
      summary: this.bench.summary,
      started: this.started.toISOString(),
      seconds: (Date.now() - this.started.getTime()) / 1000,
      complete: stopped === undefined,
      ...(stopped !== undefined ? { stopped } : {}),
      options: this.options,
      environment: env,
      method: this.method,
      records: records(this.bench, results),
    };
  }

  /** Written whole, then renamed: a reader (or a kill) never sees half a file. */
  private writeFile(text: string): void {
    const file = this.file!;
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }

  /** A case finished: the JSON file holds every case so far. */
  checkpoint(results: CaseResult[], env: Environment | undefined): void {
    if (this.file && env) this.writeFile(JSON.stringify(this.doc(results, env, 'still running, or killed'), null, 2) + '\n');
  }

  private write(results: CaseResult[], env: Environment, stopped?: string): void {
    const toStdout = this.raw.json === '-';
    const table = formatTable(this.bench, results, { runs: this.options.runs, cache: env.cache.done });
    (toStdout ? process.stderr : process.stdout).write(table);
    if (this.raw.json === undefined) return;
    const text = JSON.stringify(this.doc(results, env, stopped), null, 2) + '\n';
    if (toStdout) process.stdout.write(text);
    else {
      this.writeFile(text);
      process.stderr.write(`json: ${this.file}\n`);
    }
  }

  /** The run stopped early: what it measured, said as such (nothing when no case finished). */
  interrupted(results: CaseResult[], env: Environment | undefined, why: string): void {
    if (this.ended) return;
    this.ended = true;
    if (results.length === 0 || env === undefined) return;
    process.stderr.write(`daxvm bench ${this.bench.name}: ${why}; the ${results.length} case${results.length > 1 ? 's' : ''} measured before it:\n`);
    this.write(results, env, why);
  }

  done(results: CaseResult[], env: Environment): void {
    if (this.ended) return;
    this.ended = true;
    this.write(results, env);
  }
}

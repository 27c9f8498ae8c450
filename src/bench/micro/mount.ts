/**
 * Where a bench runs: the daxvm mount (`--mnt`, or /mnt/nvmm1 when that is
 * one, or else a temporary sparse pool mounted by a child daemon), a scratch
 * directory inside it, a directory of the host for the native variants, and
 * the knobs the bench changed. `close()` puts everything back: knobs to their
 * first values, scratch and host directories removed, the temporary pool
 * unmounted and deleted. `closeNow()` does the same synchronously, for a
 * signal handler or an exit hook.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import { daxvmMountAt, readMounts, topMountAt } from '../../core/mountinfo.js';
import { TempMount } from '../../core/temp-mount.js';

export const DEFAULT_MNT = '/mnt/nvmm1';

export interface MountRequest {
  /** `--mnt`, when given: it must be a daxvm mount. */
  mnt?: string;
  /** `--native DIR`: the host directory to make the native variants' directory in. */
  native?: string;
  /** Pool bytes the run needs (sizes the temporary pool). */
  poolBytes: number;
  /** Whether any variant works on the host directory. */
  wantNative: boolean;
  note(message: string): void;
}

const GiB = 1024 ** 3;

export class BenchMount {
  private readonly saved = new Map<string, string>();
  private closed = false;

  private constructor(
    readonly mnt: string,
    readonly pool: string,
    /** The temporary pool's mount, when there was no daxvm mount to use. */
    readonly temp: TempMount | undefined,
    readonly scratch: string,
    readonly nativeDir: string,
    private readonly note: (m: string) => void,
  ) {}

  static async open(r: MountRequest): Promise<BenchMount> {
    let mnt: string;
    let pool: string;
    let temp: TempMount | undefined;
    if (r.mnt !== undefined) {
      mnt = resolve(r.mnt);
      const m = daxvmMountAt(mnt, readMounts());
      if (!m) {
        const other = topMountAt(mnt, readMounts());
        const what = other ? `a ${other.fstype} mount` : existsSync(mnt) ? 'not a mount point' : 'missing';
        throw new CliError(`--mnt ${mnt} is not a daxvm mount (${what})`, EXIT.USAGE,
          `mount a pool there first (daxvm mount POOL ${mnt}), or leave out --mnt to bench a temporary pool`);
      }
      pool = m.source;
    } else {
      const m = daxvmMountAt(DEFAULT_MNT, readMounts());
      if (m) {
        mnt = DEFAULT_MNT;
        pool = m.source;
      } else {
        // Room for the largest case, its metadata and page tables, whole GiB.
        const size = Math.max(1, Math.ceil((r.poolBytes * 1.25 + 256 * 1024 ** 2) / GiB));
        temp = await TempMount.create(tmpdir(), `${size}G`, 'daxvm-bench-');
        mnt = temp.mnt;
        pool = temp.pool;
        r.note(`${DEFAULT_MNT} is not a daxvm mount: benching a temporary ${size} GiB sparse pool ${pool} mounted at ${mnt} (removed at the end)`);
      }
    }
    let scratch = '';
    let nativeDir = '';
    try {
      scratch = mkdtempSync(join(mnt, 'daxvm-bench-'));
      if (r.wantNative) {
        const host = r.native !== undefined ? resolve(r.native) : dirname(pool);
        if (r.native !== undefined && !(existsSync(host) && statSync(host).isDirectory())) {
          throw new CliError(`--native ${host} is not a directory`, EXIT.USAGE, 'give an existing directory of the host for the native variants');
        }
        nativeDir = mkdtempSync(join(host, 'daxvm-bench-native-'));
      }
    } catch (err) {
      if (scratch) rmSync(scratch, { recursive: true, force: true });
      temp?.kill();
      if (err instanceof CliError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new CliError(`cannot make the bench's directories (${e.code ?? e.message}${e.path ? `: ${e.path}` : ''})`, EXIT.FAILURE,
        scratch ? 'give --native a directory of the host this user may write' : `the bench writes its files into ${mnt}: it must be mounted read-write, and writable for this user`);
    }
    return new BenchMount(mnt, pool, temp, scratch, nativeDir, r.note);
  }

  private knobPath(name: string): string {
    return join(this.mnt, '.daxvm', name);
  }

  knob(name: string): string {
    return readFileSync(this.knobPath(name), 'utf8').trim();
  }

  /** Set a knob; its first value is restored by close(). */
  setKnob(name: string, value: number): void {
    const old = this.knob(name);
    if (String(value) === old) return;
    if (!this.saved.has(name)) this.saved.set(name, old);
    writeFileSync(this.knobPath(name), `${value}\n`);
  }

  /** The knob files as numbers; kbytes_occupied ('PMEM: n' and 'DRAM: n' lines) as { PMEM, DRAM }. */
  knobs(): Record<string, number | string | Record<string, number>> {
    const out: Record<string, number | string | Record<string, number>> = {};
    for (const name of ['page_tables_on', 'msync', 'zeroout_blocks', 'zombie_max_pages', 'kbytes_occupied']) {
      let v: string;
      try {
        v = this.knob(name);
      } catch {
        continue; // an older daemon without it
      }
      const pairs = [...v.matchAll(/^(\w+):\s*(\d+)$/gm)];
      out[name] = /^-?\d+$/.test(v) ? Number(v) : pairs.length ? Object.fromEntries(pairs.map((m) => [m[1]!, Number(m[2])])) : v;
    }
    return out;
  }

  /** Knobs back, directories removed, the temporary pool unmounted and removed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.restore();
    const temp = this.temp;
    this.closed = true;
    if (temp) await temp.close();
  }

  /** The same, synchronously (Ctrl-C, exit hooks): the temporary mount is killed, not unmounted cleanly. */
  closeNow(): void {
    if (this.closed) return;
    this.restore();
    this.closed = true;
    this.temp?.kill();
  }

  private restore(): void {
    // The scratch files first: turning page tables off afterwards has fewer to delete.
    for (const dir of [this.temp ? '' : this.scratch, this.nativeDir]) {
      if (!dir) continue;
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        this.note(`could not remove ${dir}: ${(err as Error).message}`);
      }
    }
    if (!this.temp) {
      for (const [name, value] of this.saved) {
        try {
          writeFileSync(this.knobPath(name), `${value}\n`);
          this.note(`knob ${name} restored to ${value}`);
        } catch (err) {
          this.note(`could not restore knob ${name} to ${value}: ${(err as Error).message}`);
        }
      }
    }
    this.saved.clear();
  }
}

/**
 * FUSE requests as the kernel sends them, counted per opcode for one mount,
 * from the kernel's `fuse:fuse_request_send` tracepoint (Linux 6.x): the same
 * count for daxvm and for any other FUSE file system (bindfs). FORGETs do not
 * pass through that tracepoint (the kernel queues them apart). Needs root and
 * tracefs; a private tracing instance keeps others' tracing untouched.
 *
 * The same instance counts the block layer's bios of one process
 * (`block:block_bio_queue`, by thread group): device flushes (a bio with
 * REQ_PREFLUSH, rwbs starting with F: what an fsync's barrier costs on a disk
 * with a write-back cache) and writes. Bios are counted where they are
 * submitted: an fsync's write-back is the fsyncing process's, so this is
 * exact for fsync loops, not for background write-back (kworkers).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NAME = /opcode \d+ \(FUSE_([A-Z_0-9]+)\)/;
/** `comm-pid (tgid) [cpu] flags ts: block_bio_queue: dev rwbs sector + sectors [comm]` (options/record-tgid). */
const BIO = /\(\s*(\d+)\)\s.*\bblock_bio_queue: \S+ (\S+) \d+ \+ (\d+)/;

export interface BlockCounts { flushes: number; writes: number; kib: number }

export class FuseTrace {
  private constructor(private readonly root: string, private readonly inst: string, private readonly mountedHere: boolean) {}

  /** A tracing instance, or undefined (with why) when the tracepoint cannot be used here. */
  static open(): { trace?: FuseTrace; why?: string } {
    if (process.getuid?.() !== 0) return { why: 'kernel request counts need root (tracefs)' };
    let root = '/sys/kernel/tracing';
    let mountedHere = false;
    if (!existsSync(join(root, 'instances'))) {
      root = mkdtempSync(join(tmpdir(), 'daxvm-tracefs-'));
      const r = spawnSync('mount', ['-t', 'tracefs', 'nodev', root], { encoding: 'utf8' });
      if (r.status !== 0) return { why: `cannot mount tracefs: ${r.stderr.trim()}` };
      mountedHere = true;
    }
    const inst = join(root, 'instances', `daxvm-bench-${process.pid}`);
    try {
      mkdirSync(inst);
      if (!existsSync(join(inst, 'events', 'fuse', 'fuse_request_send'))) throw new Error('no fuse tracepoints in this kernel');
      writeFileSync(join(inst, 'buffer_size_kb'), '65536');
    } catch (err) {
      const t = new FuseTrace(root, inst, mountedHere);
      t.close();
      return { why: `fuse tracepoints unavailable: ${(err as Error).message}` };
    }
    return { trace: new FuseTrace(root, inst, mountedHere) };
  }

  /** Count requests to the mount at `mnt` from now on (clears what was counted). */
  start(mnt: string): void {
    const dev = statSync(mnt).dev;
    // glibc's dev_t -> the kernel's (major << 20 | minor).
    const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
    const major = Math.floor(dev / 256) & 0xfff;
    const kdev = major * 2 ** 20 + minor;
    const ev = join(this.inst, 'events', 'fuse', 'fuse_request_send');
    writeFileSync(join(ev, 'filter'), `connection == ${kdev}`);
    writeFileSync(join(ev, 'enable'), '1');
    writeFileSync(join(this.inst, 'trace'), '');
  }

  /** Requests since start(), by opcode name, and their total; then stops counting. */
  stop(): Record<string, number> {
    writeFileSync(join(this.inst, 'events', 'fuse', 'fuse_request_send', 'enable'), '0');
    const out: Record<string, number> = {};
    let total = 0;
    for (const line of readFileSync(join(this.inst, 'trace'), 'utf8').split('\n')) {
      const m = NAME.exec(line);
      if (!m) continue;
      out[m[1]!] = (out[m[1]!] ?? 0) + 1;
      total++;
    }
    out.total = total;
    return out;
  }

  /** Count bios from now on (clears the buffer: call after start()). */
  startBlocks(): void {
    writeFileSync(join(this.inst, 'options', 'record-tgid'), '1');
    writeFileSync(join(this.inst, 'events', 'block', 'block_bio_queue', 'enable'), '1');
    writeFileSync(join(this.inst, 'trace'), '');
  }

  /** The bios process `tgid` submitted since startBlocks(); stops counting (before or after stop()). */
  stopBlocks(tgid: number): BlockCounts {
    writeFileSync(join(this.inst, 'events', 'block', 'block_bio_queue', 'enable'), '0');
    const out: BlockCounts = { flushes: 0, writes: 0, kib: 0 };
    for (const line of readFileSync(join(this.inst, 'trace'), 'utf8').split('\n')) {
      const m = BIO.exec(line);
      if (!m || Number(m[1]) !== tgid) continue;
      const rwbs = m[2]!;
      const sectors = Number(m[3]);
      if (rwbs.startsWith('F')) out.flushes++;
      if (rwbs.includes('W') && sectors > 0) {
        out.writes++;
        out.kib += sectors / 2;
      }
    }
    return out;
  }

  close(): void {
    try { rmdirSync(this.inst); } catch { /* gone */ }
    if (this.mountedHere) {
      spawnSync('umount', [this.root]);
      try { rmdirSync(this.root); } catch { /* busy */ }
    }
  }
}

#!/usr/bin/env node
/**
 * daxvm: one binary for the pool's life. Human output on stdout, errors and
 * progress on stderr, --json for scripts. Exit codes: 0 success, 2 wrong
 * arguments, otherwise the command's own (mkfs 1, mount/umount 32 as
 * mount(8), fsck as e2fsck: 0/1/4/8, info 8, doctor 1 when FUSE is missing).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import debug from 'debug';
import { CliError, EXIT, MountStartError } from '../core/errors.js';
import { formatBytes, parseSize } from '../core/output.js';
import { pasteable } from './invocation.js';
import { FORMAT_VERSION, MIN_POOL_BYTES } from '../core/format/pool.js';

const log = debug('daxvm:cli');

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** -o given several times: every value, in order (no default, so that help shows none). */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Check --size while parsing, so a bad size is a usage error (exit 2). */
function sizeArg(value: string): string {
  try {
    parseSize(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** mkfs --size: parsed, and at least the smallest pool mkfs makes (a usage error otherwise). */
function poolSizeArg(value: string): string {
  sizeArg(value);
  if (parseSize(value) < MIN_POOL_BYTES) {
    throw new InvalidArgumentError(`a pool is at least ${formatBytes(MIN_POOL_BYTES)} (examples: 64M, 4G)`);
  }
  return value;
}

function report(err: CliError): void {
  process.stderr.write(pasteable(`daxvm: ${err.message}\n` + (err.hint ? `hint: ${err.hint}\n` : '')));
}

/** Run a command body; its failures become messages and exit codes, never stack traces for the user. */
async function run(name: string, failureCode: number, body: () => number | Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await body();
  } catch (err) {
    if (err instanceof CliError) {
      report(err);
      code = err.exitCode;
    } else if (err instanceof MountStartError) {
      // A temporary mount the command needed (bench, test-load...): the daemon's reason, not a stack.
      log('%s', err.message);
      report(new CliError(`${name}: cannot mount its temporary pool: ${err.reason}`, failureCode, err.hint));
      code = failureCode;
    } else {
      process.stderr.write(`daxvm ${name}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      code = failureCode;
    }
  }
  log('%s exits %d', name, code);
  process.exit(code);
}

export function buildProgram(): Command {
  const program = new Command('daxvm');
  // Before adding commands, so that they inherit it: usage errors throw (exit 2 below).
  program
    .enablePositionalOptions() // `daxvm run PROG -x`: -x is the program's
    .exitOverride()
    .showHelpAfterError(pasteable('(run daxvm --help for usage)'))
    .configureOutput({ writeErr: s => process.stderr.write(s), writeOut: s => process.stdout.write(s) });
  program
    .description('DaxVM in user space: a FUSE file system over a pool file, with persistent page tables')
    .version(version(), '-V, --version', 'print the versions of daxvm, node, libfuse and the pool format'); // answered in main()

  // In the order of --help.
  addPoolCommands(program);
  addTestCommands(program);
  addToolCommands(program);
  return program;
}

/** A pool and its mount: mkfs, mount, umount, fsck, info, age. */
function addPoolCommands(program: Command): void {
  program.command('mkfs')
    .description('create a pool file (a PMem-like device) and format it')
    .argument('<pool>', 'pool file to create')
    .option('-s, --size <size>', 'pool size, binary units: 4G, 512M, 1T (default: 4G; with --force, an existing file\'s own size)', poolSizeArg)
    .option('--force', 'overwrite an existing pool')
    .option('--group <group>', 'make the pool 0660 and give it to this group (trusted users of the direct path); default 0600')
    .option('--sparse', 'do not allocate the pool on the host now (writes get ENOSPC if the host fills up)')
    .option('--json', 'print the result as JSON')
    .action(async (pool: string, o: { size?: string; force?: boolean; group?: string; sparse?: boolean; json?: boolean }) =>
      run('mkfs', EXIT.FAILURE, async () => (await import('./cmd-mkfs.js')).cmdMkfs(pool, o)));

  program.command('mount')
    .description('mount a pool (default: the per-user pool, created on first use, on /mnt/nvmm1)')
    .argument('[pool]', 'pool file (default: ~/.local/share/daxvm-nodejs/pool.daxvm, or under $XDG_DATA_HOME; made on first use)')
    .argument('[mountpoint]', 'mount point (created if missing)', '/mnt/nvmm1')
    .option('-f, --foreground', 'stay in the foreground (Ctrl-C unmounts)')
    .option('-o, --options <options>', 'mount options, comma-separated: ro, rw, allow_other, allow_root, ' +
      'commit=SECONDS, nonempty, noexec, nosuid, nodev, noatime, allow_loose_pool (mount a pool others can read), ' +
      'no_open (open and close of files with no request; read() through the mount may then miss library stores)...; ' +
      'mount(8)\'s generic options are accepted', collect)
    .option('--clear-dead', 'clear a dead mount (its daemon gone) in the way without asking')
    .addOption(new Option('--ready-fd <fd>', 'internal: report readiness on this fd').hideHelp())
    .action(async (pool: string | undefined, mnt: string, o: { foreground?: boolean; options?: string[]; clearDead?: boolean; readyFd?: string }) =>
      run('mount', EXIT.MOUNT_FAILURE, async () => (await import('./cmd-mount.js')).cmdMount(pool, mnt, {
        o: o.options ?? [],
        ...(o.foreground ? { foreground: true } : {}),
        ...(o.clearDead ? { clearDead: true } : {}),
        ...(o.readyFd !== undefined ? { readyFd: o.readyFd } : {}),
      })));

  program.command('umount')
    .alias('unmount')
    .description('unmount: the daemon commits, marks the pool clean and exits; a busy mount (open files, a cwd inside, ' +
      'library mappings) is refused as umount(8) does (exit 32)')
    .argument('<mountpoint>', 'mount point of a daxvm mount')
    .option('-l, --lazy', 'detach now; the daemon serves what is open and closes the pool after the last file and mapping')
    .action(async (mnt: string, o: { lazy?: boolean }) =>
      run('umount', EXIT.MOUNT_FAILURE, async () => (await import('./cmd-umount.js')).cmdUmount(mnt, o)));

  program.command('fsck')
    .description('check a pool (not mounted); exit 0 clean, 1 corrected, 4 uncorrected, 8 error')
    .argument('<pool>', 'pool file')
    .option('-r, --repair', 'fix the problems found')
    .option('--json', 'print the report as JSON')
    .action(async (pool: string, o: { repair?: boolean; json?: boolean }) =>
      run('fsck', EXIT.OPERATIONAL, async () => (await import('./cmd-fsck.js')).cmdFsck(pool, o)));

  program.command('info')
    .description('geometry, usage, fragmentation and knobs of a pool (mounted or not)')
    .argument('<pool|mountpoint>', 'pool file, or the mount point of a daxvm mount')
    .option('--json', 'print as JSON')
    .action(async (target: string, o: { json?: boolean }) =>
      run('info', EXIT.OPERATIONAL, async () => await (await import('./cmd-info.js')).cmdInfo(target, o)));

  program.command('age')
    .description('age a mounted file system as Geriatrix does: fill to a level, then delete and create files until churn x capacity is written')
    .argument('<mountpoint>', 'mount point of a daxvm mount')
    .option('--fill <percent>', 'fill level to reach and keep, 1% to 95% of the capacity', '70%')
    .option('--churn <factor>', 'bytes to write, as a multiple of the capacity', '5x')
    .option('--seed <n>', 'seed: the same seed gives the same operations', '1')
    .option('--dir <name>', 'directory inside the mount that holds the aged files', 'daxvm-age')
    .option('--max-file <size>', 'largest file (default: the profile\'s, at most 1/8 of the space to fill)', sizeArg)
    .option('--verify', 'read the aged files back and check their contents instead of aging')
    .option('--json', 'print the result as JSON')
    .action(async (mnt: string, o: import('./cmd-age.js').AgeCliOptions) =>
      run('age', EXIT.FAILURE, async () => (await import('./cmd-age.js')).cmdAge(mnt, o)));
}

/** The long reliability runs: test-crash, test-fuzz, test-load. */
function addTestCommands(program: Command): void {
  program.command('test-crash')
    .description('explore crash states: record a workload\'s stores and barriers, check every crash image it could leave')
    .option('-n, --states <n>', 'crash states to explore in all', '10000')
    .option('--seed <s>', 'seed for the workloads and the sampled subsets', '1')
    .option('-w, --workload <name>', 'a workload (--list), or all', 'all')
    .option('--keep <dir>', 'keep failing images here (default: a new directory in the temp dir)')
    .option('--replay <state>', 'check only this state, as printed with a failure (needs --workload and --seed)')
    .option('--scratch <dir>', 'directory for the working images (default /dev/shm, else the temp dir)')
    .option('--list', 'list the workloads')
    .action(async (o: import('./cmd-test-crash.js').TestCrashOptions) =>
      run('test-crash', EXIT.FAILURE, async () => (await import('./cmd-test-crash.js')).cmdTestCrash(o)));

  program.command('test-fuzz')
    .description('damage the metadata of a valid pool case by case; fsck, mount and fsck --repair must survive every image')
    .option('-n, --cases <n>', 'damaged images to check', '5000')
    .option('--seed <s>', 'seed for the damage', '1')
    .option('--case <k>', 'check only this case, as printed with a failure')
    .option('--workers <n>', 'worker processes (default: the cores, at most 4)')
    .option('--timeout <seconds>', 'time limit of one case (past it: a hang)', '30')
    .option('--keep <dir>', 'keep failing images here (default: a new directory in the temp dir)')
    .option('--scratch <dir>', 'directory for the working images (default /dev/shm, else the temp dir)')
    .action(async (o: import('./cmd-test-fuzz.js').TestFuzzOptions) =>
      run('test-fuzz', EXIT.FAILURE, async () => (await import('./cmd-test-fuzz.js')).cmdTestFuzz(o)));

  program.command('test-load')
    .description('faults under load through the mount: the daemon SIGKILLed under fio and a metadata workload, a pool filled up, a full host disk, many concurrent clients')
    .option('--kill-rounds <n>', 'rounds of the kill loop', '50')
    .option('--fill-rounds <n>', 'rounds of the fill test', '5')
    .option('--host-full-rounds <n>', 'rounds of the full host disk: a sparse pool on a small tmpfs (as root)', '2')
    .option('--clients <n>', 'concurrent client processes (0: none)', '8')
    .option('--minutes <m>', 'how long the concurrent clients run', '3')
    .option('--seed <s>', 'seed of round 0 (round k uses S+k)', '1')
    .option('--only <part>', 'run one part: kill, fill, hostfull or clients')
    .option('--keep <dir>', 'keep what a failing round left (pools, logs) here (default: a new directory in the temp dir)')
    .option('--scratch <dir>', 'directory for the pools and mount points (default /dev/shm, else the temp dir)')
    .option('--json', 'print the figures as JSON on stdout (progress goes to stderr)')
    .action(async (o: import('./cmd-test-load.js').TestLoadOptions) =>
      run('test-load', EXIT.FAILURE, async () => (await import('./cmd-test-load.js')).cmdTestLoad(o)));
}

/** The machine and programs around a mount: doctor, bench, run, preload-path, install-helper. */
function addToolCommands(program: Command): void {
  program.command('doctor')
    .description('what this machine offers the library (FUSE, userfaultfd WP-async, PAGEMAP_SCAN, huge pages) and its fallbacks')
    .argument('[mountpoint|pool]', 'a daxvm mount whose pool to check (default: /mnt/nvmm1), or a pool file')
    .option('--json', 'print as JSON')
    .action(async (mnt: string | undefined, o: { json?: boolean }) =>
      run('doctor', EXIT.FAILURE, async () => (await import('./cmd-doctor.js')).cmdDoctor(mnt, o)));

  program.command('bench')
    .description('microbenchmarks through a mount: read, mt, append, db-read, db-write, preload (--list for each one\'s variants); table, --json, --chart')
    .argument('[name]', 'the bench (daxvm bench --list)')
    .option('--list', 'list the benches and their variants')
    .option('--mnt <dir>', 'a daxvm mount to bench (default /mnt/nvmm1 if mounted, else a temporary pool)')
    .option('--native <dir>', 'host directory for the native variants (default: beside the pool file)')
    .option('--json <file>', 'write every figure and run, with the environment, as JSON (- for stdout)')
    .option('--chart <file.svg>', 'draw the medians as an SVG chart')
    .option('--from <run.json>', 'no run: print the table (and draw --chart) of a run from its --json file')
    .option('--sizes <list>', 'file (or access) sizes, e.g. 4k,64k,1m,1g')
    .option('--files <n>', 'files (or accesses) per run, instead of the bench\'s count')
    .option('--runs <n>', 'timed runs per case and variant (default 5, --quick 2)')
    .option('--variants <list>', 'variants to run, e.g. read,daxvm (default: all)')
    .option('--threads <list>', 'worker thread counts, e.g. 1,2,4 (multi-threaded benches)')
    .option('--seed <n>', 'seed of the data and of random accesses', '1')
    .option('--db-size <size>', 'db-read, db-write: size of the one large file (default 1g, --quick 16m)')
    .option('--pattern <list>', 'db-read, db-write: access order, seq, rand or both (default both)')
    .option('--sync-every <n>', 'db-write: make writes durable after every N (default 1; 0: once, at the end of a pass)')
    .option('--quick', 'a smoke run: tiny sizes and counts, every variant')
    .option('--cold', 'drop the page cache before each timed run (root)')
    .action(async (name: string | undefined, o: import('./cmd-bench.js').BenchCommandOptions) =>
      run('bench', EXIT.FAILURE, async () => (await import('./cmd-bench.js')).cmdBench(name, o)));

  program.command('run')
    .description('run a program with the preload library: its mmap(MAP_DAXVM...) maps daxvm files from the pool (docs/preload.md)')
    .argument('<program>', 'the program (a dynamically linked executable)')
    .argument('[args...]', 'its arguments (put -- before the program when they hold options)')
    .option('--all', 'DAXVM_MMAP=all: every shared mapping of a daxvm file takes the DaxVM path, flags or not')
    .option('--debug', 'DAXVM_DEBUG=1: one line per decision on stderr')
    .passThroughOptions()
    .action(async (prog: string, args: string[], o: { all?: boolean; debug?: boolean }) =>
      run('run', EXIT.FAILURE, async () => (await import('./cmd-run.js')).cmdRun(prog, args, o)));

  program.command('preload-path')
    .description('print the path of the preload library, for LD_PRELOAD=$(daxvm preload-path) PROGRAM')
    .action(async () => run('preload-path', EXIT.FAILURE, async () => (await import('./cmd-run.js')).cmdPreloadPath()));

  program.command('install-helper')
    .description('install /sbin/mount.fuse.daxvm so mount -t fuse.daxvm and fstab work (as root)')
    .option('--dir <dir>', 'install into this directory instead of /sbin')
    .option('--remove', 'remove the helper')
    .action(async (o: { dir?: string; remove?: boolean }) =>
      run('install-helper', EXIT.FAILURE, async () => (await import('./cmd-install-helper.js')).cmdInstallHelper(o)));
}

/** --version: what a bug report needs, each on its own line. */
async function versions(): Promise<string> {
  let libfuse: string;
  try {
    libfuse = (await import('../fuse/lowlevel.js')).libfuseVersion();
  } catch (err) {
    libfuse = `not loaded (${(err as Error).message.split('\n')[0]})`;
  }
  return `daxvm ${version()}\nnode ${process.version}\nlibfuse ${libfuse}\npool format ${FORMAT_VERSION}\n`;
}

async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(await versions());
    process.exit(EXIT.OK);
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help, --version: 0. Anything else commander refuses is a usage error: 2.
      process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    }
    throw err;
  }
}

await main(process.argv);

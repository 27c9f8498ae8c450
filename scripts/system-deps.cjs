#!/usr/bin/env node
// Installs the Debian packages daxvm needs, when they are missing.
//
//   node scripts/system-deps.cjs            install what is missing (root), or say how
//   node scripts/system-deps.cjs --check    only report; exit 1 when something is missing
//   node scripts/system-deps.cjs --strict   like the default, but exit 1 when it could not
//                                           install (also when CI=true: .ci/run's npm install)
//
// In the repo (test/ is there) it also brings what the test suite uses (fio,
// attr); installed as a package, only what daxvm builds and runs with.
//
// Wired as package.json "preinstall": npm 11 runs it after the dependencies
// are installed and before the root's own "install" script (node-gyp, whose
// daxvm_fuse target needs libfuse3-dev and pkg-config), so a plain `npm
// install` as root on a fresh machine works. .ci/run still runs it first, and
// strictly. Debian's fuse3 Breaks fuse (libfuse 2's fusermount): installing
// fuse3 removes it, and its fusermount3 answers as fusermount too.
//
// Plain CommonJS with no dependencies, so that it runs before node_modules exists.
'use strict';

const { spawnSync } = require('node:child_process');

/** package -> why we need it */
const PACKAGES = {
  fuse3: 'fusermount3 (and fusermount), /etc/fuse.conf (mount and unmount as a user)',
  'libfuse3-dev': 'libfuse 3 and its headers, for the daemon\'s binding (build/Release/daxvm_fuse.node)',
  'pkg-config': 'finds libfuse 3 when building that binding',
};

/** What the test suite uses besides: wanted in the repo only, not by a project that depends on daxvm. */
const TEST_PACKAGES = {
  fio: 'the test suite runs a short fio verify job',
  attr: 'setfattr/getfattr, used by the test suite',
};
if (require('node:fs').existsSync(require('node:path').join(__dirname, '..', 'test'))) Object.assign(PACKAGES, TEST_PACKAGES);

/** Build tools node-gyp needs (native-shim): package -> command that proves it is there. */
const TOOLS = {
  make: 'make',
  'g++': 'g++',
  python3: 'python3',
};

const args = new Set(process.argv.slice(2));
const checkOnly = args.has('--check');
const strict = args.has('--strict') || process.env.CI === 'true';

function log(msg) {
  process.stderr.write(`daxvm system-deps: ${msg}\n`);
}

function has(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  return r.status === 0;
}

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && /install ok installed/.test(r.stdout);
}

function main() {
  if (process.env.DAXVM_SKIP_SYSTEM_DEPS === '1') {
    log('skipped (DAXVM_SKIP_SYSTEM_DEPS=1)');
    return 0;
  }
  if (process.platform !== 'linux') {
    log(`daxvm needs Linux with FUSE; this is ${process.platform}. Nothing installed.`);
    return 0;
  }
  if (!has('dpkg-query') || !has('apt-get')) {
    log('not a Debian-like system (no dpkg/apt-get). Install by hand: FUSE 3 (libfuse 3, its');
    log('headers and fusermount3), pkg-config, and for the tests fio and attr.');
    return 0;
  }

  const missing = Object.keys(PACKAGES).filter((p) => !installed(p));
  for (const [pkg, cmd] of Object.entries(TOOLS)) {
    // a command found anywhere on PATH will do (python3 may come from pyenv)
    if (!has(cmd)) {
      missing.push(pkg);
      PACKAGES[pkg] = `${cmd}, for node-gyp builds`;
    }
  }
  if (missing.length === 0) {
    if (checkOnly) log('all present: ' + Object.keys(PACKAGES).join(' '));
    return 0;
  }
  for (const p of missing) log(`missing ${p}: ${PACKAGES[p]}`);

  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (checkOnly) {
    log(`to install: ${cmd}`);
    return 1;
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    log('not root, so not installing. Run:');
    log(`  sudo sh -c '${cmd}'`);
    return strict ? 1 : 0;
  }

  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: ['ignore', 'inherit', 'inherit'], env };
  log('apt-get update');
  const up = spawnSync('apt-get', ['update'], opts);
  if (up.status !== 0) log(`apt-get update failed (exit ${up.status}); trying the install anyway`);
  log(`apt-get install -y ${missing.join(' ')}`);
  const inst = spawnSync(
    'apt-get',
    ['install', '-y', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', ...missing],
    opts,
  );
  const still = missing.filter((p) => !installed(p));
  if (inst.status !== 0 || still.length > 0) {
    log(`apt-get install failed (exit ${inst.status}); still missing: ${still.join(' ') || '(none)'}`);
    log(`install them by hand: ${cmd}`);
    return strict ? 1 : 0;
  }
  log('installed: ' + missing.join(' '));
  return 0;
}

process.exitCode = main();

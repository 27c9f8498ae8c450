#!/usr/bin/env node
// daxvm's install step (package.json "install"). npm runs it after the
// package's own preinstall (scripts/system-deps.cjs: the compiler, libfuse3's
// headers, pkg-config), so everything that compiles is built here, in order:
//
//   1. our native code: node-gyp rebuild (binding.gyp: the native shim, the
//      daemon's FUSE binding, daxvm_fuse, and the preload library for C
//      programs, libdaxvm-preload.so);
//   2. @riaskov/mmap-io, when its binary is missing: in this repo its own
//      install script is denied (package.json allowScripts), because npm runs
//      dependencies' scripts BEFORE the root's preinstall, when a fresh
//      machine has no compiler yet. Installed as a dependency, npm builds it
//      (the user's project decides) and this step finds it built;
//   3. esbuild (tsx's compiler, a devDependency: the tests load through
//      tsx), when installed: its install script, denied like every
//      dependency's (see 2), only checks its platform binary, which npm brings
//      as an optional dependency (@esbuild/<platform>). Run here, as npm would;
//   4. in the repo (src/ and TypeScript are there): the TypeScript build. An
//      installed package ships dist/ (built by prepack) and compiles nothing.
//
// Plain CommonJS, no dependencies of ours.
'use strict';

const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function run(what, cmd, args, cwd = root) {
  process.stderr.write(`daxvm install: ${what}\n`);
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`daxvm install: ${what} failed (${r.error ? r.error.message : `exit ${r.status}`}); ` +
      'the system packages it needs: node scripts/system-deps.cjs --check\n');
    process.exit(r.status || 1);
  }
}

/** node-gyp as npm hands it to install scripts (npm_config_node_gyp), else from PATH. */
function nodeGyp(args, cwd) {
  const js = process.env.npm_config_node_gyp;
  return js && existsSync(js) ? [process.execPath, [js, ...args], cwd] : ['node-gyp', args, cwd];
}

// `npx daxvm` in the repo links the project into npx's cache and runs this script again:
// nothing to build when it is built already (a first npx took 37 s rebuilding it all).
const built = ['build/Release/daxvm_shim.node', 'build/Release/daxvm_fuse.node', 'build/Release/libdaxvm-preload.so', 'dist/cli/main.js'].every((f) => existsSync(path.join(root, f)));
if (process.env.npm_command === 'exec' && built) process.exit(0);

// One compiler per core (node-gyp's make -j), unless the user chose with JOBS: the same build, and on
// 2 cores its ~20 s of compiler CPU takes about half the time (the package test's install: 52.9 -> 46.6 s).
const [cmd, args] = nodeGyp(['rebuild', ...(process.env.JOBS ? [] : ['--jobs', 'max'])]);
run('building the native shim, the FUSE binding and the preload library (node-gyp)', cmd, args);

let mmapIo;
try {
  mmapIo = path.dirname(require.resolve('@riaskov/mmap-io/package.json', { paths: [root] }));
} catch {
  mmapIo = undefined; // not installed (npm --omit=optional or a broken tree): the library says so when it needs it
}
if (mmapIo) {
  const abi = `node-v${process.versions.modules}-${process.platform}-${process.arch}`;
  if (!existsSync(path.join(mmapIo, 'build', 'binding', 'Release', abi, 'mmap_io.node'))) {
    const preGyp = require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', { paths: [mmapIo] });
    run('building @riaskov/mmap-io from source', process.execPath, [preGyp, 'rebuild', '--build-from-source'], mmapIo);
  }
}

let esbuild;
try {
  esbuild = path.dirname(require.resolve('esbuild/package.json', { paths: [root] }));
} catch {
  esbuild = undefined; // no devDependencies (an installed package): nothing loads TypeScript through it
}
if (esbuild && existsSync(path.join(esbuild, 'install.js'))) {
  run('checking esbuild\'s binary (its install script)', process.execPath, [path.join(esbuild, 'install.js')], esbuild);
}

if (existsSync(path.join(root, 'src')) && existsSync(path.join(root, 'tsconfig.json'))) {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    tsc = undefined;
  }
  if (tsc) {
    // From an empty dist/: no output of a source that is gone (its map would point at nothing).
    require('node:fs').rmSync(path.join(root, 'dist'), { recursive: true, force: true });
    run('compiling TypeScript (dist/)', process.execPath, [tsc, '-p', 'tsconfig.json']);
    require('node:fs').chmodSync(path.join(root, 'dist', 'cli', 'main.js'), 0o755);
  }
  else if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    process.stderr.write('daxvm install: no dist/ and no TypeScript to build it: install with devDependencies (npm install)\n');
    process.exit(1);
  }
}

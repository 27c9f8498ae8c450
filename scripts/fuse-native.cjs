#!/usr/bin/env node
// Makes sure the @cocalc/fuse-native addon that Node loads is built from the
// patched source. patches/@cocalc+fuse-native+<version>.patch (applied by
// patch-package) fixes its C glue: null paths for open files that libfuse can
// no longer name (flag_nullpath_ok), utimens with one time alone (UTIME_OMIT)
// or UTIME_NOW (flag_utime_omit_ok), the real mtime (it passed atime twice),
// names as raw bytes (latin1 strings, not UTF-8 decoded), and fallocate
// passed on (libfuse 2.9's op, which the unpatched glue leaves out).
//
//   node scripts/fuse-native.cjs          rebuild when the addon that loads lacks the patch
//   node scripts/fuse-native.cjs --check  only report; exit 1 when it lacks the patch
//   node scripts/fuse-native.cjs --force  rebuild in any case
//
// Wired in package.json "postinstall", after patch-package: npm builds the
// addon from the unpatched source while it installs the dependencies, before
// the root package's postinstall applies the patch, so it is built again here
// (node-gyp rebuild, into build/Release, which node-gyp-build loads first).
// Idempotent: a second run finds the patched addon and does nothing.
//
// Run it through npm (`npm run rebuild:fuse-native`) so that node-gyp gets
// npm's settings (nodedir), as it does during `npm install`.
'use strict';

const { spawnSync } = require('node:child_process');
const { dirname } = require('node:path');

const args = new Set(process.argv.slice(2));
const NAME = '@cocalc/fuse-native';

let pkgDir;
try {
  pkgDir = dirname(require.resolve(`${NAME}/package.json`));
} catch {
  console.error(`fuse-native: ${NAME} is not installed (run npm install)`);
  process.exit(1);
}

/** Whether the addon that a fresh Node process loads has the patch (its exported feature flags). */
function patched() {
  const r = spawnSync(process.execPath, ['-e', `
    let ok = false;
    try { const f = require(${JSON.stringify(pkgDir)}); ok = f.FEATURE_NULLPATH_UTIME_OMIT === true && f.FEATURE_RAW_NAMES === true && f.FEATURE_FALLOCATE === true; } catch (e) { console.error(e.message); }
    process.exit(ok ? 0 : 1);`], { stdio: ['ignore', 'ignore', 'inherit'] });
  return r.status === 0;
}

/** node-gyp as npm provides it to lifecycle scripts (on PATH), else the devDependency's. */
function nodeGyp() {
  if (spawnSync('node-gyp', ['--version'], { stdio: 'ignore' }).status === 0) return ['node-gyp'];
  return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
}

if (args.has('--check')) {
  const ok = patched();
  console.log(ok ? `fuse-native: ${NAME} is patched` : `fuse-native: ${NAME} lacks the patch (run npm install)`);
  process.exit(ok ? 0 : 1);
}

if (!args.has('--force') && patched()) {
  console.log(`fuse-native: ${NAME} is patched and built`);
  process.exit(0);
}

console.log(`fuse-native: building ${NAME} from the patched source`);
const [cmd, ...pre] = nodeGyp();
const r = spawnSync(cmd, [...pre, 'rebuild'], { cwd: pkgDir, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`fuse-native: node-gyp rebuild failed in ${pkgDir} (exit ${r.status ?? r.signal})`);
  process.exit(1);
}
if (!patched()) {
  console.error(`fuse-native: rebuilt, but the addon that loads still lacks the patch: did patch-package apply patches/?`);
  process.exit(1);
}
console.log(`fuse-native: ${NAME} rebuilt with the patch`);

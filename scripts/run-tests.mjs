#!/usr/bin/env node
// Runs the test suite with tap and closes with ONE plain line:
//
//   N passed, N failed[, N skipped]
//
// The counts are ASSERTIONS (tap test points that are leaves: t.equal, t.ok,
// ...), the same unit as tap's own "Asserts:" summary. A subtest's closing point
// is not counted again, except when the subtest failed with no failing
// assertion inside it (a test file that crashed, exited non-zero, or was
// killed by its timeout after its asserts passed): that counts as one failure,
// so a broken file can never hide behind green asserts. `# TODO` points count
// as skipped.
//
//   node scripts/run-tests.mjs                  every test/**/*.test.ts
//   node scripts/run-tests.mjs test/foo.test.ts just these (extra tap flags may follow --)
//
// Raw TAP of the run is kept in .tap/last-run.tap. Exit code: 0 when nothing
// failed (and at least one assertion ran), 1 otherwise.
//
// Test files load through tsx (package.json "tap": the @tapjs/typescript
// plugin, i.e. ts-node, off; `--import=tsx` on every test process): tsx's
// esbuild transpiles a file and the src/ it imports in about 1.5 s of CPU
// less than ts-node in transpile-only mode, at every one of the suite's
// files. The first run after `npm install` rebuilds tap's test class for the
// changed plugin list (once, ~15 s). Types are still checked by
// `npm run typecheck:tests` (tsc), as before.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const { Parser } = require('tap-parser');

/** Per test file: generous, mount tests need seconds, the big ones a minute or two. */
const FILE_TIMEOUT_S = Number(process.env.DAXVM_TEST_TIMEOUT ?? 600);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name === 'helpers' || name === 'fixtures' || name.startsWith('.')) continue;
      out.push(...findTests(p));
    } else if (name.endsWith('.test.ts')) {
      out.push(relative(root, p));
    }
  }
  return out.sort();
}

const argv = process.argv.slice(2);
const dd = argv.indexOf('--');
const fileArgs = dd >= 0 ? argv.slice(0, dd) : argv;
const tapExtra = dd >= 0 ? argv.slice(dd + 1) : [];
const files = fileArgs.length ? fileArgs : findTests(join(root, 'test'));
if (files.length === 0) {
  console.log('no test files found under test/');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

mkdirSync(join(root, '.tap'), { recursive: true });
// Written under a per-run name and renamed at the end: two runs in one
// checkout do not mix their output.
const rawPath = join(root, '.tap', 'last-run.tap');
const rawTmp = join(root, '.tap', `run-${process.pid}.tap`);
const raw = createWriteStream(rawTmp);

const tapBin = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
const tapArgs = [
  tapBin,
  '--reporter=tap',
  '--disable-coverage',
  `--timeout=${FILE_TIMEOUT_S}`,
  '--no-color',
  // Two files at a time on 2 cores (tap's default leaves a core free when it has 4 or fewer: one at a time here).
  `--jobs=${Math.max(1, availableParallelism())}`,
  ...tapExtra,
  ...files,
];

const started = Date.now();
const counts = { pass: 0, fail: 0, skip: 0 };
/** Failures to print at the end: { path: string[], diag } */
const failures = [];

/**
 * Walk a parser and, through 'child' events, every subtest below it. tap-parser
 * emits 'child' when "# Subtest: NAME" starts, then the child's own points,
 * then (in the parent) the point that closes the subtest.
 */
function attach(parser, path, isRoot) {
  const state = { leafFails: 0, pendingChild: null };
  parser.on('child', (child) => {
    const childState = attach(child, [...path, child.name], false);
    state.pendingChild = { child, childState };
  });
  parser.on('assert', (res) => {
    const pc = state.pendingChild;
    state.pendingChild = null;
    if (pc && pc.child.name === res.name) {
      state.leafFails += pc.childState.leafFails;
      if (isRoot) fileDone(res.name, res.ok, res.time);
      if (!res.ok && !res.skip && !res.todo && pc.childState.leafFails === 0) {
        counts.fail++;
        state.leafFails++;
        failures.push({ path: [...path, res.name], diag: res.diag, note: 'failed with no failing assertion inside' });
      }
      return;
    }
    if (pc) {
      // A subtest whose closing point never came (tap replaces it after another
      // file timed out); its own points were counted already.
      state.leafFails += pc.childState.leafFails;
      if (isRoot) fileDone(pc.child.name, pc.childState.leafFails === 0, undefined, 'closing point lost');
    }
    if (res.skip || res.todo) counts.skip++;
    else if (res.ok) counts.pass++;
    else {
      counts.fail++;
      state.leafFails++;
      failures.push({ path: [...path, res.name], diag: res.diag });
    }
    if (isRoot) fileDone(res.name, res.ok, res.time);
  });
  return state;
}

const fileResults = [];
function fileDone(name, ok, timeMs, note) {
  fileResults.push({ name, ok });
  const secs = timeMs === undefined ? '' : ` (${(timeMs / 1000).toFixed(1)}s)`;
  process.stdout.write(`${ok ? 'ok    ' : 'FAILED'} ${name}${secs}${note ? ` [${note}]` : ''}\n`);
}

const parser = new Parser();
attach(parser, [], true);
let bailedOut = null;
parser.on('bailout', (reason) => {
  bailedOut = reason || 'bail out';
});

const proc = spawn(process.execPath, tapArgs, {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0', TAP_COLOR: '0' },
});
proc.stdout.on('data', (chunk) => {
  raw.write(chunk);
  parser.write(chunk);
});

const code = await new Promise((res) => proc.on('close', (c, sig) => res(c ?? (sig ? 128 : 1))));
parser.end();
await new Promise((r) => raw.end(r));
renameSync(rawTmp, rawPath);

const elapsed = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) {
  console.log('\nFailures:');
  for (const f of failures) {
    console.log(`  not ok: ${f.path.filter(Boolean).join(' > ')}${f.note ? ` (${f.note})` : ''}`);
    if (f.diag) {
      const lines = JSON.stringify(f.diag, null, 2).split('\n').slice(0, 40);
      for (const l of lines) console.log('      ' + l);
    }
  }
}
if (bailedOut) {
  console.log(`bailed out: ${bailedOut}`);
  counts.fail++;
}
if (code !== 0 && counts.fail === 0) {
  // tap says the run failed but no point said so (e.g. tap itself crashed).
  console.log(`tap exited with code ${code} without a failing test point`);
  counts.fail++;
}
const filesFailed = fileResults.filter((f) => !f.ok).length;
console.log(
  `\ntest files: ${fileResults.length - filesFailed} ok, ${filesFailed} not ok, ` +
    `${elapsed}s; raw TAP in ${relative(process.cwd(), rawPath) || rawPath}`,
);
if (counts.pass + counts.fail === 0) {
  console.log('no assertion ran');
  counts.fail++;
}
console.log(`${counts.pass} passed, ${counts.fail} failed${counts.skip ? `, ${counts.skip} skipped` : ''}`);
process.exit(counts.fail > 0 ? 1 : 0);

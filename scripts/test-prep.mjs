#!/usr/bin/env node
// `npm test`'s first step: `npm run build` (dist/, which the tests run) and
// `npm run typecheck:tests` (tsc over src/ and test/), side by side, and with
// them tap's own build when tap's test class was built for another plugin list
// than package.json's "tap" asks (after `npm install`: see run-tests.mjs).
// Each is one single-threaded compiler of ~10 s of CPU: one after the other
// they kept one core idle for half a minute before the first test file.
// Output of each is printed whole when it ends. Exit code: non-zero when any
// failed, and then the tests do not run.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.env.npm_execpath;

/** An npm script: through the npm that runs us (npm_execpath), else npm from PATH. */
const npmRun = (script) => (npm ? [process.execPath, [npm, 'run', '--silent', script]] : ['npm', ['run', '--silent', script]]);

/**
 * Whether tap would rebuild its test class before the first file: the plugin
 * names built in (its generated `signature`) differ from package.json's
 * "tap".plugin ("!name" removes a default one). Only a hint: when it cannot
 * tell (another tap layout), tap still rebuilds by itself when it must.
 */
function tapNeedsBuild() {
  try {
    const wanted = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).tap?.plugin ?? [];
    const built = readFileSync(join(root, 'node_modules', '@tapjs', 'test', 'test-built', 'dist', 'esm', 'index.js'), 'utf8');
    const sig = /export const signature = `([^`]*)`/.exec(built)?.[1]?.split('\n') ?? [];
    return wanted.some((p) => (p.startsWith('!') ? sig.includes(p.slice(1)) : !sig.includes(p)));
  } catch {
    return false;
  }
}

const steps = [
  ['build', ...npmRun('build')],
  ['typecheck:tests', ...npmRun('typecheck:tests')],
];
if (tapNeedsBuild()) steps.push(['tap build', process.execPath, [join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs'), 'build']]);

const results = await Promise.all(
  steps.map(
    ([name, cmd, args]) =>
      new Promise((res) => {
        const started = Date.now();
        const p = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('error', (err) => (out += `${err.message}\n`)); // 'close' follows
        p.on('close', (code, sig) => {
          const secs = ((Date.now() - started) / 1000).toFixed(1);
          process.stdout.write(`${code === 0 ? 'done  ' : 'FAILED'} ${name} (${secs}s)\n${out}`);
          res({ name, code: code ?? (sig ? 128 : 1) });
        });
      }),
  ),
);
const failed = results.filter((r) => r.code !== 0);
if (failed.length) {
  console.log(`test-prep: ${failed.map((r) => r.name).join(', ')} failed`);
  process.exit(1);
}

// The pool's flock: a second exclusive open is refused, in this process (flock
// is per open file description, and every Pool.open opens the file anew) and
// from another process. This file also serves as that other process.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from '../src/media/pool.js';

const HELD = 'DAXVM-TEST-POOL-HELD';

if (process.env.DAXVM_TEST_HOLD_POOL) {
  // Child: hold the pool until the parent closes our stdin.
  const pool = Pool.open(process.env.DAXVM_TEST_HOLD_POOL, {
    readOnly: process.env.DAXVM_TEST_HOLD_MODE === 'shared',
  });
  process.stdout.write(`\n${HELD}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    pool.close();
    process.exit(0);
  });
} else {
  runTests();
}

function runTests(): void {
  t.test('in-process: exclusive and shared locks', (t) => {
    const dir = t.testdir();
    const p = path.join(dir, 'a.pool');
    const a = Pool.create(p, 64 * 1024); // create holds it exclusively
    t.throws(() => Pool.open(p), { code: 'ELOCKED', message: `pool ${p} is in use (mounted?)` });
    t.throws(() => Pool.open(p, { readOnly: true }), { code: 'ELOCKED' }, 'shared waits for exclusive');
    t.throws(() => Pool.create(p, 64 * 1024, { force: true }), { code: 'ELOCKED' },
      'mkfs --force never truncates a pool in use');
    t.equal(fs.statSync(p).size, 64 * 1024);
    const none = Pool.open(p, { readOnly: true, lock: 'none' });
    t.equal(none.size, 64 * 1024, "lock: 'none' does not ask");
    none.close();
    a.close();

    const r1 = Pool.open(p, { readOnly: true });
    const r2 = Pool.open(p, { readOnly: true });
    t.pass('two shared opens');
    t.throws(() => Pool.open(p), { code: 'ELOCKED' }, 'exclusive waits for shared');
    r1.close();
    t.throws(() => Pool.open(p), { code: 'ELOCKED' }, 'still one reader');
    r2.close();
    const b = Pool.open(p);
    t.pass('free again after close');
    b.close();
    t.end();
  });

  t.test('another process holding the pool', async (t) => {
    const dir = t.testdir();
    const p = path.join(dir, 'a.pool');
    Pool.create(p, 64 * 1024).close();

    for (const mode of ['exclusive', 'shared'] as const) {
      const child = spawn(process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url)], {
          env: { ...process.env, DAXVM_TEST_HOLD_POOL: p, DAXVM_TEST_HOLD_MODE: mode },
          stdio: ['pipe', 'pipe', 'inherit'],
        });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes(HELD)) resolve();
        });
        child.on('exit', () => reject(new Error(`child exited before holding the pool: ${out}`)));
      });
      t.throws(() => Pool.open(p), { code: 'ELOCKED' }, `child holds it ${mode}: exclusive refused`);
      if (mode === 'shared') {
        const r = Pool.open(p, { readOnly: true });
        t.pass('shared beside a shared child');
        r.close();
      } else {
        t.throws(() => Pool.open(p, { readOnly: true }), { code: 'ELOCKED' }, 'shared refused too');
      }
      child.stdin.end();
      t.equal(await exited, 0, 'child closed cleanly');
      const again = Pool.open(p);
      t.pass(`free once the ${mode} holder is gone`);
      again.close();
    }
  });
}

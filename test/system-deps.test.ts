// npm install's first step (scripts/system-deps.cjs, the preinstall) on a
// machine that lacks the Debian packages, run by a user who is not root: it
// installs nothing, says what is missing and prints the one apt-get line to
// run, and lets npm go on (exit 0; strictly, as CI runs it: exit 1). The
// packages are made to look missing by a dpkg-query that knows none. And
// no dependency builds before that step (npm runs theirs first).
import t from 'tap';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, tempDir } from './helpers/mount.js';

t.test('not root, packages missing: the one apt-get line, and npm goes on', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const bin = join(dir, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  writeFileSync(join(bin, 'dpkg-query'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const asUser = (env: string[]) => run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', '-u', 'CI',
    `PATH=${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...env, process.execPath, join(ROOT, 'scripts', 'system-deps.cjs')], { cwd: dir });

  const r = asUser([]);
  t.equal(r.status, 0, `npm install goes on\n${r.summary}`);
  for (const p of ['fuse3', 'libfuse3-dev', 'pkg-config']) t.match(r.stderr, new RegExp(`missing ${p}: `), `says ${p} is missing, and why it is needed`);
  const lines = r.stderr.split('\n').filter((l) => /apt-get/.test(l));
  t.equal(lines.length, 1, `one apt-get line\n${r.stderr}`);
  t.match(lines[0] ?? '', /sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends fuse3 libfuse3-dev pkg-config( fio attr)?'$/, 'that can be pasted as it is');
  t.equal(asUser(['CI=true']).status, 1, 'strict (CI=true, as .ci/run): exit 1');
});

t.test('no dependency builds before the preinstall: every install script but ours is denied and built by scripts/install.cjs', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
  const scripted = Object.entries(lock.packages).filter(([k, v]) => k !== '' && v.hasInstallScript).map(([k]) => k.replace(/^.*node_modules\//, ''));
  t.ok(scripted.length > 0, `dependencies with install scripts: ${scripted.join(', ')}`);
  for (const name of scripted) {
    t.equal(pkg.allowScripts?.[name], false, `${name}: its install script is denied (npm would run it before our preinstall brings a compiler)`);
    t.match(readFileSync(join(ROOT, 'scripts', 'install.cjs'), 'utf8'), name, `${name}: scripts/install.cjs builds it after the preinstall`);
  }
});

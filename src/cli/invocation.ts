/**
 * How the user runs daxvm where they are, so that every hint can be pasted
 * as printed: `daxvm` when the `daxvm` on their PATH is this one (a global
 * install), `npx daxvm` in a project that has it (this repo, or one that has
 * it as a dependency; also whenever npm started us), else `node
 * /path/to/dist/cli/main.js`. Found out, not guessed: the PATH and the
 * project are looked at.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { mainScript, packageRoot } from '../core/paths.js';

/** Every command of the CLI, for rewriting "daxvm CMD" in hints. */
const COMMANDS = ['mkfs', 'mount', 'umount', 'unmount', 'fsck', 'info', 'age', 'doctor', 'bench',
  'install-helper', 'test-crash', 'test-fuzz', 'test-load', 'run', 'preload-path', '--help', '--version'];

function real(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** A project at or above `dir` whose `npx daxvm` runs this CLI: it is this package, or has it in node_modules/.bin. */
function inProject(dir: string, self: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (real(path.join(d, 'node_modules', '.bin', 'daxvm')) === self) return true;
    const pkg = path.join(d, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'daxvm' && real(d) === real(packageRoot())) return true;
      } catch { /* not a package.json we can read: look further up */ }
    }
    if (path.dirname(d) === d) return false;
  }
}

let cached: string | undefined;

/** The words that run this CLI where the user is: 'daxvm', 'npx daxvm' or 'node /abs/dist/cli/main.js'. */
export function invocation(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (cached !== undefined && env === process.env) return cached;
  const self = mainScript();
  let words: string;
  if (env.npm_command !== undefined || env.npm_lifecycle_event !== undefined) {
    words = 'npx daxvm'; // npm started us (npx, npm start, npm run): the user is in a project that has it
  } else if ((env.PATH ?? '').split(':').some(d => d !== '' && real(path.join(d, 'daxvm')) === self)) {
    words = 'daxvm';
  } else if (inProject(cwd, self)) {
    words = 'npx daxvm';
  } else {
    words = `node ${self}`;
  }
  if (env === process.env) cached = words;
  return words;
}

/** Text with every "daxvm CMD" (a command the user could paste) spelled as `invocation()` says. */
export function pasteable(text: string, words = invocation()): string {
  if (words === 'daxvm') return text;
  // Only where a command starts (line start, "run ", after ':', ';', '(' or a quote), so prose such as "a daxvm mount" stays.
  const re = new RegExp(`(^|run |then |&& |[:;] |[('"\`])(?:sudo )?daxvm (?=(?:${COMMANDS.join('|')})(?:\\s|$|[)'"\`]))`, 'gm');
  return text.replace(re, (m, pre: string) => `${pre}${m.includes('sudo ') ? 'sudo ' : ''}${words} `);
}

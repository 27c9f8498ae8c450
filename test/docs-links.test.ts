// The pages a newcomer reads: every link in README.md, docs/ and the folder
// READMEs resolves to a file of this repo (none points outside it, as the
// old ../shared/DESIGN.md did), and the front page starts with what a
// newcomer needs, in that order, the quick start near the top.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/mount.js';

/** README.md, docs/*.md and every README.md under src/. */
function pages(): string[] {
  const out = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${dir}/${e.name}`);
      else if (e.name === 'README.md') out.push(`${dir}/${e.name}`);
    }
  };
  walk('src');
  return out;
}

t.test('every link resolves inside the repo', async (t) => {
  const bad: string[] = [];
  let links = 0;
  for (const page of pages()) {
    const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.replace(/#.*$/, '');
      if (target === '' || /^(https?|mailto):/.test(target)) continue;
      links++;
      const file = resolve(ROOT, dirname(page), target);
      if (relative(ROOT, file).startsWith('..') || target.startsWith('/')) bad.push(`${page}: ${m[1]} leaves the repo`);
      else if (!existsSync(file)) bad.push(`${page}: ${m[1]} does not exist`);
    }
  }
  t.ok(links > 20, `links checked: ${links}`);
  t.same(bad, [], 'no link is broken or leaves the repo');
});

t.test('the front page: install, quick start, the library, the CLI, where the rest is', async (t) => {
  const heads = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n')
    .map((l, i) => ({ l, line: i + 1 })).filter((h) => h.l.startsWith('## '));
  const at = (re: RegExp): number => heads.findIndex((h) => re.test(h.l));
  const order = [/^## Install/, /^## Quick start/, /^## The library/, /^## The CLI/, /^## Where the rest is/].map(at);
  t.ok(order.every((i) => i >= 0), `each section is there\n${heads.map((h) => h.l).join('\n')}`);
  t.same([...order].sort((a, b) => a - b), order, 'in that order');
  t.ok((heads[order[1]!]?.line ?? Infinity) <= 40, `the quick start is near the top (line ${heads[order[1]!]?.line})`);
});

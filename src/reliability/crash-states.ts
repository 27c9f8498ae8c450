/**
 * Crash exploration: the states of a barrier. A state names a subset of the
 * in-flight stores (a prefix of each page's stores): none, all, omit.i,
 * torn.i, only.i, order.j, rand.r (see crash.ts); the budget is shared out
 * over the barriers, and duplicates are skipped.
 */
import { mixSeed, rng } from './image.js';
import type { Barrier } from './crash-timeline.js';

export type Descriptor = Map<number, number>;

function signature(d: Descriptor): string {
  return [...d].filter(([, c]) => c > 0).sort((a, b) => a[0] - b[0]).map(([p, c]) => `${p}:${c}`).join(',');
}

/** The subset a state name stands for (null: not valid at this barrier). */
export function descriptorFor(b: Barrier, kind: string, arg: number, seed: number): Descriptor | null {
  const d: Descriptor = new Map();
  const all = (): void => b.pages.forEach((p, i) => d.set(p, b.counts[i]!));
  switch (kind) {
    case 'none': return d;
    case 'all': all(); return d;
    case 'omit':
      if (arg < 0 || arg >= b.pages.length) return null;
      all(); d.set(b.pages[arg]!, 0); return d;
    case 'torn':
      if (arg < 0 || arg >= b.pages.length || b.counts[arg]! < 2) return null;
      all(); d.set(b.pages[arg]!, b.counts[arg]! - 1); return d;
    case 'only':
      if (arg < 0 || arg >= b.pages.length) return null;
      d.set(b.pages[arg]!, b.counts[arg]!); return d;
    case 'order':
      if (arg < 1 || arg >= b.order.length) return null;
      for (let i = 0; i < arg; i++) d.set(b.order[i]!, (d.get(b.order[i]!) ?? 0) + 1);
      return d;
    case 'rand': {
      const r = rng(mixSeed(seed, b.index, arg, 0xc4a5));
      b.pages.forEach((p, i) => {
        const c = b.counts[i]!;
        const x = r();
        d.set(p, x < 0.4 ? 0 : x < 0.8 ? c : Math.floor(r() * (c + 1)));
      });
      return d;
    }
    default: return null;
  }
}

/** Deterministic candidates of a barrier, beyond none and all. */
function deterministicStates(b: Barrier): string[] {
  const out: string[] = [];
  const n = b.pages.length;
  if (n >= 2) for (let i = 0; i < n; i++) out.push(`omit.${i}`);
  for (let i = 0; i < n; i++) if (b.counts[i]! >= 2) out.push(`torn.${i}`);
  if (n >= 3) for (let i = 0; i < n; i++) out.push(`only.${i}`);
  for (let j = 1; j < b.order.length; j++) out.push(`order.${j}`);
  return out;
}

/** The states explored at a barrier, within `quota`, deduplicated. */
export function statesFor(b: Barrier, quota: number, seed: number): Array<{ name: string; d: Descriptor }> {
  const out: Array<{ name: string; d: Descriptor }> = [];
  const seen = new Set<string>();
  const tryAdd = (name: string): void => {
    if (out.length >= quota) return;
    const [kind, arg] = name.split('.');
    const d = descriptorFor(b, kind!, Number(arg ?? 0), seed);
    if (!d) return;
    const sig = signature(d);
    if (seen.has(sig)) return;
    seen.add(sig);
    out.push({ name: `${b.index}:${name}`, d });
  };
  if (!b.afterFull || b.index === 0) tryAdd('none');
  else seen.add(''); // the previous barrier's "all" was this image
  tryAdd('all');
  let rest = deterministicStates(b);
  if (rest.length > quota - out.length) {
    const r = rng(mixSeed(seed, b.index, 0x5a3));
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [rest[i], rest[j]] = [rest[j]!, rest[i]!];
    }
    rest = rest.slice(0, quota - out.length);
  }
  for (const s of rest) tryAdd(s);
  // Random subsets fill the share; give up after a run of duplicates.
  for (let r = 0, misses = 0; out.length < quota && b.pages.length >= 2 && misses < 50; r++) {
    const before = out.length;
    tryAdd(`rand.${r}`);
    misses = out.length > before ? 0 : misses + 1;
  }
  return out;
}

/** How many distinct images a barrier can give at most (Infinity: plenty). */
function capacity(b: Barrier): number {
  if (b.pages.length >= 2) return Infinity;
  return b.pages.length === 0 ? 1 : 1 + b.counts[0]!;
}

export function shareOut(barriers: Barrier[], budget: number): number[] {
  const quota = new Array<number>(barriers.length).fill(0);
  const order = barriers.map((b, i) => i).sort((a, b) => capacity(barriers[a]!) - capacity(barriers[b]!));
  let left = budget;
  order.forEach((i, k) => {
    const share = Math.max(1, Math.floor(left / (order.length - k)));
    const q = Math.min(capacity(barriers[i]!), share);
    quota[i] = q;
    left -= q;
  });
  return quota;
}

export function parseReplay(s: string): { barrier: number; name: string } {
  const m = /^(\d+):(none|all|(omit|torn|only|order|rand)\.\d+)$/.exec(s);
  if (!m) throw new Error(`--replay ${JSON.stringify(s)}: expected BARRIER:KIND[.N], as printed with a failure (e.g. 17:omit.3)`);
  return { barrier: Number(m[1]), name: m[2]! };
}

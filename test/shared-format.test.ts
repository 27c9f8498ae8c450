/**
 * The shared-memory layouts have one source for each language: TypeScript
 * (src/fuse/publish/layout.ts) and the C core's header
 * (native-shim/core/shared_format.h). This test fails when they disagree.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LEASES } from '../src/fuse/publish/layout.js';
import { ROOT } from './helpers/mount.js';

function cDefines(): Map<string, bigint> {
  const text = fs.readFileSync(join(ROOT, 'native-shim/core/shared_format.h'), 'utf8');
  const out = new Map<string, bigint>();
  for (const m of text.matchAll(/^#define (DAXVM_\w+) (0x[0-9a-fA-F]+|\d+)(?:ULL|U)?\b/gm)) out.set(m[1]!, BigInt(m[2]!));
  return out;
}

/** TS name -> C macro: LEASES.OFF_X -> DAXVM_LEASES_OFF_X, LEASES.SLOT_OFF_X -> DAXVM_LEASE_OFF_X. */
function macroOf(group: string, key: string): string {
  if (key.startsWith('SLOT_OFF_')) return `DAXVM_LEASE_${key.slice(5)}`;
  if (key === 'SLOT_SIZE' || key === 'COUNT_BITS' || key === 'START_BITS') return `DAXVM_LEASE_${key}`;
  return `DAXVM_${group}_${key}`;
}

t.test('the lease table: every TypeScript constant has its C macro, with the same value', async (t) => {
  const c = cDefines();
  const skip = new Set(['DEFAULT_SLOTS']); // the daemon's choice, not the format's: clients read the header
  let compared = 0;
  for (const [key, value] of Object.entries(LEASES)) {
    if (skip.has(key)) continue;
    const macro = macroOf('LEASES', key);
    t.equal(c.get(macro), BigInt(value), `${key} = ${macro}`);
    compared++;
  }
  t.ok(compared >= 15, `${compared} constants compared`);
  const known = new Set(Object.keys(LEASES).filter((k) => !skip.has(k)).map((k) => macroOf('LEASES', k)));
  const extra = [...c.keys()].filter((k) => k.startsWith('DAXVM_LEASE') && !known.has(k));
  t.same(extra, [], 'no C macro without its TypeScript constant');
});

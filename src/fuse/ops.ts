/** All operations, from the three groups. One place per op; `.daxvm/` paths go to control.ts. */
import type { DaxOps } from './binding.js';
import { Control } from './control.js';
import { attrOps } from './ops-attrs.js';
import { dataOps } from './ops-data.js';
import { nameOps } from './ops-names.js';
import type { MountState } from './state.js';

export function buildOps(state: MountState): DaxOps {
  const control = new Control(state);
  return { ...nameOps(state, control), ...dataOps(state, control), ...attrOps(state, control) };
}

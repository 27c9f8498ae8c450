/** All operations, from the three groups, one place per op. `.daxvm/` nodes go to control.ts. */
import { Control } from './control.js';
import type { LowLevelOps } from './lowlevel.js';
import { attrOps } from './ops-attrs.js';
import { dataOps } from './ops-data.js';
import { nameOps } from './ops-names.js';
import type { MountState } from './state.js';

export function buildOps(state: MountState): LowLevelOps {
  const control = new Control(state);
  return { ...nameOps(state, control), ...dataOps(state, control), ...attrOps(state, control) };
}

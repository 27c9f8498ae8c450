/** All operations, from the three groups. One place per op. */
import type { DaxOps } from './binding.js';
import { attrOps } from './ops-attrs.js';
import { dataOps } from './ops-data.js';
import { nameOps } from './ops-names.js';
import type { MountState } from './state.js';

export function buildOps(state: MountState): DaxOps {
  return { ...nameOps(state), ...dataOps(state), ...attrOps(state) };
}

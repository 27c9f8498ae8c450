/** The native shim's functions the publisher calls (the shim is loaded by core/native.ts). */
import { loadShim, type MappingShim } from '../../core/native.js';

export interface PublishShim extends MappingShim {
  /** A full memory barrier (the daemon's half of the lease ordering, docs/format.md). */
  fence(): void;
}

export const native = loadShim<PublishShim>();

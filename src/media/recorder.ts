/**
 * A MediaRecorder that keeps every event in order: for tests and for the
 * crash-state explorer, which replays prefixes of the write stream between
 * persist barriers.
 */
import type { MediaRecorder } from './types.js';

export type MediaEvent =
  | { kind: 'write'; offset: number; bytes: Buffer }
  | { kind: 'persist'; offset: number; length: number };

export class MemoryRecorder implements MediaRecorder {
  readonly events: MediaEvent[] = [];

  onWrite(offset: number, bytes: Buffer): void {
    this.events.push({ kind: 'write', offset, bytes });
  }

  onPersist(offset: number, length: number): void {
    this.events.push({ kind: 'persist', offset, length });
  }

  /** Forgets the events seen so far (e.g. after mkfs, before the step under test). */
  clear(): void {
    this.events.length = 0;
  }
}

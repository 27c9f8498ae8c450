/** Small helpers for output meant for people. */
import bytes from 'bytes';
import { CliError, EXIT } from './errors.js';

/** 4294967296 -> "4 GiB" (binary units, as `--size` takes them). */
export function formatBytes(n: number): string {
  const s = bytes.format(n, { unitSeparator: ' ', decimalPlaces: 2 }) ?? `${n} B`;
  return s.replace(/([KMGTP])B$/, '$1iB');
}

/**
 * Parse a size: 4G, 512M, 1.5T, 4GiB, 4gb, 4096 (bytes); binary units.
 * (bytes.parse alone reads "4G" as 4 bytes: it wants "4GB".)
 */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?\s*$/i.exec(s);
  const n = m ? bytes.parse(m[1] + (m[2] ? m[2].toLowerCase() + 'b' : 'b')) : null;
  if (n !== null && n > Number.MAX_SAFE_INTEGER) throw new CliError(`size '${s}' is too large (a size must be below 8 PiB, 2^53 bytes)`, EXIT.USAGE); // formatBytes rounds 2^53 - 1 up to '8 PiB'
  if (n === null || !Number.isSafeInteger(n) || n <= 0) {
    throw new CliError(`invalid size '${s}' (examples: 4G, 512M, 1T)`, EXIT.USAGE);
  }
  return n;
}

export function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

/** Rows of "label  value", labels padded to one width. */
export function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map(r => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/**
 * Columns of text two spaces apart: the first `left` columns (default 1)
 * flush left, the others (figures) flush right; a rule of dashes under the
 * head when asked. A row short of cells shows them empty.
 */
export function textTable(head: string[], rows: string[][], opts: { left?: number; rule?: boolean } = {}): string {
  const left = opts.left ?? 1;
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    widths.map((w, i) => (i < left ? (cells[i] ?? '').padEnd(w) : (cells[i] ?? '').padStart(w))).join('  ').trimEnd();
  const ruleLine = opts.rule ? [line(widths.map((w) => '-'.repeat(w)))] : [];
  return [line(head), ...ruleLine, ...rows.map(line)].join('\n');
}

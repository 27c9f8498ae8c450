/**
 * How the format modules describe a byte layout, so that one description
 * serves three readers: TypeScript (plain numeric constants destructured
 * from `.off`, so hot readers do no object lookups), the generated C header
 * (scripts/gen-format-header.mjs emits every exported `Layout` and
 * `Constants` object of src/core/format/*.ts), and the check of
 * docs/format.md (test/core-format.test.ts). A new format module needs
 * nothing but its exports: the generator and the check find it.
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'f64' | 'bytes';

export interface FieldSpec {
  readonly offset: number;
  readonly size: number;
  readonly type: FieldType;
  readonly doc: string;
}

export interface Field extends FieldSpec {
  /** snake_case, as the C struct member. */
  readonly name: string;
}

/** A checksum sealing bytes [from, to) of a record, stored in the u32 field `at`. */
export interface Seal {
  readonly algorithm: 'crc32c' | 'crc32';
  readonly from: number;
  readonly to: number;
  readonly at: string;
}

export interface Layout<K extends string = string> {
  readonly kind: 'daxvm-layout';
  /** snake_case: the C struct is `struct daxvm_<name>`, macros `DAXVM_<NAME>_...`. */
  readonly name: string;
  /** Bytes of the record (fields need not fill it: the rest is reserved, zero). */
  readonly size: number;
  readonly doc: string;
  readonly fields: readonly Field[];
  readonly seal?: Seal;
  /** Field offsets by name: destructure them into plain constants. */
  readonly off: { readonly [P in K]: number };
}

export interface Constants<V extends Readonly<Record<string, number | string>> = Readonly<Record<string, number | string>>> {
  readonly kind: 'daxvm-constants';
  readonly name: string;
  readonly doc: string;
  /** UPPER_SNAKE keys: the C macro is `DAXVM_<KEY>`. */
  readonly values: V;
}

const width = { u8: 1, u16: 2, u32: 4, u64: 8, f64: 8 } as const;
const scalar = (type: Exclude<FieldType, 'bytes'>) => (offset: number, doc: string): FieldSpec => ({ offset, size: width[type], type, doc });

export const u8 = scalar('u8');
export const u16 = scalar('u16');
export const u32 = scalar('u32');
export const u64 = scalar('u64');
export const f64 = scalar('f64');
export const bytes = (offset: number, size: number, doc: string): FieldSpec => ({ offset, size, type: 'bytes', doc });

const SNAKE = /^[a-z][a-z0-9_]*$/;

/**
 * A record of `size` bytes. Fields are listed in offset order and may not
 * overlap or run past the end; a layout that breaks this throws at load
 * time, so a mistake cannot reach the media.
 */
export function layout<const F extends Record<string, FieldSpec>>(
  name: string, size: number, doc: string, fields: F, seal?: Seal,
): Layout<Extract<keyof F, string>> {
  if (!SNAKE.test(name)) throw new Error(`layout name ${name}: not snake_case`);
  const list: Field[] = [];
  const off = {} as Record<string, number>;
  let end = 0;
  for (const [fieldName, spec] of Object.entries(fields)) {
    if (!SNAKE.test(fieldName)) throw new Error(`${name}.${fieldName}: not snake_case`);
    if (spec.offset < end || spec.offset + spec.size > size) throw new Error(`${name}.${fieldName}: at ${spec.offset}, overlaps or out of [0, ${size})`);
    end = spec.offset + spec.size;
    list.push({ name: fieldName, ...spec });
    off[fieldName] = spec.offset;
  }
  if (seal) {
    const at = list.find((f) => f.name === seal.at);
    if (!at || at.type !== 'u32' || seal.from < 0 || seal.to > size || seal.from >= seal.to) throw new Error(`${name}: bad seal`);
  }
  return Object.freeze({
    kind: 'daxvm-layout' as const, name, size, doc, fields: Object.freeze(list),
    ...(seal ? { seal } : {}), off: Object.freeze(off) as { readonly [P in Extract<keyof F, string>]: number },
  });
}

const UPPER = /^[A-Z][A-Z0-9_]*$/;

/** Numbers typed as `number`, not as their literal (a Set of modes is a Set<number>). */
type Widened<V> = { readonly [K in keyof V]: V[K] extends number ? number : V[K] };

/** Named numbers (and a few strings) of the format; the C side gets `#define DAXVM_<KEY>`. */
export function constants<const V extends Record<string, number | string>>(name: string, doc: string, values: V): Constants<Widened<V>> {
  if (!SNAKE.test(name)) throw new Error(`constants name ${name}: not snake_case`);
  for (const [k, v] of Object.entries(values)) {
    if (!UPPER.test(k)) throw new Error(`${name}.${k}: not UPPER_SNAKE`);
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`${name}.${k}: ${v} is not a safe integer`);
  }
  return Object.freeze({ kind: 'daxvm-constants' as const, name, doc, values: Object.freeze(values) as Widened<V> });
}

export function isLayout(x: unknown): x is Layout {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'daxvm-layout';
}

export function isConstants(x: unknown): x is Constants {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'daxvm-constants';
}

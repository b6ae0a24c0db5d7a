import { z } from 'zod';
import { AppError, fromZod } from '../platform/errors.js';

/** Parses service input; failures become VALIDATION_ERRORs naming the field (`input.email: ...`). */
export function validate<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod(parsed.error, prefix);
  return parsed.data;
}

/**
 * A schema factory that builds each schema once per argument list (a region, a byte limit):
 * zod compiles an object schema's parser on its first parse, so a schema built per request pays
 * that compilation on every request.
 */
export function schemaPer<A extends (string | number)[], S>(make: (...args: A) => S): (...args: A) => S {
  const made = new Map<string, S>();
  return (...args) => {
    const key = args.join('\u0000');
    let schema = made.get(key);
    if (!schema) made.set(key, (schema = make(...args)));
    return schema;
  };
}

/** Optional, with an explicit `null` (GraphQL sends them) read as "not given". */
export const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? undefined : v), schema.optional());

/** A date-time PostgreSQL and JavaScript both hold: years 1 to 9999 (`0000-01-01` and `99999` are not). */
export const inDateRange = (d: Date) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999;
export const dateRangeMessage = 'a date-time between the years 1 and 9999';

/** An update must change something: `{}` is a mistake, not a no-op that touches `updatedAt`. */
export const nonEmptyUpdate = <T extends z.ZodObject>(schema: T) =>
  schema.refine((v) => Object.values(v).some((x) => x !== undefined), { message: 'give at least one field to change' });

const NUL_MESSAGE = 'text may not contain NUL (\\u0000) characters';
// Parsed objects (zod's records among them) take such a key as their prototype: dropped, or worse, read through.
const PROTO_MESSAGE = 'a key named "__proto__" cannot be stored';
const SURROGATE_MESSAGE = 'text may not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff)';
/** Why text cannot be stored as it is: a NUL, or half of a surrogate pair (JSON, and so jsonb, refuses one). */
const textFault = (text: string) => (text.includes('\u0000') ? NUL_MESSAGE : text.isWellFormed() ? undefined : SURROGATE_MESSAGE);

/**
 * The first fault of a parsed JSON value, with its path: text holding a NUL character (PostgreSQL
 * text cannot store one) or an unpaired surrogate, a key named `__proto__`, or nesting deeper than `maxDepth`. Walks with an explicit stack, so a
 * value nested thousands of levels deep is refused instead of overflowing the call stack.
 */
export function jsonFault(value: unknown, maxDepth = Infinity): { path: string; message: string } | undefined {
  const pending: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const { value: v, path, depth } = item;
    if (typeof v === 'string') {
      const message = textFault(v);
      if (message) return { path, message };
      continue;
    }
    if (!v || typeof v !== 'object') continue;
    if (depth >= maxDepth) return { path, message: `nested deeper than ${maxDepth} levels` };
    const isArray = Array.isArray(v);
    for (const [key, child] of Object.entries(v)) {
      const childPath = isArray ? `${path}[${key}]` : path ? `${path}.${key}` : key;
      const message = key === '__proto__' ? PROTO_MESSAGE : textFault(key);
      if (message) return { path: childPath.toWellFormed(), message };
      pending.push({ value: child, path: childPath, depth: depth + 1 });
    }
  }
  return undefined;
}

/** Throws a VALIDATION_ERROR naming the path (under `field`) of the value's first fault. */
export function assertCleanJson(value: unknown, field: string, maxDepth?: number): void {
  const fault = jsonFault(value, maxDepth);
  if (!fault) return;
  const path = [field, fault.path].filter(Boolean).join(fault.path.startsWith('[') ? '' : '.');
  throw new AppError('VALIDATION_ERROR', `${path}: ${fault.message}`, { field: path });
}

/**
 * PostgreSQL text cannot hold NUL characters: anything carrying one is refused up front. The walk
 * of jsonFault without its paths: this runs on every row of an import, where building each key's
 * path was nearly a kilobyte of garbage a row.
 */
export function hasNul(value: unknown): boolean {
  const pending = [value];
  while (pending.length) {
    const v = pending.pop();
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return true;
      continue;
    }
    if (!v || typeof v !== 'object') continue;
    for (const key in v) {
      if (!Object.hasOwn(v, key)) continue;
      if (key.includes('\u0000')) return true;
      pending.push((v as Record<string, unknown>)[key]);
    }
  }
  return false;
}

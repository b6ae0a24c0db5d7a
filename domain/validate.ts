import { z } from 'zod';
import { fromZod } from '../platform/errors.js';

/** Parses service input; failures become VALIDATION_ERRORs naming the field (`input.email: ...`). */
export function validate<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod(parsed.error, prefix);
  return parsed.data;
}

/** Optional, with an explicit `null` (GraphQL sends them) read as "not given". */
export const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? undefined : v), schema.optional());

/** PostgreSQL text cannot hold NUL characters: anything carrying one is refused up front. */
export const hasNul = (value: unknown): boolean => JSON.stringify(value ?? null).includes('\\u0000');

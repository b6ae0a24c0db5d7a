import type { EntityManager } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';

/**
 * Live customers: merged and deleted profiles are in no list, segment or sync. Spelled as two
 * inequalities, the form the partial indexes on customers are declared with, so they apply.
 */
export const liveCustomer = (alias?: string) => {
  const status = alias ? `${alias}.status` : 'status';
  return `${status} <> 'MERGED' and ${status} <> 'DELETED'`;
};
export const LIVE_CUSTOMER = liveCustomer('c');

/** `text` as a literal LIKE/ILIKE pattern piece: its %, _ and \\ match themselves. */
export const escapeLike = (text: string) => text.replace(/[\\%_]/g, (ch) => `\\${ch}`);

/**
 * A PostgreSQL array literal, for one text parameter cast in SQL (`unnest(?::uuid[])`,
 * `= any(?::text[])`). MikroORM expands a JS array parameter into a list of parameters, which
 * breaks set-based statements; a literal keeps a whole column in one parameter.
 */
export function pgArray(values: readonly (string | number | boolean | null | undefined)[]): string {
  // A plain loop, escaping only the elements that need it (ids and times never do): the arrays
  // of an event batch's statements were a fifth of the API's CPU with a replace per element.
  let literal = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i) literal += ',';
    if (v === null || v === undefined) {
      literal += 'NULL';
      continue;
    }
    const text = String(v);
    literal += text.includes('\\') || text.includes('"') ? `"${text.replace(ARRAY_ESCAPED, '\\$&')}"` : `"${text}"`;
  }
  return literal + '}';
}
const ARRAY_ESCAPED = /[\\"]/g;

/**
 * Runs `sql` with its values bound as parameters ($1, $2, …; a JS array is one array parameter)
 * on the em's connection, within its transaction if it has one. em.execute inlines every value,
 * escaped, into the SQL text: for the column arrays of a batch of thousands of rows, building and
 * escaping that text costs more CPU and memory than running the statement.
 */
export async function executeBound<T>(em: EntityManager, sql: string, parameters: unknown[]): Promise<T[]> {
  try {
    return (await em.getKysely().executeQuery<T>(CompiledQuery.raw(sql, parameters))).rows;
  } catch (err) {
    // The same exceptions as em.execute (a unique violation is a UniqueConstraintViolationException).
    throw err instanceof Error ? em.getDriver().convertException(err) : err;
  }
}
